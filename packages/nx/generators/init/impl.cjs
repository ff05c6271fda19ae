'use strict';
require('../../nx-version.cjs').assertSupportedNx();
// CommonJS shim: Nx loads generators with require(); the implementation is ESM.
module.exports = async function (tree, options) {
  const { default: run } = await import('../../dist/generators/init.js');
  return run(tree, options);
};
