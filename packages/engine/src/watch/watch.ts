/**
 * `osvb watch`: build once, then watch every input of the selected image with chokidar and
 * rebuild when one changes. Each rebuild is an ordinary incremental build — keys, cached
 * evaluation and the in-place image writers decide what actually runs — so a change costs what
 * it touches. Changes that arrive during a build are coalesced into one follow-up build; the
 * build's own outputs (the build path, the cache, what make writes in module directories) are
 * ignored, so a build never retriggers itself. A failing build is reported and watching goes on.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { watch as chokidarWatch, type FSWatcher } from 'chokidar';
import ignore, { type Ignore } from 'ignore';
import { OsvbError, isOsvbError } from '../errors/index.js';
import { initHashing } from '../hash/index.js';
import { build, lockFileFor, resolveBuild, BuildState, warmCutoffEvidence, type BuildOptions, type BuildResult } from '../pipeline/index.js';
import { withLock } from '../cache/index.js';
import type { BuildEvent, Reporter } from '../report/index.js';

export interface WatchOptions extends Omit<BuildOptions, 'signal' | 'command'> {
  /** Quiet time after the last change before a rebuild starts (default 50 ms). */
  debounceMs?: number;
  /** Ends watching: the running build is stopped (make's process group killed) and the watcher closed. */
  signal: AbortSignal;
  /** Told about each build: the first one and every rebuild. */
  onCycle?: (cycle: WatchCycle) => void;
  /** Told once the watcher is ready (after the first build), and after each rebuild with the paths watched. */
  onWatching?: (info: { paths: number }) => void;
}

export interface WatchCycle {
  /** 0 for the first build, then 1, 2, … */
  index: number;
  ok: boolean;
  /** Changed paths that caused this build (empty for the first). */
  trigger: string[];
  /** Modules whose make ran, and modules restored from the cache (not merely up to date). */
  built: string[];
  restored: string[];
  result?: BuildResult;
  error?: OsvbError;
  durationMs: number;
}

interface WatchSet {
  paths: Set<string>;
  /** Decides whether a path's change is ignored (build outputs, caches, .gitignored files). */
  ignored: (p: string, isDir?: boolean) => boolean;
}

function within(p: string, dir: string): boolean {
  return p === dir || p.startsWith(dir.endsWith(path.sep) ? dir : dir + path.sep);
}

/** Host paths a generated manifest pulls in (`guest: host`), without `/**` and links. */
function manifestHosts(text: string): string[] {
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const i = line.indexOf(': ');
    if (i < 0 || line.startsWith('[') || line.startsWith('#')) continue;
    let host = line.slice(i + 2).trim();
    if (host.startsWith('->')) continue;
    host = host.replace(/\/\*\*$/, '');
    if (path.isAbsolute(host)) out.push(path.normalize(host));
  }
  return out;
}

/** Directories whose .gitignore applies to a module: its own (read once per rebuild). */
function gitignoreOf(dir: string): Ignore | undefined {
  try {
    return ignore().add(fs.readFileSync(path.join(dir, '.gitignore'), 'utf8'));
  } catch {
    return undefined;
  }
}

const ALWAYS_IGNORED = new Set(['.git', 'node_modules', '.osvb', '__pycache__']);
/** More external files than this are not watched one by one (a manifest pulling in a system tree). */
const MAX_EXTERNAL = 2000;

function watchSetFrom(result: BuildResult | undefined, osvBase: string, buildPath: string, cacheDir: string): WatchSet {
  const paths = new Set<string>();
  const moduleDirs: string[] = [];
  if (!result) {
    // Nothing built yet (the first build failed): watch the whole base until one succeeds.
    paths.add(osvBase);
  } else {
    for (const m of result.modules) {
      const dir = path.resolve(osvBase, m.dir);
      moduleDirs.push(dir);
      paths.add(dir);
    }
    paths.add(path.join(osvBase, 'config.json'));
    paths.add(path.join(osvBase, 'images'));
    paths.add(path.join(osvBase, 'static'));
    for (const name of safeList(osvBase)) if (name.endsWith('.skel') || name.endsWith('.manifest')) paths.add(path.join(osvBase, name));
    const reads = result.evaluationReads;
    if (reads) {
      for (const [f] of reads.files) paths.add(f);
      for (const [d] of reads.dirs) paths.add(d);
    }
    let external = 0;
    for (const text of result.outputs.files.values()) {
      for (const host of manifestHosts(text)) {
        if (within(host, buildPath) || moduleDirs.some((d) => within(host, d))) continue;
        if (++external > MAX_EXTERNAL) break;
        paths.add(host);
      }
    }
  }
  const outputs = BuildState.readOutputs(cacheDir, osvBase);
  const byDir = new Map<string, { outputs: Set<string>; ig: Ignore | undefined }>();
  for (const m of result?.modules ?? []) {
    const dir = path.resolve(osvBase, m.dir);
    byDir.set(dir, { outputs: new Set(outputs[m.name] ?? []), ig: gitignoreOf(dir) });
  }
  const dirs = [...byDir.keys()].sort((a, b) => b.length - a.length); // innermost first
  const ignored = (p: string, isDir?: boolean): boolean => {
    if (within(p, buildPath) || within(p, cacheDir)) return true;
    if (ALWAYS_IGNORED.has(path.basename(p))) return true;
    if (path.basename(p).endsWith('.osvb-tmp') || /\.tmp-[0-9a-z]+$/i.test(p)) return true;
    const dir = dirs.find((d) => within(p, d) && p !== d);
    if (!dir) return false;
    const info = byDir.get(dir) as { outputs: Set<string>; ig: Ignore | undefined };
    const rel = path.relative(dir, p).split(path.sep).join('/');
    if (info.outputs.has(rel)) return true;
    if (info.ig && (info.ig.ignores(rel) || (isDir === true && info.ig.ignores(rel + '/')))) return true;
    return false;
  };
  return { paths, ignored };
}

/**
 * chokidar's add() returns before the new paths are watched: wait (briefly) until each existing
 * one shows in getWatched(), so a change made right after "watching" is not missed.
 */
async function settled(watcher: FSWatcher, paths: readonly string[]): Promise<void> {
  const pending = paths.filter((p) => fs.existsSync(p));
  for (let i = 0; i < 200 && pending.length > 0; i++) {
    const watched = watcher.getWatched();
    for (let j = pending.length - 1; j >= 0; j--) {
      const p = pending[j] as string;
      if (watched[p] !== undefined || watched[path.dirname(p)]?.includes(path.basename(p))) pending.splice(j, 1);
    }
    if (pending.length > 0) await new Promise((r) => setTimeout(r, 10));
  }
}

function safeList(dir: string): string[] {
  try {
    return fs.readdirSync(dir);
  } catch {
    return [];
  }
}

/** Watch and rebuild until `signal` aborts; resolves once the watcher is closed and no build runs. */
export async function watchBuild(opts: WatchOptions): Promise<void> {
  await initHashing();
  const resolved = resolveBuild(opts);
  const { osvBase, buildPath, cacheDir } = resolved;
  const debounceMs = opts.debounceMs ?? 50;
  let set = watchSetFrom(undefined, osvBase, buildPath, cacheDir);
  let watcher: FSWatcher | undefined;
  let watched = new Set<string>();
  let building: Promise<void> | undefined;
  let pending = new Set<string>();
  let timer: NodeJS.Timeout | undefined;
  let cycles = 0;
  let buildController: AbortController | undefined;
  let lastResult: BuildResult | undefined;
  /** make asked ahead of time for early cutoff (cutoff.ts), while nothing else runs. */
  let warming: { controller: AbortController; done: Promise<void> } | undefined;
  /** Idle time before make is asked (a quick series of edits, and the watcher's own set-up, go first). */
  let warmTimer: NodeJS.Timeout | undefined;
  const startWarming = (): void => {
    if (warmTimer) clearTimeout(warmTimer);
    warmTimer = setTimeout(() => {
      warmTimer = undefined;
      if (!building && pending.size === 0) warmNow();
    }, 1000);
  };
  const warmNow = (): void => {
    const result = lastResult;
    if (!result || warming || opts.signal.aborted || process.env['OSVB_WATCH_WARM'] === '0') return;
    const controller = new AbortController();
    const t0 = performance.now();
    const done = warmCutoffEvidence({
      modules: result.graph.order.flatMap((n) => result.modules.filter((m) => m.name === n)),
      keys: result.keys,
      keyInputs: result.keyInputs,
      cacheDir,
      osvBase,
      env: resolved.env,
      statCache: result.statCache,
      locked: (dir, fn) => withLock(lockFileFor(result.cache, dir), fn, controller.signal),
      signal: controller.signal,
    }).then(
      (n) => {
        if (n > 0) opts.reporter?.({ type: 'log', text: `early cutoff: make asked about ${n} module${n === 1 ? '' : 's'} ahead of time (${Math.round(performance.now() - t0)} ms)` });
      },
      () => {},
    );
    const w = { controller, done };
    warming = w;
    void done.then(() => {
      if (warming === w) warming = undefined;
    });
  };
  const stopWarming = async (): Promise<void> => {
    if (warmTimer) clearTimeout(warmTimer);
    warmTimer = undefined;
    const w = warming;
    if (!w) return;
    w.controller.abort();
    await w.done;
    if (warming === w) warming = undefined;
  };

  const runOnce = async (trigger: string[]): Promise<void> => {
    const index = cycles++;
    const started = performance.now();
    const built: string[] = [];
    const restored: string[] = [];
    const reporter: Reporter = (e: BuildEvent) => {
      if (e.type === 'module-built') built.push(e.name);
      else if (e.type === 'module-restored' && !e.upToDate) restored.push(e.name);
      opts.reporter?.(e);
    };
    buildController = new AbortController();
    try {
      const result = await build({ ...opts, reporter, signal: buildController.signal });
      lastResult = result;
      set = watchSetFrom(result, osvBase, buildPath, cacheDir);
      opts.onCycle?.({ index, ok: true, trigger, built, restored, result, durationMs: performance.now() - started });
    } catch (e) {
      lastResult = undefined;
      if (opts.signal.aborted) return;
      const error = isOsvbError(e) ? e : new OsvbError('OSVB_INTERNAL', e instanceof Error ? e.message : String(e), { cause: e });
      opts.onCycle?.({ index, ok: false, trigger, built, restored, error, durationMs: performance.now() - started });
    } finally {
      buildController = undefined;
    }
  };

  const syncWatcher = async (): Promise<void> => {
    if (opts.signal.aborted) return;
    const next = set.paths;
    if (!watcher) {
      watcher = chokidarWatch([...next], {
        ignoreInitial: true,
        ignored: (p, stats) => set.ignored(path.resolve(p), stats?.isDirectory()),
      });
      watcher.on('all', (_event, p) => onChange(path.resolve(p)));
      watcher.on('error', (e) => opts.reporter?.({ type: 'warning', text: `watcher: ${(e as Error).message}` }));
      await new Promise<void>((resolve) => watcher?.once('ready', () => resolve()));
    } else {
      const add = [...next].filter((p) => !watched.has(p));
      const drop = [...watched].filter((p) => !next.has(p));
      if (drop.length) watcher.unwatch(drop);
      if (add.length) {
        watcher.add(add);
        await settled(watcher, add);
      }
    }
    watched = new Set(next);
    opts.onWatching?.({ paths: watched.size });
  };

  const startBuild = (): void => {
    if (building || opts.signal.aborted) return;
    // Changes to files the last build recorded as its own outputs are not changes.
    const trigger = [...pending].filter((p) => !set.ignored(p)).sort();
    pending = new Set();
    if (trigger.length === 0) return;
    building = (async () => {
      await stopWarming();
      await runOnce(trigger);
      await syncWatcher();
      if (pending.size === 0) startWarming();
    })().finally(() => {
      building = undefined;
      if (pending.size > 0) schedule();
    });
  };

  const schedule = (): void => {
    if (timer) clearTimeout(timer);
    timer = setTimeout(() => {
      timer = undefined;
      startBuild();
    }, debounceMs);
  };

  const onChange = (p: string): void => {
    if (opts.signal.aborted || set.ignored(p)) return;
    pending.add(p);
    if (warmTimer) clearTimeout(warmTimer);
    warmTimer = undefined;
    warming?.controller.abort();
    // While a build runs, changes wait for it: one follow-up build takes them all.
    if (!building) schedule();
  };

  const onAbort = (): void => buildController?.abort();
  opts.signal.addEventListener('abort', onAbort, { once: true });
  try {
    building = runOnce([]).then(syncWatcher);
    await building;
    building = undefined;
    if (pending.size > 0) schedule();
    else startWarming();
    if (!opts.signal.aborted) {
      await new Promise<void>((resolve) => {
        if (opts.signal.aborted) resolve();
        else opts.signal.addEventListener('abort', () => resolve(), { once: true });
      });
    }
    if (timer) clearTimeout(timer);
    await building;
    await stopWarming();
  } finally {
    opts.signal.removeEventListener('abort', onAbort);
    if (timer) clearTimeout(timer);
    await watcher?.close();
  }
}

/** One line per build: what ran and what the image outputs did. */
export function describeCycle(c: WatchCycle): string {
  const secs = `${(c.durationMs / 1000).toFixed(2)}s`;
  if (!c.ok) return `build failed (${secs}): ${c.error?.format().split('\n')[0] ?? 'unknown error'}`;
  const r = c.result as BuildResult;
  const what =
    c.built.length > 0
      ? `rebuilt ${c.built.join(', ')}${c.restored.length ? ` (restored ${c.restored.join(', ')})` : ''}`
      : c.restored.length > 0
        ? `restored ${c.restored.join(', ')}`
        : c.index === 0
          ? `${r.modules.length} module${r.modules.length === 1 ? '' : 's'} up to date`
          : 'no module changed';
  const after: string[] = [];
  if (r.written.length > 0) after.push(`${r.written.map((w) => path.basename(w)).join(', ')} updated`);
  const rofs = r.images.rofs;
  if (rofs) {
    if (!rofs.written) after.push(`rofs.img not written: ${firstReason(rofs.reason)}`);
    else if (rofs.bytesWritten === 0) after.push('rofs.img unchanged');
    else if (rofs.mode === 'in-place') after.push(`rofs.img updated in place (${rofs.filesWritten} files rewritten, ${rofs.filesReused} reused${rofs.treeReused ? ', same tree' : ''})`);
    else after.push(`rofs.img written (${rofs.filesWritten} files)`);
  }
  const disk = r.images.disk;
  if (disk) {
    const name = path.basename(disk.file);
    after.push(disk.mode === 'unchanged' ? `${name} unchanged` : disk.mode === 'in-place' ? `${name} updated in place (${disk.bytesWritten} bytes)` : `${name} written`);
  }
  if (r.images.exported) after.push(`export: ${r.images.exported.changed} files changed`);
  if (r.images.oci) after.push(`oci: ${r.images.oci.layersWritten} layers written, ${r.images.oci.layersReused} reused`);
  return `${what} (${secs})${after.length ? ` → ${after.join(', ')}` : ' → outputs unchanged'}`;
}

/** The first line of an error's text, without its `error[CODE]: ` prefix: why an image was not written. */
function firstReason(reason: string | undefined): string {
  const line = (reason ?? '').split('\n')[0] ?? '';
  return line.replace(/^error\[[A-Z_]+\]: /, '') || 'see the warning';
}
