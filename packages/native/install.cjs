// Builds the native copier with node-gyp when npm installs this package. It is optional: if
// it cannot be built (no compiler, no Node headers, not Linux), osv-build uses its JavaScript
// writer and says so in one line.
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

if (process.platform !== 'linux' || process.env.OSVB_SKIP_NATIVE_BUILD) process.exit(0);

// node-gyp downloads Node's headers unless told where they are: npm's `nodedir` setting, else the
// headers that come with the running Node (official tarballs and distribution packages have them).
const prefix = path.resolve(path.dirname(process.execPath), '..');
const nodedir =
  process.env.npm_config_nodedir || (fs.existsSync(path.join(prefix, 'include/node/node_api.h')) ? prefix : undefined);
const args = ['rebuild', ...(nodedir ? [`--nodedir=${nodedir}`] : [])];
const gyp = process.env.npm_config_node_gyp;
const r = gyp
  ? spawnSync(process.execPath, [gyp, ...args], { cwd: __dirname, stdio: ['ignore', 'pipe', 'pipe'] })
  : spawnSync('node-gyp', args, { cwd: __dirname, stdio: ['ignore', 'pipe', 'pipe'] });
if (r.status !== 0) {
  const out = String(r.stderr || '').trim().split('\n');
  const why = r.error ? r.error.message : out.filter((l) => /error/i.test(l)).slice(0, 2).join(' | ') || out.slice(-1)[0];
  console.warn(`@osv-build/native: not built (${why || 'node-gyp failed'}); osvb uses its JavaScript image writer`);
}
