/**
 * What osvb knows about one kernel build directory (`build/<mode>.<arch>` of one checkout), in
 * `<cache>/kernel/state-<digest of the directory>.json`:
 *
 * - the key of what is there now, the inputs it was computed from (for explain), the recorded
 *   inputs outside the tree, and a stat fingerprint of all of them (the no-op check);
 * - the outputs and their stats (up to date = same key and outputs untouched);
 * - `objects`: the inputs of the last make that ran there. make's own incremental build is
 *   sound only for changes make tracks (a source or header in a `.d` file, newer than the
 *   objects); the next make compares its inputs with these to decide between an incremental
 *   make and a full one (`make -B`), so no result cached under a key comes from stale objects.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeFileAtomic } from '../fsutil/index.js';
import { digestString } from '../hash/index.js';
import type { Extras, KernelFingerprint, KernelKeyInputs } from './key.js';

/** A stored output: a file by digest, or a link by target. Paths relative to the out dir. */
export type KernelOutput = { path: string; digest: string; mode: number; size: number } | { path: string; link: string };

export interface ObjectsState {
  /** Digest of the inputs that make cannot track (words, environment, toolchain, value files). */
  config: string;
  /** The same, as data (for explain). */
  configParts?: Pick<KernelKeyInputs, 'schema' | 'engine' | 'words' | 'env' | 'toolchain' | 'valueFiles'>;
  files: Record<string, string>;
  extras: Extras;
  fs: string;
  bootfs: { manifest: string; digest: string };
  /** Directories the static set left out then (the image graph's). */
  excluded: string[];
  /** When that make started and finished (ms since the epoch). */
  startedAt: number;
  endedAt: number;
  /** Compile prerequisites (relative to the base, or absolute): make rebuilds what depends on them. */
  tracked: string[];
  /** Bootfs blobs (relative to the out dir) → host files in them (absolute). */
  bootfsDeps: Record<string, string[]>;
  /** Makefiles read from outside the tree (absolute or `${OSV_BASE}/…`). */
  makefiles: string[];
  /** The outputs that make left, to put back when outputs of another key were restored over them. */
  outputs: KernelOutput[];
}

export interface KernelState {
  v: 1;
  key: string;
  k1: string;
  status: 'built' | 'restored';
  at: string;
  inputs: KernelKeyInputs;
  extras: Extras;
  /** Environment variable names the key takes (from the makefiles' identifiers). */
  envNames: string[];
  /** The exclusions the static set was walked with (module directories, cache, build path). */
  walkKey: string;
  fingerprint: KernelFingerprint | null;
  outputs: KernelOutput[];
  /** Output stats after the build or restore: [path, size, mtimeMs, ino, mode, digest when too fresh to trust stats alone]. */
  outputSigs: Array<[string, string, string, string, number, string?]> | null;
  objects: ObjectsState | null;
  /** Dependency files (relative to the out dir) the kernel make wrote. */
  depFiles: string[];
  /** Files the kernel makes created or changed in the out dir, with their stats then. */
  products: Record<string, string>;
  /** True when outputs were restored over objects of another build. */
  restoredOver: boolean;
}

export class KernelStateStore {
  readonly file: string;

  constructor(cacheDir: string, outDir: string) {
    this.file = path.join(cacheDir, 'kernel', `state-${digestString(path.resolve(outDir))}.json`);
  }

  read(): KernelState | undefined {
    try {
      const d = JSON.parse(fs.readFileSync(this.file, 'utf8')) as KernelState;
      if (d.v === 1 && d.inputs && Array.isArray(d.outputs)) return d;
    } catch {
      /* missing or unreadable: it is only state */
    }
    return undefined;
  }

  write(st: KernelState): void {
    fs.mkdirSync(path.dirname(this.file), { recursive: true });
    writeFileAtomic(this.file, JSON.stringify(st));
  }
}

const RACY_MS = 2000;

/**
 * Output stats right after a build or restore. An output modified within two seconds of being
 * recorded could change again in the same timestamp tick unseen, so such an entry also keeps
 * its digest and is checked by content (stat cache) instead of by stats alone.
 */
export function outputSigsOf(outDir: string, outputs: readonly KernelOutput[]): NonNullable<KernelState['outputSigs']> {
  const limit = Date.now() - RACY_MS;
  const out: NonNullable<KernelState['outputSigs']> = [];
  for (const o of outputs) {
    if ('link' in o) continue;
    const st = fs.lstatSync(path.join(outDir, o.path), { throwIfNoEntry: false });
    if (!st) continue;
    const sig: [string, string, string, string, number, string?] = [o.path, String(st.size), st.mtimeMs.toString(), String(st.ino), st.mode & 0o777];
    if (st.mtimeMs >= limit) sig.push(o.digest);
    out.push(sig);
  }
  return out;
}

export function outputsHold(outDir: string, outputs: readonly KernelOutput[], sigs: KernelState['outputSigs'], digest: (abs: string) => string): boolean {
  if (!sigs) return false;
  const seen = new Set<string>();
  for (const [p, s, m, i, mode, d] of sigs) {
    const abs = path.join(outDir, p);
    const st = fs.lstatSync(abs, { throwIfNoEntry: false });
    if (!st || !st.isFile() || String(st.size) !== s || st.mtimeMs.toString() !== m || String(st.ino) !== i || (st.mode & 0o777) !== mode) return false;
    if (d !== undefined && digest(abs) !== d) return false;
    seen.add(p);
  }
  for (const o of outputs) {
    if (!('link' in o)) {
      if (!seen.has(o.path)) return false;
      continue;
    }
    try {
      if (fs.readlinkSync(path.join(outDir, o.path)) !== o.link) return false;
    } catch {
      return false;
    }
  }
  return true;
}

/** `size:mtimeMs:ino` of every file under dir (relative paths). */
export function snapshotDir(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (abs: string, rel: string): void => {
    let names: string[];
    try {
      names = fs.readdirSync(abs);
    } catch {
      return;
    }
    for (const n of names) {
      const p = path.join(abs, n);
      const r = rel ? `${rel}/${n}` : n;
      const st = fs.lstatSync(p, { throwIfNoEntry: false });
      if (!st) continue;
      if (st.isDirectory()) walk(p, r);
      else out.set(r, `${st.size}:${st.mtimeMs}:${st.ino}`);
    }
  };
  walk(dir, '');
  return out;
}
