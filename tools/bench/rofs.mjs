#!/usr/bin/env node
// ROFS image benchmark: `osvb rofs` vs OSv's scripts/gen-rofs-img.py vs `cat` of the same files.
//
//   node tools/bench/rofs.mjs [--runs 5] [--cases many,big,incremental] [--osv-ref DIR]
//                             [--work DIR] [--keep] [--json]
//
// Cases (trees generated in a temp dir, deterministic content):
//   many         21,500 files, 215 MB, in 215 directories
//   big          18 files, 1.07 GB
//   incremental  500 "modules" (directories) of 5 files, ≥ 200 MB: a full write (incremental
//                mode, no previous image) vs the incremental update after one file of one
//                module in the middle changed (same size, new content)
//
// Every tool writes a fresh output file each run (outputs are removed between runs); tools
// alternate run by run; the table shows medians of --runs runs and ratios. The manifests use
// `/dir/**: dir/**` lines and osvb runs with --compat=osv, so both images are byte-identical
// (checked once per case). Needs `npm run build` (packages/*/dist and the CLI bundle).

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(HERE, '../..');
const OSVB_BIN = path.join(REPO, 'packages/cli/bin/osvb.js');
const CLI_MAIN = path.join(REPO, 'packages/cli/dist/main.js');
const ENGINE = path.join(REPO, 'packages/engine/dist/index.js');

function parseArgs(argv) {
  const o = { runs: 5, cases: ['many', 'big', 'incremental'], osvRef: undefined, work: undefined, keep: false, json: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === '--runs') o.runs = Number(val());
    else if (a === '--cases') o.cases = val().split(',');
    else if (a === '--osv-ref') o.osvRef = val();
    else if (a === '--work') o.work = val();
    else if (a === '--keep') o.keep = true;
    else if (a === '--json') o.json = true;
    else if (a === '-h' || a === '--help') {
      console.log('usage: node tools/bench/rofs.mjs [--runs 5] [--cases many,big,incremental] [--osv-ref DIR] [--work DIR] [--keep] [--json]');
      process.exit(0);
    } else throw new Error(`unknown option ${a}`);
  }
  if (!(o.runs >= 1)) throw new Error('--runs must be ≥ 1');
  return o;
}

const opts = parseArgs(process.argv.slice(2));
if (!fs.existsSync(CLI_MAIN) || !fs.existsSync(ENGINE)) {
  console.error('run `npm run build` first (packages/cli/dist and packages/engine/dist are missing)');
  process.exit(2);
}
const osvRef = opts.osvRef ?? process.env.OSV_REF ?? (fs.existsSync('/work/ref/osv') ? '/work/ref/osv' : undefined);
const genRofs = osvRef && fs.existsSync(path.join(osvRef, 'scripts/gen-rofs-img.py')) ? path.join(osvRef, 'scripts/gen-rofs-img.py') : undefined;
const work = opts.work ?? fs.mkdtempSync(path.join(os.tmpdir(), 'osvb-bench-rofs-'));
fs.mkdirSync(work, { recursive: true });
const log = (s) => process.stderr.write(s + '\n');

// ---------------------------------------------------------------------------------------------
// Deterministic trees

/** xorshift32-filled buffer: incompressible-looking, reproducible. */
function fill(buf, seed) {
  let x = (seed * 2654435761) >>> 0 || 1;
  const u32 = new Uint32Array(buf.buffer, buf.byteOffset, buf.byteLength >>> 2);
  for (let i = 0; i < u32.length; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    u32[i] = x;
  }
  for (let i = u32.length * 4; i < buf.length; i++) buf[i] = i & 255;
  return buf;
}

/** dirs × files; size(d, f) bytes each. Returns the build dir, the manifest and the file list (in manifest/walk order is not needed for cat). */
function makeTree(name, dirs, filesPerDir, size) {
  const build = path.join(work, name, 'build');
  const marker = path.join(work, name, '.complete');
  const files = [];
  let manifest = '';
  let total = 0;
  for (let d = 0; d < dirs; d++) {
    const dn = `d${String(d).padStart(4, '0')}`;
    manifest += `/usr/${dn}/**: ${dn}/**\n`;
    for (let f = 0; f < filesPerDir; f++) {
      const rel = `${dn}/f${String(f).padStart(4, '0')}.bin`;
      files.push(rel);
      total += size(d, f);
    }
  }
  if (!fs.existsSync(marker)) {
    log(`generating ${name}: ${files.length} files, ${(total / 1e6).toFixed(0)} MB …`);
    fs.rmSync(path.join(work, name), { recursive: true, force: true });
    let scratch = Buffer.alloc(0);
    let i = 0;
    for (let d = 0; d < dirs; d++) {
      fs.mkdirSync(path.join(build, `d${String(d).padStart(4, '0')}`), { recursive: true });
      for (let f = 0; f < filesPerDir; f++) {
        const n = size(d, f);
        if (scratch.length < n) scratch = Buffer.allocUnsafe(n);
        fs.writeFileSync(path.join(build, files[i]), fill(scratch.subarray(0, n), i + 1));
        i++;
      }
    }
    fs.writeFileSync(path.join(build, 'usr.manifest'), manifest);
    fs.writeFileSync(path.join(build, 'files.list'), files.join('\0') + '\0');
    fs.writeFileSync(marker, '');
  }
  return { name, build, files, total };
}

// ---------------------------------------------------------------------------------------------
// Runners

function timed(cmd, args, cwd, env = process.env) {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(cmd, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 256 << 20 });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.status !== 0) throw new Error(`${cmd} ${args.slice(0, 4).join(' ')} … failed (${r.status}):\n${r.stderr}`);
  return { ms, stdout: r.stdout.toString(), stderr: r.stderr.toString() };
}

// The installed entry point (it loads the esbuild bundle for `rofs`, dist/osvb-rofs.mjs, when present).
const nodeCli = (args) => [OSVB_BIN, ...args];
const cliEnv = { ...process.env, OSVB_CACHE_DIR: path.join(work, '.cache') };
delete cliEnv.STRIP;

function rmOut(build, name) {
  fs.rmSync(path.join(build, name), { force: true });
  fs.rmSync(path.join(build, `${name}.osvb-layout.json`), { force: true });
}

// Every tool writes the same output path, removed right before it runs: page-cache pages freed
// by the previous run are then reused the same way for every tool (on VMs that hand freed
// memory back to the host, writing into fresh memory costs noticeably more).
const OUT = 'out.img';
const tools = {
  'osvb rofs': (t) => {
    rmOut(t.build, OUT);
    return timed(process.execPath, nodeCli(['rofs', '-m', 'usr.manifest', '-o', OUT, '--compat=osv', '--no-incremental']), t.build, cliEnv).ms;
  },
  // The same write without @osv-build/native: what the JavaScript copiers do, in the same run.
  'osvb rofs (OSVB_NATIVE=0)': (t) => {
    rmOut(t.build, OUT);
    return timed(process.execPath, nodeCli(['rofs', '-m', 'usr.manifest', '-o', OUT, '--compat=osv', '--no-incremental']), t.build, { ...cliEnv, OSVB_NATIVE: '0' }).ms;
  },
  'osvb rofs (incremental, cold)': (t) => {
    rmOut(t.build, OUT);
    return timed(process.execPath, nodeCli(['rofs', '-m', 'usr.manifest', '-o', OUT, '--compat=osv']), t.build, cliEnv).ms;
  },
  // NODE_EXTRA_CA_CERTS, when the machine sets it, makes Node 20 read that CA bundle at every
  // start (50 ms and more here), before any osvb code runs; osvb rofs makes no TLS connection.
  // The same write without it, in the same run, shows what is osvb's own time.
  'osvb rofs (no NODE_EXTRA_CA_CERTS)': process.env.NODE_EXTRA_CA_CERTS
    ? (t) => {
        rmOut(t.build, OUT);
        const env = { ...cliEnv };
        delete env.NODE_EXTRA_CA_CERTS;
        return timed(process.execPath, nodeCli(['rofs', '-m', 'usr.manifest', '-o', OUT, '--compat=osv', '--no-incremental']), t.build, env).ms;
      }
    : undefined,
  'gen-rofs-img.py': genRofs
    ? (t) => {
        rmOut(t.build, OUT);
        return timed('python3', [genRofs, '-o', OUT, '-m', 'usr.manifest'], t.build, { ...process.env, STRIP: '' }).ms;
      }
    : undefined,
  cat: (t) => {
    rmOut(t.build, OUT);
    return timed('sh', ['-c', `xargs -0 cat < files.list > ${OUT}`], t.build).ms;
  },
};

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

function peakRssMb(t) {
  if (!fs.existsSync('/usr/bin/time')) return undefined;
  rmOut(t.build, OUT);
  const r = spawnSync('/usr/bin/time', ['-f', '%M', process.execPath, ...nodeCli(['rofs', '-m', 'usr.manifest', '-o', OUT, '--compat=osv', '--no-incremental'])], {
    cwd: t.build,
    env: cliEnv,
    encoding: 'utf8',
  });
  const kb = Number(r.stderr.trim().split('\n').pop());
  return Number.isFinite(kb) ? kb / 1024 : undefined;
}

/** One more run of osvb and gen-rofs-img.py each, compared byte for byte. */
function sameImages(t) {
  if (!genRofs) return undefined;
  rmOut(t.build, OUT);
  timed(process.execPath, nodeCli(['rofs', '-m', 'usr.manifest', '-o', 'osvb.img', '--compat=osv', '--no-incremental']), t.build, cliEnv);
  timed('python3', [genRofs, '-o', 'osv.img', '-m', 'usr.manifest'], t.build, { ...process.env, STRIP: '' });
  const same = spawnSync('cmp', ['-s', 'osvb.img', 'osv.img'], { cwd: t.build }).status === 0;
  rmOut(t.build, 'osvb.img');
  rmOut(t.build, 'osv.img');
  return same;
}

const results = [];

function benchFullWrites(t) {
  const names = Object.keys(tools).filter((k) => tools[k]);
  const samples = Object.fromEntries(names.map((n) => [n, []]));
  for (let run = 0; run < opts.runs; run++) {
    const order = run % 2 ? [...names].reverse() : names;
    for (const n of order) samples[n].push(tools[n](t));
    log(`  ${t.name} run ${run + 1}/${opts.runs}: ${order.map((n) => `${n} ${samples[n].at(-1).toFixed(0)} ms`).join(', ')}`);
  }
  const identical = sameImages(t);
  const rss = peakRssMb(t);
  rmOut(t.build, OUT);
  results.push({ case: t.name, files: t.files.length, bytes: t.total, medians: Object.fromEntries(names.map((n) => [n, median(samples[n])])), samples, identical, osvbPeakRssMb: rss });
}

function benchIncremental(t) {
  const target = path.join(t.build, t.files[Math.floor(t.files.length / 2)]);
  const size = fs.statSync(target).size;
  const full = [];
  const inc = [];
  const osv = [];
  let lastStats;
  const args = ['rofs', '-m', 'usr.manifest', '-o', 'inc.img', '--compat=osv', '--json'];
  for (let run = 0; run < opts.runs; run++) {
    rmOut(t.build, 'inc.img');
    full.push(timed(process.execPath, nodeCli(args), t.build, cliEnv).ms);
    fs.writeFileSync(target, fill(Buffer.allocUnsafe(size), (Date.now() + run) | 0)); // one module's file changes
    const r = timed(process.execPath, nodeCli(args), t.build, cliEnv);
    inc.push(r.ms);
    lastStats = JSON.parse(r.stdout);
    if (genRofs) {
      rmOut(t.build, 'osv.img');
      osv.push(timed('python3', [genRofs, '-o', 'osv.img', '-m', 'usr.manifest'], t.build, { ...process.env, STRIP: '' }).ms);
    }
    log(`  ${t.name} run ${run + 1}/${opts.runs}: full ${full.at(-1).toFixed(0)} ms, incremental ${inc.at(-1).toFixed(0)} ms (${lastStats.mode}, ${lastStats.bytesWritten} bytes written)${genRofs ? `, gen-rofs-img.py ${osv.at(-1).toFixed(0)} ms` : ''}`);
  }
  rmOut(t.build, 'inc.img');
  rmOut(t.build, 'osv.img');
  const medians = { 'osvb rofs (full write)': median(full), 'osvb rofs (incremental update)': median(inc) };
  if (genRofs) medians['gen-rofs-img.py'] = median(osv);
  results.push({ case: t.name, files: t.files.length, bytes: t.total, medians, samples: { full, inc, osv }, incremental: { mode: lastStats.mode, bytesWritten: lastStats.bytesWritten, filesWritten: lastStats.filesWritten, filesReused: lastStats.filesReused, imageSize: lastStats.imageSize } });
}

try {
  log(`work dir ${work}; gen-rofs-img.py: ${genRofs ?? 'not available (set OSV_REF)'}; runs ${opts.runs}`);
  for (const c of opts.cases) {
    if (c === 'many') benchFullWrites(makeTree('many', 215, 100, (d, f) => 5000 + ((d * 7919 + f * 104729) % 10001)));
    else if (c === 'big') benchFullWrites(makeTree('big', 18, 1, (d) => 59_000_000 + d * 100_003));
    else if (c === 'incremental') benchIncremental(makeTree('incremental', 500, 5, (d, f) => 60_000 + ((d * 31 + f * 17) % 50) * 1000));
    else throw new Error(`unknown case ${c}`);
  }
} finally {
  if (!opts.keep && !opts.work) fs.rmSync(work, { recursive: true, force: true });
}

if (opts.json) {
  console.log(JSON.stringify(results, null, 2));
} else {
  const fmt = (ms) => (ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(0)} ms`);
  const lines = [];
  lines.push(`ROFS image benchmark — medians of ${opts.runs} runs (wall clock), ${os.cpus().length} CPUs, node ${process.version}`);
  for (const r of results) {
    lines.push('');
    lines.push(`${r.case}: ${r.files} files, ${(r.bytes / 1e6).toFixed(0)} MB`);
    const ref = r.medians['osvb rofs'] ?? r.medians['osvb rofs (incremental update)'];
    for (const [n, ms] of Object.entries(r.medians)) {
      lines.push(`  ${n.padEnd(36)} ${fmt(ms).padStart(9)}   ${(ms / ref).toFixed(2)}× osvb`);
    }
    if (r.medians['gen-rofs-img.py'] && r.medians['osvb rofs']) lines.push(`  gen-rofs-img.py / osvb rofs = ${(r.medians['gen-rofs-img.py'] / r.medians['osvb rofs']).toFixed(2)}`);
    if (r.medians.cat && r.medians['osvb rofs']) lines.push(`  osvb rofs / cat = ${(r.medians['osvb rofs'] / r.medians.cat).toFixed(2)}`);
    const bare = r.medians['osvb rofs (no NODE_EXTRA_CA_CERTS)'];
    if (r.medians.cat && bare) lines.push(`  osvb rofs / cat without the machine's NODE_EXTRA_CA_CERTS = ${(bare / r.medians.cat).toFixed(2)}`);
    if (r.identical !== undefined) lines.push(`  osvb image identical to gen-rofs-img.py's: ${r.identical ? 'yes' : 'NO'}`);
    if (r.osvbPeakRssMb !== undefined) lines.push(`  osvb rofs peak RSS: ${r.osvbPeakRssMb.toFixed(0)} MB`);
    if (r.incremental) {
      const i = r.incremental;
      lines.push(`  incremental update: ${i.mode}, ${i.filesWritten} file(s) written, ${i.filesReused} reused, ${(i.bytesWritten / 1e6).toFixed(2)} MB written of a ${(i.imageSize / 1e6).toFixed(0)} MB image`);
      lines.push(`  full / incremental = ${(r.medians['osvb rofs (full write)'] / r.medians['osvb rofs (incremental update)']).toFixed(1)}`);
    }
  }
  console.log(lines.join('\n'));
}
