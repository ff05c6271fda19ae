/**
 * `osvb build`: evaluate the image spec (cached), compute every module's key, restore or build
 * the selected modules' Makefiles in dependency order (in parallel up to `jobs`), then generate
 * OSv's outputs. `planBuild` is everything up to the keys, shared with `osvb explain`.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import pLimit from 'p-limit';
import { fileURLToPath } from 'node:url';
import { OsvbError, isOsvbError } from '../errors/index.js';
import { ensureModuleDir, loadOsvConfig } from '../config/index.js';
import { parseImageSpec, PythonWorker, resolveInterpreter, workerErrorToOsvb, type EvaluatedModule, type EvaluationResult } from '../evaluate/index.js';
import { ModuleGraph } from '../graph/index.js';
import { scheduleGraph } from '../build/index.js';
import { INLINE_BLOB_MAX, LocalCache, RemoteCache, remoteCacheConfig, withLock, type RemoteCacheConfig } from '../cache/index.js';
import { canonicalJson, digestString, initHashing, StatCache, type Digest } from '../hash/index.js';
import { pyJoin, writeFileAtomic } from '../fsutil/index.js';
import { generateOsvOutputs, writeOsvOutputs, type OsvOutputs } from '../image/index.js';
import { hasInnerStarStar, type FileMapCacheEntry } from '../manifest/index.js';
import { startLine, type Reporter } from '../report/index.js';
import { buildEnvironment, findLibgccSDirCached, hostArch } from './environment.js';
import { EVAL_NAMESPACE, evalCacheKey, loadEvalRecord, recordEvaluation, replayInputs, staleChecker, staleRead, type EvalRecord, type RecordedReads } from './evalCache.js';
import { DependencyRecorder } from './noopMemo.js';
import { diskCmdline, writeImages, type ImageStageResult } from './images.js';
import { recordImageDependencies } from './imageDeps.js';
import { kernelStage } from './kernelStage.js';
import { earlyCutoff, type MakeEvidence, type SameOutputs } from './cutoff.js';
import { unsupportedDiskFs, type DiskFormat } from '../image/disk/index.js';
import { summarizeOutputs } from './outputSummary.js';
import { onceReporter, warningMemoFile } from './warningMemo.js';
import { BUILD_NAMESPACE, buildAndStore, lockFileFor, lookupBuild, replayLog, restoreOutputs, type ActionContext, type ModuleBuildRecord } from './moduleAction.js';
import {
  canonicalSame,
  fingerprintHolds,
  keyVariables,
  moduleKey,
  mapStrings,
  moduleKeyInputs,
  placeholders,
  recordDigest,
  type InputFingerprint,
  type ModuleKeyInputs,
} from './moduleKeys.js';
import { BuildState, outputSignatures, outputsHold, type ModuleState } from './state.js';
import { parseBuildWords, type BuildWords } from './words.js';
import { ENGINE_VERSION } from '../version.js';

export type CompatMode = 'default' | 'osv';

export interface BuildOptions {
  /** scripts/build words: image=…, modules=…, fs=…, -jN, NAME=value, … */
  words: readonly string[];
  osvBase?: string;
  buildPath?: string;
  compat?: CompatMode;
  /** Modules built at once; default: the -jN word, else the number of cores. */
  concurrency?: number;
  keepGoing?: boolean;
  libgccSDir?: string;
  env?: Readonly<Record<string, string | undefined>>;
  reporter?: Reporter;
  signal?: AbortSignal;
  /** Stream make output lines as events (otherwise kept for failures only); replays logs of restored modules. */
  streamMakeOutput?: boolean;
  /** The local cache directory (default $OSVB_CACHE_DIR, else <base>/.osvb/cache). */
  cacheDir?: string;
  /** Write an OCI image layout here (also the `oci=DIR` word). */
  ociDir?: string;
  /** Fail when rofs.img cannot be made (default: warn, as module.py itself succeeds). */
  requireImage?: boolean;
  /** The command as typed (after `build`) and its directory: enables the "nothing to do" memo. */
  command?: { argv: readonly string[]; cwd: string };
  /**
   * Build (or restore) the selected modules and stop: no usr.manifest, bootfs.manifest, cmdline
   * or images are written (the Nx plugin's per-module `build` target).
   */
  modulesOnly?: boolean;
  /**
   * Modules built by their own task before this build (the Nx plugin's module targets, which Nx
   * ran or replayed from its cache first): their make never runs here. One that is up to date
   * or in the local cache is restored as usual; otherwise its directory is taken as it is.
   */
  builtElsewhere?: ReadonlySet<string>;
  /** The remote cache (default: from OSVB_REMOTE_CACHE_URL and friends; null: none). */
  remoteCache?: RemoteCacheConfig | null;
  /** A prebuilt kernel (a kernel build's output directory, or a loader.img): usr.img is written with it. */
  kernel?: string;
  /** usr.img as qcow2 (default, as scripts/build) or raw (`usr.raw`). */
  imageFormat?: DiskFormat;
  /** Show every warning, also those the last build of this build path showed (default: once per cause). */
  repeatWarnings?: boolean;
}

export interface ResolvedBuild {
  osvBase: string;
  buildPath: string;
  cacheDir: string;
  words: BuildWords;
  compat: CompatMode;
  arch: string;
  libgccSDir: string;
  env: Record<string, string>;
  python: string;
  /** The compiler binary libgcc_s_dir was found with (a dependency of every build). */
  compiler: string | undefined;
}

export interface BuildPlan {
  resolved: ResolvedBuild;
  evaluation: EvaluationResult;
  evaluationCached: boolean;
  /** Modules whose files and builds go into the image (after --no-required). */
  modules: EvaluatedModule[];
  graph: ModuleGraph;
  keys: Map<string, Digest>;
  keyInputs: Map<string, ModuleKeyInputs>;
  /** Stat fingerprints of the inputs (null: just computed from fresh files, or unknown). */
  fingerprints: Map<string, InputFingerprint | null>;
  /** Modules whose key was recomputed this time (not reused from the state's fingerprint). */
  rekeyed: Set<string>;
  state: BuildState;
  cache: LocalCache;
  statCache: StatCache;
  /** What the evaluation depended on (undefined: not recordable). */
  evaluationReads: RecordedReads | undefined;
}

export interface BuildResult extends BuildPlan {
  images: ImageStageResult;
  built: string[];
  restored: string[];
  /** Of `restored`, the modules whose result came from the remote cache. */
  fromRemote: string[];
  outputs: OsvOutputs;
  written: string[];
  durationMs: number;
}

/** Everything a build needs to know before it reads the tree. */
export function resolveBuild(opts: BuildOptions): ResolvedBuild {
  const baseEnv = opts.env ?? process.env;
  let words = parseBuildWords(opts.words);
  for (const text of words.warnings) opts.reporter?.({ type: 'warning', text });
  // An empty variable counts as unset (path.resolve('') would be the current directory).
  const fromEnv = (name: string): string | undefined => baseEnv[name] || undefined;
  const osvBase = path.resolve(opts.osvBase ?? fromEnv('OSV_BASE') ?? process.cwd());
  if (!fs.existsSync(path.join(osvBase, 'config.json'))) {
    throw new OsvbError('OSVB_CONFIG_MISSING', `${osvBase} is not an OSv base: it has no config.json`, {
      hint: 'run osvb in an OSv source tree, or pass --osv-base DIR (or set OSV_BASE)',
    });
  }
  const buildPath = path.resolve(opts.buildPath ?? fromEnv('OSV_BUILD_PATH') ?? path.join(osvBase, 'build', words.mode));
  const cacheDir = path.resolve(opts.cacheDir ?? fromEnv('OSVB_CACHE_DIR') ?? path.join(osvBase, '.osvb', 'cache'));
  ignoredByGit(cacheDir);
  // scripts/build takes mode and arch from its build directory's name (build/<mode>.<arch>, the
  // target of build/last) unless mode=/arch= words say otherwise.
  const named = /^([A-Za-z0-9_-]+)\.(x64|aarch64)$/.exec(path.basename(buildPath));
  if (named && words.vars['mode'] === undefined) words = { ...words, mode: named[1] as string };
  const arch = words.arch ?? named?.[2] ?? hostArch();
  let libgccSDir = opts.libgccSDir ?? words.vars['libgcc_s_dir'];
  let compiler: string | undefined;
  if (libgccSDir === undefined) {
    const found = findLibgccSDirCached(arch, path.join(cacheDir, 'toolchain.json'));
    libgccSDir = found.dir;
    compiler = found.compiler;
    if (found.warning) opts.reporter?.({ type: 'warning', text: found.warning });
  }
  const env = buildEnvironment({ base: baseEnv, words, osvBase, buildPath, arch, libgccSDir });
  return {
    osvBase,
    buildPath,
    cacheDir,
    words,
    compat: opts.compat ?? 'default',
    arch,
    libgccSDir: env['libgcc_s_dir'] ?? '',
    env,
    python: baseEnv['OSVB_PYTHON'] ?? 'python3',
    compiler,
  };
}

/**
 * A `.osvb` directory (the default cache's parent) gets a `.gitignore` of `*` when it is made,
 * as pytest and ruff do with their caches: it never shows up as untracked in an OSv checkout.
 */
function ignoredByGit(cacheDir: string): void {
  const dir = path.dirname(cacheDir);
  if (path.basename(dir) !== '.osvb') return;
  const file = path.join(dir, '.gitignore');
  if (fs.existsSync(file)) return;
  try {
    fs.mkdirSync(dir, { recursive: true });
    writeFileAtomic(file, '# Made by osv-build: its cache is not part of the sources.\n*\n');
  } catch {
    // A base osvb cannot write to: the cache writes themselves report it.
  }
}

const LAST_WORDS = 'last-build.json';

/** The words of the last build with this cache, for `osvb explain` without words. */
function rememberWords(cacheDir: string, words: readonly string[]): void {
  const file = path.join(cacheDir, LAST_WORDS);
  const text = JSON.stringify({ words }) + '\n';
  try {
    if (fs.readFileSync(file, 'utf8') === text) return;
  } catch {
    /* none yet */
  }
  try {
    fs.mkdirSync(cacheDir, { recursive: true });
    writeFileAtomic(file, text);
  } catch {
    // Only explain's default depends on it; the build's own cache writes report a real problem.
  }
}

/** The words the last `osvb build` (or watch) with this base's cache used; undefined when there was none. */
export function lastBuildWords(opts: Pick<BuildOptions, 'osvBase' | 'cacheDir' | 'env'>): string[] | undefined {
  const { cacheDir } = resolveBuild({ ...opts, words: [], libgccSDir: '' });
  try {
    const v = JSON.parse(fs.readFileSync(path.join(cacheDir, LAST_WORDS), 'utf8')) as { words?: unknown };
    return Array.isArray(v.words) && v.words.every((w) => typeof w === 'string') ? (v.words as string[]) : undefined;
  } catch {
    return undefined;
  }
}

export interface Evaluated {
  evaluation: EvaluationResult;
  selected: string[];
  cached: boolean;
  reason?: string;
  /** What the evaluation depended on; undefined when it could not be recorded. */
  reads: RecordedReads | undefined;
}

/** Evaluate the image spec: from the cache while nothing it looked at changed, else with python3. */
export async function evaluateCached(
  resolved: ResolvedBuild,
  cache: LocalCache,
  statCache: StatCache,
  reporter: Reporter,
  /** How to tell a stale record (default: staleRead); describeBase shares one memo across records. */
  stale: (reads: RecordedReads) => string | undefined = (reads) => staleRead(reads, resolved.env, statCache),
  /** A remote cache to take (and give) evaluation records from when the local one has none. */
  remote?: RemoteCache,
): Promise<Evaluated> {
  const key = evalCacheKey({ engine: ENGINE_VERSION, osvBase: resolved.osvBase, buildPath: resolved.buildPath, spec: resolved.words.spec, python: resolved.python });
  const rec = loadEvalRecord(cache, key);
  let reason: string | undefined;
  if (rec) {
    reason = stale(rec.reads);
    if (!reason) return { evaluation: rec.result, selected: rec.selected, cached: true, reads: rec.reads };
  }
  const shared = remote?.canRead ? await remoteEvalRecord(remote, resolved) : undefined;
  if (shared) {
    const why = stale(shared.reads);
    if (!why) {
      cache.putAction(EVAL_NAMESPACE, key, shared);
      return { evaluation: shared.result, selected: shared.selected, cached: true, reads: shared.reads };
    }
    reason = `the remote cache's record does not hold here: ${why}`;
  }
  // python3 starts while the config is read and the records are checked.
  const starting = PythonWorker.start({
    python: resolveInterpreter(resolved.python, path.join(resolved.cacheDir, 'python.json'), resolved.env, resolved.osvBase),
    onOutput: (line) => reporter({ type: 'module-py-output', line }),
    onLog: (text) => reporter({ type: 'log', text }),
  });
  starting.catch(() => {}); // awaited below; a config error comes first
  const startedAt = Date.now();
  const probes: Array<[string, boolean]> = [];
  let config: ReturnType<typeof loadOsvConfig>;
  let spec: ReturnType<typeof parseImageSpec>;
  let replay: ReturnType<typeof replayInputs>;
  try {
    config = loadOsvConfig({ osvBase: resolved.osvBase, buildPath: resolved.buildPath, env: resolved.env, onProbe: (p, e) => probes.push([p, e]) });
    spec = parseImageSpec(resolved.words.spec, {
      imageConfigFor: (name) => {
        const file = path.join(resolved.osvBase, 'images', `${name}.py`);
        const exists = fs.existsSync(file);
        probes.push([file, exists]);
        return exists ? file : undefined;
      },
      defaults: config.defaults,
    });
    // Only the module.py files whose reads changed run again (partial evaluation).
    replay = rec ? replayInputs(rec, staleChecker(resolved.env, statCache)) : undefined;
  } catch (e) {
    await starting.then((w) => w.close(), () => {});
    throw e;
  }
  const worker = await starting;
  let evaluation: EvaluationResult;
  try {
    evaluation = await worker.evaluate(
      { osvBase: resolved.osvBase, buildPath: resolved.buildPath, env: resolved.env, spec: spec.spec, ...(replay ? { replay } : {}) },
      {
        locate: async (name) => {
          const located = config.locate(name);
          probes.push([located.hostDir, fs.existsSync(located.hostDir)]);
          await ensureModuleDir(located, (text) => reporter({ type: 'log', text }));
          return { dir: located.dir, type: located.type };
        },
      },
    );
  } finally {
    await worker.close();
  }
  const { reads, partial, ...result } = evaluation;
  if (partial) {
    const ran = Object.keys(partial.modules).length;
    reporter({ type: 'log', text: `evaluation: ${ran} module.py file${ran === 1 ? '' : 's'} run, ${partial.replayed.length} replayed${partial.fullReason ? ` (a partial evaluation was abandoned: ${partial.fullReason})` : ''}` });
  }
  let recordedReads: RecordedReads | undefined;
  if (reads) {
    const recorded = recordEvaluation(reads, partial, rec, { files: config.files, probes, env: [...config.variables, 'OSV_BASE', 'OSV_BUILD_PATH'] }, resolved.env, statCache, startedAt);
    if ('uncacheable' in recorded) {
      reporter({ type: 'log', text: `evaluation not cached: ${recorded.uncacheable}` });
    } else {
      const record: EvalRecord = { reads: recorded.reads, selected: spec.selected, result, ...(recorded.partial ? { partial: recorded.partial } : {}) };
      cache.putAction(EVAL_NAMESPACE, key, record);
      recordedReads = recorded.reads;
      if (remote?.canWrite) shareEvalRecord(remote, resolved, record);
    }
  }
  return { evaluation: result, selected: spec.selected, cached: false, reads: recordedReads, ...(reason ? { reason } : {}) };
}

/**
 * A relative MODULE_DIR names a directory under the OSv base (scripts/build runs module.py and
 * `make module` there), not under the directory osvb was started in: every file operation uses
 * the joined path, the manifests keep the text OSv substitutes.
 */
export function placeModules(modules: EvaluatedModule[], osvBase: string): EvaluatedModule[] {
  return modules.map((m) => (path.isAbsolute(m.dir) ? m : { ...m, dir: pyJoin(osvBase, m.dir), moduleDirText: m.dir }));
}

function hasMakefile(m: EvaluatedModule): boolean {
  return fs.existsSync(path.join(m.dir, 'Makefile'));
}

/** Evaluate and compute keys: everything `build` and `explain` share; runs no make. */
export async function planBuild(opts: BuildOptions, remote?: RemoteCache): Promise<BuildPlan> {
  const reporter = opts.reporter ?? (() => {});
  const resolved = resolveBuild(opts);
  await initHashing();
  const cache = new LocalCache(resolved.cacheDir);
  const statCache = new StatCache(path.join(resolved.cacheDir, 'stat-cache.json'));
  reporter({ type: 'start', osvBase: resolved.osvBase, buildPath: resolved.buildPath, spec: resolved.words.spec });

  const evalStart = performance.now();
  const ev = await evaluateCached(resolved, cache, statCache, reporter, undefined, remote);
  const modules = placeModules(resolved.words.noRequired ? ev.evaluation.modules.filter((m) => ev.selected.includes(m.name)) : ev.evaluation.modules, resolved.osvBase);
  reporter({
    type: 'evaluated',
    modules: modules.map((m) => ({ name: m.name, run: m.run })),
    durationMs: performance.now() - evalStart,
    cached: ev.cached,
    ...(ev.reason ? { reason: ev.reason } : {}),
  });

  const graph = new ModuleGraph(modules.map((m) => ({ name: m.name, requires: m.requires })));
  const keyCtx = {
    engine: ENGINE_VERSION,
    osvBase: resolved.osvBase,
    buildPath: resolved.buildPath,
    env: resolved.env,
    words: resolved.words.exported.map(([n]) => n),
    statCache,
  };
  const vars = keyVariables(keyCtx);
  const ph = placeholders(keyCtx);
  const state = new BuildState(resolved.cacheDir, resolved.osvBase);
  const keys = new Map<string, Digest>();
  const keyInputs = new Map<string, ModuleKeyInputs>();
  const fingerprints = new Map<string, InputFingerprint | null>();
  const rekeyed = new Set<string>();
  const byName = new Map(modules.map((m) => [m.name, m]));
  for (const name of graph.order) {
    const m = byName.get(name) as EvaluatedModule;
    const prev = state.get(name);
    const deps: Record<string, string> = {};
    for (const d of graph.dependenciesOf(name)) deps[d] = keys.get(d) as string;
    const record = recordDigest(m, keyCtx);
    // Reuse the last key while nothing it was computed from can have changed: same engine,
    // variables, record and dependency keys, and every input still has its recorded stat.
    if (
      prev?.fingerprint &&
      prev.inputs.engine === ENGINE_VERSION &&
      prev.inputs.record === record &&
      prev.inputs.dir === ph(m.dir) &&
      canonicalSame(prev.inputs.vars, vars) &&
      fingerprintHolds(m.dir, prev.fingerprint)
    ) {
      fingerprints.set(name, prev.fingerprint);
      if (canonicalSame(prev.inputs.deps, deps)) {
        keys.set(name, prev.key as Digest);
        keyInputs.set(name, prev.inputs);
      } else {
        // Only required modules' keys changed: its own files are as fingerprinted, not listed again.
        const inputs = { ...prev.inputs, deps };
        keyInputs.set(name, inputs);
        keys.set(name, moduleKey(inputs));
        rekeyed.add(name);
      }
      continue;
    }
    const { inputs, fingerprint } = moduleKeyInputs(m, keyCtx, vars, new Set(prev?.outputs ?? []), deps, record);
    keyInputs.set(name, inputs);
    keys.set(name, moduleKey(inputs));
    fingerprints.set(name, fingerprint);
    rekeyed.add(name);
  }
  return { resolved, evaluation: ev.evaluation, evaluationCached: ev.cached, modules, graph, keys, keyInputs, fingerprints, rekeyed, state, cache, statCache, evaluationReads: ev.reads };
}

function warnInnerStarStar(plan: BuildPlan, reporter: Reporter): void {
  for (const m of plan.modules) {
    for (const fm of [m.usrFiles, m.bootfsFiles]) {
      for (const mp of fm?.mappings ?? []) {
        for (const f of mp.filters) {
          if (!hasInnerStarStar(f.pattern)) continue;
          const where = mp.site ? `${mp.site.file}:${mp.site.line}: ` : '';
          reporter({
            type: 'warning',
            text:
              plan.resolved.compat === 'osv'
                ? `${where}pattern "${f.pattern}" has "**" followed by more components: it matches nothing (as in OSv)`
                : `${where}pattern "${f.pattern}": "**/" matches any number of directories here; OSv's own tool matches nothing with it`,
          });
        }
      }
    }
  }
}

export async function build(opts: BuildOptions): Promise<BuildResult> {
  const started = performance.now();
  const remote = openRemote(opts, opts.reporter ?? (() => {}));
  const plan = await planBuild(opts, remote);
  const { resolved, modules, graph, keys, keyInputs, cache, statCache } = plan;
  // From here on, a warning the last build of this build path showed is not repeated.
  const reporter = onceReporter(opts.reporter ?? (() => {}), warningMemoFile(resolved.cacheDir, resolved.buildPath), opts.repeatWarnings ?? false);
  fs.mkdirSync(resolved.buildPath, { recursive: true });
  rememberWords(resolved.cacheDir, opts.words);
  warnInnerStarStar(plan, reporter);

  const byName = new Map(modules.map((m) => [m.name, m]));
  const withMakefile = modules.filter(hasMakefile).map((m) => m.name);
  reporter({ type: 'modules-planned', withMakefile: withMakefile.length });
  const elsewhere = opts.builtElsewhere ?? new Set<string>();
  const jobs = resolved.words.jobs;
  const concurrency = opts.concurrency ?? (jobs && jobs !== '-' ? Number(jobs) : os.availableParallelism());
  const built: string[] = [];
  const restored: string[] = [];
  /** Of `restored`, the modules whose outputs were in place already. */
  const upToDate: string[] = [];
  const { state, fingerprints, rekeyed } = plan;
  const record = (name: string, status: ModuleState['status'], outputs: string[], key: string, inputs: ModuleKeyInputs, cut?: { reason: string; evidence: MakeEvidence | undefined }): void => {
    const m = byName.get(name) as EvaluatedModule;
    const prev = state.get(name);
    // make's last answer is kept whatever happens next: it is checked against content before use.
    const makeEvidence = cut ? cut.evidence : prev?.makeEvidence;
    const cutoff = cut?.reason ?? (status === 'cutoff' ? prev?.cutoff : undefined);
    state.set(name, {
      key,
      inputs,
      outputs,
      status,
      at: new Date().toISOString(),
      fingerprint: fingerprints.get(name) ?? null,
      outputSigs: outputSignatures(m.dir, outputs),
      ...(cutoff ? { cutoff } : {}),
      ...(makeEvidence ? { makeEvidence } : {}),
    });
  };

  const cutoffMemo = new Map<string, SameOutputs>();
  const fromRemote: string[] = [];
  /** Keys whose record and blobs came from the remote in this build. */
  const prefetched = new Set<string>();
  const publishing: Array<Promise<void>> = [];
  /** Share a module's result: its blobs, then its record (after a HEAD when it may be there already). */
  const publish = (key: string, rec: ModuleBuildRecord, check: boolean): void => {
    if (!remote?.canWrite) return;
    publishing.push(
      (async () => {
        if (check && (await remote.hasAction(BUILD_NAMESPACE, key))) return;
        const blobs = new Map<Digest, number>(rec.outputs.flatMap((o): Array<[Digest, number]> => ('digest' in o ? [[o.digest, o.size]] : [])));
        if (rec.log) blobs.set(rec.log, 0);
        const inline = new Map<string, Buffer>();
        const ups: Array<Promise<void>> = [];
        for (const [d, size] of blobs) {
          const data = size <= INLINE_BLOB_MAX ? cache.readBlob(d) : undefined;
          if (data && data.length <= INLINE_BLOB_MAX) inline.set(d, data);
          else ups.push(remote.uploadBlob(d, () => cache.readBlob(d)));
        }
        await remote.uploadAction(BUILD_NAMESPACE, key, rec, ups, inline);
      })(),
    );
  };

  // Fetch what the remote has for every module the local cache lacks, many at a time, before the
  // graph runs: the graph then restores from the local cache (round trips overlap, not makes).
  if (remote?.canRead) {
    // Not for modules last built here under the same key (the graph finds them up to date or
    // in the local cache) — no stat work added to every build that has a remote.
    const want = withMakefile.filter((name) => {
      if (elsewhere.has(name)) return false;
      const key = keys.get(name) as string;
      return state.get(name)?.key !== key && !cache.hasAction(BUILD_NAMESPACE, key);
    });
    const limit = pLimit(16);
    await Promise.all(want.map((name) => limit(() => fetchFromRemote(remote, cache, keys.get(name) as string, prefetched))));
  }

  const kernel = opts.modulesOnly
    ? undefined
    : kernelStage({
        kernel: opts.kernel,
        osvBase: resolved.osvBase,
        buildPath: resolved.buildPath,
        words: opts.words,
        parsed: resolved.words,
        env: resolved.env,
        moduleDirs: modules.map((m) => m.dir),
        cache,
        statCache,
        remote,
        reporter,
        signal: opts.signal,
        jobs: concurrency,
        streamMakeOutput: opts.streamMakeOutput ?? false,
      });
  let loaderImg = await kernel?.beforeModules();

  const outcomes = await scheduleGraph(
    graph,
    withMakefile,
    async (name) => {
      const m = byName.get(name) as EvaluatedModule;
      const key = keys.get(name) as string;
      const ki = keyInputs.get(name) as ModuleKeyInputs;
      const t0 = performance.now();
      const prev = state.get(name);
      // Up to date: same key as the last build here and every output exactly as it left them.
      if (prev && prev.key === key && prev.outputSigs && outputsHold(m.dir, prev.outputSigs)) {
        restored.push(name);
        upToDate.push(name);
        if (rekeyed.has(name)) record(name, prev.status, prev.outputs, key, ki);
        reporter({ type: 'module-restored', name, durationMs: performance.now() - t0, upToDate: true });
        return;
      }
      const actx: ActionContext = {
        cache,
        statCache,
        env: resolved.env,
        jobs,
        warn: (text) => reporter({ type: 'warning', text: `${name}: ${text}` }),
        ...(opts.signal ? { signal: opts.signal } : {}),
        ...(opts.streamMakeOutput ? { onLine: (line: string) => reporter({ type: 'make-output', name, line }) } : {}),
      };
      const tryRestore = (from: 'local' | 'remote' = 'local'): boolean => {
        const rec = lookupBuild(key, actx);
        const wrote = rec ? restoreOutputs(m.dir, rec, actx) : false;
        if (!rec || wrote === false) return false;
        // Every output already in place with its recorded content (outputs too fresh to trust by
        // their signatures last time): up to date, not restored.
        const already = wrote === 0 && from === 'local';
        if (already) upToDate.push(name);
        else replayLog(rec, actx);
        restored.push(name);
        if (from === 'remote') fromRemote.push(name);
        record(name, already && prev ? prev.status : 'restored', rec.outputs.map((o) => o.path), key, ki);
        reporter({ type: 'module-restored', name, durationMs: performance.now() - t0, upToDate: already, ...(from === 'remote' ? { from } : {}) });
        if (from === 'local') publish(key, rec, true);
        return true;
      };
      if (tryRestore(prefetched.has(key) ? 'remote' : 'local')) return;
      if (elsewhere.has(name)) {
        // Its own task built it (here, or on another machine with Nx replaying its outputs):
        // what is in its directory is its result. Nothing is recorded for it.
        restored.push(name);
        upToDate.push(name);
        reporter({ type: 'module-restored', name, durationMs: performance.now() - t0, upToDate: true, from: 'task' });
        return;
      }
      // Early cutoff (cutoff.ts): only what make cannot act on changed, and make says so.
      const cut = prev?.key ? await earlyCutoff({ name, dir: m.dir, prev, inputs: ki, env: resolved.env, statCache, depDir: (d) => byName.get(d)?.dir, recordOf: (k) => lookupBuild(k, actx), memo: cutoffMemo, locked: (fn) => withLock(lockFileFor(cache, m.dir), fn, opts.signal), signal: opts.signal }) : undefined;
      if (cut) {
        const rec: ModuleBuildRecord = { outputs: cut.outputs, log: null, durationMs: 0 };
        for (const o of cut.outputs) if ('digest' in o && !cache.hasBlob(o.digest)) cache.putBlobFromFile(o.digest, path.join(m.dir, o.path));
        cache.putAction(BUILD_NAMESPACE, key, rec);
        restored.push(name);
        upToDate.push(name);
        record(name, 'cutoff', prev?.outputs ?? [], key, ki, cut);
        reporter({ type: 'module-restored', name, durationMs: performance.now() - t0, upToDate: true, cutoff: cut.reason });
        publish(key, rec, true);
        return;
      }
      await withLock(
        lockFileFor(cache, m.dir),
        async () => {
          // Another build may have built it while we waited for the lock.
          if (tryRestore()) return;
          reporter({ type: 'module-start', name });
          try {
            const { rec, changedInputs } = await buildAndStore(name, m.dir, key, ki.files, actx);
            built.push(name);
            const outputs = rec.outputs.map((o) => o.path);
            if (changedInputs.length > 0) {
              // Not cached, and no key recorded: the next build runs make again with what is there then.
              reporter({
                type: 'warning',
                text: `${name}: ${changedInputs.join(', ')} changed while make ran; the result is not cached and the next build runs make again (if the Makefile writes ${changedInputs.length === 1 ? 'this file' : 'these files'}, list ${changedInputs.length === 1 ? 'it' : 'them'} in the module's .gitignore)`,
              });
              fingerprints.set(name, null);
              record(name, 'built', outputs, '', ki);
            } else {
              record(name, 'built', outputs, key, ki);
              publish(key, rec, false);
            }
            reporter({ type: 'module-built', name, durationMs: performance.now() - t0 });
          } catch (e) {
            const err = isOsvbError(e) ? e : new OsvbError('OSVB_INTERNAL', e instanceof Error ? e.message : String(e), { cause: e });
            reporter({ type: 'module-failed', name, error: err });
            throw err;
          }
        },
        opts.signal,
      );
    },
    { jobs: concurrency, keepGoing: opts.keepGoing ?? false },
  );
  if (remote) {
    // Uploads finish before the build returns (each request is bounded by the remote's timeout).
    await Promise.all(publishing);
    await remote.flush();
    const st = remote.stats;
    const mb = (n: number): string => `${(n / 1e6).toFixed(2)} MB`;
    reporter({
      type: 'log',
      text: `remote cache: ${fromRemote.length} modules restored from it, ${st.hits} records found, ${st.misses} missing; ${mb(st.downloadedBytes)} down, ${mb(st.uploadedBytes)} up (${st.uploads} uploads)${st.rejected ? `; ${st.rejected} artifacts rejected` : ''}${remote.off ? `; off: ${remote.off}` : ''}`,
    });
  }
  for (const m of modules) {
    if (withMakefile.includes(m.name) || !rekeyed.has(m.name)) continue;
    record(m.name, 'restored', [], keys.get(m.name) as string, keyInputs.get(m.name) as ModuleKeyInputs);
  }
  state.save();
  statCache.save();

  if (opts.signal?.aborted) {
    throw new OsvbError('OSVB_INTERRUPTED', 'the build was interrupted; the makes it started were stopped', {
      hint: 'nothing was recorded for the interrupted modules: the next build runs their make again',
    });
  }
  const failures = [...outcomes.values()].filter((o) => o.status === 'failed');
  for (const [name, o] of outcomes) if (o.status === 'skipped' && withMakefile.includes(name)) reporter({ type: 'module-skipped', name, reason: o.reason });
  if (failures.length > 0) {
    const errs = failures.map((f) => (f as { error: unknown }).error).map((e) => (isOsvbError(e) ? e : new OsvbError('OSVB_INTERNAL', String(e))));
    if (errs.length === 1) throw errs[0];
    throw new OsvbError('OSVB_MAKE_FAILED', `${errs.length} modules failed to build: ${errs.map((e) => e.message).join('; ')}`, {
      details: errs.flatMap((e) => [e.format(), '']),
    });
  }

  if (opts.modulesOnly) {
    const durationMs = performance.now() - started;
    reporter({ type: 'done', ok: true, durationMs, modules: modules.length, built: built.length, restored: restored.length, upToDate: upToDate.length, failed: 0, evaluationCached: plan.evaluationCached, fromRemote: fromRemote.length });
    const none: OsvOutputs = { files: new Map(), noAppsSelected: false, usrSections: [] };
    return { ...plan, images: {}, built, restored, fromRemote, outputs: none, written: [], durationMs };
  }
  if (plan.evaluation.appsError) throw workerErrorToOsvb(plan.evaluation.appsError);
  const { words } = resolved;
  const deps = opts.command ? collectDependencies(plan, withMakefile) : undefined;
  const outputs = generateOsvOutputs({
    osvBase: resolved.osvBase,
    buildPath: resolved.buildPath,
    modules,
    apps: plan.evaluation.apps ?? [],
    usrSkel: resolved.words.usrSkel,
    libgccSDir: resolved.libgccSDir,
    walkOrder: resolved.compat === 'osv' ? 'os' : 'sorted',
    patternMode: resolved.compat === 'osv' ? 'osv' : 'default',
    appendManifest: resolved.words.appendManifest,
    fileMapCache: {
      get: (key) => {
        try {
          return cache.getAction<FileMapCacheEntry>('filemap', key);
        } catch {
          return undefined;
        }
      },
      put: (key, entry) => cache.putAction('filemap', key, entry),
    },
    ...(deps
      ? {
          observe: (p: string) => {
            deps.add(p, true);
            deps.add(p, false);
          },
        }
      : {}),
  });
  if (outputs.noAppsSelected) reporter({ type: 'log', text: 'No apps selected' });
  // With a disk to write, BUILD/cmdline ends as scripts/build leaves it.
  if (kernel && !unsupportedDiskFs(words.fs)) outputs.files.set('cmdline', diskCmdline(words.fs, outputs.files.get('cmdline') ?? ''));
  const written = writeOsvOutputs(resolved.buildPath, outputs);
  reporter({ type: 'outputs-written', files: written });
  loaderImg = (await kernel?.afterOutputs(outputs.files.get('usr.manifest') ?? '')) ?? loaderImg;
  const images = await writeImages({
    osvBase: resolved.osvBase,
    buildPath: resolved.buildPath,
    fs: resolved.words.fs,
    libgccSDir: resolved.libgccSDir,
    walkOrder: resolved.compat === 'osv' ? 'os' : 'sorted',
    osvCompat: resolved.compat === 'osv',
    arch: resolved.arch,
    outputs,
    cacheDir: resolved.cacheDir,
    statCache,
    env: resolved.env,
    exportMode: resolved.words.exportMode,
    exportDir: resolved.words.exportDir,
    ociDir: opts.ociDir ?? resolved.words.ociDir,
    requireImage: opts.requireImage ?? false,
    loaderImg,
    disk: { format: opts.imageFormat ?? 'qcow2', createDisk: words.createDisk, fsSize: words.fsSize },
    reporter,
  });
  statCache.save();
  // The image stage's own records say what it read (rofs.img's layout record).
  if (deps) recordImageDependencies(deps, { osvBase: resolved.osvBase, buildPath: resolved.buildPath, env: resolved.env, images, kernel: kernel !== undefined });
  if (deps && opts.command) {
    for (const name of outputs.files.keys()) deps.add(path.join(resolved.buildPath, name));
    const memoWritten = deps.write({
      cacheDir: resolved.cacheDir,
      osvBase: resolved.osvBase,
      engine: ENGINE_VERSION,
      argv: opts.command.argv,
      cwd: opts.command.cwd,
      env: opts.env ?? process.env,
      lines: [startLine(resolved.words.spec, resolved.osvBase, resolved.buildPath)],
      modules: modules.length,
    });
    if (!memoWritten) reporter({ type: 'log', text: `no "nothing to do" memo: ${deps.reason ?? 'unknown'}` });
  }
  const durationMs = performance.now() - started;
  reporter({ type: 'outputs', buildPath: resolved.buildPath, files: summarizeOutputs(resolved.buildPath, written, images) });
  reporter({ type: 'done', ok: true, durationMs, modules: modules.length, built: built.length, restored: restored.length, upToDate: upToDate.length, failed: 0, evaluationCached: plan.evaluationCached, fromRemote: fromRemote.length });
  return { ...plan, images, built, restored, fromRemote, outputs, written, durationMs };
}

/**
 * Every path this build's result depended on, for the "nothing to do" memo: the evaluation's
 * reads, each module's input fingerprint, Makefile and outputs, the config and the compiler.
 * Anything that cannot be trusted (a fresh file, an unrecorded evaluation) disables the memo.
 */
function collectDependencies(plan: BuildPlan, withMakefile: readonly string[]): DependencyRecorder {
  const deps = new DependencyRecorder();
  const { resolved } = plan;
  deps.add(path.join(resolved.osvBase, 'config.json'));
  if (resolved.compiler) deps.add(resolved.compiler);
  // osvb's own code (the bundle when bundled): a rebuilt osvb never trusts an old memo.
  deps.add(fileURLToPath(import.meta.url), true, true);
  const reads = plan.evaluationReads;
  if (!reads) deps.fail('the evaluation could not be recorded');
  else {
    for (const [f] of reads.files) deps.add(f);
    for (const [d] of reads.dirs) deps.add(d);
    for (const [k] of reads.stats) deps.add(k.slice(2), k.startsWith('S:'));
  }
  for (const m of plan.modules) {
    const fp = plan.fingerprints.get(m.name);
    if (!fp) {
      deps.fail(`inputs of ${m.name} changed moments ago`);
      break;
    }
    const root = path.resolve(m.dir);
    for (const [rel] of fp.dirs) deps.add(rel ? path.join(root, rel) : root, false);
    for (const [rel] of fp.files) deps.add(path.join(root, rel), false);
    deps.add(path.join(m.dir, 'Makefile'));
    if (!withMakefile.includes(m.name)) continue;
    const sigs = plan.state.get(m.name)?.outputSigs;
    if (!sigs) {
      deps.fail(`outputs of ${m.name} are too fresh to fingerprint`);
      break;
    }
    for (const o of sigs) deps.add(path.join(root, o.path), false);
  }
  return deps;
}


function openRemote(opts: BuildOptions, reporter: Reporter): RemoteCache | undefined {
  let config: RemoteCacheConfig | undefined;
  if (opts.remoteCache === null) return undefined;
  if (opts.remoteCache) config = opts.remoteCache;
  else {
    const fromEnv = remoteCacheConfig(opts.env ?? process.env);
    if (fromEnv && 'error' in fromEnv) throw new OsvbError('OSVB_USAGE', fromEnv.error, { hint: 'set OSVB_REMOTE_CACHE_URL to http(s)://host:port of a Turborepo remote cache' });
    config = fromEnv;
  }
  return config ? new RemoteCache({ ...config }, (text) => reporter({ type: 'warning', text })) : undefined;
}

/** A path a record may restore: relative, inside the module directory. */
function safeOutputPath(p: unknown): boolean {
  if (typeof p !== 'string' || p === '' || path.isAbsolute(p) || p.includes('\0')) return false;
  return p.split('/').every((seg) => seg !== '..' && seg !== '');
}

/**
 * Bring a module's result from the remote into the local cache: its record (checked), every
 * blob it needs (each verified against its digest). False when anything is missing or wrong —
 * the module is then built locally and nothing partial is recorded.
 */
async function fetchFromRemote(remote: RemoteCache, cache: LocalCache, key: string, fetched: Set<string>): Promise<boolean> {
  const got = await remote.getAction<ModuleBuildRecord>(BUILD_NAMESPACE, key);
  const rec = got?.value;
  if (!got || !rec || !Array.isArray(rec.outputs) || !rec.outputs.every((o) => o && safeOutputPath(o.path) && ('link' in o ? typeof o.link === 'string' : typeof o.digest === 'string'))) return false;
  const blob = async (d: Digest): Promise<Buffer | undefined> => got.inline.get(d) ?? (await remote.getBlob(d));
  for (const o of rec.outputs) {
    if (!('digest' in o) || cache.hasBlob(o.digest)) continue;
    const body = await blob(o.digest);
    if (!body || cache.putBlobBytes(body) !== o.digest) return false;
  }
  if (rec.log && !cache.hasBlob(rec.log)) {
    const body = await blob(rec.log);
    if (body) cache.putBlobBytes(body);
  }
  cache.putAction(BUILD_NAMESPACE, key, rec);
  fetched.add(key);
  return true;
}

/**
 * Evaluation records travel between checkouts with ${OSV_BASE}/${OSV_BUILD_PATH} in place of
 * their absolute paths, under a key without them; a record is used only after every read it
 * lists holds here (the same check as for a local record).
 */
function remoteEvalKey(resolved: ResolvedBuild): string {
  const ph = placeholders({ osvBase: resolved.osvBase, buildPath: resolved.buildPath });
  return digestString(canonicalJson({ engine: ENGINE_VERSION, buildPath: ph(resolved.buildPath), spec: resolved.words.spec, python: resolved.python }));
}

/** Paths in an evaluation record, `S:`/`L:` stat keys included (path absolute, or a placeholder once portable). */
function mapPaths(v: unknown, f: (s: string) => string): unknown {
  return mapStrings(v, (s) => (/^[SL]:(\/|\$\{)/.test(s) ? s.slice(0, 2) + f(s.slice(2)) : f(s)));
}

function shareEvalRecord(remote: RemoteCache, resolved: ResolvedBuild, record: EvalRecord): void {
  const portable = mapPaths(record, placeholders({ osvBase: resolved.osvBase, buildPath: resolved.buildPath }));
  // A path of this checkout left anywhere but at the start of a string cannot be made portable.
  if (JSON.stringify(portable).includes(resolved.osvBase.replace(/\/+$/, ''))) return;
  void remote.uploadAction(EVAL_NAMESPACE, remoteEvalKey(resolved), portable);
}

async function remoteEvalRecord(remote: RemoteCache, resolved: ResolvedBuild): Promise<EvalRecord | undefined> {
  const got = await remote.getAction<EvalRecord>(EVAL_NAMESPACE, remoteEvalKey(resolved));
  if (!got) return undefined;
  const base = resolved.osvBase.replace(/\/+$/, '');
  const build = resolved.buildPath.replace(/\/+$/, '');
  const local = (s: string): string =>
    s.startsWith('${OSV_BUILD_PATH}') ? build + s.slice('${OSV_BUILD_PATH}'.length) : s.startsWith('${OSV_BASE}') ? base + s.slice('${OSV_BASE}'.length) : s;
  const rec = mapPaths(got.value, local) as EvalRecord;
  if (!rec || !rec.reads || !rec.result || !Array.isArray(rec.result.modules) || !Array.isArray(rec.selected)) return undefined;
  return rec;
}
