#!/usr/bin/env node
// osvb vs OSv build benchmark. See tools/bench/README.md.
//
//   npm run bench -- [--runs 5] [--sizes 100] [--scenarios cold,unchanged,…]
//                    [--no-example] [--json] [--osv-ref DIR] [--work DIR] [--keep]
//
// For every tree (examples/osv and one generated tree per --sizes entry) and every
// scenario (scenarios.mjs), each tool builds its own working copy of the tree; the
// two tools alternate run by run and the table reports medians of wall time.

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import process from 'node:process';
import { fileURLToPath } from 'node:url';

import { generateTree } from '../gen-tree/gen-tree.mjs';
import { SCENARIOS } from './scenarios.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(HERE, '../..');
const OSVB_BIN = path.join(REPO, 'packages/cli/bin/osvb.js');
const EXAMPLE = path.join(REPO, 'examples/osv');
const DEFAULT_OSV_REF = '/work/ref/osv';

const USAGE = `usage: node tools/bench/run.mjs [options]      (npm run bench -- [options])

  --runs N            timed runs per tool and scenario; the median is reported (default 5)
  --sizes A,B,…       generated tree sizes in modules (default 100)
  --scenarios A,B,…   scenarios to run (default: all): ${SCENARIOS.map((s) => s.name).join(', ')}
  --no-example        skip examples/osv
  --seed S            seed for generated trees (default 1)
  --json              print the results as JSON on stdout instead of the table
  --osv-ref DIR       OSv checkout used as baseline (default: $OSV_REF, else ${DEFAULT_OSV_REF})
  --no-osv            run osvb only
  --no-osvb           run OSv only
  --work DIR          scratch directory (default: a new temp dir, removed at the end)
  --keep              keep the scratch directory (working copies and per-run logs)
  --fs rofs           build rofs.img too: osvb gets fs=rofs; OSv runs module.py with fs_type=rofs
                      and scripts/build's usr_rofs skeleton, then scripts/gen-rofs-img.py
  -h, --help          this text
`;

class UsageError extends Error {}

// ---------------------------------------------------------------------------
// Options

function parseArgs(argv) {
  const o = {
    runs: 5,
    sizes: [100],
    scenarios: null,
    example: true,
    seed: 1,
    json: false,
    osvRef: undefined,
    osv: true,
    osvb: true,
    work: undefined,
    keep: false,
    fs: 'zfs',
    help: false,
  };
  const list = (v) => v.split(',').map((s) => s.trim()).filter(Boolean);
  const posInt = (name, v) => {
    if (!/^\d+$/.test(v) || Number(v) < 1) throw new UsageError(`${name} expects a positive integer, got "${v}"`);
    return Number(v);
  };
  for (let i = 0; i < argv.length; i++) {
    let arg = argv[i];
    let inline;
    if (arg.startsWith('--') && arg.includes('=')) {
      inline = arg.slice(arg.indexOf('=') + 1);
      arg = arg.slice(0, arg.indexOf('='));
    }
    const value = () => {
      if (inline !== undefined) return inline;
      if (i + 1 >= argv.length) throw new UsageError(`missing value for ${arg}`);
      return argv[++i];
    };
    switch (arg) {
      case '--runs': o.runs = posInt(arg, value()); break;
      case '--sizes': {
        const v = value();
        o.sizes = v === '' || v === 'none' ? [] : list(v).map((s) => posInt(arg, s));
        break;
      }
      case '--scenarios': o.scenarios = list(value()); break;
      case '--no-example': o.example = false; break;
      case '--seed': o.seed = value(); break;
      case '--json': o.json = true; break;
      case '--osv-ref': o.osvRef = value(); break;
      case '--no-osv': o.osv = false; break;
      case '--no-osvb': o.osvb = false; break;
      case '--work': o.work = value(); break;
      case '--keep': o.keep = true; break;
      case '--fs': {
        o.fs = value();
        if (o.fs !== 'zfs' && o.fs !== 'rofs') throw new UsageError(`--fs expects zfs or rofs, got "${o.fs}"`);
        break;
      }
      case '-h': case '--help': o.help = true; break;
      default: throw new UsageError(`unknown argument "${argv[i]}"`);
    }
  }
  if (/^\d+$/.test(String(o.seed))) o.seed = Number(o.seed);
  if (o.scenarios) {
    const known = new Set(SCENARIOS.map((s) => s.name));
    for (const s of o.scenarios) if (!known.has(s)) throw new UsageError(`unknown scenario "${s}"`);
  }
  return o;
}

// ---------------------------------------------------------------------------
// File helpers

/** Recursive copy preserving symlinks (as links) and file modes; mtimes are new, like a checkout. */
function copyTree(src, dst, skip = () => false) {
  fs.mkdirSync(dst, { recursive: true });
  for (const e of fs.readdirSync(src, { withFileTypes: true })) {
    const s = path.join(src, e.name);
    const d = path.join(dst, e.name);
    if (skip(s, e)) continue;
    if (e.isSymbolicLink()) fs.symlinkSync(fs.readlinkSync(s), d);
    else if (e.isDirectory()) copyTree(s, d, skip);
    else if (e.isFile()) fs.copyFileSync(s, d);
  }
}

function rmrf(p) {
  fs.rmSync(p, { recursive: true, force: true });
}

/**
 * Copy a source tree without build outputs: the files git would check out
 * (tracked + untracked-but-not-ignored) when the tree is in a git work tree,
 * else everything except build/ and .osvb/.
 */
function snapshotSource(src, dst) {
  const git = spawnSync('git', ['-C', src, 'ls-files', '-z', '--cached', '--others', '--exclude-standard', '.'], {
    encoding: 'buffer',
  });
  if (git.status === 0) {
    const files = git.stdout.toString('utf8').split('\0').filter(Boolean);
    // ls-files lists deleted-but-tracked files too; skip what is not there.
    for (const rel of files) {
      const s = path.join(src, rel);
      let st;
      try {
        st = fs.lstatSync(s);
      } catch {
        continue;
      }
      const d = path.join(dst, rel);
      fs.mkdirSync(path.dirname(d), { recursive: true });
      if (st.isSymbolicLink()) fs.symlinkSync(fs.readlinkSync(s), d);
      else if (st.isFile()) fs.copyFileSync(s, d);
    }
    if (files.length > 0) return;
  }
  copyTree(src, dst, (s, e) => e.isDirectory() && (e.name === '.osvb' || (e.name === 'build' && path.dirname(s) === src)));
}

function countModules(base) {
  // Modules reachable from config.json: sub-directories of the repositories plus explicit entries.
  const cfg = JSON.parse(fs.readFileSync(path.join(base, 'config.json'), 'utf8'));
  const expand = (p) => p.replace(/\$\{OSV_BASE\}|\$OSV_BASE\b/g, base);
  const dirs = new Set();
  for (const [key, entry] of Object.entries(cfg.modules ?? {})) {
    if (key === 'repositories' || key === 'include') continue;
    if (entry && typeof entry.path === 'string') dirs.add(path.resolve(expand(entry.path)));
  }
  for (const repo of cfg.modules?.repositories ?? []) {
    const r = expand(repo);
    if (!fs.existsSync(r)) continue;
    for (const e of fs.readdirSync(r, { withFileTypes: true })) {
      if (e.isDirectory()) dirs.add(path.join(r, e.name));
    }
  }
  return dirs.size;
}

function median(xs) {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

function tail(text, lines = 25) {
  const all = text.trimEnd().split('\n');
  return all.slice(-lines).join('\n');
}

// ---------------------------------------------------------------------------
// Environment and tools

function libgccDir() {
  const r = spawnSync('gcc', ['-print-file-name=libgcc_s.so.1'], { encoding: 'utf8' });
  if (r.status !== 0) return '';
  const p = r.stdout.trim();
  if (!path.isAbsolute(p)) return ''; // gcc prints the bare name when it does not know it
  try {
    return path.dirname(fs.realpathSync(p));
  } catch {
    return '';
  }
}

function osvArch() {
  return process.arch === 'arm64' ? 'aarch64' : 'x64';
}

/** The environment scripts/build gives module.py (OSV_BASE, OSV_BUILD_PATH, fs_type, mode, ARCH, libgcc_s_dir). */
function osvEnv(base, libgcc, fsType = 'zfs') {
  return {
    ...process.env,
    OSV_BASE: base,
    OSV_BUILD_PATH: path.join(base, 'build/release'),
    fs_type: fsType,
    mode: 'release',
    ARCH: osvArch(),
    libgcc_s_dir: libgcc,
  };
}

function resolveOsvRef(opts) {
  const explicit = opts.osvRef ?? process.env.OSV_REF;
  if (explicit) {
    const ref = path.resolve(explicit);
    if (!fs.existsSync(path.join(ref, 'scripts/module.py'))) {
      throw new UsageError(`OSV_REF=${explicit}: no scripts/module.py there (expected an OSv checkout)`);
    }
    return ref;
  }
  if (fs.existsSync(path.join(DEFAULT_OSV_REF, 'scripts/module.py'))) return DEFAULT_OSV_REF;
  return null;
}

function makeTools({ osvRef, libgcc, useOsvb, useOsv, fsType }) {
  const rofs = fsType === 'rofs';
  const tools = [];
  if (useOsvb) {
    tools.push({
      name: 'osvb',
      label: 'osvb',
      command: (tree, base) => ({
        file: process.execPath,
        args: [OSVB_BIN, 'build', `image=${tree.image}`, ...(rofs ? ['fs=rofs'] : []), '--osv-base', base],
      }),
      env: (base, cacheDir) => ({ ...osvEnv(base, libgcc, fsType), OSVB_CACHE_DIR: cacheDir, CI: 'true', NO_COLOR: '1' }),
    });
  }
  if (useOsv) {
    tools.push({
      name: 'osv',
      label: 'OSv',
      command: (tree) =>
        rofs
          ? {
              // scripts/build's steps for fs=rofs: module.py with the rofs skeleton, then
              // gen-rofs-img.py in the build directory.
              file: 'sh',
              args: [
                '-ec',
                'python3 "$1" build -c "$2" --usrskel usr_rofs.manifest.skel; cd build/release; rm -f rofs.img; python3 "$3" -o rofs.img -m usr.manifest -D libgcc_s_dir="$libgcc_s_dir" >/dev/null',
                'osv-rofs',
                path.join(osvRef, 'scripts/module.py'),
                `!${tree.image}`,
                path.join(osvRef, 'scripts/gen-rofs-img.py'),
              ],
            }
          : {
              file: 'python3',
              args: [path.join(osvRef, 'scripts/module.py'), 'build', '-c', `!${tree.image}`],
            },
      env: (base) => osvEnv(base, libgcc, fsType),
    });
  }
  return tools;
}

// ---------------------------------------------------------------------------
// Trees

function prepareTrees(opts, work, log) {
  const trees = [];
  if (opts.example) {
    const pristine = path.join(work, 'pristine/example');
    snapshotSource(EXAMPLE, pristine);
    trees.push({
      name: 'examples/osv',
      n: countModules(pristine),
      image: 'default',
      pristine,
      edits: {
        cFile: 'apps/hello/hello.c',
        dataFile: 'apps/webdocs/www/index.html',
        modulePy: 'apps/hello/module.py',
      },
    });
  }
  for (const n of opts.sizes) {
    const pristine = path.join(work, `pristine/gen-${n}`);
    log(`generating a ${n}-module tree (seed ${opts.seed})`);
    const info = generateTree({ modules: n, out: pristine, seed: opts.seed });
    const mid = info.modules[Math.floor(n / 2)];
    const rel = (p) => path.relative(pristine, p);
    trees.push({
      name: `generated`,
      n,
      image: 'all',
      pristine,
      edits: {
        cFile: rel(mid.cFile),
        dataFile: rel(mid.dataFiles[0] ?? mid.usrManifest),
        modulePy: rel(mid.modulePy),
      },
    });
  }
  return trees;
}

// ---------------------------------------------------------------------------
// Running

class BuildFailed extends Error {}

function runBuild(tool, tree, base, cacheDir, logFile) {
  const { file, args } = tool.command(tree, base);
  fs.mkdirSync(path.join(base, 'build/release'), { recursive: true }); // scripts/build creates it before module.py
  const t0 = process.hrtime.bigint();
  const r = spawnSync(file, args, {
    cwd: base,
    env: tool.env(base, cacheDir),
    encoding: 'utf8',
    maxBuffer: 256 * 1024 * 1024,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const output = `$ ${[file, ...args].join(' ')}\n(cwd ${base})\n${r.stdout ?? ''}${r.stderr ?? ''}`;
  if (logFile) {
    fs.mkdirSync(path.dirname(logFile), { recursive: true });
    fs.writeFileSync(logFile, output);
  }
  if (r.error || r.status !== 0) {
    const why = r.error ? r.error.message : r.signal ? `signal ${r.signal}` : `exit status ${r.status}`;
    throw new BuildFailed(`${tool.label} build failed (${why}):\n${tail(output)}`);
  }
  return seconds;
}

function makeContext(tool, tree, scenario, slot, opts) {
  const base = path.join(slot, 'tree');
  const cacheDir = path.join(slot, 'osvb-cache');
  const logDir = path.join(slot, 'logs');
  let untimed = 0;
  const ctx = {
    tool: tool.name,
    tree,
    dir: base,
    reset({ keepCache = false } = {}) {
      rmrf(base);
      copyTree(tree.pristine, base);
      if (!keepCache) rmrf(cacheDir);
    },
    build() {
      runBuild(tool, tree, base, cacheDir, path.join(logDir, `${scenario.name}-setup-${untimed++}.log`));
    },
    append(rel, text) {
      fs.appendFileSync(path.join(base, rel), text);
    },
    touch(rel, secs) {
      const p = path.join(base, rel);
      const st = fs.statSync(p);
      const t = new Date(st.mtimeMs + secs * 1000);
      fs.utimesSync(p, t, t);
    },
    timed(i) {
      return runBuild(tool, tree, base, cacheDir, path.join(logDir, `${scenario.name}-run-${i}.log`));
    },
  };
  if (!fs.existsSync(base)) ctx.reset();
  return ctx;
}

function runScenario(scenario, tree, tools, opts, work, log) {
  const row = { scenario: scenario.name, tree: tree.name, n: tree.n, image: tree.image, tools: {} };
  const ctxs = new Map();
  for (const tool of tools) {
    row.tools[tool.name] = { samples: [], median: null, error: null };
    // One working copy per tool and tree, reused across scenarios (setup decides what to reset).
    const slot = path.join(work, 'runs', `${tree.name.replace(/\W+/g, '_')}-${tree.n}`, tool.name);
    ctxs.set(tool.name, makeContext(tool, tree, scenario, slot, opts));
  }
  const failed = (tool, e) => {
    if (!(e instanceof BuildFailed)) throw e;
    row.tools[tool.name].error = e.message;
    log(`  ${e.message.replace(/\n/g, '\n  | ')}`);
  };
  for (const tool of tools) {
    try {
      scenario.setup?.(ctxs.get(tool.name));
    } catch (e) {
      failed(tool, e);
    }
  }
  for (let i = 0; i < opts.runs; i++) {
    const order = i % 2 === 0 ? tools : [...tools].reverse();
    const parts = [];
    for (const tool of order) {
      const res = row.tools[tool.name];
      if (res.error) continue;
      const ctx = ctxs.get(tool.name);
      try {
        scenario.beforeRun?.(ctx, i);
        const s = ctx.timed(i);
        res.samples.push(s);
        parts.push(`${tool.label} ${s.toFixed(3)}s`);
      } catch (e) {
        failed(tool, e);
      }
    }
    log(`  [${scenario.name} ${tree.name} N=${tree.n}] run ${i + 1}/${opts.runs}: ${parts.join(', ') || '-'}`);
  }
  for (const t of Object.values(row.tools)) t.median = t.error ? null : median(t.samples);
  const a = row.tools.osvb?.median;
  const b = row.tools.osv?.median;
  row.ratio = a && b ? b / a : null;
  return row;
}

// ---------------------------------------------------------------------------
// Output

function fmt(x, digits = 3) {
  return x === null || x === undefined ? '-' : x.toFixed(digits);
}

function printTable(rows, meta, out) {
  const header = ['scenario', 'tree', 'N', 'osvb median s', 'OSv median s', 'OSv/osvb'];
  const body = rows.map((r) => [
    r.scenario,
    r.tree,
    String(r.n),
    r.tools.osvb ? (r.tools.osvb.error ? 'FAILED' : fmt(r.tools.osvb.median)) : 'n/a',
    r.tools.osv ? (r.tools.osv.error ? 'FAILED' : fmt(r.tools.osv.median)) : 'n/a',
    r.ratio === null ? '-' : `${fmt(r.ratio, 2)}x`,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const numeric = new Set([2, 3, 4, 5]);
  const line = (cells) => cells.map((c, i) => (numeric.has(i) ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join('  ');
  out.write('\n');
  out.write(`${meta.osvLine}\n`);
  if (meta.osvbLine) out.write(`${meta.osvbLine}\n`);
  if (meta.fs === 'rofs') out.write('fs=rofs: osvb build … fs=rofs vs module.py + gen-rofs-img.py\n');
  out.write(`runs: ${meta.runs} per tool (median), tools alternate run by run; ratio > 1 = osvb faster\n\n`);
  out.write(`${line(header)}\n${line(widths.map((w) => '-'.repeat(w)))}\n`);
  for (const b of body) out.write(`${line(b)}\n`);
  out.write('\n');
  for (const s of SCENARIOS.filter((s) => rows.some((r) => r.scenario === s.name))) {
    out.write(`  ${s.name.padEnd(13)} ${s.description}\n`);
  }
}

// ---------------------------------------------------------------------------

function main(argv) {
  let opts;
  try {
    opts = parseArgs(argv);
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`bench: ${e.message}\n${USAGE}`);
      return 2;
    }
    throw e;
  }
  if (opts.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const log = (msg) => process.stderr.write(`${msg}\n`);

  let osvRef = null;
  if (opts.osv) {
    try {
      osvRef = resolveOsvRef(opts);
    } catch (e) {
      if (e instanceof UsageError) {
        process.stderr.write(`bench: ${e.message}\n`);
        return 2;
      }
      throw e;
    }
  }
  const osvLine = !opts.osv
    ? 'OSv baseline: skipped (--no-osv)'
    : osvRef
      ? `OSv baseline: python3 ${path.join(osvRef, 'scripts/module.py')} build -c '!<image>'`
      : 'OSv baseline: not available (set OSV_REF to an OSv checkout)';
  let useOsvb = opts.osvb;
  let osvbLine = `osvb: node ${path.relative(REPO, OSVB_BIN)} build image=<image> --osv-base <tree>`;
  if (!opts.osvb) osvbLine = 'osvb: skipped (--no-osvb)';
  else if (!fs.existsSync(OSVB_BIN)) {
    useOsvb = false;
    osvbLine = `osvb: not available (${path.relative(REPO, OSVB_BIN)} missing; run \`npm run build\`)`;
  }
  log(osvLine);
  log(osvbLine);

  const libgcc = libgccDir();
  const tools = makeTools({ osvRef, libgcc, useOsvb, useOsv: Boolean(osvRef), fsType: opts.fs });
  if (tools.length === 0) {
    log('bench: nothing to run (neither osvb nor an OSv baseline is available)');
    return 2;
  }

  const work = opts.work ? path.resolve(opts.work) : fs.mkdtempSync(path.join(os.tmpdir(), 'osvb-bench-'));
  fs.mkdirSync(work, { recursive: true });
  const cleanup = () => {
    if (!opts.keep) rmrf(work);
  };
  const onSignal = (sig) => {
    cleanup();
    process.exit(sig === 'SIGINT' ? 130 : 143);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  const rows = [];
  try {
    const trees = prepareTrees(opts, work, log);
    const scenarios = opts.scenarios ? SCENARIOS.filter((s) => opts.scenarios.includes(s.name)) : SCENARIOS;
    for (const tree of trees) {
      log(`tree ${tree.name} (N=${tree.n}, image=${tree.image})`);
      for (const scenario of scenarios) rows.push(runScenario(scenario, tree, tools, opts, work, log));
    }
  } finally {
    cleanup();
    if (opts.keep) log(`scratch directory kept: ${work}`);
  }

  const meta = { osvLine, osvbLine, runs: opts.runs, fs: opts.fs };
  if (opts.json) {
    const doc = {
      version: 1,
      date: new Date().toISOString(),
      host: { node: process.version, platform: process.platform, arch: process.arch, cpus: os.cpus().length },
      runs: opts.runs,
      osvRef,
      osvb: useOsvb ? path.relative(REPO, OSVB_BIN) : null,
      scenarios: Object.fromEntries(SCENARIOS.map((s) => [s.name, s.description])),
      results: rows.map((r) => ({
        scenario: r.scenario,
        tree: r.tree,
        n: r.n,
        image: r.image,
        osvb: r.tools.osvb ?? null,
        osv: r.tools.osv ?? null,
        ratio: r.ratio,
      })),
    };
    process.stdout.write(`${JSON.stringify(doc, null, 2)}\n`);
  } else {
    printTable(rows, meta, process.stdout);
  }
  const anyFailed = rows.some((r) => Object.values(r.tools).some((t) => t.error));
  return anyFailed ? 1 : 0;
}

process.exitCode = main(process.argv.slice(2));
