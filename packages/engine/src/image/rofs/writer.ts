/**
 * Writing a ROFS image, byte-identical to gen-rofs-img.py (spec §8.2/§8.3).
 *
 * - Copiers: a full write's file data goes through the native copier when it is built
 *   (nativeCopy.ts: native threads, straight to each file's block offset, the layout planned
 *   meanwhile), else through JavaScript (below; reader threads for many files, readAhead.ts).
 * - Streaming (JavaScript): file contents go through one reused buffer (BUFFER_BYTES), read with positional
 *   reads straight into the output buffer and written with positional writes; nothing holds a
 *   whole file or the whole image. A source whose size the tree recorded is checked to still
 *   have it (a file changing under us is an error, not a silently inconsistent image); a file
 *   found by a `/**` walk is taken as it reads (as gen-rofs-img does), its size learnt on the way.
 * - Full writes go to a temp file in the same directory (data first, block 0 last, when the
 *   layout is known) and are renamed into place; the old layout file is removed first.
 * - Incremental writes (`incremental: true`) keep a layout file `<image>.osvb-layout.json`
 *   (layoutFile.ts: every file's guest path, inode, first block, size, content digest, source and
 *   its stat signature once old enough to trust; the image's size/inode/mtime and a digest of
 *   block 0 and the structure area). Next time, when it still describes the image on disk, the
 *   image is updated in place: a file whose new block and size match an old file's and whose
 *   content is the same (same stat signature, else same digest) is not rewritten; every other
 *   file's data is written, then the structure area and the superblock (only if they changed),
 *   then the image is truncated to its new size. When nothing changed, nothing is written and
 *   the image keeps its mtime. The layout file is deleted before the image is touched and
 *   written only after the image is complete, so a run that dies half-way leaves none and the
 *   next run writes the image from scratch. A failed in-place update removes the image.
 * - From a manifest (writeRofsImageFromManifest, what `osvb build` and `osvb rofs` use), the
 *   layout file also keeps what building the tree read (treeReads.ts). When the manifest and
 *   options are the same and every read agrees, the tree is not built at all: the sources are
 *   stat'ed against the layout file and changed data is rewritten where it is (updateSameTree).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { OsvbError } from '../../errors/index.js';
import { tempNameFor } from '../../fsutil/index.js';
import { digestFile, initHashing } from '../../hash/index.js';
import { stripIdentity } from '../strip.js';
import { blocksFor, ROFS_BLOCK, ROFS_INODE_BYTES } from './format.js';
import { getHasher, hex, readAtLeast, removeQuietly, type Hasher } from './io.js';
import { layoutRofs, orderedFiles, placeRofs, planRofs, type RofsLayout, type RofsLayoutFile, type RofsPlan } from './layout.js';
import {
  defaultLayoutPath,
  fileTable,
  imageRecord,
  loadLayoutFile,
  metadataDigest,
  signatureText,
  trustable,
  writeLayoutFile,
  type LayoutFileTable,
  type TrustClock,
  type TrustedLayoutFile,
} from './layoutFile.js';
import { nativeCopier, startNativeCopy, type NativeCopyFailure } from './nativeCopy.js';
import { isRegular, sourceSignature, statPaths, type PathStat, type PathStatResult, type RofsSourceSignature } from './statBatch.js';
import { copyWithReadAhead, ReadAheadFailure } from './readAhead.js';
import { buildRofsTree, type RofsDir, type RofsFile, type RofsTree, type RofsTreeOptions } from './tree.js';
import { BATCHED_READS, FEW_READS, firstChangedRead, RACY_MS, TreeReadRecorder, type TreeReads } from './treeReads.js';

export { defaultLayoutPath };

export interface RofsWriteOptions {
  /** Keep a layout sidecar and update an existing image in place when it can. */
  incremental: boolean;
  /** Sidecar path (default `<outPath>.osvb-layout.json`). */
  layoutPath?: string;
  /**
   * How a full write copies file data: 'native', the native copier (nativeCopy.ts;
   * 'native-plain-io' without copy_file_range); 'threads', JavaScript reader threads
   * (readAhead.ts); 'plain', this thread. Default: native when it is installed, else threads for
   * images of at least READ_AHEAD_MIN_FILES files, else plain. A native copy that meets a file
   * whose size it had to find itself and which then did not have it (a file in /proc, a file
   * being written) is redone by the JavaScript copier, which takes walked files as they read.
   */
  copier?: RofsCopier;
}

export type RofsCopier = 'native' | 'native-plain-io' | 'threads' | 'plain';

export interface RofsWriteStats {
  /** Bytes written to the image (data, structure area, superblock). */
  bytesWritten: number;
  /** Regular files whose data was written. */
  filesWritten: number;
  /** Regular files whose data was already in place and was left alone. */
  filesReused: number;
  /** 'full': a new image was written and renamed into place; 'in-place': the old image was updated. */
  mode: 'full' | 'in-place';
  /**
   * In-place updates: the byte ranges `[start, end)` written (sorted, merged), so a copy of the
   * image elsewhere (the ROFS partition of usr.img) can be brought up to date by them alone.
   * Bytes past the old size that no range covers read as zeros. Undefined for full writes.
   */
  changed?: Array<[number, number]>;
  /** Why an incremental write could not update in place (undefined when it did, or was not asked to). */
  fullReason?: string;
  /** How a full write copied file data (see RofsWriteOptions.copier); undefined for in-place updates. */
  copier?: RofsCopier;
  /**
   * Where a full write's time went, in ms. Native copier: `sizes` until every walked file's size
   * was known (the layout is planned meanwhile), `layout` placing the files once they were,
   * `data` the whole copy (stats included; the layout and the structure area are written
   * meanwhile). JavaScript copiers: `layout` after `data`.
   */
  phaseMs?: { sizes?: number; layout: number; data: number };
  /**
   * Writes from a manifest (writeRofsImageFromManifest), incremental: whether the tree was known
   * to be unchanged from its recorded reads (and was not built), and if not, why.
   */
  treeReused?: boolean;
  treeReason?: string;
  /** Writes from a manifest: ms spent building the tree, or checking its reads when it was reused. */
  treeMs?: number;
  imageSize: number;
  structureFirstBlock: number;
  structureBlocks: number;
  dentries: number;
  symlinks: number;
  inodes: number;
  files: number;
  directories: number;
}

/** 256 KiB: few syscalls, bounded memory, and the buffer stays in cache between read and write. */
const BUFFER_BYTES = 256 << 10;
/**
 * Read-ahead pays off when per-file syscalls dominate (many small files: 21.5k files of 10 kB
 * write 1.4x faster); with fewer, larger files the threads only compete for the two cores and
 * the copy is bandwidth-bound (2.5k files of 86 kB: 1.3x slower). Measured, see tools/bench.
 */
const READ_AHEAD_MIN_FILES = 4000;

/** A file with its guest path (for messages), and with its size when known. */
interface PathedFile {
  node: RofsFile;
  path: string;
}
interface SizedFile extends PathedFile {
  size: number;
}

function inputError(f: PathedFile, message: string, cause?: unknown): OsvbError {
  const node = f.node;
  return new OsvbError('OSVB_IMAGE_INPUT', `host file "${node.host ?? node.source}" for guest path "${f.path}" ${message}`, {
    ...(node.origin ? { location: { file: node.origin.file, line: node.origin.line } } : {}),
    ...(cause === undefined ? {} : { cause }),
  });
}

function changedError(f: SizedFile, got: string): OsvbError {
  const node = f.node;
  return new OsvbError('OSVB_IO', `host file "${node.host ?? node.source}" (guest "${f.path}") changed while the image was written: expected ${f.size} bytes, ${got}`, {
    ...(node.origin ? { location: { file: node.origin.file, line: node.origin.line } } : {}),
    hint: 'run the image step again once the build that writes it has finished',
  });
}

function ioError(what: string, e: unknown): OsvbError {
  const err = (e instanceof ImageWriteFailure ? e.cause : e) as NodeJS.ErrnoException;
  return new OsvbError('OSVB_IO', `${what}: ${err.code ?? ''} ${err.message ?? String(e)}`.replace(/\s+/g, ' '), { cause: e });
}

/** Why a source could not be opened, in the words the errors use. */
function unopenable(code: string | undefined, fallback: string): string {
  return code === 'ENOENT' || code === 'ENOTDIR' ? 'does not exist' : `cannot be read (${code ?? fallback})`;
}

function openSource(f: PathedFile): number {
  try {
    return fs.openSync(f.node.source, 'r');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw inputError(f, unopenable(code, String(e)), e);
  }
}

/** A write to the image failed (the cause is the fs error); writeFull and the in-place update name the image. */
class ImageWriteFailure extends Error {
  constructor(override readonly cause: unknown) {
    super((cause as Error)?.message ?? String(cause));
  }
}

/** A buffered positional writer over an open image fd. */
/** Byte ranges written by an in-place update, merged when they touch. */
class ChangedRanges {
  private readonly ranges: Array<[number, number]> = [];

  add(start: number, end: number): void {
    if (end > start) this.ranges.push([start, end]);
  }

  list(): Array<[number, number]> {
    const sorted = this.ranges.slice().sort((a, b) => a[0] - b[0]);
    const out: Array<[number, number]> = [];
    for (const [s, e] of sorted) {
      const last = out[out.length - 1];
      if (last && s <= last[1]) last[1] = Math.max(last[1], e);
      else out.push([s, e]);
    }
    return out;
  }
}

class ImageWriter {
  private readonly buf: Buffer;
  private len = 0;
  private start: number;
  bytesWritten = 0;
  private probeBuf = Buffer.allocUnsafe(1);

  constructor(
    private readonly fd: number,
    at: number,
    private readonly hasher: Hasher | undefined,
    /** In-place updates: every range flushed is added here. */
    private readonly ranges?: ChangedRanges,
  ) {
    this.buf = Buffer.allocUnsafe(BUFFER_BYTES);
    this.start = at;
  }

  get position(): number {
    return this.start + this.len;
  }

  private room(): number {
    return this.buf.length - this.len;
  }

  seek(pos: number): void {
    if (pos === this.position) return;
    this.flush();
    this.start = pos;
  }

  flush(): void {
    let o = 0;
    try {
      while (o < this.len) o += fs.writeSync(this.fd, this.buf, o, this.len - o, this.start + o);
    } catch (e) {
      // Marked, so that copyFile does not take it for a source that cannot be read; the caller
      // names the image.
      throw new ImageWriteFailure(e);
    }
    this.bytesWritten += this.len;
    if (this.len > 0) this.ranges?.add(this.start, this.start + this.len);
    this.start += this.len;
    this.len = 0;
  }

  append(data: Uint8Array): void {
    let o = 0;
    while (o < data.length) {
      if (this.room() === 0) this.flush();
      const n = Math.min(this.room(), data.length - o);
      this.buf.set(data.subarray(o, o + n), this.len);
      this.len += n;
      o += n;
    }
  }

  zeros(count: number): void {
    let left = count;
    while (left > 0) {
      if (this.room() === 0) this.flush();
      const n = Math.min(this.room(), left);
      this.buf.fill(0, this.len, this.len + n);
      this.len += n;
      left -= n;
    }
  }

  /**
   * Copy a file of unknown size (a regular file found by a walk) to the current position: read
   * until a short read (the end of a regular file), then pad. Returns its size and digest.
   */
  copyUnknown(f: PathedFile): { size: number; digest: string | undefined } {
    const fd = openSource(f);
    try {
      let at = 0;
      let digest: string | undefined;
      let state: ReturnType<Hasher['create64']> | undefined;
      for (;;) {
        if (this.room() === 0) this.flush();
        const ask = this.room();
        const off = this.len;
        const n = fs.readSync(fd, this.buf, off, ask, at);
        if (n === 0) break;
        this.len += n;
        if (this.hasher) {
          if (at === 0 && n < ask) digest = hex(this.hasher.h64Raw(this.buf.subarray(off, off + n)));
          else (state ??= this.hasher.create64()).update(this.buf.subarray(off, off + n));
        }
        at += n;
        if (n < ask) break;
      }
      if (this.hasher && digest === undefined) digest = hex((state ?? this.hasher.create64()).digest());
      this.zeros(blocksFor(at) * ROFS_BLOCK - at);
      return { size: at, digest };
    } catch (e) {
      if (e instanceof OsvbError || e instanceof ImageWriteFailure) throw e;
      throw inputError(f, `could not be read: ${(e as Error).message}`, e);
    } finally {
      fs.closeSync(fd);
    }
  }

  /** Copy one file's content plus its zero padding to the current position; returns its digest when hashing. */
  copyFile(f: SizedFile): string | undefined {
    const size = f.size;
    const padded = blocksFor(size) * ROFS_BLOCK;
    if (size === 0) return this.hasher ? hex(this.hasher.h64Raw(new Uint8Array(0))) : undefined;
    const fd = openSource(f);
    try {
      if (padded + 1 <= this.buf.length) {
        if (this.room() < padded + 1) this.flush();
        const n = readAtLeast(fd, this.buf, this.len, size, 1, 0);
        if (n !== size) throw changedError(f, n < size ? `it has ${n}` : 'it has more');
        this.buf.fill(0, this.len + size, this.len + padded);
        const digest = this.hasher ? hex(this.hasher.h64Raw(this.buf.subarray(this.len, this.len + size))) : undefined;
        this.len += padded;
        return digest;
      }
      const state = this.hasher?.create64();
      let at = 0;
      while (at < size) {
        if (this.room() === 0) this.flush();
        const want = Math.min(size - at, this.room());
        const last = at + want === size;
        const probe: 0 | 1 = last && this.room() > want ? 1 : 0;
        const n = readAtLeast(fd, this.buf, this.len, want, probe, at);
        if (n < want) throw changedError(f, `it has ${at + n}`);
        if (n > want) throw changedError(f, 'it has more');
        state?.update(this.buf.subarray(this.len, this.len + want));
        this.len += want;
        at += want;
        if (last && probe === 0 && fs.readSync(fd, this.probeBuf, 0, 1, size) !== 0) throw changedError(f, 'it has more');
      }
      this.zeros(padded - size);
      return state ? hex(state.digest()) : undefined;
    } catch (e) {
      if (e instanceof OsvbError || e instanceof ImageWriteFailure) throw e;
      throw inputError(f, `could not be read: ${(e as Error).message}`, e);
    } finally {
      fs.closeSync(fd);
    }
  }
}

/** Content digest of a source file (reading it through `scratch`), checking its size. */
function digestSource(f: RofsLayoutFile, hasher: Hasher, scratch: Buffer): string {
  if (f.size === 0) return hex(hasher.h64Raw(new Uint8Array(0)));
  const fd = openSource(f);
  try {
    if (f.size + 1 <= scratch.length) {
      const n = readAtLeast(fd, scratch, 0, f.size, 1, 0);
      if (n !== f.size) throw changedError(f, n < f.size ? `it has ${n}` : 'it has more');
      return hex(hasher.h64Raw(scratch.subarray(0, f.size)));
    }
    const state = hasher.create64();
    let at = 0;
    while (at < f.size) {
      const want = Math.min(f.size - at, scratch.length);
      const n = readAtLeast(fd, scratch, 0, want, 0, at);
      if (n < want) throw changedError(f, `it has ${at + n}`);
      state.update(scratch.subarray(0, want));
      at += want;
    }
    if (fs.readSync(fd, scratch, 0, 1, f.size) !== 0) throw changedError(f, 'it has more');
    return hex(state.digest());
  } finally {
    fs.closeSync(fd);
  }
}

// ---------------------------------------------------------------------------------------------
// Writers

function statsOf(layout: RofsLayout, mode: 'full' | 'in-place', bytesWritten: number, filesWritten: number, filesReused: number): RofsWriteStats {
  return {
    bytesWritten,
    filesWritten,
    filesReused,
    mode,
    imageSize: layout.imageSize,
    structureFirstBlock: layout.structureFirstBlock,
    structureBlocks: layout.structureBlocks,
    dentries: layout.dentries,
    symlinks: layout.symlinks,
    inodes: layout.inodes,
    files: layout.files.length,
    directories: layout.directories,
  };
}

/** Stats of an in-place update that made no layout: the counts are the layout file's. */
function recordStats(old: TrustedLayoutFile, bytesWritten: number, filesWritten: number, filesReused: number): RofsWriteStats {
  const img = old.image;
  return {
    bytesWritten,
    filesWritten,
    filesReused,
    mode: 'in-place',
    imageSize: img.size,
    structureFirstBlock: img.structureBlock,
    structureBlocks: blocksFor(img.structureBytes),
    dentries: img.dentries,
    symlinks: img.symlinks,
    inodes: img.inodes,
    files: old.files.path.length,
    directories: img.directories,
  };
}

function writeTail(w: ImageWriter, layout: RofsLayout): void {
  w.seek(layout.structureFirstBlock * ROFS_BLOCK);
  w.append(layout.structure);
  w.zeros(layout.imageSize - layout.structureFirstBlock * ROFS_BLOCK - layout.structure.length);
}

function chooseCopier(files: readonly PathedFile[], option: RofsCopier | undefined): RofsCopier {
  if (option !== undefined) return option;
  return nativeCopier() ? 'native' : javaScriptCopier(files);
}

/** The JavaScript copier for these files (also where a native copy hands over). */
function javaScriptCopier(files: readonly PathedFile[]): 'threads' | 'plain' {
  return files.length >= READ_AHEAD_MIN_FILES ? 'threads' : 'plain';
}

/** Copy every file's data (block 1 on) through the read-ahead thread; sizes learnt are recorded in the tree. */
function readAheadInto(files: readonly PathedFile[], fd: number, hasher: Hasher | undefined): { bytesWritten: number; digests: string[] | undefined } {
  let r;
  try {
    r = copyWithReadAhead(
      files.map((f) => ({ source: f.node.source, size: f.node.size })),
      fd,
      ROFS_BLOCK,
      hasher,
      fs.writeSync,
    );
  } catch (e) {
    if (!(e instanceof ReadAheadFailure)) throw e;
    const f = files[e.index] as PathedFile;
    const size = f.node.size ?? 0;
    if (e.kind === 'open') throw inputError(f, unopenable(e.code, e.detail), e);
    if (e.kind === 'more') throw changedError({ ...f, size }, 'it has more');
    if (e.kind === 'short') throw changedError({ ...f, size }, `it has ${e.got}`);
    throw inputError(f, `could not be read: ${e.detail}`, e);
  }
  files.forEach((f, i) => {
    if (f.node.size === undefined) f.node.size = r.sizes[i] as number;
  });
  return { bytesWritten: r.bytesWritten, digests: r.digests };
}

/** An ImageWriter placed after data a copier wrote (block 1 on). */
function after(fd: number, hasher: Hasher | undefined, r: { bytesWritten: number; digests: string[] | undefined }): { writer: ImageWriter; digests: string[] } {
  const writer = new ImageWriter(fd, ROFS_BLOCK + r.bytesWritten, hasher);
  writer.bytesWritten = r.bytesWritten;
  return { writer, digests: r.digests ?? [] };
}

/** Copy every file's data, in layout order from block 1, with `copier`; returns the writer positioned after it. */
function copyData(files: readonly PathedFile[], fd: number, hasher: Hasher | undefined, copier: 'threads' | 'plain'): { writer: ImageWriter; digests: string[] } {
  if (copier === 'threads' && files.length > 0) return after(fd, hasher, readAheadInto(files, fd, hasher));
  const writer = new ImageWriter(fd, ROFS_BLOCK, hasher);
  const digests: string[] = [];
  for (const f of files) {
    const size = f.node.size;
    if (size === undefined) {
      const r = writer.copyUnknown(f);
      f.node.size = r.size;
      if (r.digest !== undefined) digests.push(r.digest);
    } else {
      const d = writer.copyFile({ node: f.node, path: f.path, size });
      if (d !== undefined) digests.push(d);
    }
  }
  return { writer, digests };
}

/** The error for a native copy's failure on file `f` (a write failure is left for the caller to name the image). */
function nativeFailure(f: PathedFile, { kind, code, got }: NativeCopyFailure): Error {
  const size = f.node.size ?? 0;
  if (kind === 'open') return inputError(f, unopenable(code, 'open failed'));
  if (kind === 'more') return changedError({ ...f, size }, 'it has more');
  if (kind === 'short') return changedError({ ...f, size }, `it has ${got}`);
  if (kind === 'write') return Object.assign(new Error(code ?? 'write failed'), { code });
  return inputError(f, `could not be read: ${code ?? 'read failed'}`);
}

/**
 * A full write's data, structure and block 0 with the native copier: sizes first (stat where
 * unknown), then the copy runs on native threads while this thread lays the image out and writes
 * the structure area and block 0 (disjoint ranges). Null: a file whose size had to be found
 * turned out not to have it (or not to be a regular file); the caller truncates the image and
 * lets the JavaScript copier take the files as they read.
 */
function writeNative(
  tree: RofsTree,
  known: RofsLayout | undefined,
  files: readonly PathedFile[],
  fd: number,
  hasher: Hasher | undefined,
  plainIo: boolean,
): FullWrite | null {
  const t0 = performance.now();
  const binding = nativeCopier();
  if (!binding) throw new OsvbError('OSVB_INTERNAL', 'the native copier was asked for, but @osv-build/native is not built here');
  const unknown = files.map((f) => f.node.size === undefined);
  const failed = (failure: NativeCopyFailure): null => {
    const { index, kind } = failure;
    if (unknown[index] && (kind === 'more' || kind === 'short' || kind === 'not-file')) return null;
    throw nativeFailure(files[index] as PathedFile, failure);
  };
  const restoreSizes = (): void => files.forEach((f, i) => unknown[i] && (f.node.size = undefined));
  const copy = startNativeCopy(binding, { sources: files.map((f) => f.node.source), sizes: files.map((f) => f.node.size), hash: hasher !== undefined, fd, start: ROFS_BLOCK, plainIo });
  if (!copy) return null;
  let layout: RofsLayout;
  let tail: ImageWriter;
  let sizesKnown = t0;
  let placed = t0;
  try {
    // Everything of the layout that does not need sizes, while the native threads stat.
    const plan = known ? undefined : planRofs(tree);
    const sized = copy.sizes();
    sizesKnown = performance.now();
    if (!sized.ok) {
      copy.cancel();
      return failed(sized.failure);
    }
    files.forEach((f, i) => {
      if (unknown[i]) f.node.size = sized.sizes[i] as number;
    });
    layout = known ?? placeRofs(plan as RofsPlan);
    placed = performance.now();
    if (ROFS_BLOCK + sized.bytes !== layout.structureFirstBlock * ROFS_BLOCK) {
      throw new OsvbError('OSVB_INTERNAL', `ROFS data ends at byte ${ROFS_BLOCK + sized.bytes}, but the layout puts the structure at block ${layout.structureFirstBlock}`);
    }
    tail = new ImageWriter(fd, 0, hasher);
    writeTail(tail, layout);
    tail.seek(0);
    tail.append(layout.superblock);
    tail.flush();
  } catch (e) {
    copy.cancel();
    restoreSizes();
    throw e;
  }
  const r = copy.finish();
  if (!r.ok) {
    restoreSizes();
    return failed(r.failure);
  }
  const digests = r.digests ? Array.from(r.digests, (d) => hex(d)) : [];
  const phaseMs = { sizes: sizesKnown - t0, layout: placed - sizesKnown, data: performance.now() - t0 };
  const dataBytes = (layout.structureFirstBlock - 1) * ROFS_BLOCK;
  return { layout, bytes: dataBytes + tail.bytesWritten, digests, copier: plainIo ? 'native-plain-io' : 'native', phaseMs };
}

/** A full write's data, structure and block 0 with a JavaScript copier; block 0 last, when the layout is known. */
function writeJs(tree: RofsTree, known: RofsLayout | undefined, files: readonly PathedFile[], fd: number, hasher: Hasher | undefined, copier: 'threads' | 'plain'): FullWrite {
  const t0 = performance.now();
  const { writer: w, digests } = copyData(files, fd, hasher, copier);
  const t1 = performance.now();
  const layout = known ?? layoutRofs(tree);
  if (w.position !== layout.structureFirstBlock * ROFS_BLOCK) {
    throw new OsvbError('OSVB_INTERNAL', `ROFS data ends at byte ${w.position}, but the layout puts the structure at block ${layout.structureFirstBlock}`);
  }
  writeTail(w, layout);
  w.seek(0);
  w.append(layout.superblock);
  w.flush();
  return { layout, bytes: w.bytesWritten, digests, copier, phaseMs: { layout: performance.now() - t1, data: t1 - t0 } };
}

interface FullWrite {
  layout: RofsLayout;
  bytes: number;
  digests: string[];
  copier: RofsCopier;
  phaseMs: NonNullable<RofsWriteStats['phaseMs']>;
}

/**
 * A whole new image in a temp file, renamed over `outPath`: superblock placeholder, file data in
 * layout order (sizes of walked files learned as they are read), structure area, then block 0.
 * `layout` may be given when all sizes are already known.
 */
function writeFull(
  tree: RofsTree,
  known: RofsLayout | undefined,
  outPath: string,
  hasher: Hasher | undefined,
  beforeRename: () => void,
  copierOption: RofsCopier | undefined,
  clock?: TrustClock,
): FullWrite {
  // The file order alone (orderedFiles, a quick pass) lets the native copy start; the full plan
  // (planRofs, names checked, dentries built) is made while its threads stat.
  const files: PathedFile[] = known ? known.files : orderedFiles(tree);
  const tmp = tempNameFor(outPath);
  let fd: number | undefined;
  try {
    try {
      fd = fs.openSync(tmp, 'w');
    } catch (e) {
      throw ioError(`cannot create ${tmp}`, e);
    }
    if (clock) {
      const st = fs.fstatSync(fd, { bigint: true });
      clock.dev = Number(st.dev);
      clock.fsNow = Number(st.ctimeMs); // whole milliseconds, rounded down
    }
    const copier = chooseCopier(files, copierOption);
    let written: FullWrite | null = null;
    if (copier === 'native' || copier === 'native-plain-io') {
      written = writeNative(tree, known, files, fd, hasher, copier === 'native-plain-io');
      if (!written) fs.ftruncateSync(fd, 0); // handed over to the JavaScript copier
    }
    written ??= writeJs(tree, known, files, fd, hasher, copier === 'threads' || copier === 'plain' ? copier : javaScriptCopier(files));
    fs.closeSync(fd);
    fd = undefined;
    beforeRename();
    try {
      fs.renameSync(tmp, outPath);
    } catch (e) {
      throw ioError(`cannot rename the new image to ${outPath}`, e);
    }
    return written;
  } catch (e) {
    if (fd !== undefined) fs.closeSync(fd);
    removeQuietly(tmp);
    if (e instanceof OsvbError) throw e;
    throw ioError(`cannot write ${outPath}`, e);
  }
}

/**
 * Stat the files whose size the tree left open (regular files found by walks), for an incremental
 * write: all at once (statPaths), then checked in image order (the first problem is reported).
 * `known`: stats this write made already (after its trust clock was taken), by source.
 */
async function statUnknownSizes(tree: RofsTree, known?: ReadonlyMap<string, RofsSourceSignature>): Promise<void> {
  // Straight over the tree, without building guest paths (only an error needs one).
  const nodes: RofsFile[] = [];
  const visit = (dir: RofsDir, depth: number): void => {
    if (depth > 4096) orderedFiles(tree); // throws its "nested too deep" error
    for (const node of dir.entries.values()) {
      if (node.kind === 'dir') {
        visit(node, depth + 1);
        continue;
      }
      if (node.kind !== 'file' || node.size !== undefined) continue;
      const st = known?.get(node.source);
      if (st === undefined) nodes.push(node);
      else {
        node.size = st.size;
        node.signature = sourceSignature(st);
      }
    }
  };
  visit(tree.root, 0);
  if (nodes.length === 0) return;
  const failed = (node: RofsFile, message: string): OsvbError => {
    const f = orderedFiles(tree).find((x) => x.node === node) ?? { node, path: node.source };
    return inputError(f, message);
  };
  const stats = await statPaths(nodes.map((n) => n.source));
  nodes.forEach((node, i) => {
    const st = stats[i] as PathStatResult;
    if (!('mode' in st)) throw failed(node, unopenable(st.code, 'stat failed'));
    if (!isRegular(st)) throw failed(node, 'is not a regular file');
    node.size = st.size;
    node.signature = sourceSignature(st);
  });
}

const EMPTY_DIGEST_INPUT = new Uint8Array(0);

/**
 * Which files can stay where they are: same first block, same size, and the same content (by
 * stat signature when the layout file recorded one, else by digest). Reads sources, writes nothing.
 */
function planInPlace(layout: RofsLayout, old: TrustedLayoutFile, hasher: Hasher): { keep: boolean[]; digests: Array<string | undefined>; bySignature: boolean } {
  const keep: boolean[] = [];
  const digests: Array<string | undefined> = [];
  const t = old.files;
  let scratch: Buffer | undefined;
  let bySignature = true;
  for (const f of layout.files) {
    if (f.size === 0) {
      keep.push(true);
      digests.push(hex(hasher.h64Raw(EMPTY_DIGEST_INPUT)));
      continue;
    }
    const i = old.byBlock.get(f.block);
    if (i === undefined || t.size[i] !== f.size) {
      keep.push(false);
      digests.push(undefined);
      continue;
    }
    const sig = t.signature[i];
    const now = f.node.signature;
    if (sig !== null && now !== undefined && sig === signatureText(now) && t.source[i] === f.node.source) {
      keep.push(true);
      digests.push(t.digest[i]);
      continue;
    }
    bySignature = false;
    scratch ??= Buffer.allocUnsafe(1 << 20);
    const d = digestSource(f, hasher, scratch);
    keep.push(d === t.digest[i]);
    digests.push(d === t.digest[i] ? d : undefined);
  }
  return { keep, digests, bySignature };
}

/** Runs of at least this many neighbouring files to rewrite go to the native copier (fewer are not worth its threads). */
const NATIVE_RUN_MIN = 8;

/**
 * Write the planned changes into the open image: changed file data, then structure area and
 * superblock, then truncate. Long runs of neighbouring files (every file after one that changed
 * size moves) are copied on native threads, as a full write copies.
 */
function writeInPlace(layout: RofsLayout, fd: number, keep: boolean[], digests: Array<string | undefined>, structureChanged: boolean, hasher: Hasher, ranges: ChangedRanges): number {
  const w = new ImageWriter(fd, 0, hasher, ranges);
  const files = layout.files;
  const binding = nativeCopier();
  let nativeBytes = 0;
  for (let i = 0; i < files.length; ) {
    if (keep[i]) {
      i++;
      continue;
    }
    let end = i + 1;
    while (end < files.length && !keep[end]) end++;
    const run = files.slice(i, end);
    const copy =
      binding && run.length >= NATIVE_RUN_MIN
        ? startNativeCopy(binding, { sources: run.map((f) => f.node.source), sizes: run.map((f) => f.size), hash: true, fd, start: (run[0] as RofsLayoutFile).block * ROFS_BLOCK, inPlace: true })
        : undefined;
    if (copy) {
      const r = copy.finish();
      if (!r.ok) throw nativeFailure(run[r.failure.index] as RofsLayoutFile, r.failure);
      const runStart = (run[0] as RofsLayoutFile).block * ROFS_BLOCK;
      run.forEach((f, k) => {
        digests[i + k] = hex((r.digests as BigUint64Array)[k] as bigint);
        nativeBytes += blocksFor(f.size) * ROFS_BLOCK;
      });
      const last = run[run.length - 1] as RofsLayoutFile;
      ranges.add(runStart, (last.block + blocksFor(last.size)) * ROFS_BLOCK);
    } else {
      for (const [k, f] of run.entries()) {
        w.seek(f.block * ROFS_BLOCK);
        digests[i + k] = w.copyFile(f);
      }
    }
    i = end;
  }
  if (structureChanged) {
    writeTail(w, layout);
    w.seek(0);
    w.append(layout.superblock);
  }
  w.flush();
  fs.ftruncateSync(fd, layout.imageSize);
  return w.bytesWritten + nativeBytes;
}

/**
 * Change the image in place with `change` (which returns the bytes it wrote). The layout file is
 * removed first and written again by the caller only once the image is complete, so a run that
 * dies half-way leaves none (the next run writes the image anew); a failure removes the image.
 * Undefined when the image cannot be opened for writing.
 */
function changeInPlace(outPath: string, layoutPath: string, change: (fd: number) => number): number | undefined {
  let fd: number | undefined;
  try {
    fd = fs.openSync(outPath, 'r+');
  } catch {
    return undefined;
  }
  try {
    fs.rmSync(layoutPath, { force: true });
    const bytes = change(fd);
    fs.closeSync(fd);
    fd = undefined;
    return bytes;
  } catch (e) {
    if (fd !== undefined) {
      try {
        fs.closeSync(fd);
      } catch {
        /* already closed */
      }
    }
    if (!fs.existsSync(layoutPath)) removeQuietly(outPath); // half-updated: never leave it looking like an image
    if (e instanceof OsvbError) throw e;
    throw ioError(`cannot update ${outPath}`, e);
  }
}

/** The memo of a tree build: its reads under the key of what else it was built from. */
type TreeMemo = TreeReads & { key: string };

/**
 * An incremental write of a built tree: in place when the old layout file (`old`, loaded by the
 * caller) still describes the image and some file keeps its place, else a full write.
 * `wallBefore` was taken before any source was read (see TrustClock).
 */
async function writeIncremental(
  tree: RofsTree,
  outPath: string,
  layoutPath: string,
  copierOption: RofsCopier | undefined,
  hasher: Hasher,
  wallBefore: number,
  loadOld: () => TrustedLayoutFile | string,
  memo: TreeMemo | undefined,
  known?: ReadonlyMap<string, RofsSourceSignature>,
): Promise<RofsWriteStats> {
  const clock: TrustClock = { wallBefore };
  await statUnknownSizes(tree, known);
  const layout = layoutRofs(tree);
  const old = loadOld();
  let fullReason: string | undefined = typeof old === 'string' ? old : undefined;
  if (typeof old !== 'string') {
    // Worth updating in place only if some file could stay where it is.
    const candidates = layout.files.some((f) => {
      const i = f.size > 0 ? old.byBlock.get(f.block) : undefined;
      return i !== undefined && old.files.size[i] === f.size;
    });
    if (!candidates) fullReason = 'no file keeps its place in the image';
    else {
      clock.dev = old.dev;
      clock.fsNow = old.mtimeMs;
      const { keep, digests, bySignature } = planInPlace(layout, old, hasher);
      const image = imageRecord(layout, hasher);
      const structureChanged = old.image.structureBlock !== layout.structureFirstBlock || old.image.size !== layout.imageSize || old.image.structureDigest !== image.structureDigest;
      const toWrite = keep.filter((k) => !k).length;
      const kept = layout.files.filter((f, i) => keep[i] && f.size > 0).length;
      if (toWrite === 0 && !structureChanged) {
        // Nothing to do: the image is left alone (its mtime too); the layout file only needs
        // rewriting to record signatures it did not have (or that changed with equal content),
        // or the tree's reads.
        if (!bySignature || memo) writeLayoutFile(outPath, layoutPath, image, fileTable(layout, digests as string[], clock), memo);
        return { ...statsOf(layout, 'in-place', 0, 0, kept), changed: [] };
      }
      const ranges = new ChangedRanges();
      const bytes = changeInPlace(outPath, layoutPath, (fd) => writeInPlace(layout, fd, keep, digests, structureChanged, hasher, ranges));
      if (bytes !== undefined) {
        writeLayoutFile(outPath, layoutPath, image, fileTable(layout, digests as string[], clock), memo);
        return { ...statsOf(layout, 'in-place', bytes, toWrite, kept), changed: ranges.list() };
      }
      fullReason = 'the image cannot be opened for update';
    }
  }
  const fullClock: TrustClock = { wallBefore };
  const { bytes, digests, copier, phaseMs } = writeFull(tree, layout, outPath, hasher, () => removeQuietly(layoutPath), copierOption, fullClock);
  writeLayoutFile(outPath, layoutPath, imageRecord(layout, hasher), fileTable(layout, digests, fullClock), memo);
  const stats: RofsWriteStats = { ...statsOf(layout, 'full', bytes, layout.files.filter((f) => f.size > 0).length, 0), copier, phaseMs };
  if (fullReason !== undefined) stats.fullReason = fullReason;
  return stats;
}

/**
 * Write `tree` as a ROFS image at `outPath` (see the module comment for the incremental mode).
 * Throws OsvbError: OSVB_IMAGE_INPUT for a host file that cannot be read or a tree that cannot
 * be serialised, OSVB_IO for output failures or sources changing during the write.
 */
export async function writeRofsImage(tree: RofsTree, outPath: string, options: RofsWriteOptions): Promise<RofsWriteStats> {
  const layoutPath = options.layoutPath ?? defaultLayoutPath(outPath);
  if (!options.incremental) {
    const { layout, bytes, copier, phaseMs } = writeFull(tree, undefined, outPath, undefined, () => removeQuietly(layoutPath), options.copier);
    return { ...statsOf(layout, 'full', bytes, layout.files.filter((f) => f.size > 0).length, 0), copier, phaseMs };
  }
  const wallBefore = Date.now() - RACY_MS;
  const hasher = await getHasher();
  return writeIncremental(tree, outPath, layoutPath, options.copier, hasher, wallBefore, () => loadLayoutFile(outPath, layoutPath, hasher), undefined);
}

// ---------------------------------------------------------------------------------------------
// From a manifest: the tree is built only when its reads say it may have changed

/** Bump when what a tree is built from, or how, changes (old memos must not match). */
const TREE_KEY_VERSION = 1;

function treeKey(text: string, opts: RofsTreeOptions, hasher: Hasher): string {
  const defines = Object.entries(opts.defines ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const strip = opts.strip ? [opts.strip.program, path.resolve(opts.strip.cacheDir), opts.strip.reuseExisting ?? false] : false;
  return hasher.h64ToString(JSON.stringify([TREE_KEY_VERSION, text, path.resolve(opts.cwd), defines, opts.walkOrder ?? 'sorted', strip]));
}

/** What the same-tree check found with its stats made up front (see statForCheck). */
interface CheckStats {
  /** Every source's signature, or why one is not a regular file any more. */
  files: PathStat[] | string;
  /** The stats of the batched reads (`D`, `L`, `S`), by read key. */
  reads: Map<string, PathStatResult>;
}

/**
 * What the same-tree check stats, all in one batch (statPaths): every source of the file
 * table, the directories the tree's reads list, and the paths they stat or lstat.
 */
async function statForCheck(sources: readonly string[], reads: readonly string[]): Promise<CheckStats> {
  const followed = reads.filter((r) => r.startsWith('D:') || r.startsWith('S:'));
  const unfollowed = reads.filter((r) => r.startsWith('L:'));
  const [all, links] = await Promise.all([statPaths([...sources, ...followed.map((r) => r.slice(2))]), statPaths(unfollowed.map((r) => r.slice(2)), false)]);
  const byRead = new Map<string, PathStatResult>();
  followed.forEach((r, k) => byRead.set(r, all[sources.length + k] as PathStatResult));
  unfollowed.forEach((r, k) => byRead.set(r, links[k] as PathStatResult));
  for (let i = 0; i < sources.length; i++) {
    const st = all[i] as PathStatResult;
    if (!('mode' in st)) return { files: `${sources[i]} ${unopenable(st.code, 'stat failed')}`, reads: byRead };
    if (!isRegular(st)) return { files: `${sources[i]} is not a regular file`, reads: byRead };
  }
  return { files: all.slice(0, sources.length) as PathStat[], reads: byRead };
}

/** Row `i` of a file table as a layout file of `size` bytes (for the copy and its messages). */
function tableFile(t: LayoutFileTable, i: number, size: number): RofsLayoutFile {
  return { node: { kind: 'file', source: t.source[i] as string, size }, path: t.path[i] as string, inode: t.inode[i] as number, block: t.block[i] as number, size };
}

/** Byte offset of the size field in a ROFS inode (mode, number, data offset, then size: u64 each). */
const INODE_SIZE_AT = 24;

/**
 * The in-place update of an image whose tree is known to be the same (every read agreed): no
 * tree, no layout. Every source is stat'ed against the file table; a file with new content is
 * rewritten where it is, and when its size changed within the blocks it has, its inode's size
 * is patched in the structure area. A file that needs more or fewer blocks moves everything
 * after it: then this returns why, and the caller builds the tree and lays the image out anew.
 */
function updateSameTree(
  old: TrustedLayoutFile,
  memo: TreeMemo,
  sigs: readonly RofsSourceSignature[],
  outPath: string,
  layoutPath: string,
  hasher: Hasher,
  clock: TrustClock,
): RofsWriteStats | string {
  const t = old.files;
  const inodeTable = old.structure.length - old.image.inodes * ROFS_INODE_BYTES;
  const rewrite: number[] = [];
  const digests = t.digest.slice();
  let resigned = false;
  let scratch: Buffer | undefined;
  for (let i = 0; i < t.path.length; i++) {
    const st = sigs[i] as RofsSourceSignature;
    const size = t.size[i] as number;
    if (st.size !== size) {
      if (blocksFor(st.size) !== t.blocks[i]) return `${t.path[i]} now needs ${blocksFor(st.size)} blocks instead of ${t.blocks[i]}`;
      // The inode must be the one the table says (a regular file at this block with the old size).
      const at = inodeTable + ((t.inode[i] as number) - 1) * ROFS_INODE_BYTES;
      if (old.structure.readBigUInt64LE(at + 16) !== BigInt(t.block[i] as number) || old.structure.readBigUInt64LE(at + INODE_SIZE_AT) !== BigInt(size)) {
        return 'the layout file does not match the image';
      }
      rewrite.push(i);
      continue;
    }
    const sig = t.signature[i];
    if (sig !== null && sig === signatureText(st)) continue;
    resigned = true;
    scratch ??= Buffer.allocUnsafe(1 << 20);
    const d = digestSource(tableFile(t, i, size), hasher, scratch);
    if (d !== digests[i]) rewrite.push(i);
  }
  const rewritten = new Set(rewrite);
  const ranges = new ChangedRanges();
  const statsNow = (bytes: number): RofsWriteStats => ({
    ...recordStats(old, bytes, rewrite.length, t.size.filter((n, i) => n > 0 && !rewritten.has(i)).length),
    treeReused: true,
    changed: ranges.list(),
  });
  const retable = (): void => {
    for (let i = 0; i < t.path.length; i++) {
      const st = sigs[i] as RofsSourceSignature;
      t.size[i] = st.size;
      t.signature[i] = trustable(st, st.size, clock) ? signatureText(st) : null;
    }
    t.digest = digests;
  };
  if (rewrite.length === 0) {
    // Nothing to write: the image keeps its mtime. The layout file is written again only to keep
    // signatures it did not have (or that changed with equal content), or directories' new
    // signatures (listed again, the same entries).
    const relisted = memo.seen.some((v, i) => v !== old.tree?.seen[i]);
    if (resigned || relisted) {
      retable();
      writeLayoutFile(outPath, layoutPath, old.image, t, memo);
    }
    return statsNow(0);
  }
  const structure = Buffer.from(old.structure);
  const patched: number[] = [];
  for (const i of rewrite) {
    const size = (sigs[i] as RofsSourceSignature).size;
    if (size === t.size[i]) continue;
    const at = inodeTable + ((t.inode[i] as number) - 1) * ROFS_INODE_BYTES + INODE_SIZE_AT;
    structure.writeBigUInt64LE(BigInt(size), at);
    patched.push(at);
  }
  const structStart = old.image.structureBlock * ROFS_BLOCK;
  const bytes = changeInPlace(outPath, layoutPath, (fd) => {
    const w = new ImageWriter(fd, 0, hasher, ranges);
    for (const i of rewrite) {
      const size = (sigs[i] as RofsSourceSignature).size;
      w.seek((t.block[i] as number) * ROFS_BLOCK);
      digests[i] = w.copyFile(tableFile(t, i, size)) as string;
    }
    for (const at of patched) {
      w.seek(structStart + at);
      w.append(structure.subarray(at, at + 8));
    }
    w.flush();
    return w.bytesWritten;
  });
  if (bytes === undefined) return 'the image cannot be opened for update';
  retable();
  const image = patched.length > 0 ? { ...old.image, structureDigest: metadataDigest(hasher, old.superblock, structure) } : old.image;
  writeLayoutFile(outPath, layoutPath, image, t, memo);
  return statsNow(bytes);
}

/**
 * Write the image of manifest `text` at `outPath`. Incremental writes keep the reads of the tree
 * build in the layout file (treeReads.ts); when the manifest and options are the same and every
 * read agrees, the tree is not built again: the sources are checked against the layout file
 * and changed data is rewritten in place (updateSameTree). Else as writeRofsImage.
 */
export async function writeRofsImageFromManifest(text: string, treeOptions: RofsTreeOptions, outPath: string, options: RofsWriteOptions): Promise<RofsWriteStats> {
  const t0 = performance.now();
  if (!options.incremental) {
    const tree = await buildRofsTree(text, treeOptions);
    const treeMs = performance.now() - t0;
    return { ...(await writeRofsImage(tree, outPath, options)), treeMs };
  }
  // Before anything is read: the trust rules compare timestamps with it.
  const wallBefore = Date.now() - RACY_MS;
  const hasher = await getHasher();
  const hash = (s: string): string => hasher.h64ToString(s);
  const layoutPath = options.layoutPath ?? defaultLayoutPath(outPath);
  const key = treeKey(text, treeOptions, hasher);
  const old = loadLayoutFile(outPath, layoutPath, hasher);
  let treeReason: string;
  // The sources' stats of a check that then found the tree changed: not made again.
  let checked: Map<string, RofsSourceSignature> | undefined;
  if (typeof old === 'string') treeReason = old;
  else if (!old.tree) treeReason = 'the layout file records no tree';
  else if (old.tree.key !== key) treeReason = 'the manifest or its options changed';
  else {
    const memo = { ...old.tree, seen: old.tree.seen.slice() };
    if (treeOptions.strip) await initHashing(); // digestFile, for stripped files' contents
    const ctx = { walkOrder: treeOptions.walkOrder ?? 'sorted', identity: stripIdentity, hash, wallBefore, digestFile } as const;
    // The few one-by-one reads first (a rebuilt .so ends the check there); then one batch of
    // stats, all made before any directory is listed again (a listing must not be older than
    // the signature that vouches for it).
    let changed = firstChangedRead(memo, ctx, FEW_READS);
    const stats: CheckStats = changed === undefined ? await statForCheck(old.files.source, memo.reads) : { files: '', reads: new Map() };
    changed ??= firstChangedRead(memo, { ...ctx, stats: stats.reads }, BATCHED_READS);
    if (changed !== undefined) treeReason = changed;
    else if (typeof stats.files === 'string') treeReason = stats.files;
    else {
      const treeMs = performance.now() - t0;
      const sigs = stats.files;
      const r = updateSameTree(old, memo, sigs, outPath, layoutPath, hasher, { wallBefore, dev: old.dev, fsNow: old.mtimeMs });
      if (typeof r !== 'string') return { ...r, treeMs };
      treeReason = r;
      checked = new Map(old.files.source.map((src, i) => [src, sigs[i] as RofsSourceSignature]));
    }
  }
  const t1 = performance.now();
  const reads = new TreeReadRecorder(wallBefore, hash);
  const tree = await buildRofsTree(text, { ...treeOptions, reads });
  const treeMs = performance.now() - t1;
  const recorded = reads.result();
  const memo = typeof recorded === 'string' ? undefined : { ...recorded, key };
  const stats = await writeIncremental(tree, outPath, layoutPath, options.copier, hasher, wallBefore, () => old, memo, checked);
  return { ...stats, treeReused: false, treeReason: typeof recorded === 'string' ? `${treeReason}; not recorded: ${recorded}` : treeReason, treeMs };
}
