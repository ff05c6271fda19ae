#!/usr/bin/env node
// Watch-mode latency: edit → updated image, with `osvb watch --json fs=rofs` running on a
// generated base (tools/gen-tree).
//
//   node tools/bench/watch.mjs [--modules 100] [--edits 10] [--pause-ms 3000] [--work DIR] [--keep] [--json]
//
// - manifest-only edit: a data file of a module without a Makefile (`webdata`, added to the
//   generated tree and to its image: 20 files pulled in by `/webdata/**`) gets new content, so
//   no make runs (a change anywhere in a module with a Makefile runs its make: the key covers
//   the whole module directory); latency = from just before the write to the watch-build event
//   (the build path's manifests and rofs.img updated).
// - C source edit: the .c file of the last module (which no module requires, so exactly one
//   make runs); latency as above, and make's own wall time measured by a logging wrapper on
//   PATH; reported: latency − make time.
// - usr.manifest line appended in a Makefile module with dependents (the generated module that
//   the most modules require, directly or not): latency as above; makes counted by kind
//   (`make module` vs make's up-to-date question `make -q`) and by module.
// - C source edit in that module: its make runs; latency − make time reported, and how many
//   other modules ran `make module`.
// Before these two rows the bench pauses --pause-ms (a user between two edits): osvb watch uses
// idle time to ask make ahead of time for early cutoff. The first manifest edit is reported apart.
// Medians of --edits edits each. Needs `npm run build`.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { generateTree } from '../gen-tree/gen-tree.mjs';
import { OSVB, REPO, benchOptions, log, median } from './common.mjs';


const opts = benchOptions('usage: node tools/bench/watch.mjs [--modules 100] [--edits 10] [--pause-ms 3000] [--work DIR] [--keep] [--json]', { modules: 100, edits: 10, 'pause-ms': 3000, work: undefined, keep: false, json: false });
if (!(opts.modules >= 2) || !(opts.edits >= 1)) throw new Error('--modules must be ≥ 2 and --edits ≥ 1');
if (!fs.existsSync(path.join(REPO, 'packages/cli/dist/osvb.mjs'))) {
  console.error('run `npm run build` first');
  process.exit(2);
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const work = opts.work ?? fs.mkdtempSync(path.join(os.tmpdir(), 'osvb-bench-watch-'));
const base = path.join(work, 'osv');
const info = generateTree({ modules: opts.modules, out: base, force: true });
const last = info.modules[info.modules.length - 1];
const web = path.join(base, 'modules/webdata');
fs.mkdirSync(path.join(web, 'www'), { recursive: true });
fs.writeFileSync(path.join(web, 'module.py'), 'from osv.modules import api\n');
fs.writeFileSync(path.join(web, 'usr.manifest'), '/webdata/**: ${MODULE_DIR}/www/**\n');
for (let i = 0; i < 20; i++) fs.writeFileSync(path.join(web, 'www', `page${i}.html`), `<p>page ${i}</p>\n`.repeat(50));
for (const image of ['all.py', 'default.py']) fs.appendFileSync(path.join(base, 'images', image), "api.require('webdata')\n");
const dataFile = path.join(web, 'www', 'page7.html');
const cFile = path.resolve(base, last.cFile);
// The Makefile module with the most (transitive) dependents.
const dependentsOf = new Map(info.modules.map((m) => [m.name, new Set()]));
for (const m of info.modules) for (const r of m.requires) dependentsOf.get(r).add(m.name);
const closure = (name) => {
  const seen = new Set();
  const stack = [name];
  while (stack.length) for (const d of dependentsOf.get(stack.pop()) ?? []) if (!seen.has(d)) (seen.add(d), stack.push(d));
  return seen;
};
const hub = [...info.modules].sort((a, b) => closure(b.name).size - closure(a.name).size)[0];
const hubDir = path.resolve(base, hub.dir);
const hubManifest = path.join(hubDir, 'usr.manifest');
const hubC = path.resolve(base, hub.cFile);
const hubDependents = closure(hub.name).size;

// A make that logs its own wall time.
const makeLog = path.join(work, 'make-times.log');
const bin = path.join(work, 'bin');
fs.mkdirSync(bin, { recursive: true });
const realMake = (process.env.PATH ?? '').split(':').map((d) => path.join(d, 'make')).find((p) => fs.existsSync(p));
fs.writeFileSync(
  path.join(bin, 'make'),
  `#!/bin/sh\nstart=$(date +%s%N)\n'${realMake}' "$@"\nrc=$?\nend=$(date +%s%N)\necho "$(( (end - start) / 1000 )) $(basename "$PWD") $*" >> '${makeLog}'\nexit $rc\n`,
  { mode: 0o755 },
);

const child = spawn(process.execPath, [OSVB, 'watch', '--json', 'fs=rofs', '--osv-base', base], {
  env: { ...process.env, PATH: `${bin}:${process.env.PATH}`, OSV_BASE: undefined, OSV_BUILD_PATH: undefined, OSVB_CACHE_DIR: path.join(work, 'cache'), CI: 'true' },
  stdio: ['ignore', 'pipe', 'inherit'],
});
// Never leave the watcher behind, whatever happens here.
const stopChild = () => child.exitCode === null && child.kill('SIGINT');
process.on('exit', stopChild);
process.on('uncaughtException', (e) => {
  console.error(e);
  stopChild();
  process.exit(1);
});
process.on('unhandledRejection', (e) => {
  console.error(e);
  stopChild();
  process.exit(1);
});
const events = [];
let waiters = [];
let buf = '';
child.stdout.on('data', (d) => {
  const now = performance.now();
  buf += d.toString();
  let i;
  while ((i = buf.indexOf('\n')) >= 0) {
    const line = buf.slice(0, i);
    buf = buf.slice(i + 1);
    if (line.trim()) events.push({ at: now, ...JSON.parse(line) });
  }
  for (const w of waiters) w();
});
async function waitFor(pred, what, timeoutMs = 120_000) {
  const t0 = Date.now();
  for (;;) {
    const e = events.find(pred);
    if (e) return e;
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => {
      waiters.push(r);
      setTimeout(r, 100);
    });
    waiters = [];
  }
}
const buildEvent = (index) => waitFor((e) => e.type === 'watch-build' && e.index === index, `build ${index}`);
const watchingAfter = (index) => waitFor((e) => e.type === 'watching' && events.indexOf(e) > events.findIndex((b) => b.type === 'watch-build' && b.index === index), `watching after ${index}`);

log(`work dir ${work}; ${opts.modules} modules; first build …`);
await buildEvent(0);
await watchingAfter(0);
let index = 0;

async function edit(file, content) {
  index++;
  await sleep(150); // let the file system settle between edits
  // Counted from here: makes that ran while idle (watch asking make ahead of time) are not this edit's.
  const makesBefore = fs.existsSync(makeLog) ? fs.readFileSync(makeLog, 'utf8').split('\n').filter(Boolean).length : 0;
  const t0 = performance.now();
  fs.writeFileSync(file, content);
  const e = await buildEvent(index);
  await watchingAfter(index);
  if (!e.ok) throw new Error(`build ${index} failed: ${JSON.stringify(e.error)}`);
  const lines = fs.existsSync(makeLog) ? fs.readFileSync(makeLog, 'utf8').split('\n').filter(Boolean).slice(makesBefore) : [];
  const runs = lines.map((l) => {
    const [us, dir, ...args] = l.split(' ');
    return { ms: Number(us) / 1000, dir, question: args.some((a) => /^-[a-zA-Z]*q/.test(a)) };
  });
  const builds = runs.filter((r) => !r.question);
  return {
    latency: e.at - t0,
    makeMs: builds.reduce((a, r) => a + r.ms, 0),
    makes: builds.length,
    makeDirs: builds.map((r) => r.dir),
    questions: runs.length - builds.length,
    questionMs: runs.filter((r) => r.question).reduce((a, r) => a + r.ms, 0),
    built: e.built,
    rofs: e.images?.rofs,
  };
}

const manifestOnly = [];
for (let i = 0; i < opts.edits; i++) {
  const r = await edit(dataFile, `edit ${i} ${'x'.repeat(100 + i)}\n`);
  if (r.makes !== 0) throw new Error(`a manifest-only edit ran make (${r.makes})`);
  manifestOnly.push(r);
  log(`  data edit ${i + 1}/${opts.edits}: ${r.latency.toFixed(0)} ms (rofs ${r.rofs?.mode}, ${r.rofs?.filesWritten} files rewritten)`);
}
const original = fs.readFileSync(cFile, 'utf8');
const cEdits = [];
for (let i = 0; i < opts.edits; i++) {
  const r = await edit(cFile, `${original}\nint bench_edit_${i} = ${i};\n`);
  if (r.makes !== 1) throw new Error(`a C edit ran ${r.makes} makes, expected 1`);
  cEdits.push(r);
  log(`  C edit ${i + 1}/${opts.edits}: ${r.latency.toFixed(0)} ms, make ${r.makeMs.toFixed(0)} ms, rest ${(r.latency - r.makeMs).toFixed(0)} ms`);
}
log(`hub module ${hub.name}: ${hubDependents} modules require it (directly or not); pausing ${opts['pause-ms']} ms`);
await sleep(opts['pause-ms']);
const hubText = fs.readFileSync(hubManifest, 'utf8');
const hubManifestEdits = [];
for (let i = 0; i < opts.edits; i++) {
  const r = await edit(hubManifest, `${hubText}${Array.from({ length: i + 1 }, (_, k) => `/${hub.name}/extra${k}.c: \${MODULE_DIR}/${path.basename(hubC)}\n`).join('')}`);
  r.otherMakes = r.makeDirs.filter((d) => d !== hub.name).length;
  hubManifestEdits.push(r);
  log(`  ${hub.name} usr.manifest line ${i + 1}/${opts.edits}: ${r.latency.toFixed(0)} ms, make module ${r.makes}× (${r.otherMakes} in other modules), make -q ${r.questions}× (${r.questionMs.toFixed(0)} ms), rofs ${r.rofs?.mode}`);
}
const hubOriginal = fs.readFileSync(hubC, 'utf8');
const hubCEdits = [];
for (let i = 0; i < opts.edits; i++) {
  const r = await edit(hubC, `${hubOriginal}\nint bench_hub_edit_${i} = ${i};\n`);
  hubCEdits.push(r);
  log(`  ${hub.name} C edit ${i + 1}/${opts.edits}: ${r.latency.toFixed(0)} ms, make module ${r.makes}× (${r.makeMs.toFixed(0)} ms; ${r.makeDirs.filter((d) => d !== hub.name).length} other modules), make -q ${r.questions}× (${r.questionMs.toFixed(0)} ms), rest ${(r.latency - r.makeMs).toFixed(0)} ms`);
}
child.kill('SIGINT');
await new Promise((r) => child.on('exit', r));

const result = {
  modules: opts.modules,
  edits: opts.edits,
  manifestOnlyMs: median(manifestOnly.map((r) => r.latency)),
  cEditMs: median(cEdits.map((r) => r.latency)),
  cEditMakeMs: median(cEdits.map((r) => r.makeMs)),
  cEditOverheadMs: median(cEdits.map((r) => r.latency - r.makeMs)),
  hub: hub.name,
  hubDependents,
  hubManifestMs: median(hubManifestEdits.map((r) => r.latency)),
  hubManifestMakes: median(hubManifestEdits.map((r) => r.makes)),
  hubManifestOtherMakes: Math.max(...hubManifestEdits.map((r) => r.otherMakes)),
  hubManifestQuestions: median(hubManifestEdits.map((r) => r.questions)),
  hubManifestFirstMs: hubManifestEdits[0].latency,
  hubManifestFirstQuestions: hubManifestEdits[0].questions,
  pauseMs: opts['pause-ms'],
  hubCEditMs: median(hubCEdits.map((r) => r.latency)),
  hubCEditMakeMs: median(hubCEdits.map((r) => r.makeMs)),
  hubCEditMakes: median(hubCEdits.map((r) => r.makes)),
  hubCEditQuestions: median(hubCEdits.map((r) => r.questions)),
  hubCEditOverheadMs: median(hubCEdits.map((r) => r.latency - r.makeMs)),
};
if (opts.json) console.log(JSON.stringify(result, null, 2));
else {
  console.log(`osvb watch latency — ${opts.modules}-module base, fs=rofs, medians of ${opts.edits} edits, ${os.availableParallelism()} CPUs`);
  console.log(`  manifest-only edit → image updated: ${result.manifestOnlyMs.toFixed(0)} ms   target ≤ 300 ms`);
  console.log(`  C source edit → image updated: ${result.cEditMs.toFixed(0)} ms = make ${result.cEditMakeMs.toFixed(0)} ms + ${result.cEditOverheadMs.toFixed(0)} ms   target: make + ≤ 300 ms`);
  console.log(`  usr.manifest line appended in ${result.hub} (${result.hubDependents} dependents) → image updated: ${result.hubManifestMs.toFixed(0)} ms (first edit after a ${result.pauseMs} ms pause ${result.hubManifestFirstMs.toFixed(0)} ms, make -q ${result.hubManifestFirstQuestions}×), make module ${result.hubManifestMakes}× (at most ${result.hubManifestOtherMakes} in other modules), make -q ${result.hubManifestQuestions}×   target ≤ 300 ms, no make of any other module`);
  console.log(`  C edit in ${result.hub} (${result.hubDependents} dependents) → image updated: ${result.hubCEditMs.toFixed(0)} ms = make ${result.hubCEditMakeMs.toFixed(0)} ms (${result.hubCEditMakes}×) + ${result.hubCEditOverheadMs.toFixed(0)} ms, make -q ${result.hubCEditQuestions}×   target: make of what must rebuild + ≤ 300 ms`);
}
if (!opts.keep && !opts.work) fs.rmSync(work, { recursive: true, force: true });
