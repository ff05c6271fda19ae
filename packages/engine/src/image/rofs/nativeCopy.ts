/**
 * The optional native copier (@osv-build/native, built by node-gyp at install time): copies the
 * files of a full write on several threads straight into the image at their block offsets, with
 * copy_file_range when nothing needs hashing, else pread/pwrite with XXH64 on the way. Where it
 * was not built, or with OSVB_NATIVE=0, the JavaScript copiers do the same job more slowly.
 */
import type { CopyFailure, NativeCopier } from '@osv-build/native';
import { createRequire } from 'node:module';
import * as os from 'node:os';
import * as util from 'node:util';

/** Failure kinds, as the native code numbers them. */
export const NATIVE_FAILURE_KINDS = ['open', 'read', 'more', 'short', 'write', 'not-file'] as const;
export type NativeFailureKind = (typeof NATIVE_FAILURE_KINDS)[number];

export interface NativeCopyFailure {
  index: number;
  kind: NativeFailureKind;
  /** errno name (ENOENT…), undefined when the kind says it all. */
  code: string | undefined;
  /** Bytes found (kind 'short'). */
  got: number;
}

type Binding = NativeCopier;

let loaded: Binding | null | undefined;

/** The native copier, or undefined when it is not installed/built or OSVB_NATIVE=0 turns it off. */
export function nativeCopier(): Binding | undefined {
  if (process.env.OSVB_NATIVE === '0') return undefined;
  if (loaded === undefined) {
    try {
      const mod = createRequire(import.meta.url)('@osv-build/native') as { native: Binding | null };
      loaded = mod.native && typeof mod.native.copySizes === 'function' && typeof mod.native.statStart === 'function' ? mod.native : null;
    } catch {
      loaded = null;
    }
  }
  return loaded ?? undefined;
}

/** Threads for a native copy: the copy is mostly kernel time, which scales with cores up to a point. */
function copyThreads(): number {
  const forced = Number(process.env.OSVB_NATIVE_THREADS);
  if (Number.isInteger(forced) && forced >= 1 && forced <= 16) return forced;
  return Math.max(1, Math.min(8, os.availableParallelism()));
}

export interface NativeCopyRequest {
  sources: readonly string[];
  /** Known sizes, undefined where the native code must stat the file. */
  sizes: ReadonlyArray<number | undefined>;
  hash: boolean;
  fd: number;
  /** Byte offset of the first file's data. */
  start: number;
  /** Never copy_file_range (tests of the fallback path). */
  plainIo?: boolean;
  /** The area is in an existing image (an in-place update): its old bytes become zeros where no file data goes. */
  inPlace?: boolean;
}

/** A copy running on native threads (stats first, then data); `finish` or `cancel` must be called before the fd is closed. */
export interface NativeCopy {
  /**
   * Wait until every file's size is known (the data copy goes on meanwhile): the sizes, and the
   * bytes the data takes (each file padded to a block); or the first file that could not be stat'ed.
   */
  sizes(): { ok: true; sizes: Float64Array; bytes: number } | { ok: false; failure: NativeCopyFailure };
  finish(): { ok: true; digests: BigUint64Array | undefined } | { ok: false; failure: NativeCopyFailure };
  cancel(): void;
}

/**
 * The paths as the native code takes them (NUL-terminated, one buffer), or undefined when one
 * cannot be passed that way (it contains a NUL: no system call could open it either, the
 * JavaScript copier reports it).
 */
function pathList(sources: readonly string[]): Buffer | undefined {
  if (sources.some((s) => s.includes('\0'))) return undefined;
  return Buffer.from(sources.join('\0') + '\0');
}

/** Start a copy (the calling thread is free until `sizes` or `finish`); undefined when the paths cannot be passed (pathList). */
export function startNativeCopy(binding: Binding, req: NativeCopyRequest): NativeCopy | undefined {
  const n = req.sources.length;
  const paths = pathList(req.sources);
  if (!paths) return undefined;
  const sizes = new Float64Array(n);
  for (let i = 0; i < n; i++) sizes[i] = req.sizes[i] ?? -1;
  const handle = binding.copyStart(paths, n, sizes, req.hash, req.fd, req.start, copyThreads(), (req.plainIo ? 1 : 0) | (req.inPlace ? 2 : 0));
  let done = false;
  return {
    sizes() {
      const r = binding.copySizes(handle, sizes);
      return typeof r === 'number' ? { ok: true, sizes, bytes: r } : { ok: false, failure: failureOf(r) };
    },
    finish() {
      if (done) throw new Error('native copy already finished');
      done = true;
      const digests = req.hash ? new BigUint64Array(n) : undefined;
      const r = binding.copyWait(handle, digests ?? null, false);
      if (typeof r === 'number') return { ok: true, digests };
      return { ok: false, failure: failureOf(r as CopyFailure) };
    },
    cancel() {
      if (done) return;
      done = true;
      binding.copyWait(handle, null, true);
    },
  };
}

/** What stat(2) says of a file, in the units Node's fs.Stats uses (so that signatures compare equal whichever made them). */
export interface NativeStat {
  size: number;
  mtimeMs: number;
  ctimeMs: number;
  ino: number;
  dev: number;
  /** st_mode: type and permission bits. */
  mode: number;
}

const SIG_FIELDS = 8;

/** One path's stat from the native output, or undefined where it failed. */
function statAt(out: Float64Array, i: number): NativeStat | undefined {
  const o = i * SIG_FIELDS;
  const size = out[o] as number;
  if (size < 0) return undefined;
  // As Node computes Stats.mtimeMs/ctimeMs from the same seconds and nanoseconds.
  return {
    size,
    mtimeMs: (out[o + 1] as number) * 1e3 + (out[o + 2] as number) / 1e6,
    ctimeMs: (out[o + 3] as number) * 1e3 + (out[o + 4] as number) / 1e6,
    ino: out[o + 5] as number,
    dev: out[o + 6] as number,
    mode: out[o + 7] as number,
  };
}

/**
 * stat(2) (or, with `follow` false, lstat(2)) any paths on native threads (any file type; a
 * failed stat is a result): each path's stat, or the errno name of its failure. Undefined when
 * the paths cannot be passed (pathList).
 */
export function nativeStatsOfAny(binding: Binding, paths: readonly string[], follow = true): Array<NativeStat | { code: string }> | undefined {
  const n = paths.length;
  const list = pathList(paths);
  if (!list) return undefined;
  const out = new Float64Array(Math.max(1, n * SIG_FIELDS));
  binding.statWait(binding.statStart(list, n, copyThreads(), follow ? 1 : 3), out);
  const stats: Array<NativeStat | { code: string }> = new Array<NativeStat | { code: string }>(n);
  for (let i = 0; i < n; i++) stats[i] = statAt(out, i) ?? { code: errnoName(-(out[i * SIG_FIELDS + 7] as number)) };
  return stats;
}

function failureOf(r: CopyFailure): NativeCopyFailure {
  return {
    index: r.index,
    kind: NATIVE_FAILURE_KINDS[r.kind] ?? 'read',
    code: r.errno ? errnoName(r.errno) : undefined,
    got: r.got,
  };
}

function errnoName(errno: number): string {
  try {
    return util.getSystemErrorName(-errno);
  } catch {
    return `errno ${errno}`;
  }
}

