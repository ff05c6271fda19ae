// Bundles the osvb CLI (and the engine it uses) into one ESM file, packages/cli/dist/osvb.mjs,
// and the Nx plugin's graph code into packages/nx/dist/plugin.bundle.mjs (Nx loads it on every
// project graph computation without the daemon, so its start-up counts the same way).
// Why: a no-op build is dominated by Node's start-up, and loading ~60 small modules costs
// more than the build's own work; one file loads in a fraction of that. Dependencies that
// only the slow paths need (execa, jsonc-parser, ajv) stay external and load on first use.
import { build } from 'esbuild';
import { fileURLToPath } from 'node:url';
import * as path from 'node:path';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
/** ESM for Node 20; `require` for the CommonJS dependencies; loaded-on-demand ones stay external. */
const common = {
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  banner: { js: "import { createRequire as __osvbCreateRequire } from 'node:module'; const require = __osvbCreateRequire(import.meta.url);" },
  logLevel: 'warning',
  sourcemap: 'linked',
};
const lazy = ['execa', 'jsonc-parser', 'ajv'];

await build({
  ...common,
  entryPoints: [path.join(root, 'packages/cli/dist/main.js')],
  outfile: path.join(root, 'packages/cli/dist/osvb.mjs'),
  external: lazy,
});
// `osvb rofs` alone (bin/osvb.js picks it for that command): a third of the size, so a third of
// the compile time, and none of the Node modules the build pipeline and the watcher load.
await build({
  ...common,
  entryPoints: [path.join(root, 'packages/cli/dist/rofsMain.js')],
  outfile: path.join(root, 'packages/cli/dist/osvb-rofs.mjs'),
  external: lazy,
});
await build({
  ...common,
  entryPoints: [path.join(root, 'packages/nx/dist/plugin.js')],
  outfile: path.join(root, 'packages/nx/dist/plugin.bundle.mjs'),
  external: [...lazy, '@nx/devkit', 'nx'],
});
