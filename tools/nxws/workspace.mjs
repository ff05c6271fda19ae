// A throw-away Nx workspace that uses osv-build the way a user's would: the packages packed with
// `npm pack` and installed with npm next to the pinned nx, run through node_modules/.bin/nx.
// Used by the end-to-end tests (test/e2e/nx.test.ts) and the Nx benchmark (tools/bench/nx.mjs).
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const NX_VERSION = JSON.parse(fs.readFileSync(path.join(REPO, 'package.json'), 'utf8')).devDependencies.nx;

/** Environment for running nx: no daemon, no terminal UI, no Nx Cloud. */
export function nxEnv(extra = {}) {
  return { ...process.env, NX_DAEMON: 'false', NX_TUI: 'false', NX_NO_CLOUD: 'true', NX_SKIP_NX_CACHE: undefined, OSV_BASE: undefined, OSV_BUILD_PATH: undefined, ...extra };
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
 * Make an Nx workspace in `dir`: package.json with nx, @nx/devkit and the packed packages,
 * `npm install` (from npm's cache when it can), an empty nx.json and a .gitignore like a user's.
 */
export function createNxWorkspace(dir, packs) {
  fs.mkdirSync(dir, { recursive: true });
  const file = (name) => `file:${packs[name]}`;
  const pkg = {
    name: 'osvb-nx-workspace',
    private: true,
    devDependencies: {
      nx: NX_VERSION,
      '@nx/devkit': NX_VERSION,
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
  const r = spawnSync('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error'], { cwd: dir, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`npm install in ${dir} failed (${r.status}):\n${r.stdout}\n${r.stderr}`);
}

/** Run the workspace's nx; never throws (look at status). */
export function nx(dir, args, env = {}) {
  const t0 = performance.now();
  const r = spawnSync(path.join(dir, 'node_modules/.bin/nx'), args, { cwd: dir, env: nxEnv(env), encoding: 'utf8', maxBuffer: 64 << 20 });
  return { status: r.status ?? -1, stdout: r.stdout ?? '', stderr: r.stderr ?? '', output: `${r.stdout ?? ''}${r.stderr ?? ''}`, ms: performance.now() - t0 };
}

export function git(dir, args) {
  return execFileSync('git', ['-c', 'user.name=osvb', '-c', 'user.email=osvb@example.invalid', '-c', 'commit.gpgsign=false', ...args], { cwd: dir, encoding: 'utf8' });
}
