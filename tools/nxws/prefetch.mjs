#!/usr/bin/env node
// Installs every Nx of the test matrix (NX_MATRIX, and the out-of-range NX_UNSUPPORTED) once, in
// parallel, into node_modules/.cache/osvb-nx/<version>/, so npm's cache holds nx, @nx/devkit,
// their dependencies and the platform binary before the e2e suites (test/e2e/nx*.test.ts) make
// their workspaces with `npm install --prefer-offline`. A version already there is skipped; a
// failed install is retried, then reported in one line per version (exit 1). `.ci/run` runs it.
//
//   node tools/nxws/prefetch.mjs
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { NX_MATRIX, NX_UNSUPPORTED, REPO } from './workspace.mjs';

const root = path.join(REPO, 'node_modules/.cache/osvb-nx');
const ATTEMPTS = 3;

function npmInstall(dir) {
  return new Promise((resolve) => {
    const child = spawn('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error', '--ignore-scripts', '--fetch-retries=4'], { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d) => (err += d));
    child.on('close', (code) => resolve({ code, err }));
  });
}

async function prefetch({ nx, devkit }) {
  const dir = path.join(root, nx);
  const installed = path.join(dir, 'node_modules/nx/package.json');
  if (fs.existsSync(installed) && JSON.parse(fs.readFileSync(installed, 'utf8')).version === nx) return `nx ${nx}: already there`;
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: `osvb-nx-${nx}`, private: true, devDependencies: { nx, '@nx/devkit': devkit } }, null, 2) + '\n');
  let last = '';
  for (let i = 1; i <= ATTEMPTS; i++) {
    const t0 = performance.now();
    const { code, err } = await npmInstall(dir);
    if (code === 0) return `nx ${nx} + @nx/devkit ${devkit}: installed in ${((performance.now() - t0) / 1000).toFixed(1)} s${i > 1 ? ` (attempt ${i})` : ''}`;
    last = err.trim().split('\n').slice(-3).join(' | ');
  }
  throw new Error(`nx ${nx}: npm install failed ${ATTEMPTS} times: ${last}`);
}

const results = await Promise.allSettled([...NX_MATRIX, NX_UNSUPPORTED].map(prefetch));
let failed = false;
for (const r of results) {
  if (r.status === 'fulfilled') console.log(`prefetch: ${r.value}`);
  else {
    failed = true;
    console.error(`prefetch: ${r.reason.message}`);
  }
}
process.exit(failed ? 1 : 0);
