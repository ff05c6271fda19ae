// The cost of updating rofs.img inside a build, measured in-process (the way `osvb build`
// runs the image stage, writeRofsImageFromManifest; no Node start-up in either figure): a full
// write of a 500-module, ≥200 MB image vs the in-place update after one file of one module in
// the middle changed. Both figures start from the manifest text: the full write builds the
// tree, the update checks the tree's recorded reads (and builds it only if one changed).
// Medians of --runs (default 5).
//
//   node tools/bench/rofs-update.mjs [--runs 5] [--work DIR]
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const engine = await import(path.join(REPO, 'packages/engine/dist/index.js'));
await engine.initHashing();

const args = process.argv.slice(2);
const runs = Number(args[args.indexOf('--runs') + 1] || 5) || 5;
const work = args.includes('--work') ? args[args.indexOf('--work') + 1] : fs.mkdtempSync(path.join(os.tmpdir(), 'osvb-rofs-update-'));
const build = path.join(work, 'build');

// 500 module directories of 5 files, 84 KiB each: 2500 files, 215 MB.
fs.mkdirSync(build, { recursive: true });
let manifest = '[manifest]\n';
const chunk = Buffer.alloc(86016);
for (let m = 0; m < 500; m++) {
  const dir = path.join(build, `m${String(m).padStart(4, '0')}`);
  fs.mkdirSync(dir, { recursive: true });
  for (let f = 0; f < 5; f++) {
    chunk.fill((m * 7 + f) & 0xff);
    chunk.writeUInt32LE(m * 5 + f, 0);
    fs.writeFileSync(path.join(dir, `f${f}.bin`), chunk);
  }
  manifest += `/m${String(m).padStart(4, '0')}/**: m${String(m).padStart(4, '0')}/**\n`;
}
// A real tree's directories are older than the 2 s window in which a directory's timestamps are
// not trusted (treeReads.ts: such a directory is listed again on every update): wait it out.
await new Promise((r) => setTimeout(r, 2100));
const out = path.join(build, 'rofs.img');
const opts = { file: path.join(build, 'usr.manifest'), cwd: build, walkOrder: 'sorted', strip: false };

async function once(incremental) {
  const t0 = performance.now();
  const stats = await engine.writeRofsImageFromManifest(manifest, opts, out, { incremental });
  return { ms: performance.now() - t0, stats };
}
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const ROFS_BLOCK = 512;
const full = [];
const update = [];
const growth = [];
for (let i = 0; i < runs; i++) {
  fs.rmSync(out, { force: true });
  fs.rmSync(`${out}.osvb-layout.json`, { force: true });
  full.push((await once(true)).ms);
  const victim = path.join(build, 'm0250', 'f2.bin');
  const buf = fs.readFileSync(victim);
  buf[100] = (buf[100] + 1 + i) & 0xff;
  fs.writeFileSync(victim, buf);
  const r = await once(true);
  if (r.stats.mode !== 'in-place') throw new Error(`expected an in-place update, got ${r.stats.mode}: ${r.stats.fullReason}`);
  if (r.stats.filesWritten !== 1) throw new Error(`expected one file rewritten, got ${r.stats.filesWritten}`);
  if (!r.stats.treeReused) throw new Error(`expected the tree to be reused: ${r.stats.treeReason}`);
  update.push(r.ms);
  // The same file one block longer: every file after it moves (the layout is gen-rofs-img's).
  const grown = Buffer.concat([buf, Buffer.alloc(ROFS_BLOCK, i)]);
  fs.writeFileSync(victim, grown);
  const g = await once(true);
  if (g.stats.mode !== 'in-place') throw new Error(`expected an in-place update, got ${g.stats.mode}: ${g.stats.fullReason}`);
  growth.push({ ms: g.ms, mb: g.stats.bytesWritten / 1e6 });
  fs.writeFileSync(victim, buf);
}
const f = median(full);
const u = median(update);
console.log(`rofs.img, 500 modules, 2500 files, ${(fs.statSync(out).size / 1e6).toFixed(0)} MB (medians of ${runs}, in-process)`);
console.log(`  full write        ${f.toFixed(0)} ms`);
console.log(`  in-place update   ${u.toFixed(0)} ms  (${((u / f) * 100).toFixed(0)}% of a full write; target ≤ 20%)`);
const gm = median(growth.map((x) => x.ms));
console.log(
  `  (the same file one block longer instead: ${gm.toFixed(0)} ms, ${((gm / f) * 100).toFixed(0)}% of a full write; ${median(growth.map((x) => x.mb)).toFixed(0)} MB rewritten: every file after it moves)`,
);
if (!args.includes('--work')) fs.rmSync(work, { recursive: true, force: true });
