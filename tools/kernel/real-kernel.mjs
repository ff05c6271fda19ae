#!/usr/bin/env node
// Opt-in test and bench of the kernel node on a real OSv source tree (npm run test:kernel).
//
//   OSV_SRC=/path/to/osv node tools/kernel/real-kernel.mjs [--work DIR] [--keep] [--jobs N] [--json]
//
// OSV_SRC: an OSv source checkout with its submodules (acpica, musl_1.2.1, musl_0.9.12, kbuild)
// and its .git (scripts/osv-version.sh runs `git describe`): see tools/kernel/README.md and
// tools/kernel/prepare-osv.sh. Needs `npm run build` (the engine's dist), make, g++, Boost
// (libboost-dev libboost-system-dev), flex and bison.
//
// Steps, each on its own copy of OSV_SRC (cp -a) at a different path:
//   A  cold build (config, stage1, link) with a local cache and a loopback turborepo-remote-cache;
//   A  again: up to date (no make);
//   A  one kernel source edited: make's incremental build;
//   B  another path, same local cache: restored (no make, no compiler), loader.img identical;
//   C  another path, empty local cache, warm remote: restored from the remote, identical.
// Compilers are counted with gcc/g++/cc/c++ wrappers on PATH (the same for every copy), makes with a
// make wrapper. Exits 1 when an expectation fails.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const engine = await import(path.join(REPO, 'packages/engine/dist/index.js')).catch(() => {
  console.error('the engine is not built: run npm run build (or npx tsc -b packages/engine) first');
  process.exit(2);
});
const { LocalCache, RemoteCache, runKernelNode, isOsvSourceTree, kernelMakeWords } = engine;

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : dflt;
};
const src = process.env.OSV_SRC;
if (!src) {
  console.error('test:kernel: set OSV_SRC to an OSv source checkout (see tools/kernel/README.md); nothing was run');
  process.exit(2);
}
if (!isOsvSourceTree(src)) {
  console.error(`test:kernel: ${src} is not an OSv source tree (no Makefile, conf/Makefile, loader.cc, arch/)`);
  process.exit(2);
}
const work = opt('--work') ?? fs.mkdtempSync(path.join(os.tmpdir(), 'osvb-kernel-'));
const jobs = opt('--jobs', String(os.availableParallelism?.() ?? os.cpus().length));
const json = args.includes('--json');
const keep = args.includes('--keep') || !!opt('--work');
fs.mkdirSync(work, { recursive: true });
const log = (s) => process.stderr.write(`${s}\n`);

// Counting wrappers (one directory for every copy: the toolchain identity is the same).
const bin = path.join(work, 'bin');
fs.mkdirSync(bin, { recursive: true });
const compileLog = path.join(work, 'compilers.log');
const makeLog = path.join(work, 'makes.log');
const which = (cmd) => (process.env.PATH ?? '').split(':').map((d) => path.join(d, cmd)).find((p) => fs.existsSync(p) && !p.startsWith(bin));
for (const cmd of ['gcc', 'g++', 'cc', 'c++']) {
  const real = which(cmd);
  // One line per run; runs that only ask the compiler something (-print-*, -dump*, --version: the
  // toolchain identity, the Makefile's own probes) are marked "query".
  if (real) {
    fs.writeFileSync(
      path.join(bin, cmd),
      `#!/bin/sh\nkind=compile\nfor a in "$@"; do case "$a" in -print-*|--print-*|-dump*|--version|-v) kind=query;; esac; done\necho "$kind ${cmd}" >> '${compileLog}'\nexec '${real}' "$@"\n`,
      { mode: 0o755 },
    );
  }
}
fs.writeFileSync(path.join(bin, 'make'), `#!/bin/sh\ncase "$1" in --version|-v) ;; *) echo make >> '${makeLog}';; esac\nexec '${which('make')}' "$@"\n`, { mode: 0o755 });
const count = (f, kind) => (fs.existsSync(f) ? fs.readFileSync(f, 'utf8').split('\n').filter((l) => l && (!kind || l.startsWith(`${kind} `))).length : 0);
const env = { ...Object.fromEntries(Object.entries(process.env).filter(([, v]) => typeof v === 'string')), PATH: `${bin}:${process.env.PATH}` };

function copy(name) {
  const dest = path.join(work, name, 'osv');
  if (!fs.existsSync(dest)) {
    log(`copying ${src} → ${dest}`);
    fs.mkdirSync(path.dirname(dest), { recursive: true });
    const r = spawnSync('cp', ['-a', path.resolve(src), dest], { stdio: 'inherit' });
    if (r.status !== 0) throw new Error(`cp -a failed (${r.status})`);
    fs.rmSync(path.join(dest, 'build'), { recursive: true, force: true });
  }
  return dest;
}

async function startRemote() {
  const storage = path.join(work, 'remote-store');
  fs.mkdirSync(storage, { recursive: true });
  const child = spawn(process.execPath, [path.join(REPO, 'node_modules/turborepo-remote-cache/dist/cli.js')], {
    env: { ...process.env, HOST: '127.0.0.1', PORT: '0', TURBO_TOKEN: 'kernel-bench', STORAGE_PROVIDER: 'local', STORAGE_PATH: storage, STORAGE_PATH_USE_TMP_FOLDER: 'false', NODE_ENV: 'production', LOG_LEVEL: 'info', BODY_LIMIT: String(1024 * 1024 * 1024) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const url = await new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`turborepo-remote-cache did not start:\n${out}`)), 20_000);
    const on = (d) => {
      if (out.length > 100_000) return;
      out += d.toString();
      const m = /Server listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(out);
      if (m) {
        clearTimeout(t);
        resolve(m[1]);
      }
    };
    child.stdout.on('data', on);
    child.stderr.on('data', on);
    child.on('exit', (c) => reject(new Error(`turborepo-remote-cache exited (${c}):\n${out}`)));
  });
  return { url, token: 'kernel-bench', stop: () => child.kill('SIGKILL') };
}

const words = kernelMakeWords(['mode=release', 'fs=rofs']);
async function kernel(base, cacheDir, remote, label) {
  const c0 = count(compileLog, 'compile');
  const q0 = count(compileLog, 'query');
  const m0 = count(makeLog);
  const t0 = performance.now();
  const warnings = [];
  const res = await runKernelNode({
    osvBase: base,
    makeWords: words,
    fs: 'rofs',
    bootfsManifest: 'bootfs_empty.manifest.skel',
    env,
    cache: new LocalCache(cacheDir),
    ...(remote ? { remote: new RemoteCache({ url: remote.url, token: remote.token, mode: 'read-write', timeoutMs: 120_000 }, (t) => warnings.push(t)) } : {}),
    reporter: (e) => {
      if (e.type === 'log' || e.type === 'warning') log(`  [${label}] ${e.type === 'warning' ? 'warning: ' : ''}${e.text}`);
    },
    jobs,
    heartbeatMs: 60_000,
  });
  const ms = performance.now() - t0;
  const tu = performance.now();
  await res.uploads;
  const uploadMs = performance.now() - tu;
  return { res, ms, uploadMs, compilers: count(compileLog, 'compile') - c0, queries: count(compileLog, 'query') - q0, makes: count(makeLog) - m0, warnings };
}

const failures = [];
const expect = (ok, what) => {
  if (!ok) failures.push(what);
  log(`  ${ok ? 'ok' : 'FAILED'}: ${what}`);
};
const sha = async (f) => (await import('node:crypto')).createHash('sha256').update(fs.readFileSync(f)).digest('hex');
const secs = (ms) => `${(ms / 1000).toFixed(2)} s`;

const remote = await startRemote();
const rows = [];
try {
  const a = copy('a');
  const cacheA = path.join(work, 'cache-a');
  log(`A: cold build in ${a} (-j${jobs})`);
  const cold = await kernel(a, cacheA, remote, 'A cold');
  expect(cold.res.status === 'built', `A cold: built (${cold.res.status})`);
  const img = path.join(a, 'build/release/loader.img');
  const imgSha = await sha(img);
  const size = fs.statSync(img).size;
  const outBytes = cold.res.outputs.reduce((n, o) => n + (fs.statSync(path.join(cold.res.outDir, o), { throwIfNoEntry: false })?.size ?? 0), 0);
  rows.push({ step: 'A cold build (config + stage1 + link)', ms: cold.ms, compilers: cold.compilers, queries: cold.queries, makes: cold.makes, status: cold.res.status, note: `${cold.res.outputs.length} outputs, ${(outBytes / 1e6).toFixed(1)} MB; upload ${secs(cold.uploadMs)} after` });
  log(`A: loader.img ${size} bytes, sha256 ${imgSha}; key ${cold.res.key}`);

  await new Promise((r) => setTimeout(r, 2100));
  const noop = await kernel(a, cacheA, remote, 'A no-op');
  expect(noop.res.status === 'up-to-date' && noop.makes === 0, `A again: up to date, no make (${noop.res.status}, ${noop.makes} makes)`);
  rows.push({ step: 'A again (no change)', ms: noop.ms, compilers: noop.compilers, queries: noop.queries, makes: noop.makes, status: noop.res.status });

  const b = copy('b');
  log(`B: ${b} with A's local cache`);
  const rb = await kernel(b, cacheA, undefined, 'B local');
  expect(rb.res.status === 'restored' && rb.compilers === 0 && rb.makes === 0, `B: restored from the local cache with no make and no compiler (${rb.res.status}, ${rb.makes} makes, ${rb.compilers} compilers)`);
  const bSha = await sha(path.join(b, 'build/release/loader.img'));
  expect(bSha === imgSha, 'B: loader.img byte-identical to A\'s');
  rows.push({ step: 'B restore, local cache (another path)', ms: rb.ms, compilers: rb.compilers, queries: rb.queries, makes: rb.makes, status: rb.res.status });

  const c = copy('c');
  log(`C: ${c} with an empty local cache and the warm remote`);
  const rc = await kernel(c, path.join(work, 'cache-c'), remote, 'C remote');
  expect(rc.res.status === 'restored' && rc.res.fromRemote === true && rc.compilers === 0 && rc.makes === 0, `C: restored from the remote cache with no make and no compiler (${rc.res.status}${rc.res.fromRemote ? ', from remote' : ''}, ${rc.makes} makes, ${rc.compilers} compilers)`);
  expect((await sha(path.join(c, 'build/release/loader.img'))) === imgSha, 'C: loader.img byte-identical to A\'s');
  rows.push({ step: 'C restore, empty local cache + warm remote', ms: rc.ms, compilers: rc.compilers, queries: rc.queries, makes: rc.makes, status: `${rc.res.status}${rc.res.fromRemote ? ' (remote)' : ''}` });

  // One kernel source edited in A: make's incremental build (one compile and the link).
  const edited = path.join(a, 'core/debug.cc');
  if (fs.existsSync(edited)) {
    fs.appendFileSync(edited, '\n// edited by tools/kernel/real-kernel.mjs\n');
    const inc = await kernel(a, cacheA, undefined, 'A edit');
    expect(inc.res.status === 'built' && inc.res.build?.kind === 'incremental', `A after editing core/debug.cc: make's incremental build (${inc.res.status}, ${inc.res.build?.kind}: ${inc.res.build?.reason})`);
    rows.push({ step: 'A after editing core/debug.cc (incremental)', ms: inc.ms, compilers: inc.compilers, queries: inc.queries, makes: inc.makes, status: `${inc.res.status} (${inc.res.build?.kind})` });
  }
} finally {
  remote.stop();
}

if (json) process.stdout.write(JSON.stringify({ rows, failures }, null, 2) + '\n');
else {
  console.log(`\nOSv kernel through the kernel node (one run each, -j${jobs}):`);
  for (const r of rows) console.log(`  ${r.step.padEnd(46)} ${secs(r.ms).padStart(10)}   ${String(r.compilers).padStart(5)} compiles (+${r.queries} queries), ${r.makes} makes   ${r.status}${r.note ? `   ${r.note}` : ''}`);
  console.log('  (queries: compiler runs that only print something: -print-file-name, -dumpfullversion, --version — the toolchain identity probe of an empty cache, and the Makefile\'s own probes)');
  if (failures.length) console.log(`\n${failures.length} expectation(s) failed:\n  ${failures.join('\n  ')}`);
}
if (!keep) fs.rmSync(work, { recursive: true, force: true });
process.exit(failures.length ? 1 : 0);
