/**
 * One module's build as a cached action: restore its outputs when its key is in the cache
 * (make does not run), otherwise run `make module` under a per-directory lock, find what the
 * build created or changed (a before/after snapshot of the module directory) and store it.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CorruptEntryError, type LocalCache } from '../cache/index.js';
import { runMake } from '../build/index.js';
import { digestString, type Digest, type StatCache } from '../hash/index.js';

export const BUILD_NAMESPACE = 'build';

export type OutputEntry = { path: string; digest: Digest; mode: number; size: number } | { path: string; link: string };

export interface ModuleBuildRecord {
  outputs: OutputEntry[];
  log: Digest | null;
  durationMs: number;
}

export interface ActionContext {
  cache: LocalCache;
  statCache: StatCache;
  env: Record<string, string>;
  jobs: string | undefined;
  signal?: AbortSignal;
  onLine?: (line: string) => void;
  warn: (text: string) => void;
}

interface Snap {
  size: bigint;
  mtimeNs: bigint;
  ino: bigint;
  link: boolean;
}

function snapshot(dir: string): Map<string, Snap> {
  const out = new Map<string, Snap>();
  const walk = (abs: string, rel: string): void => {
    let names: string[];
    try {
      names = fs.readdirSync(abs);
    } catch {
      return;
    }
    for (const n of names) {
      if (n === '.git' || n === '.osvb') continue;
      const p = path.join(abs, n);
      const r = rel ? `${rel}/${n}` : n;
      let st: fs.BigIntStats;
      try {
        st = fs.lstatSync(p, { bigint: true });
      } catch {
        continue;
      }
      if (st.isDirectory()) walk(p, r);
      else if (st.isFile() || st.isSymbolicLink()) out.set(r, { size: st.size, mtimeNs: st.mtimeNs, ino: st.ino, link: st.isSymbolicLink() });
    }
  };
  walk(dir, '');
  return out;
}

function sameSnap(a: Snap | undefined, b: Snap): boolean {
  return !!a && a.size === b.size && a.mtimeNs === b.mtimeNs && a.ino === b.ino && a.link === b.link;
}

export function lockFileFor(cache: LocalCache, dir: string): string {
  return path.join(cache.root, 'locks', `${digestString(path.resolve(dir))}.lock`);
}

/** Restore a record's outputs into dir. False when a blob is missing or corrupt (then: rebuild). */
/**
 * Put a record's outputs in place; returns how many files it had to write (0: every output was
 * there with its recorded content already), or false when the cache could not give one.
 */
export function restoreOutputs(dir: string, rec: ModuleBuildRecord, ctx: ActionContext): number | false {
  let written = 0;
  for (const o of rec.outputs) {
    const dest = path.join(dir, o.path);
    if ('link' in o) {
      try {
        if (fs.readlinkSync(dest) === o.link) continue;
      } catch {
        /* missing or not a link */
      }
      fs.mkdirSync(path.dirname(dest), { recursive: true });
      const tmp = `${dest}.osvb-${process.pid}.tmp`;
      fs.rmSync(tmp, { force: true });
      fs.symlinkSync(o.link, tmp);
      fs.renameSync(tmp, dest);
      written++;
      continue;
    }
    try {
      const st = fs.statSync(dest, { bigint: true });
      if (st.isFile() && ctx.statCache.digest(dest, st) === o.digest && (Number(st.mode) & 0o777) === (o.mode & 0o777)) continue;
    } catch {
      /* missing: restore */
    }
    try {
      if (!ctx.cache.restoreBlob(o.digest, dest, o.mode)) return false;
      ctx.statCache.forget(dest);
      written++;
    } catch (e) {
      if (e instanceof CorruptEntryError) {
        ctx.warn(`cache entry for ${o.path} was corrupt (digest mismatch); it was removed and the module is rebuilt`);
        return false;
      }
      throw e;
    }
  }
  return written;
}

export function replayLog(rec: ModuleBuildRecord, ctx: ActionContext): void {
  if (!rec.log || !ctx.onLine) return;
  try {
    const text = ctx.cache.readBlob(rec.log)?.toString('utf8') ?? '';
    for (const line of text.split('\n')) if (line) ctx.onLine(line);
  } catch {
    /* a missing or corrupt log only loses the replay */
  }
}

export function lookupBuild(key: string, ctx: ActionContext): ModuleBuildRecord | undefined {
  try {
    return ctx.cache.getAction<ModuleBuildRecord>(BUILD_NAMESPACE, key);
  } catch (e) {
    if (e instanceof CorruptEntryError) {
      ctx.warn(`action record ${key} was corrupt; it was removed`);
      return undefined;
    }
    throw e;
  }
}

/** Run make and store what it produced. `inputs` are the files the key was computed from. */
export interface BuildOutcome {
  rec: ModuleBuildRecord;
  /**
   * Inputs whose content changed while make ran: edited meanwhile (watch mode, an editor's
   * save), or written by the Makefile. Either way the result is not cached under the key
   * computed before make (it may not match those inputs); the next build runs make again.
   */
  changedInputs: string[];
}

export async function buildAndStore(
  name: string,
  dir: string,
  key: string,
  /** The key's input files: relative path → content digest. */
  inputs: Readonly<Record<string, string>>,
  ctx: ActionContext,
): Promise<BuildOutcome> {
  const root = path.resolve(dir);
  const before = snapshot(root);
  const res = await runMake({
    moduleName: name,
    dir,
    jobs: ctx.jobs,
    env: ctx.env,
    ...(ctx.signal ? { signal: ctx.signal } : {}),
    ...(ctx.onLine ? { onLine: ctx.onLine } : {}),
  });
  const after = snapshot(root);
  const outputs: OutputEntry[] = [];
  const changedInputs: string[] = [];
  for (const [rel, s] of [...after].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    // An output is whatever is not an input: new files, ignored files, earlier outputs.
    const inputDigest = inputs[rel];
    if (inputDigest !== undefined) {
      if (sameSnap(before.get(rel), s)) continue;
      const abs = path.join(root, rel);
      if (!s.link && ctx.statCache.digest(abs, fs.statSync(abs, { bigint: true })) === inputDigest) continue; // rewritten, same content
      changedInputs.push(rel);
      continue;
    }
    const abs = path.join(root, rel);
    if (s.link) {
      outputs.push({ path: rel, link: fs.readlinkSync(abs) });
      continue;
    }
    const st = fs.statSync(abs, { bigint: true });
    const digest = ctx.statCache.digest(abs, st);
    ctx.cache.putBlobFromFile(digest, abs);
    outputs.push({ path: rel, digest, mode: Number(st.mode) & 0o777, size: Number(st.size) });
  }
  const log = res.output ? ctx.cache.putBlobBytes(Buffer.from(res.output, 'utf8')) : null;
  const rec: ModuleBuildRecord = { outputs, log, durationMs: Math.round(res.durationMs) };
  if (changedInputs.length === 0) ctx.cache.putAction(BUILD_NAMESPACE, key, rec);
  return { rec, changedInputs };
}

