#!/usr/bin/env node
// usr.img benchmarks (issue "Bootable images"), medians of --runs, tools alternating run by run:
//
//  noop    `osvb build image=all fs=rofs` with nothing changed, with --kernel (usr.img kept up
//          to date) vs without (rofs.img only), on --sizes generated trees;
//  update  one data file of one module changed, then usr.img brought up to date: `osvb build
//          image=all fs=rofs --kernel K` (the whole build: evaluation check, keys, rofs.img and
//          usr.img in place) vs scripts/build's rofs steps on the same usr.manifest
//          (gen-rofs-img.py, cp loader.img, imgedit.py setpartition, qemu-img resize, dd,
//          qemu-img convert -O qcow2, qemu-img resize, imgedit.py setargs), on a 500-module tree
//          of --data-files × --data-bytes per module (default 5 × 84 KiB: 215 MB);
//  watch   `osvb watch image=native fs=rofs --kernel K --run` on examples/osv: from writing a
//          data file (/etc/motd) to its line on the restarted VM's console (TCG here).
//
//   node tools/bench/disk.mjs [--runs 5] [--sizes 100,500] [--parts noop,update,watch]
//                             [--kernel DIR] [--osv-ref DIR] [--work DIR]
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { osvDiskScript } from '../conformance/disk-oracle.mjs';
import { generateTree } from '../gen-tree/gen-tree.mjs';
import { benchOptions, log, median, OSVB, REPO } from './common.mjs';

const USAGE = 'usage: node tools/bench/disk.mjs [--runs 5] [--sizes 100,500] [--parts noop,update,watch] [--kernel DIR] [--osv-ref DIR] [--work DIR] [--data-files 5] [--data-bytes 86016]';
const opts = benchOptions(USAGE, {
  runs: 5,
  sizes: '100,500',
  parts: 'noop,update,watch',
  kernel: path.resolve(REPO, '../shared/osv-kernel'),
  'osv-ref': process.env.OSV_REF || '/work/ref/osv',
  work: undefined,
  'data-files': 5,
  'data-bytes': 86016,
});
const parts = new Set(opts.parts.split(','));
const work = opts.work ?? fs.mkdtempSync(path.join(os.tmpdir(), 'osvb-bench-disk-'));
const env = { ...process.env, OSV_BASE: '', OSV_BUILD_PATH: '', CI: 'true' };
const results = [];

function osvb(args, cwd) {
  const t0 = performance.now();
  const r = spawnSync(process.execPath, [OSVB, ...args], { cwd, env, encoding: 'utf8' });
  const ms = performance.now() - t0;
  if (r.status !== 0) throw new Error(`osvb ${args.join(' ')} failed:\n${r.stderr}`);
  return { ms, stderr: r.stderr };
}
const fmt = (ms) => `${(ms / 1000).toFixed(3)} s`;
function copyTree(src, dest) {
  fs.rmSync(dest, { recursive: true, force: true });
  fs.cpSync(src, dest, { recursive: true });
}

if (parts.has('noop')) {
  for (const n of opts.sizes.split(',').map(Number)) {
    const gen = path.join(work, `noop-${n}`);
    generateTree({ modules: n, out: gen, seed: 1, force: true });
    const plain = path.join(work, `noop-${n}-plain`);
    const disk = path.join(work, `noop-${n}-disk`);
    copyTree(gen, plain);
    copyTree(gen, disk);
    const words = ['build', 'image=all', 'fs=rofs'];
    osvb([...words, '--cache-dir', path.join(plain, '.cache')], plain);
    osvb([...words, '--cache-dir', path.join(disk, '.cache'), '--kernel', opts.kernel], disk);
    const a = [];
    const b = [];
    for (let i = 0; i < opts.runs; i++) {
      const runA = () => a.push(osvb([...words, '--cache-dir', path.join(plain, '.cache')], plain).ms);
      const runB = () => b.push(osvb([...words, '--cache-dir', path.join(disk, '.cache'), '--kernel', opts.kernel], disk).ms);
      if (i % 2) (runB(), runA());
      else (runA(), runB());
    }
    results.push({ part: 'noop', modules: n, withoutUsrImg: median(a), withUsrImg: median(b), ratio: median(b) / median(a) });
    log(`noop ${n} modules: without usr.img ${fmt(median(a))}, with usr.img ${fmt(median(b))} → ${(median(b) / median(a)).toFixed(2)}×`);
  }
}

if (parts.has('update')) {
  const scripts = path.join(opts['osv-ref'], 'scripts');
  if (!fs.existsSync(path.join(scripts, 'gen-rofs-img.py'))) throw new Error(`--osv-ref ${opts['osv-ref']}: no scripts/gen-rofs-img.py`);
  const tree = path.join(work, 'update-500');
  const info = generateTree({ modules: 500, out: tree, seed: 1, dataFiles: opts['data-files'], dataBytes: opts['data-bytes'], force: true });
  const cache = path.join(tree, '.cache');
  const words = ['build', 'image=all', 'fs=rofs', '--cache-dir', cache, '--kernel', opts.kernel];
  osvb(words, tree);
  const build = path.join(tree, 'build/release');
  // OSv's steps run in their own copy of the build directory (the same usr.manifest and inputs).
  const osvBuild = path.join(tree, 'build/osv');
  fs.mkdirSync(osvBuild, { recursive: true });
  for (const f of ['usr.manifest', 'cmdline', 'fstab']) fs.copyFileSync(path.join(build, f), path.join(osvBuild, f));
  fs.copyFileSync(path.join(opts.kernel, 'loader.img'), path.join(osvBuild, 'loader.img'));
  const libgcc = path.dirname(fs.realpathSync(execFileSync('gcc', ['-print-file-name=libgcc_s.so.1'], { encoding: 'utf8' }).trim()));
  const moduleCmdline = fs.readFileSync(path.join(build, 'cmdline'), 'utf8').replace(/^--rootfs=rofs /, '');
  const osvSteps = `set -euo pipefail
printf %s "${moduleCmdline.replace(/(["$`\\])/g, '\\$1')}" > cmdline
${osvDiskScript({ scripts, fs: 'rofs', libgccDir: libgcc })}`;
  const osv = () => {
    const t0 = performance.now();
    execFileSync('bash', ['-c', osvSteps], { cwd: osvBuild, stdio: ['ignore', 'ignore', 'inherit'] });
    return performance.now() - t0;
  };
  osv(); // page cache warm for both
  const middle = info.modules[250];
  const victim = path.isAbsolute(middle.dataFiles[0]) ? middle.dataFiles[0] : path.join(tree, middle.dataFiles[0]);
  const a = [];
  const b = [];
  let bytes = 0;
  for (let i = 0; i < opts.runs; i++) {
    // Same size, other bytes: one module changed (rebuilds nothing, the image changes in place).
    const buf = fs.readFileSync(victim);
    buf[100] = (buf[100] + 1 + i) & 0xff;
    fs.writeFileSync(victim, buf);
    const runA = () => {
      const r = osvb(words, tree);
      a.push(r.ms);
      const m = /usr\.img: updated in place \((\d+) bytes written\)/.exec(r.stderr);
      if (!m) throw new Error(`usr.img was not updated in place:\n${r.stderr}`);
      bytes = Number(m[1]);
    };
    const runB = () => b.push(osv());
    if (i % 2) (runB(), runA());
    else (runA(), runB());
  }
  // The same steps in-process, as osvb build runs its image stage (no Node start, no module
  // checks): rofs.img updated from usr.manifest, then usr.img from the ranges it wrote.
  const engine = await import(path.join(REPO, 'packages/engine/dist/index.js'));
  await engine.initHashing();
  const statCache = new engine.StatCache(undefined);
  const usrText = fs.readFileSync(path.join(build, 'usr.manifest'), 'utf8');
  const cmdline = fs.readFileSync(path.join(build, 'cmdline'), 'utf8');
  const treeOpts = {
    file: path.join(build, 'usr.manifest'),
    cwd: build,
    defines: { libgcc_s_dir: libgcc },
    walkOrder: 'sorted',
    strip: { program: 'strip', cacheDir: cache, warn: () => {}, digest: (f) => statCache.digest(f) },
  };
  const rofsImg = path.join(build, 'rofs.img');
  const stage = [];
  const stageOsv = [];
  for (let i = 0; i < opts.runs; i++) {
    const buf = fs.readFileSync(victim);
    buf[200] = (buf[200] + 1 + i) & 0xff;
    fs.writeFileSync(victim, buf);
    const runA = async () => {
      const t0 = performance.now();
      const before = engine.fileSignature(rofsImg);
      const st = await engine.writeRofsImageFromManifest(usrText, treeOpts, rofsImg, { incremental: true });
      const d = engine.writeDiskImage({ buildPath: build, fs: 'rofs', loaderImg: path.join(build, 'loader.img'), rofsImg, rofsUpdate: { before, changed: st.changed }, cmdline, fsSize: 512 * 1024 * 1024, createDisk: false, format: 'qcow2', digest: (f) => statCache.digest(f) });
      stage.push(performance.now() - t0);
      if (d.mode !== 'in-place') throw new Error(`usr.img: ${d.mode} (${d.reason})`);
    };
    const runB = () => stageOsv.push(osv());
    if (i % 2) (runB(), await runA());
    else (await runA(), runB());
  }
  results.push({ part: 'update-stage', modules: 500, osvbImageStage: median(stage), osvSteps: median(stageOsv), speedup: median(stageOsv) / median(stage) });
  log(`update, image stage in-process (rofs.img + usr.img): ${fmt(median(stage))} vs OSv's rofs steps ${fmt(median(stageOsv))} → ${(median(stageOsv) / median(stage)).toFixed(1)}× faster`);
  const imgSize = fs.statSync(path.join(build, 'rofs.img')).size;
  results.push({ part: 'update', modules: 500, rofsBytes: imgSize, osvb: median(a), osvSteps: median(b), speedup: median(b) / median(a), usrImgBytesWritten: bytes });
  log(`update (500 modules, rofs.img ${(imgSize / 1e6).toFixed(0)} MB): osvb build ${fmt(median(a))} (usr.img: ${bytes} bytes written) vs OSv's rofs steps ${fmt(median(b))} → ${(median(b) / median(a)).toFixed(1)}× faster`);
}

if (parts.has('watch')) {
  const dir = path.join(work, 'watch');
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir);
  const files = execFileSync('git', ['-C', path.join(REPO, 'examples/osv'), 'ls-files', '-z', '--cached', '--others', '--exclude-standard', '.'], { encoding: 'utf8' }).split('\0').filter(Boolean);
  for (const rel of files) {
    fs.mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true });
    fs.copyFileSync(path.join(REPO, 'examples/osv', rel), path.join(dir, rel));
  }
  const child = spawn(process.execPath, [OSVB, 'watch', 'image=native', 'fs=rofs', '--kernel', opts.kernel, '--run', '--vcpus', '1', '--memsize', '256M', '--debounce', '20'], { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (err += d));
  const until = async (pred, ms = 120_000) => {
    const end = Date.now() + ms;
    while (!pred()) {
      if (Date.now() > end) throw new Error(`watch: timed out\n${out}\n${err}`);
      await new Promise((r) => setTimeout(r, 5));
    }
  };
  await until(() => err.includes('powered off'));
  const lat = [];
  for (let i = 0; i < opts.runs; i++) {
    const marker = `motd edit ${i} ${Date.now()}`;
    const t0 = performance.now();
    fs.writeFileSync(path.join(dir, 'extra/banner/motd'), marker + '\n');
    await until(() => out.includes(marker));
    lat.push(performance.now() - t0);
    // Next edit once every VM booted so far has powered off.
    await until(() => err.split('powered off').length === err.split('[vm] booting /').length);
  }
  child.kill('SIGINT');
  await new Promise((r) => child.on('exit', r));
  results.push({ part: 'watch', latencyMs: median(lat), samples: lat, accel: /KVM/.test(err) ? 'kvm' : 'tcg' });
  log(`watch --run (examples/osv, ${/KVM/.test(err) ? 'KVM' : 'TCG'}): data file saved → its line on the new VM's console: median ${fmt(median(lat))} (${lat.map((x) => (x / 1000).toFixed(2)).join(', ')})`);
}

console.log(JSON.stringify(results, null, 2));
if (!opts.work) fs.rmSync(work, { recursive: true, force: true });
