// A throw-away Nx workspace that uses osv-build the way a user's would: the packages packed with
// `npm pack` and installed with npm next to the pinned nx, run through node_modules/.bin/nx.
// Used by the end-to-end tests (test/e2e/nx.test.ts) and the Nx benchmark (tools/bench/nx.mjs).
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/**
 * The Nx versions @osv-build/nx is tested with (the e2e matrix, test/e2e/nx*.test.ts; `npm run
 * bench:nx -- --nx V`): the newest of each major in its peer range that the registry serves, with
 * the newest @nx/devkit of that major (24.x has no 24.0.6). The first is the default.
 * Keep README's "tested with" line and packages/nx/nx-version.cjs in agreement.
 */
export const NX_MATRIX = Object.freeze([
  { nx: '22.7.12', devkit: '22.7.12' },
  { nx: '24.0.6', devkit: '24.0.0' },
  { nx: '21.6.11', devkit: '21.6.11' },
]);
/** An Nx below the range, for the "unsupported Nx" check (installed with --legacy-peer-deps, as a user forcing it would). */
export const NX_UNSUPPORTED = Object.freeze({ nx: '20.8.4', devkit: '20.8.4' });

/**
 * Environment for running nx: no daemon, no terminal UI, no Nx Cloud. With `dir`, Nx's cache and
 * workspace data stay in the workspace (Nx 24 would otherwise share a per-user ~/.nx/<id> root).
 */
export function nxEnv(extra = {}, dir = undefined) {
  const where = dir ? { NX_CACHE_DIRECTORY: path.join(dir, '.nx/cache'), NX_WORKSPACE_DATA_DIRECTORY: path.join(dir, '.nx/workspace-data') } : {};
  return { ...process.env, NX_DAEMON: 'false', NX_TUI: 'false', NX_NO_CLOUD: 'true', NX_SKIP_NX_CACHE: undefined, OSV_BASE: undefined, OSV_BUILD_PATH: undefined, ...where, ...extra };
}

/** `npm pack` the four packages (they must be built) into `dest`; returns name → tarball path. */
export function packPackages(dest) {
  fs.mkdirSync(dest, { recursive: true });
  const out = execFileSync('npm', ['pack', '--workspace', 'packages/native', '--workspace', 'packages/engine', '--workspace', 'packages/cli', '--workspace', 'packages/nx', '--pack-destination', dest, '--json'], {
    cwd: REPO,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const packs = {};
  for (const p of JSON.parse(out)) packs[p.name] = path.join(dest, p.filename);
  return packs;
}

/**
 * Make an Nx workspace in `dir`: package.json with nx and @nx/devkit of `versions` (default: the
 * first of NX_MATRIX) and the packed packages, `npm install` (from npm's cache when it can; the
 * registry only for what it lacks), an empty nx.json and a .gitignore like a user's.
 * `legacyPeerDeps`: install even when nx is outside @osv-build/nx's peer range.
 */
export function createNxWorkspace(dir, packs, versions = NX_MATRIX[0], { legacyPeerDeps = false } = {}) {
  fs.mkdirSync(dir, { recursive: true });
  const file = (name) => `file:${packs[name]}`;
  const pkg = {
    name: 'osvb-nx-workspace',
    private: true,
    devDependencies: {
      nx: versions.nx,
      '@nx/devkit': versions.devkit,
      '@osv-build/native': file('@osv-build/native'),
      '@osv-build/engine': file('@osv-build/engine'),
      '@osv-build/cli': file('@osv-build/cli'),
      '@osv-build/nx': file('@osv-build/nx'),
    },
    // @osv-build/nx depends on @osv-build/engine 0.1.0 (and it on @osv-build/native), only in the tarballs.
    overrides: { '@osv-build/engine': file('@osv-build/engine'), '@osv-build/native': file('@osv-build/native') },
  };
  fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify(pkg, null, 2) + '\n');
  fs.writeFileSync(path.join(dir, 'nx.json'), '{}\n');
  fs.writeFileSync(path.join(dir, '.gitignore'), 'node_modules/\n.nx/\nbuild/\n.osvb/\n');
  const args = ['install', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error', '--fetch-retries=4', ...(legacyPeerDeps ? ['--legacy-peer-deps'] : [])];
  const r = spawnSync('npm', args, { cwd: dir, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`npm install (nx ${versions.nx}) in ${dir} failed (${r.status}):\n${r.stdout}\n${r.stderr}`);
  const installed = JSON.parse(fs.readFileSync(path.join(dir, 'node_modules/nx/package.json'), 'utf8')).version;
  if (installed !== versions.nx) throw new Error(`${dir}: npm installed nx ${installed}, not ${versions.nx}`);
}

/** Run the workspace's nx; never throws (look at status). */
export function nx(dir, args, env = {}) {
  const t0 = performance.now();
  const r = spawnSync(path.join(dir, 'node_modules/.bin/nx'), args, { cwd: dir, env: nxEnv(env, dir), encoding: 'utf8', maxBuffer: 64 << 20 });
  return { status: r.status ?? -1, stdout: r.stdout ?? '', stderr: r.stderr ?? '', output: `${r.stdout ?? ''}${r.stderr ?? ''}`, ms: performance.now() - t0 };
}

export function git(dir, args) {
  return execFileSync('git', ['-c', 'user.name=osvb', '-c', 'user.email=osvb@example.invalid', '-c', 'commit.gpgsign=false', ...args], { cwd: dir, encoding: 'utf8' });
}
