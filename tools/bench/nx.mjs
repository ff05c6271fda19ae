#!/usr/bin/env node
// Nx plugin benchmark, in a throw-away Nx workspace that installs the packed packages
// (tools/nxws/workspace.mjs) around a generated OSv base of N modules (tools/gen-tree).
//
//   node tools/bench/nx.mjs [--modules 500] [--runs 5] [--nx VERSION] [--modes-only | --no-modes]
//                           [--cold-runs N] [--work DIR] [--keep] [--json]
//
// 1. createNodes + createDependencies, each run in a fresh node process that loads the
//    installed plugin and calls both as Nx would (a file map of the workspace's module.py and
//    image files is given to createDependencies): cold (no osv-build cache: every module.py
//    evaluated) and warm (nothing changed), before and after the image is built (then every
//    module has outputs to declare). Includes loading the plugin and the engine.
// 2. `nx run image:build` fully cached vs `nx run trivial:noop` (a cached `node -e 0` target of a
//    one-file project in the same workspace), alternating, NX_DAEMON=false: both pay the same
//    project graph computation; the difference is what the image task costs Nx when cached.
// 3. The two ways to build modules, on the same tree: one image task that builds its modules
//    (default) vs `moduleTasks: true` (every module its own Nx task, the image task assembles):
//    `nx run image:build` cold (no Nx cache, no osv-build cache, no module outputs), fully cached
//    (nothing changed), and after one module's source changed (a leaf: nothing requires it).
//    The modes alternate within each run. --cold-runs N: only the first N runs start cold (a
//    cold moduleTasks build of 500 modules takes minutes); the others start from the last
//    run's cache (an untimed build), default: every run. --work DIR of an earlier --keep run:
//    its workspace (installed packages, generated tree) is used again as it is.
// Medians of --runs runs, with Nx --nx (default: the first of tools/nxws NX_MATRIX). Needs
// `npm run build` first.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { generateTree } from '../gen-tree/gen-tree.mjs';
import { REPO, NX_MATRIX, createNxWorkspace, nx, packPackages } from '../nxws/workspace.mjs';
import { benchOptions, log, median } from './common.mjs';

const usage = 'usage: node tools/bench/nx.mjs [--modules 500] [--runs 5] [--nx VERSION] [--modes-only | --no-modes] [--cold-runs N] [--work DIR] [--keep] [--json]';
const opts = benchOptions(usage, { modules: 500, runs: 5, 'cold-runs': -1, nx: NX_MATRIX[0].nx, 'modes-only': false, 'no-modes': false, work: undefined, keep: false, json: false });
if (!(opts.runs >= 1) || !(opts.modules >= 1)) throw new Error('--runs and --modules must be ≥ 1');
const nxVersions = NX_MATRIX.find((v) => v.nx === opts.nx);
if (!nxVersions) {
  console.error(`--nx ${opts.nx}: not in the tested matrix (${NX_MATRIX.map((v) => v.nx).join(', ')})\n${usage}`);
  process.exit(2);
}
if (opts['modes-only'] && opts['no-modes']) {
  console.error(`--modes-only and --no-modes exclude each other\n${usage}`);
  process.exit(2);
}
if (!fs.existsSync(path.join(REPO, 'packages/nx/dist/plugin.js'))) {
  console.error('run `npm run build` first (packages/nx/dist is missing)');
  process.exit(2);
}
const ms = (x) => `${x.toFixed(0)} ms`;

const work = opts.work ?? fs.mkdtempSync(path.join(os.tmpdir(), 'osvb-bench-nx-'));
const ws = path.join(work, 'ws');
log(`work dir ${work}; ${opts.modules} modules; runs ${opts.runs}; nx ${nxVersions.nx}`);

// ---------------------------------------------------------------------------------------------
// Workspace
const reuse = fs.existsSync(path.join(ws, 'node_modules/@osv-build/nx')) && fs.existsSync(path.join(ws, 'osv/config.json'));
let tree;
if (reuse) {
  log('using the workspace there as it is');
  const names = fs.readdirSync(path.join(ws, 'osv/modules')).filter((n) => /^m\d+$/.test(n)).sort();
  if (names.length !== opts.modules) throw new Error(`${ws} has ${names.length} modules, not --modules ${opts.modules}`);
  tree = { modules: names.map((name) => ({ name, dir: path.join(ws, 'osv/modules', name), cFile: path.join(ws, 'osv/modules', name, `${name}.c`) })) };
} else {
  log('packing and installing …');
  createNxWorkspace(ws, packPackages(path.join(work, 'packs')), nxVersions);
  tree = generateTree({ modules: opts.modules, out: path.join(ws, 'osv') });
}
fs.mkdirSync(path.join(ws, 'trivial'), { recursive: true });
fs.writeFileSync(path.join(ws, 'trivial/input.txt'), 'trivial\n');
fs.writeFileSync(
  path.join(ws, 'trivial/project.json'),
  JSON.stringify({ name: 'trivial', targets: { noop: { command: 'node -e 0', cache: true, inputs: ['{projectRoot}/**/*'], outputs: [] } } }, null, 2),
);
const pluginOptions = { bases: ['osv'] };
fs.writeFileSync(path.join(ws, 'nx.json'), JSON.stringify({ plugins: [{ plugin: '@osv-build/nx', options: pluginOptions }] }, null, 2));

// ---------------------------------------------------------------------------------------------
// 1. createNodes + createDependencies in a fresh process
const probe = path.join(work, 'graph-probe.mjs');
fs.writeFileSync(
  probe,
  `import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
const ws = process.argv[2];
const options = JSON.parse(process.argv[3]);
const t0 = performance.now();
// What Nx loads: the package's entry, then its createNodes tuple and createDependencies.
const plugin = createRequire(path.join(ws, 'package.json'))('@osv-build/nx');
const t1 = performance.now();
const ctx = { workspaceRoot: ws, nxJsonConfiguration: {} };
const results = await plugin.createNodesV2[1](['osv/config.json'], options, ctx);
const t2 = performance.now();
// The file map Nx would pass: each project's module.py / images files.
const projects = {};
const projectFileMap = {};
for (const [, r] of results) for (const p of Object.values(r.projects)) {
  projects[p.name] = p;
  const files = [];
  for (const f of ['module.py', 'images/default.py']) if (fs.existsSync(path.join(ws, p.root, f))) files.push({ file: p.root + '/' + f, hash: '' });
  projectFileMap[p.name] = files;
}
const t3 = performance.now();
const deps = await plugin.createDependencies(options, { workspaceRoot: ws, projects, nxJsonConfiguration: {}, externalNodes: {}, fileMap: { nonProjectFiles: [], projectFileMap }, filesToProcess: { nonProjectFiles: [], projectFileMap: {} } });
const t4 = performance.now();
process.stdout.write(JSON.stringify({ load: t1 - t0, createNodes: t2 - t1, createDependencies: t4 - t3, total: t4 - t0 - (t3 - t2), projects: Object.keys(projects).length, deps: deps.length }));
`,
);
function graphProbe() {
  const r = spawnSync(process.execPath, [probe, ws, JSON.stringify(pluginOptions)], { encoding: 'utf8', env: { ...process.env, OSV_BASE: undefined, OSVB_CACHE_DIR: undefined } });
  if (r.status !== 0) throw new Error(`graph probe failed:\n${r.stderr}`);
  return JSON.parse(r.stdout);
}
const result = { modules: opts.modules, runs: opts.runs, nx: nxVersions.nx };
const pick = (rows, k) => median(rows.map((r) => r[k]));

if (!opts['modes-only']) {
  const cold = [];
  const warm = [];
  for (let i = 0; i < opts.runs; i++) {
    fs.rmSync(path.join(ws, 'osv/.osvb'), { recursive: true, force: true });
    cold.push(graphProbe());
    warm.push(graphProbe());
    log(`  graph run ${i + 1}/${opts.runs}: cold ${ms(cold.at(-1).total)}, warm ${ms(warm.at(-1).total)} (load ${ms(warm.at(-1).load)}, createNodes ${ms(warm.at(-1).createNodes)}, createDependencies ${ms(warm.at(-1).createDependencies)})`);
  }

  // -------------------------------------------------------------------------------------------
  // 2. nx run image:build (cached) vs nx run trivial:noop (cached)
  log('first image build (not timed) …');
  const first = nx(ws, ['run', 'image:build']);
  if (first.status !== 0) throw new Error(`nx run image:build failed:\n${first.output}`);
  log(`  took ${(first.ms / 1000).toFixed(1)} s`);
  for (const args of [['run', 'image:build'], ['run', 'trivial:noop'], ['run', 'trivial:noop']]) {
    const r = nx(ws, args);
    if (r.status !== 0) throw new Error(`nx ${args.join(' ')} failed:\n${r.output}`);
  }
  const imageRuns = [];
  const trivialRuns = [];
  for (let i = 0; i < opts.runs; i++) {
    const order = i % 2 ? ['trivial', 'image'] : ['image', 'trivial'];
    for (const which of order) {
      const r = nx(ws, ['run', which === 'image' ? 'image:build' : 'trivial:noop']);
      if (r.status !== 0 || !/read the output from the cache/.test(r.output)) throw new Error(`${which} was not a cache hit:\n${r.output}`);
      (which === 'image' ? imageRuns : trivialRuns).push(r.ms);
    }
    log(`  nx run ${i + 1}/${opts.runs}: image:build ${ms(imageRuns.at(-1))}, trivial:noop ${ms(trivialRuns.at(-1))}`);
  }

  // The graph again, now that every module has a build record (outputs to declare).
  const warmBuilt = [];
  for (let i = 0; i < opts.runs; i++) warmBuilt.push(graphProbe());
  log(`  graph after the build: warm ${ms(median(warmBuilt.map((r) => r.total)))}`);

  Object.assign(result, {
    projects: warm[0].projects,
    dependencies: warm[0].deps,
    graphCold: { total: pick(cold, 'total'), load: pick(cold, 'load'), createNodes: pick(cold, 'createNodes'), createDependencies: pick(cold, 'createDependencies') },
    graphWarm: { total: pick(warm, 'total'), load: pick(warm, 'load'), createNodes: pick(warm, 'createNodes'), createDependencies: pick(warm, 'createDependencies') },
    graphWarmBuilt: { total: pick(warmBuilt, 'total'), load: pick(warmBuilt, 'load'), createNodes: pick(warmBuilt, 'createNodes'), createDependencies: pick(warmBuilt, 'createDependencies') },
    nxRunImageCached: median(imageRuns),
    nxRunTrivialCached: median(trivialRuns),
  });
}

// ---------------------------------------------------------------------------------------------
// 3. One image task (default) vs moduleTasks: cold, fully cached, one module changed
if (!opts['no-modes']) {
  const nxJson = path.join(ws, 'nx.json');
  const setMode = (moduleTasks) => fs.writeFileSync(nxJson, JSON.stringify({ plugins: [{ plugin: '@osv-build/nx', options: { ...pluginOptions, ...(moduleTasks ? { moduleTasks } : {}) } }] }, null, 2));
  // A leaf: the highest-numbered module (requires only point to lower numbers).
  const leaf = tree.modules.at(-1);
  /** Nothing cached anywhere: Nx's cache and workspace data, osv-build's cache, module outputs, the build path. */
  const clean = () => {
    const r = nx(ws, ['reset']);
    if (r.status !== 0) throw new Error(`nx reset failed:\n${r.output}`);
    for (const d of ['.nx', 'osv/.osvb', 'osv/build']) fs.rmSync(path.join(ws, d), { recursive: true, force: true });
    for (const m of tree.modules) for (const f of [`lib${m.name}.so`, `lib${m.name}-stripped.so`]) fs.rmSync(path.join(m.dir, f), { force: true });
  };
  const build = (what, expectCached) => {
    const r = nx(ws, ['run', 'image:build']);
    if (r.status !== 0) throw new Error(`${what}: nx run image:build failed:\n${r.output.slice(-4000)}`);
    const all = /from the cache instead of running the command for (\d+) out of \1 tasks/.test(r.output) || (/read the output from the cache/.test(r.output) && !/ out of \d+ tasks/.test(r.output));
    if (expectCached !== undefined && expectCached !== all) {
      const ran = r.output.split('\n').filter((l) => /^> nx run \S+$/.test(l.trim()) || /^> nx run \S+\s*$/.test(l));
      throw new Error(`${what}: ${expectCached ? 'not' : 'unexpectedly'} a full Nx cache hit; tasks that ran: ${ran.join(', ') || 'none'}\n${r.output.split('\n').filter((l) => /out of|Successfully|NX /.test(l)).join('\n')}`);
    }
    return r.ms;
  };
  const modes = { oneTask: { cold: [], cached: [], changed: [] }, moduleTasks: { cold: [], cached: [], changed: [] } };
  let edits = 0;
  for (let i = 0; i < opts.runs; i++) {
    const order = i % 2 ? ['moduleTasks', 'oneTask'] : ['oneTask', 'moduleTasks'];
    for (const mode of order) {
      setMode(mode === 'moduleTasks');
      const m = modes[mode];
      if (opts['cold-runs'] < 0 || i < opts['cold-runs']) {
        clean();
        m.cold.push(build(`${mode} cold`, false));
      } else build(`${mode} warm-up`, undefined);
      m.cached.push(build(`${mode} cached`, true));
      fs.appendFileSync(leaf.cFile, `\n/* bench edit ${++edits} */\n`);
      m.changed.push(build(`${mode} one module changed`, false));
      log(`  ${mode} run ${i + 1}/${opts.runs}: cold ${m.cold.length > i ? ms(m.cold.at(-1)) : '-'}, cached ${ms(m.cached.at(-1))}, one module changed ${ms(m.changed.at(-1))}`);
    }
  }
  result.buildModes = Object.fromEntries(Object.entries(modes).map(([k, v]) => [k, { cold: v.cold.length ? median(v.cold) : undefined, coldRuns: v.cold.length, cached: median(v.cached), changed: median(v.changed) }]));
}

if (opts.json) console.log(JSON.stringify(result, null, 2));
else {
  console.log(`Nx plugin benchmark — ${opts.modules}-module OSv base, Nx ${nxVersions.nx}, medians of ${opts.runs} runs, ${os.availableParallelism()} CPUs, node ${process.version}`);
  if (result.graphCold) {
    console.log(`  projects ${result.projects}, dependencies ${result.dependencies}`);
    const g = (x) => `${ms(x.total)} (load ${ms(x.load)}, createNodes ${ms(x.createNodes)}, createDependencies ${ms(x.createDependencies)})`;
    console.log(`  createNodes + createDependencies, cold: ${g(result.graphCold)}`);
    console.log(`  createNodes + createDependencies, warm: ${g(result.graphWarm)}   target ≤ 150 ms`);
    console.log(`  … warm, after the image was built: ${g(result.graphWarmBuilt)}   target ≤ 150 ms`);
    console.log(`  nx run image:build (cached)  ${ms(result.nxRunImageCached)}`);
    console.log(`  nx run trivial:noop (cached) ${ms(result.nxRunTrivialCached)}`);
    console.log(`  image / trivial = ${(result.nxRunImageCached / result.nxRunTrivialCached).toFixed(2)}   target ≤ 1.10`);
  }
  if (result.buildModes) {
    const { oneTask: a, moduleTasks: b } = result.buildModes;
    console.log(`  nx run image:build, one image task (default) vs moduleTasks (${opts.modules + 1} tasks)${a.coldRuns !== opts.runs ? `; cold: median of ${a.coldRuns}` : ''}:`);
    for (const [k, label] of [['cold', 'cold              '], ['cached', 'fully cached      '], ['changed', 'one module changed']]) {
      if (a[k] !== undefined) console.log(`    ${label} ${ms(a[k]).padStart(9)}  vs ${ms(b[k]).padStart(9)}   moduleTasks / one task = ${(b[k] / a[k]).toFixed(2)}`);
    }
  }
}
if (!opts.keep && !opts.work) fs.rmSync(work, { recursive: true, force: true });
