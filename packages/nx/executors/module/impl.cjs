'use strict';
require('../../nx-version.cjs').assertSupportedNx();
// CommonJS shim: Nx loads executors with require(); the implementation is ESM.
module.exports = async function (options, context) {
  const { default: run } = await import('../../dist/executors/module.js');
  return run(options, context);
};
