/**
 * describeBase: what a tool that shows a base as a graph (the Nx plugin) needs — every module
 * the base's config and repositories can resolve, with its directory, its `require`s and what
 * its last build produced, and for each image the modules it selects.
 *
 * Cheap when nothing changed: the answer is kept in `<cacheDir>/describe.json` with everything
 * it was computed from (config files by digest, the repositories' and module directories'
 * stat signatures, and per module the reads its module.py evaluation made — module.py files,
 * files they read, paths they tested, variables). A warm call reads that file and stats those
 * paths once each; only the modules whose reads changed are evaluated again, all of them in
 * one python3 process.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { OsvbError, isOsvbError } from '../errors/index.js';
import { loadOsvConfig, type OsvConfig } from '../config/index.js';
import { parseImageSpec, PythonWorker, resolveInterpreter } from '../evaluate/index.js';
import { LocalCache } from '../cache/index.js';
import { initHashing, StatCache } from '../hash/index.js';
import { statQuiet, writeFileAtomic } from '../fsutil/index.js';
import { ENGINE_VERSION } from '../version.js';
import type { Reporter } from '../report/index.js';
import { evaluateCached, resolveBuild, type BuildOptions, type ResolvedBuild } from './build.js';
import { flattenReads, readHolds, recordReads, type ReadEntry, type RecordedReads } from './evalCache.js';
import { BuildState } from './state.js';

export interface DescribeOptions {
  osvBase: string;
  buildPath?: string;
  cacheDir?: string;
  env?: Readonly<Record<string, string | undefined>>;
  /** Images to describe: a name and `osvb build` words (image=, modules=, …). */
  images?: ReadonlyArray<{ name: string; words: readonly string[] }>;
  reporter?: Reporter;
}

export interface ModuleDescription {
  name: string;
  /** The module directory, absolute and normalised. */
  dir: string;
  requires: string[];
  hasModulePy: boolean;
  hasMakefile: boolean;
  /** Files (relative to `dir`) its last build here produced; empty when never built. */
  outputs: string[];
  /** Why its module.py could not be evaluated (its requires are then unknown). */
  error?: string;
}

export interface ImageDescription {
  name: string;
  words: string[];
  /** The images/NAME.py file when the spec names an image config. */
  imageConfig?: string;
  /** Selected modules (with everything they require), in build order. */
  modules: string[];
  buildPath: string;
  error?: string;
}

export interface BaseDescription {
  osvBase: string;
  cacheDir: string;
  modules: ModuleDescription[];
  images: ImageDescription[];
  /** Modules evaluated by this call (0: everything came from describe.json). */
  evaluated: number;
}

const DESCRIBE_FORMAT = 'osvb-describe-2';
/** Files whose presence makes a directory a module worth showing. */
const MODULE_MARKERS = ['module.py', 'Makefile', 'usr.manifest', 'bootfs.manifest'];

interface ModuleRecord<R> {
  dir: string;
  hasModulePy: boolean;
  hasMakefile: boolean;
  requires: string[];
  error?: string;
  /** What its evaluation read (null: evaluate again next time). */
  reads: R | null;
}

/** On disk each module's reads are indexes into one shared table: modules share most reads (config, required module.py files). */
interface StoredDescription {
  format: typeof DESCRIBE_FORMAT;
  engine: string;
  key: string;
  /** config files → digest; directories → stat signature. */
  configFiles: Array<[string, string | null]>;
  dirs: Array<[string, string | null]>;
  table: ReadEntry[];
  modules: Record<string, ModuleRecord<number[]>>;
}

/** A module being described: new reads as entries, or reused ones as indexes into the stored table. */
type WorkingModule = ModuleRecord<ReadEntry[]> & { storedReads?: number[] };

function toStored(modules: Record<string, WorkingModule>, oldTable: readonly ReadEntry[]): { table: ReadEntry[]; modules: Record<string, ModuleRecord<number[]>> } {
  const table: ReadEntry[] = [];
  const index = new Map<string, number>();
  const out: Record<string, ModuleRecord<number[]>> = {};
  for (const [name, { storedReads, ...m }] of Object.entries(modules)) {
    const entries = storedReads ? storedReads.map((i) => oldTable[i] as ReadEntry) : m.reads;
    const reads = entries?.map((e) => {
      const k = `${e[0]}\0${e[1]}`;
      let i = index.get(k);
      if (i === undefined) {
        i = table.push(e) - 1;
        index.set(k, i);
      } else table[i] = e; // the newest reading wins (an older record naming it was stale)
      return i;
    });
    out[name] = { ...m, reads: reads ?? null };
  }
  return { table, modules: out };
}

function readStored(file: string): StoredDescription | undefined {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as StoredDescription;
  } catch {
    return undefined; // missing or damaged: computed afresh
  }
}

function dirSignature(p: string): string | null {
  const st = statQuiet(p);
  return st?.isDirectory() ? `${st.mtimeMs}:${st.ino}` : null;
}

interface Candidate {
  name: string;
  dir: string;
}

/** Every module the config can resolve to a local directory: explicit entries, then repository subdirectories. */
function enumerateModules(config: OsvConfig, osvBase: string, onDir: (dir: string) => void): Candidate[] {
  const out = new Map<string, Candidate>();
  for (const name of config.entryNames) {
    let located;
    try {
      located = config.find(name);
    } catch {
      continue; // a malformed entry: the build reports it when the module is used
    }
    if (!located || located.type !== 'direct-dir') continue; // fetched modules have no local tree yet
    const dir = located.hostDir;
    onDir(dir);
    if (dirSignature(dir) !== null) out.set(name, { name, dir });
  }
  for (const repo of config.repositories) {
    const repoDir = path.resolve(osvBase, repo);
    onDir(repoDir);
    let names: string[];
    try {
      names = fs.readdirSync(repoDir).sort();
    } catch {
      continue;
    }
    for (const name of names) {
      if (name.startsWith('.') || out.has(name)) continue;
      const dir = path.join(repoDir, name);
      if (dirSignature(dir) === null) continue;
      onDir(dir);
      if (MODULE_MARKERS.some((m) => fs.existsSync(path.join(dir, m)))) out.set(name, { name, dir });
    }
  }
  return [...out.values()];
}

function errorText(e: unknown): string {
  if (isOsvbError(e)) return e.format().split('\n')[0] as string;
  return e instanceof Error ? e.message : String(e);
}

/** Describe a base (see the module comment). Throws OsvbError for a missing or malformed config.json. */
export async function describeBase(opts: DescribeOptions): Promise<BaseDescription> {
  const reporter = opts.reporter ?? (() => {});
  const buildOpts: BuildOptions = {
    words: [],
    osvBase: opts.osvBase,
    ...(opts.buildPath ? { buildPath: opts.buildPath } : {}),
    ...(opts.cacheDir ? { cacheDir: opts.cacheDir } : {}),
    ...(opts.env ? { env: opts.env } : {}),
    reporter,
  };
  const resolved = resolveBuild(buildOpts);
  await initHashing();
  const statCache = new StatCache(path.join(resolved.cacheDir, 'stat-cache.json'));
  const file = path.join(resolved.cacheDir, 'describe.json');
  const key = `${resolved.osvBase}\0${resolved.buildPath}\0${resolved.python}`;
  const stored = readStored(file);
  // Each distinct read is checked once however many records name it.
  const memo = new Map<string, boolean>();
  const holds = (e: ReadEntry): boolean => {
    const k = `${e[0]}\0${e[1]}\0${e[2]}`;
    let v = memo.get(k);
    if (v === undefined) {
      v = readHolds(e, resolved.env, statCache);
      memo.set(k, v);
    }
    return v;
  };
  const staleOf = (rec: RecordedReads): string | undefined => {
    for (const e of flattenReads(rec)) if (!holds(e)) return `${e[1]} changed`;
    return undefined;
  };
  // The stored table's entries, checked once each (0 unknown, 1 holds, 2 does not).
  const tableState = new Uint8Array(stored?.table?.length ?? 0);
  const storedValid = (m: ModuleRecord<number[]>, table: readonly ReadEntry[]): boolean =>
    m.reads !== null &&
    m.reads.every((i) => {
      if (tableState[i] === 0) tableState[i] = table[i] !== undefined && holds(table[i] as ReadEntry) ? 1 : 2;
      return tableState[i] === 1;
    });
  const fromStored = (m: ModuleRecord<number[]>): WorkingModule => ({ ...m, reads: null, ...(m.reads ? { storedReads: m.reads } : {}) });

  let prev: StoredDescription | undefined =
    stored && stored.format === DESCRIBE_FORMAT && stored.engine === ENGINE_VERSION && stored.key === key && Array.isArray(stored.table) ? stored : undefined;
  // The module set holds while the config files and every directory looked at are unchanged.
  if (prev && !(prev.configFiles.every(([f, d]) => holds(['f', f, d])) && prev.dirs.every(([d, sig]) => dirSignature(d) === sig))) prev = undefined;


  let modules: Record<string, WorkingModule> = {};
  let configFiles: Array<[string, string | null]>;
  let dirs: Array<[string, string | null]>;
  let evaluated = 0;
  let config: OsvConfig | undefined;
  const stale: Candidate[] = [];
  if (prev) {
    configFiles = prev.configFiles;
    dirs = prev.dirs;
    for (const [name, m] of Object.entries(prev.modules)) {
      modules[name] = fromStored(m);
      if (m.hasModulePy && !storedValid(m, prev.table)) stale.push({ name, dir: m.dir });
    }
  } else {
    config = loadOsvConfig({ osvBase: resolved.osvBase, buildPath: resolved.buildPath, env: resolved.env });
    const looked = new Set<string>();
    const candidates = enumerateModules(config, resolved.osvBase, (d) => looked.add(d));
    dirs = [...looked].sort().map((d) => [d, dirSignature(d)]);
    const rec = recordReads({ files: [], dirs: [], stats: [], env: [], envAll: false, uncacheable: [] }, { files: config.files, probes: [], env: [] }, resolved.env, statCache, Infinity);
    configFiles = 'uncacheable' in rec ? [] : rec.files;
    const usable = stored && stored.format === DESCRIBE_FORMAT && stored.engine === ENGINE_VERSION && stored.key === key && Array.isArray(stored.table) ? stored : undefined;
    modules = {};
    for (const c of candidates) {
      const old = usable?.modules[c.name];
      const hasModulePy = fs.existsSync(path.join(c.dir, 'module.py'));
      const hasMakefile = fs.existsSync(path.join(c.dir, 'Makefile'));
      const reusable = usable && old && old.dir === c.dir && old.hasModulePy === hasModulePy && storedValid(old, usable.table);
      modules[c.name] = reusable ? { ...fromStored(old), hasMakefile } : { dir: c.dir, hasModulePy, hasMakefile, requires: [], reads: null };
      if (hasModulePy && !reusable) stale.push(c);
    }
  }

  if (stale.length > 0) {
    config ??= loadOsvConfig({ osvBase: resolved.osvBase, buildPath: resolved.buildPath, env: resolved.env });
    evaluated = stale.length;
    await evaluateModules(stale, modules, config, resolved, statCache, reporter);
  }

  if (!prev || stale.length > 0) {
    const out: StoredDescription = { format: DESCRIBE_FORMAT, engine: ENGINE_VERSION, key, configFiles, dirs, ...toStored(modules, stored?.table ?? []) };
    try {
      writeFileAtomic(file, JSON.stringify(out));
    } catch (e) {
      reporter({ type: 'warning', text: `could not save ${file}: ${(e as Error).message}` });
    }
  }
  statCache.save();

  const produced = BuildState.readOutputs(resolved.cacheDir, resolved.osvBase);
  const names = new Set(Object.keys(modules));
  const described: ModuleDescription[] = Object.entries(modules)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([name, m]) => ({
      name,
      dir: m.dir,
      requires: m.requires.filter((r) => names.has(r) && r !== name),
      hasModulePy: m.hasModulePy,
      hasMakefile: m.hasMakefile,
      outputs: produced[name] ?? [],
      ...(m.error ? { error: m.error } : {}),
    }));

  const images: ImageDescription[] = [];
  for (const img of opts.images ?? []) images.push(await describeImage(img, opts, statCache, reporter, staleOf));
  statCache.save();
  return { osvBase: resolved.osvBase, cacheDir: resolved.cacheDir, modules: described, images, evaluated };
}

/** Evaluate each stale module on its own (`image=!name`), all in one python3 process. */
async function evaluateModules(
  stale: readonly Candidate[],
  modules: Record<string, WorkingModule>,
  config: OsvConfig,
  resolved: ResolvedBuild,
  statCache: StatCache,
  reporter: Reporter,
): Promise<void> {
  const worker = await PythonWorker.start({
    python: resolveInterpreter(resolved.python, path.join(resolved.cacheDir, 'python.json'), resolved.env, resolved.osvBase),
    onOutput: () => {},
    onLog: (text) => reporter({ type: 'log', text }),
  });
  try {
    for (const c of stale) {
      const probes: Array<[string, boolean]> = [];
      const startedAt = Date.now();
      const spec = parseImageSpec(`!${c.name}`, { imageConfigFor: () => undefined, defaults: undefined });
      const entry = modules[c.name] as WorkingModule;
      try {
        const ev = await worker.evaluate(
          { osvBase: resolved.osvBase, buildPath: resolved.buildPath, env: resolved.env, spec: spec.spec },
          {
            locate: async (name) => {
              const located = config.locate(name);
              probes.push([located.hostDir, fs.existsSync(located.hostDir)]);
              if (located.entry && !fs.existsSync(located.hostDir)) {
                throw new OsvbError('OSVB_MODULE_NOT_FOUND', `module ${name} is fetched by the build (${located.type}); its requires are known after the first build`);
              }
              return { dir: located.dir, type: located.type };
            },
          },
        );
        const self = ev.modules.find((m) => m.name === c.name);
        entry.requires = self?.requires ?? [];
        delete entry.error;
        delete entry.storedReads;
        const recorded = ev.reads ? recordReads(ev.reads, { files: config.files, probes, env: [...config.variables, 'OSV_BASE', 'OSV_BUILD_PATH'] }, resolved.env, statCache, startedAt) : undefined;
        entry.reads = recorded && !('uncacheable' in recorded) ? flattenReads(recorded) : null;
      } catch (e) {
        entry.requires = [];
        entry.error = errorText(e);
        delete entry.storedReads;
        // Evaluated again once its module.py (or the config) changes.
        const files = [path.join(c.dir, 'module.py'), ...config.files];
        const rec = recordReads({ files, dirs: [], stats: [], env: [], envAll: false, uncacheable: [] }, { files: [], probes, env: [] }, resolved.env, statCache, Infinity);
        entry.reads = 'uncacheable' in rec ? null : flattenReads(rec);
      }
    }
  } finally {
    await worker.close();
  }
}

async function describeImage(
  img: { name: string; words: readonly string[] },
  opts: DescribeOptions,
  statCache: StatCache,
  reporter: Reporter,
  staleOf: (rec: RecordedReads) => string | undefined,
): Promise<ImageDescription> {
  const words = [...img.words];
  let resolved: ResolvedBuild | undefined;
  try {
    resolved = resolveBuild({
      words,
      osvBase: opts.osvBase,
      ...(opts.buildPath ? { buildPath: opts.buildPath } : {}),
      ...(opts.cacheDir ? { cacheDir: opts.cacheDir } : {}),
      ...(opts.env ? { env: opts.env } : {}),
      reporter,
    });
    const r = resolved;
    const ev = await evaluateCached(r, new LocalCache(r.cacheDir), statCache, reporter, staleOf);
    const name = r.words.spec.startsWith('!') ? r.words.spec.slice(1) : r.words.spec;
    const imageConfig = path.join(r.osvBase, 'images', `${name}.py`);
    const selected = r.words.noRequired ? ev.evaluation.modules.filter((m) => ev.selected.includes(m.name)) : ev.evaluation.modules;
    return {
      name: img.name,
      words,
      ...(fs.existsSync(imageConfig) ? { imageConfig } : {}),
      modules: selected.map((m) => m.name),
      buildPath: r.buildPath,
    };
  } catch (e) {
    return { name: img.name, words, modules: [], buildPath: resolved?.buildPath ?? '', error: errorText(e) };
  }
}
