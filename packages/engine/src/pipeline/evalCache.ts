/**
 * Cached evaluation. An evaluation record remembers everything the evaluation looked at —
 * files read (by digest), directories listed, paths tested, environment variables read,
 * config files, module lookups — and is reused only while all of them are unchanged. A
 * module.py that writes files or runs a shell command is never cached.
 */
import * as fs from 'node:fs';
import { lstatQuiet, statQuiet } from '../fsutil/index.js';
import { canonicalJson, digestString, digestValue, type Digest, type StatCache } from '../hash/index.js';
import type { LocalCache } from '../cache/index.js';
import type { EvaluationReads, EvaluationResult, ModuleReads, ModuleReplayRecord, PartialRecords, ReplayInput } from '../evaluate/index.js';

export type { EvaluationReads };

export interface RecordedReads {
  files: Array<[string, string | null]>;
  dirs: Array<[string, string | null]>;
  stats: Array<[string, string]>;
  env: Array<[string, string | null]>;
  envAll: string | null;
}

export interface EvalRecord {
  reads: RecordedReads;
  /** `--no-required` needs the spec's items; image-config mode has none. */
  selected: string[];
  result: EvaluationResult;
  /**
   * For a partial evaluation next time: the reads made outside any module.py (config files,
   * module lookups, the image config), and per module.py that ran its own reads and how to
   * replay it. Absent: the next evaluation runs every module.py.
   */
  partial?: {
    outside: RecordedReads;
    modules: Record<string, { reads: RecordedReads; replay: ModuleReplayRecord }>;
  };
}

export const EVAL_NAMESPACE = 'eval';

function kindOf(p: string, follow: boolean): string {
  const st = follow ? statQuiet(p) : lstatQuiet(p);
  if (!st) return 'missing';
  if (st.isSymbolicLink()) return 'link';
  if (st.isDirectory()) return 'dir';
  if (st.isFile()) return 'file';
  return 'other';
}

function fileDigest(statCache: StatCache, p: string): string | null {
  let st: fs.BigIntStats | undefined;
  try {
    st = fs.statSync(p, { bigint: true, throwIfNoEntry: false });
  } catch {
    return null;
  }
  if (!st) return null;
  if (!st.isFile()) return st.isDirectory() ? 'dir' : 'other';
  return statCache.digest(p, st);
}

function listingDigest(p: string): string | null {
  try {
    const names = fs.readdirSync(p).sort();
    return digestString(names.join('\0'));
  } catch {
    return null;
  }
}

function envDigest(env: Readonly<Record<string, string>>): Digest {
  return digestValue(Object.entries(env).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/** Turn what the worker reported (plus engine-side reads) into a record of current states. */
export function recordReads(
  reads: EvaluationReads,
  extra: { files: string[]; probes: Array<[string, boolean]>; env: string[] },
  env: Readonly<Record<string, string>>,
  statCache: StatCache,
  startedAtMs: number,
): RecordedReads | { uncacheable: string } {
  if (reads.uncacheable.length > 0) return { uncacheable: reads.uncacheable[0] as string };
  const files = [...new Set([...reads.files, ...extra.files])].sort();
  const recFiles: Array<[string, string | null]> = [];
  for (const f of files) {
    try {
      const st = fs.statSync(f);
      if (st.mtimeMs >= startedAtMs) return { uncacheable: `${f} changed during evaluation` };
    } catch {
      /* missing: recorded as null */
    }
    recFiles.push([f, fileDigest(statCache, f)]);
  }
  const stats = new Map<string, string>();
  for (const s of reads.stats) stats.set(s, kindOf(s.slice(2), s.startsWith('S:')));
  for (const [p, exists] of extra.probes) stats.set(`S:${p}`, exists ? kindOf(p, true) : 'missing');
  const envNames = [...new Set([...reads.env, ...extra.env])].sort();
  return {
    files: recFiles,
    dirs: reads.dirs.map((d): [string, string | null] => [d, listingDigest(d)]),
    stats: [...stats].sort(([a], [b]) => (a < b ? -1 : 1)),
    env: envNames.map((n): [string, string | null] => [n, env[n] ?? null]),
    envAll: reads.envAll ? envDigest(env) : null,
  };
}

/** The first recorded read that no longer holds, or undefined when the record is valid. */
export function staleRead(rec: RecordedReads, env: Readonly<Record<string, string>>, statCache: StatCache): string | undefined {
  return staleChecker(env, statCache)(rec);
}

/**
 * `staleRead` for many records at once: each path is looked at once however many records name
 * it (a base's modules share config files and required module.py files).
 */
export function staleChecker(env: Readonly<Record<string, string>>, statCache: StatCache): (rec: RecordedReads) => string | undefined {
  const memo = new Map<string, string | null>();
  const once = (k: string, f: () => string | null): string | null => {
    let v = memo.get(k);
    if (v === undefined && !memo.has(k)) {
      v = f();
      memo.set(k, v);
    }
    return v as string | null;
  };
  let allEnv: Digest | undefined;
  return (rec) => {
    for (const [n, v] of rec.env) if ((env[n] ?? null) !== v) return `environment variable ${n} changed`;
    if (rec.envAll !== null && rec.envAll !== (allEnv ??= envDigest(env))) return 'the environment changed (module.py read all of it)';
    for (const [k, kind] of rec.stats) if (once(`k${k}`, () => kindOf(k.slice(2), k.startsWith('S:'))) !== kind) return `${k.slice(2)} was added, removed or changed type`;
    for (const [d, digest] of rec.dirs) if (once(`d${d}`, () => listingDigest(d)) !== digest) return `directory ${d} changed`;
    for (const [f, digest] of rec.files) if (once(`f${f}`, () => fileDigest(statCache, f)) !== digest) return `${f} changed`;
    return undefined;
  };
}

/**
 * One recorded read as a flat entry — file digest, directory listing, path kind, variable, or
 * the whole environment — so many records can share one table of distinct reads.
 */
export type ReadEntry = ['f' | 'd' | 's' | 'e' | 'a', string, string | null];

export function flattenReads(rec: RecordedReads): ReadEntry[] {
  return [
    ...rec.files.map(([p, d]): ReadEntry => ['f', p, d]),
    ...rec.dirs.map(([p, d]): ReadEntry => ['d', p, d]),
    ...rec.stats.map(([k, kind]): ReadEntry => ['s', k, kind]),
    ...rec.env.map(([n, v]): ReadEntry => ['e', n, v]),
    ...(rec.envAll !== null ? [['a', '', rec.envAll] as ReadEntry] : []),
  ];
}

/** Whether a flat read still holds. */
export function readHolds(entry: ReadEntry, env: Readonly<Record<string, string>>, statCache: StatCache): boolean {
  const [kind, key, value] = entry;
  switch (kind) {
    case 'f':
      return fileDigest(statCache, key) === value;
    case 'd':
      return listingDigest(key) === value;
    case 's':
      return kindOf(key.slice(2), key.startsWith('S:')) === value;
    case 'e':
      return (env[key] ?? null) === value;
    case 'a':
      return envDigest(env) === value;
  }
}

export function evalCacheKey(parts: { engine: string; osvBase: string; buildPath: string; spec: string; python: string }): Digest {
  return digestString(canonicalJson(parts));
}

export function loadEvalRecord(cache: LocalCache, key: string): EvalRecord | undefined {
  try {
    return cache.getAction<EvalRecord>(EVAL_NAMESPACE, key);
  } catch {
    return undefined;
  }
}

/**
 * The modules a partial evaluation may replay instead of running their module.py: those whose
 * own reads all hold, when every read outside the module.py files (config files, lookups, the
 * image config) holds too. Undefined: evaluate everything (no partial record, or a change
 * outside the module.py files).
 */
export function replayInputs(rec: EvalRecord, check: (reads: RecordedReads) => string | undefined): Record<string, ReplayInput> | undefined {
  if (!rec.partial || check(rec.partial.outside) !== undefined) return undefined;
  const byName = new Map(rec.result.modules.map((m) => [m.name, m]));
  const out: Record<string, ReplayInput> = {};
  for (const [name, m] of Object.entries(rec.partial.modules)) {
    const evaluated = byName.get(name);
    if (!m.replay.replayable || !evaluated || check(m.reads) !== undefined) continue;
    out[name] = { dir: evaluated.dir, record: { events: m.replay.events, attrs: m.replay.attrs, usrFiles: evaluated.usrFiles, bootfsFiles: evaluated.bootfsFiles } };
  }
  return out;
}

const EMPTY_READS: ModuleReads = { files: [], dirs: [], stats: [], env: [], envAll: false };

/** The entries of `all` that `part` names (all has every read of the evaluation, with its current value). */
function pick(all: RecordedReads, part: ModuleReads, extra?: { files: string[]; probes: Array<[string, boolean]>; env: string[] }): RecordedReads {
  const files = new Set([...part.files, ...(extra?.files ?? [])]);
  const dirs = new Set(part.dirs);
  const stats = new Set([...part.stats, ...(extra?.probes ?? []).map(([p]) => `S:${p}`)]);
  const env = new Set([...part.env, ...(extra?.env ?? [])]);
  return {
    files: all.files.filter(([f]) => files.has(f)),
    dirs: all.dirs.filter(([d]) => dirs.has(d)),
    stats: all.stats.filter(([k]) => stats.has(k)),
    env: all.env.filter(([n]) => env.has(n)),
    envAll: part.envAll ? all.envAll : null,
  };
}

function mergeInto(into: RecordedReads, more: RecordedReads): void {
  const add = <T>(list: Array<[string, T]>, items: Array<[string, T]>): void => {
    const have = new Set(list.map(([k]) => k));
    for (const it of items) if (!have.has(it[0])) list.push(it);
    list.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  };
  add(into.files, more.files);
  add(into.dirs, more.dirs);
  add(into.stats, more.stats);
  add(into.env, more.env);
  into.envAll ??= more.envAll;
}

/**
 * The record of a fresh (full or partial) evaluation: every read (the replayed modules' from
 * their old records, checked to hold just before), and the partial-evaluation records.
 */
export function recordEvaluation(
  reads: EvaluationReads,
  partial: PartialRecords | undefined,
  old: EvalRecord | undefined,
  extra: { files: string[]; probes: Array<[string, boolean]>; env: string[] },
  env: Readonly<Record<string, string>>,
  statCache: StatCache,
  startedAtMs: number,
): { reads: RecordedReads; partial?: EvalRecord['partial'] } | { uncacheable: string } {
  const all = recordReads(reads, extra, env, statCache, startedAtMs);
  if ('uncacheable' in all) return all;
  const replayed = partial?.replayed ?? [];
  const kept = replayed.map((name) => old?.partial?.modules[name]);
  for (const k of kept) if (k) mergeInto(all, k.reads);
  if (!partial || partial.noPartial !== null || !reads.byModule || !reads.outside || kept.some((k) => !k)) return { reads: all };
  const modules: NonNullable<EvalRecord['partial']>['modules'] = {};
  replayed.forEach((name, i) => {
    modules[name] = kept[i] as NonNullable<EvalRecord['partial']>['modules'][string];
  });
  for (const [name, replay] of Object.entries(partial.modules)) modules[name] = { reads: pick(all, reads.byModule[name] ?? EMPTY_READS), replay };
  return { reads: all, partial: { outside: pick(all, reads.outside, extra), modules } };
}
