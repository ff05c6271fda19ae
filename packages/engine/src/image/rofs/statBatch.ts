/**
 * Stat many paths at once: on the native copier's threads when it is built (no fs.Stats, and on
 * Node 20 no four Date objects, per path), else on libuv's thread pool. Every path gets a
 * result: its stat, or the errno name of its failure — callers decide what a failure means.
 */
import * as fs from 'node:fs';
import { nativeCopier, nativeStatsOfAny, type NativeStat } from './nativeCopy.js';

/** What a stat found: Stats' own numbers (so that signatures compare equal whichever made them). */
export type PathStat = NativeStat;
export type PathStatResult = PathStat | { code: string };

const S_IFMT = 0o170000;

export function isRegular(st: PathStat): boolean {
  return (st.mode & S_IFMT) === 0o100000;
}

/** Stat signature of a file's source, used by the incremental writer to skip re-reading it. */
export interface RofsSourceSignature {
  size: number;
  mtimeMs: number;
  ctimeMs: number;
  ino: number;
  /** Device of the source's file system (lets the writer compare its timestamps with that file system's clock). */
  dev?: number;
}

/** The part of a stat a file's signature keeps. */
export function sourceSignature(st: RofsSourceSignature): RofsSourceSignature {
  return { size: st.size, mtimeMs: st.mtimeMs, ctimeMs: st.ctimeMs, ino: st.ino, dev: st.dev };
}

/** stat (or, `follow` false, lstat) every path; results in the paths' order. */
export async function statPaths(paths: readonly string[], follow = true): Promise<PathStatResult[]> {
  const binding = nativeCopier();
  const native = binding && paths.length > 0 ? nativeStatsOfAny(binding, paths, follow) : undefined;
  if (native) return native;
  const stat = follow ? fs.stat : fs.lstat;
  return Promise.all(
    paths.map(
      (p) =>
        new Promise<PathStatResult>((resolve) => {
          try {
            stat(p, (err, st) => resolve(err ? { code: err.code ?? String(err) } : { size: st.size, mtimeMs: st.mtimeMs, ctimeMs: st.ctimeMs, ino: st.ino, dev: st.dev, mode: st.mode }));
          } catch (e) {
            // A path no system call could take (a NUL in it) is refused before the call.
            resolve({ code: (e as NodeJS.ErrnoException).code ?? String(e) });
          }
        }),
    ),
  );
}
