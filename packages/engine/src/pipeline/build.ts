/**
 * `osvb build`: evaluate the image spec, build the selected modules' Makefiles in dependency
 * order (in parallel up to `jobs`), then generate OSv's outputs. The whole run is one
 * function with its side effects behind the stages it calls.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { OsvbError, isOsvbError } from '../errors/index.js';
import { ensureModuleDir, loadOsvConfig, type OsvConfig } from '../config/index.js';
import { parseImageSpec, PythonWorker, workerErrorToOsvb, type EvaluatedModule, type EvaluationResult, type ParsedImageSpec } from '../evaluate/index.js';
import { ModuleGraph } from '../graph/index.js';
import { runMake, scheduleGraph } from '../build/index.js';
import { generateOsvOutputs, writeOsvOutputs, type OsvOutputs } from '../image/index.js';
import { hasInnerStarStar } from '../manifest/index.js';
import type { Reporter } from '../report/index.js';
import { buildEnvironment, findLibgccSDir, hostArch } from './environment.js';
import { parseBuildWords, type BuildWords } from './words.js';

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
  /** Stream make output lines as events (otherwise kept for failures only). */
  streamMakeOutput?: boolean;
  /** Generate outputs but do not write them (used by `osvb manifest`). */
  dryRun?: boolean;
}

export interface ResolvedBuild {
  osvBase: string;
  buildPath: string;
  words: BuildWords;
  compat: CompatMode;
  arch: string;
  libgccSDir: string;
  env: Record<string, string>;
  config: OsvConfig;
  spec: ParsedImageSpec;
}

export interface BuildResult {
  resolved: ResolvedBuild;
  evaluation: EvaluationResult;
  /** Modules whose files and builds go into the image (after --no-required). */
  modules: EvaluatedModule[];
  built: string[];
  outputs: OsvOutputs;
  written: string[];
  durationMs: number;
}

function imageConfigFor(osvBase: string) {
  return (name: string): string | undefined => {
    const file = path.join(osvBase, 'images', `${name}.py`);
    return fs.existsSync(file) ? file : undefined;
  };
}

/** Everything a build needs to know before it runs anything. */
export function resolveBuild(opts: BuildOptions): ResolvedBuild {
  const baseEnv = opts.env ?? process.env;
  const words = parseBuildWords(opts.words);
  const osvBase = path.resolve(opts.osvBase ?? baseEnv['OSV_BASE'] ?? process.cwd());
  if (!fs.existsSync(path.join(osvBase, 'config.json'))) {
    throw new OsvbError('OSVB_CONFIG_MISSING', `${osvBase} is not an OSv base: it has no config.json`, {
      hint: 'run osvb in an OSv source tree, or pass --osv-base DIR (or set OSV_BASE)',
    });
  }
  const buildPath = path.resolve(opts.buildPath ?? baseEnv['OSV_BUILD_PATH'] ?? path.join(osvBase, 'build', words.mode));
  const arch = words.arch ?? hostArch();
  let libgccSDir = opts.libgccSDir ?? words.vars['libgcc_s_dir'];
  if (libgccSDir === undefined) {
    const found = findLibgccSDir(arch);
    libgccSDir = found.dir;
    if (found.warning) opts.reporter?.({ type: 'warning', text: found.warning });
  }
  const env = buildEnvironment({ base: baseEnv, words, osvBase, buildPath, arch, libgccSDir });
  const config = loadOsvConfig({ osvBase, buildPath, env });
  const spec = parseImageSpec(words.spec, { imageConfigFor: imageConfigFor(osvBase), defaults: config.defaults });
  return { osvBase, buildPath, words, compat: opts.compat ?? 'default', arch, libgccSDir: env['libgcc_s_dir'] ?? '', env, config, spec };
}

export async function evaluateImage(resolved: ResolvedBuild, reporter: Reporter): Promise<EvaluationResult> {
  const worker = await PythonWorker.start({
    onOutput: (line) => reporter({ type: 'module-py-output', line }),
    onLog: (text) => reporter({ type: 'log', text }),
  });
  try {
    return await worker.evaluate(
      { osvBase: resolved.osvBase, buildPath: resolved.buildPath, env: resolved.env, spec: resolved.spec.spec },
      {
        locate: async (name) => {
          const located = resolved.config.locate(name);
          await ensureModuleDir(located, (text) => reporter({ type: 'log', text }));
          return { dir: located.dir, type: located.type };
        },
      },
    );
  } finally {
    await worker.close();
  }
}

export async function build(opts: BuildOptions): Promise<BuildResult> {
  const started = performance.now();
  const reporter = opts.reporter ?? (() => {});
  const resolved = resolveBuild(opts);
  reporter({ type: 'start', osvBase: resolved.osvBase, buildPath: resolved.buildPath, spec: resolved.words.spec });
  fs.mkdirSync(resolved.buildPath, { recursive: true });

  const evalStart = performance.now();
  const evaluation = await evaluateImage(resolved, reporter);
  const modules = resolved.words.noRequired
    ? evaluation.modules.filter((m) => resolved.spec.selected.includes(m.name))
    : evaluation.modules;
  reporter({ type: 'evaluated', modules: modules.map((m) => ({ name: m.name, run: m.run })), durationMs: performance.now() - evalStart });

  for (const m of modules) {
    for (const fm of [m.usrFiles, m.bootfsFiles]) {
      for (const mp of fm?.mappings ?? []) {
        for (const f of mp.filters) {
          if (hasInnerStarStar(f.pattern)) {
            const where = mp.site ? `${mp.site.file}:${mp.site.line}: ` : '';
            reporter({
              type: 'warning',
              text:
                resolved.compat === 'osv'
                  ? `${where}pattern "${f.pattern}" has "**" followed by more components: it matches nothing (as in OSv)`
                  : `${where}pattern "${f.pattern}": "**/" matches any number of directories here; OSv's own tool matches nothing with it`,
            });
          }
        }
      }
    }
  }

  // make module, dependencies first, in parallel.
  const graph = new ModuleGraph(modules.map((m) => ({ name: m.name, requires: m.requires })));
  const byName = new Map(modules.map((m) => [m.name, m]));
  const withMakefile = modules.filter((m) => fs.existsSync(path.join(m.dir, 'Makefile'))).map((m) => m.name);
  const jobs = resolved.words.jobs;
  const concurrency = opts.concurrency ?? (jobs && jobs !== '-' ? Number(jobs) : os.availableParallelism());
  const built: string[] = [];
  const outcomes = await scheduleGraph(
    graph,
    withMakefile,
    async (name) => {
      const m = byName.get(name) as EvaluatedModule;
      reporter({ type: 'module-start', name });
      try {
        const res = await runMake({
          moduleName: name,
          dir: m.dir,
          jobs,
          env: resolved.env,
          ...(opts.signal ? { signal: opts.signal } : {}),
          ...(opts.streamMakeOutput ? { onLine: (line: string) => reporter({ type: 'make-output', name, line }) } : {}),
        });
        built.push(name);
        reporter({ type: 'module-built', name, durationMs: res.durationMs });
      } catch (e) {
        const err = isOsvbError(e) ? e : new OsvbError('OSVB_INTERNAL', String(e));
        reporter({ type: 'module-failed', name, error: err });
        throw err;
      }
    },
    { jobs: concurrency, keepGoing: opts.keepGoing ?? false },
  );
  const failures = [...outcomes.values()].filter((o) => o.status === 'failed');
  for (const [name, o] of outcomes) if (o.status === 'skipped' && byName.has(name) && withMakefile.includes(name)) reporter({ type: 'module-skipped', name, reason: o.reason });
  if (failures.length > 0) {
    const first = failures[0] as { error: unknown };
    if (failures.length === 1) throw first.error;
    const errs = failures.map((f) => (f as { error: OsvbError }).error);
    throw new OsvbError('OSVB_MAKE_FAILED', `${errs.length} modules failed to build: ${errs.map((e) => e.message).join('; ')}`, {
      details: errs.flatMap((e) => [e.format(), '']),
    });
  }

  if (evaluation.appsError) throw workerErrorToOsvb(evaluation.appsError);
  const outputs = generateOsvOutputs({
    osvBase: resolved.osvBase,
    buildPath: resolved.buildPath,
    modules,
    apps: evaluation.apps ?? [],
    usrSkel: resolved.words.usrSkel,
    libgccSDir: resolved.libgccSDir,
    walkOrder: resolved.compat === 'osv' ? 'os' : 'sorted',
    patternMode: resolved.compat === 'osv' ? 'osv' : 'default',
    appendManifest: resolved.words.appendManifest,
  });
  if (outputs.noAppsSelected) reporter({ type: 'log', text: 'No apps selected' });
  const written = opts.dryRun ? [] : writeOsvOutputs(resolved.buildPath, outputs);
  if (!opts.dryRun) reporter({ type: 'outputs-written', files: written });
  const durationMs = performance.now() - started;
  reporter({ type: 'done', ok: true, durationMs, modules: modules.length, built: built.length, failed: 0 });
  return { resolved, evaluation, modules, built, outputs, written, durationMs };
}
