#!/usr/bin/env node
// Remote-cached CI builds: "machine A" builds a generated tree with the remote cache (a real
// turborepo-remote-cache on 127.0.0.1, filesystem storage); "machine B" — a fresh copy of the
// same tree at a different path with an empty local cache — builds it again from the remote.
// Baselines in the same run: OSv's module.py building a fresh copy cold (with OSV_REF or
// /work/ref/osv), and osvb building a fresh copy cold without a remote.
//
//   node tools/bench/remote.mjs [--modules 500] [--runs 3] [--work DIR] [--keep] [--json]
//
// Each timed build gets its own fresh copy (and, for B, an empty local cache). Medians of
// --runs. Makes are counted with a logging `make` wrapper on PATH. Needs `npm run build`.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { generateTree } from '../gen-tree/gen-tree.mjs';
import { OSVB, REPO, benchOptions, log, median } from './common.mjs';


const opts = benchOptions('usage: node tools/bench/remote.mjs [--modules 500] [--runs 3] [--work DIR] [--keep] [--json]', { modules: 500, runs: 3, work: undefined, keep: false, json: false });
if (!(opts.runs >= 1) || !(opts.modules >= 1)) throw new Error('--runs and --modules must be ≥ 1');
const work = opts.work ?? fs.mkdtempSync(path.join(os.tmpdir(), 'osvb-bench-remote-'));
const osvRef = process.env.OSV_REF ?? (fs.existsSync('/work/ref/osv/scripts/module.py') ? '/work/ref/osv' : undefined);

const pristine = path.join(work, 'pristine');
generateTree({ modules: opts.modules, out: pristine, force: true });
let copies = 0;
function freshCopy() {
  const dir = path.join(work, `copy-${copies++}`, 'osv');
  fs.mkdirSync(path.dirname(dir), { recursive: true });
  fs.cpSync(pristine, dir, { recursive: true });
  return dir;
}

// A make that logs each call.
const makeLog = path.join(work, 'make.log');
const bin = path.join(work, 'bin');
fs.mkdirSync(bin, { recursive: true });
const realMake = (process.env.PATH ?? '').split(':').map((d) => path.join(d, 'make')).find((p) => fs.existsSync(p));
fs.writeFileSync(path.join(bin, 'make'), `#!/bin/sh\necho x >> '${makeLog}'\nexec '${realMake}' "$@"\n`, { mode: 0o755 });
const makes = () => (fs.existsSync(makeLog) ? fs.readFileSync(makeLog, 'utf8').split('\n').filter(Boolean).length : 0);

function libgccDir() {
  const r = spawnSync('gcc', ['-print-file-name=libgcc_s.so.1'], { encoding: 'utf8' });
  const p = r.stdout.trim();
  return path.isAbsolute(p) ? path.dirname(fs.realpathSync(p)) : '';
}
const osvEnv = (base) => ({
  ...process.env,
  PATH: `${bin}:${process.env.PATH}`,
  OSV_BASE: base,
  OSV_BUILD_PATH: path.join(base, 'build/release'),
  fs_type: 'zfs',
  mode: 'release',
  ARCH: process.arch === 'arm64' ? 'aarch64' : 'x64',
  libgcc_s_dir: libgccDir(),
  CI: 'true',
});

function timed(file, args, env, cwd) {
  const before = makes();
  const t0 = performance.now();
  const r = spawnSync(file, args, { env, cwd, encoding: 'utf8', maxBuffer: 256 << 20 });
  const ms = performance.now() - t0;
  if (r.status !== 0) throw new Error(`${path.basename(file)} ${args.slice(0, 3).join(' ')} failed (${r.status}):\n${(r.stdout ?? '') + (r.stderr ?? '')}`.slice(0, 4000));
  return { ms, makes: makes() - before, stderr: r.stderr };
}

// The server.
const storage = path.join(work, 'remote-storage');
fs.mkdirSync(storage, { recursive: true });
const server = spawn(process.execPath, [path.join(REPO, 'node_modules/turborepo-remote-cache/dist/cli.js')], {
  env: { ...process.env, HOST: '127.0.0.1', PORT: '0', TURBO_TOKEN: 'bench', STORAGE_PROVIDER: 'local', STORAGE_PATH: storage, STORAGE_PATH_USE_TMP_FOLDER: 'false', NODE_ENV: 'production' },
  stdio: ['ignore', 'pipe', 'pipe'],
});
process.on('exit', () => server.exitCode === null && server.kill('SIGKILL'));
const url = await new Promise((resolve, reject) => {
  let out = '';
  const t = setTimeout(() => reject(new Error(`turborepo-remote-cache did not start:\n${out}`)), 20_000);
  const on = (d) => {
    out += d;
    const m = /Server listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(out);
    if (m) {
      clearTimeout(t);
      resolve(m[1]);
    }
  };
  server.stdout.on('data', on);
  server.stderr.on('data', on);
});
const remoteEnv = { OSVB_REMOTE_CACHE_URL: url, OSVB_REMOTE_CACHE_TOKEN: 'bench' };
const osvbBuild = (base, cache, extraEnv) => timed(process.execPath, [OSVB, 'build', 'image=all', '--osv-base', base, '--cache-dir', cache], { ...osvEnv(base), ...extraEnv }, base);
const parseRemote = (stderr) => {
  const m = /remote cache: (\d+) modules restored from it, (\d+) records found, (\d+) missing; ([\d.]+) MB down, ([\d.]+) MB up \((\d+) uploads\)/.exec(stderr);
  return m ? { restored: +m[1], found: +m[2], missing: +m[3], downMB: +m[4], upMB: +m[5], uploads: +m[6] } : undefined;
};

log(`work dir ${work}; ${opts.modules} modules; runs ${opts.runs}; remote ${url}; OSv baseline: ${osvRef ?? 'not available (set OSV_REF)'}`);
log('machine A: cold build with the remote (populates it) …');
const a = osvbBuild(freshCopy(), path.join(work, 'cache-a'), remoteEnv);
const aRemote = parseRemote(a.stderr);
log(`  A: ${(a.ms / 1000).toFixed(1)} s, ${a.makes} makes, uploaded ${aRemote?.upMB} MB in ${aRemote?.uploads} artifacts`);

const rows = { b: [], osvbCold: [], osvCold: [] };
for (let i = 0; i < opts.runs; i++) {
  const b = osvbBuild(freshCopy(), path.join(work, `cache-b-${i}`), remoteEnv);
  rows.b.push({ ...b, remote: parseRemote(b.stderr) });
  log(`  run ${i + 1}: B ${(b.ms / 1000).toFixed(2)} s, ${b.makes} makes, ${rows.b.at(-1).remote?.downMB} MB down`);
  const c = osvbBuild(freshCopy(), path.join(work, `cache-c-${i}`), { OSVB_REMOTE_CACHE_URL: undefined });
  rows.osvbCold.push(c);
  log(`  run ${i + 1}: osvb cold ${(c.ms / 1000).toFixed(1)} s, ${c.makes} makes`);
  if (osvRef) {
    const base = freshCopy();
    fs.mkdirSync(path.join(base, 'build/release'), { recursive: true });
    const o = timed('python3', [path.join(osvRef, 'scripts/module.py'), 'build', '-c', '!all'], osvEnv(base), base);
    rows.osvCold.push(o);
    log(`  run ${i + 1}: OSv module.py cold ${(o.ms / 1000).toFixed(1)} s, ${o.makes} makes`);
  }
  for (let j = 0; j < copies; j++) fs.rmSync(path.join(work, `copy-${j}`), { recursive: true, force: true });
}
server.kill('SIGTERM');

const bMs = median(rows.b.map((r) => r.ms));
const result = {
  modules: opts.modules,
  runs: opts.runs,
  populate: { ms: a.ms, makes: a.makes, uploadedMB: aRemote?.upMB, uploads: aRemote?.uploads },
  fromRemote: { ms: bMs, makes: Math.max(...rows.b.map((r) => r.makes)), downloadedMB: rows.b[0].remote?.downMB, restored: rows.b[0].remote?.restored },
  osvbCold: { ms: median(rows.osvbCold.map((r) => r.ms)) },
  osvCold: rows.osvCold.length ? { ms: median(rows.osvCold.map((r) => r.ms)) } : undefined,
};
if (opts.json) console.log(JSON.stringify(result, null, 2));
else {
  const s = (ms) => `${(ms / 1000).toFixed(2)} s`;
  console.log(`Remote cache benchmark — ${opts.modules}-module tree, medians of ${opts.runs}, ${os.availableParallelism()} CPUs`);
  console.log(`  A (cold, populates the remote): ${s(a.ms)}, ${a.makes} makes, ${aRemote?.upMB} MB uploaded in ${aRemote?.uploads} artifacts`);
  console.log(`  B (fresh copy elsewhere, empty local cache): ${s(bMs)}, ${result.fromRemote.makes} makes, ${result.fromRemote.downloadedMB} MB downloaded, ${result.fromRemote.restored} modules from the remote`);
  console.log(`  osvb cold, no remote: ${s(result.osvbCold.ms)}  → B is ${(result.osvbCold.ms / bMs).toFixed(1)}x faster`);
  if (result.osvCold) console.log(`  OSv module.py cold: ${s(result.osvCold.ms)}  → B is ${(result.osvCold.ms / bMs).toFixed(1)}x faster   target ≥ 10x`);
}
if (!opts.keep && !opts.work) fs.rmSync(work, { recursive: true, force: true });
