// @osv-build/nx entry point. CommonJS so that every Nx version loads it with require(); the
// implementation is ESM (as the engine) and loaded on first use.
'use strict';
// An Nx outside the supported range fails here, in one line, before anything else loads.
require('./nx-version.cjs').assertSupportedNx();
let impl;
const load = () => (impl ??= import('./dist/plugin.bundle.mjs'));

const createNodes = [
  '**/config.json',
  async (configFiles, options, context) => (await load()).createNodesImpl(configFiles, options, context),
];

module.exports = {
  name: '@osv-build/nx',
  // Nx 22 calls createNodesV2 ?? createNodes, Nx 23+ the reverse: both, same tuple.
  createNodes,
  createNodesV2: createNodes,
  createDependencies: async (options, context) => (await load()).createDependenciesImpl(options, context),
};
