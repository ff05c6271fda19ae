/**
 * Writing a ROFS image, byte-identical to gen-rofs-img.py (spec §8.2/§8.3).
 *
 * - Streaming: file contents go through one reused buffer (BUFFER_BYTES), read with positional
 *   reads straight into the output buffer and written with large positional writes; nothing
 *   holds a whole file or the whole image. Each source is checked to still have the size the
 *   tree recorded (a file changing under us is an error, not a silently inconsistent image).
 * - Full writes go to a temp file in the same directory and are renamed into place.
 * - Incremental writes (`incremental: true`) keep a sidecar `<image>.osvb-layout.json` listing
 *   every file's guest path, first block, block count, size and content digest, plus the
 *   image's size/inode/mtime and the digest of its structure area. Next time, when the sidecar
 *   still describes the image on disk, the image is updated in place: a file whose new block
 *   and size match an old file's and whose content digest is the same is not rewritten; every
 *   other file's data is written, then the structure area and the superblock, then the image is
 *   truncated to its new size. The sidecar is deleted before the image is touched and written
 *   only after the image is complete, so a run that dies half-way leaves no sidecar and the
 *   next run writes the image from scratch. A failed in-place update removes the image.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import xxhash from 'xxhash-wasm';
import { OsvbError } from '../../errors/index.js';
import { tempNameFor, writeFileAtomic } from '../../fsutil/index.js';
import { blocksFor, ROFS_BLOCK } from './format.js';
import { layoutRofs, type RofsLayout, type RofsLayoutFile } from './layout.js';
import type { RofsFile, RofsTree } from './tree.js';

export interface RofsWriteOptions {
  /** Keep a layout sidecar and update an existing image in place when it can. */
  incremental: boolean;
  /** Sidecar path (default `<outPath>.osvb-layout.json`). */
  layoutPath?: string;
}

export interface RofsWriteStats {
  /** Bytes written to the image (data, structure area, superblock). */
  bytesWritten: number;
  /** Regular files whose data was written. */
  filesWritten: number;
  /** Regular files whose data was already in place and was left alone. */
  filesReused: number;
  /** 'full': a new image was written and renamed into place; 'in-place': the old image was updated. */
  mode: 'full' | 'in-place';
  /** Why an incremental write could not update in place (undefined when it did, or was not asked to). */
  fullReason?: string;
  imageSize: number;
  structureFirstBlock: number;
  structureBlocks: number;
  dentries: number;
  symlinks: number;
  inodes: number;
  files: number;
  directories: number;
}

/** 8 MiB: large writes, few syscalls, bounded memory. */
const BUFFER_BYTES = 8 << 20;
const SIDECAR_FORMAT = 'osvb-rofs-layout';
const SIDECAR_VERSION = 1;
/** A source modified this recently is not trusted by stat alone next time (same-tick rewrites). */
const RACY_NS = 2_000_000_000n;

type Hasher = Awaited<ReturnType<typeof xxhash>>;
let hasherPromise: Promise<Hasher> | undefined;
function getHasher(): Promise<Hasher> {
  hasherPromise ??= xxhash();
  return hasherPromise;
}

function hex(n: bigint): string {
  return n.toString(16).padStart(16, '0');
}

/** Digest of block 0 and the structure area together: what the sidecar says the image's metadata is. */
function metadataDigest(hasher: Hasher, superblock: Uint8Array, structure: Uint8Array): string {
  return hex(hasher.create64().update(superblock).update(structure).digest());
}

export function defaultLayoutPath(outPath: string): string {
  return `${outPath}.osvb-layout.json`;
}

function inputError(f: RofsLayoutFile, message: string, cause?: unknown): OsvbError {
  const node = f.node;
  return new OsvbError('OSVB_IMAGE_INPUT', `host file "${node.host ?? node.source}" for guest path "${f.path}" ${message}`, {
    ...(node.origin ? { location: { file: node.origin.file, line: node.origin.line } } : {}),
    ...(cause === undefined ? {} : { cause }),
  });
}

function changedError(f: RofsLayoutFile, got: string): OsvbError {
  const node = f.node;
  return new OsvbError('OSVB_IO', `host file "${node.host ?? node.source}" (guest "${f.path}") changed while the image was written: expected ${f.size} bytes, ${got}`, {
    ...(node.origin ? { location: { file: node.origin.file, line: node.origin.line } } : {}),
    hint: 'run the image step again once the build that writes it has finished',
  });
}

function ioError(what: string, e: unknown): OsvbError {
  const err = e as NodeJS.ErrnoException;
  return new OsvbError('OSVB_IO', `${what}: ${err.code ?? ''} ${err.message ?? String(e)}`.replace(/\s+/g, ' '), { cause: e });
}

function openSource(f: RofsLayoutFile): number {
  try {
    return fs.openSync(f.node.source, 'r');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' || code === 'ENOTDIR' ? 'does not exist' : `cannot be read (${code ?? String(e)})`;
    throw inputError(f, why, e);
  }
}

/**
 * Read up to `want + probe` bytes at `pos`, stopping as soon as at least `want` arrived. A regular
 * file returns short only at its end, so asking for one extra byte detects growth without a
 * second read in the common case.
 */
function readAtLeast(fd: number, buf: Buffer, off: number, want: number, probe: 0 | 1, pos: number): number {
  let got = 0;
  const ask = want + probe;
  while (got < want) {
    const n = fs.readSync(fd, buf, off + got, ask - got, pos + got);
    if (n === 0) break;
    got += n;
  }
  return got;
}

/** A buffered positional writer over an open image fd. */
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
    while (o < this.len) o += fs.writeSync(this.fd, this.buf, o, this.len - o, this.start + o);
    this.bytesWritten += this.len;
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

  /** Copy one file's content plus its zero padding to the current position; returns its digest when hashing. */
  copyFile(f: RofsLayoutFile): string | undefined {
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
      if (e instanceof OsvbError) throw e;
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
// Sidecar

interface SidecarFile {
  /** Guest path. */
  p: string;
  /** First block. */
  b: number;
  /** Block count. */
  n: number;
  /** Size in bytes. */
  s: number;
  /** Content digest (xxh64). */
  d: string;
  /** Source path and stat signature `size:mtimeNs:ctimeNs:ino`, when old enough to trust. */
  src?: string;
  sig?: string;
}

interface Sidecar {
  format: typeof SIDECAR_FORMAT;
  version: typeof SIDECAR_VERSION;
  image: { size: number; ino: number; mtimeNs: string; structureBlock: number; structureBytes: number; structureDigest: string };
  files: SidecarFile[];
}

function signatureText(node: RofsFile): string | undefined {
  const s = node.signature;
  return s ? `${s.size}:${s.mtimeNs}:${s.ctimeNs}:${s.ino}` : undefined;
}

function isInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/** The sidecar's file table by first block, if the sidecar still describes the image on disk; else why not. */
interface TrustedSidecar {
  byBlock: Map<number, SidecarFile>;
  image: Sidecar['image'];
}

function loadSidecar(outPath: string, layoutPath: string, hasher: Hasher): TrustedSidecar | string {
  let side: Sidecar;
  try {
    side = JSON.parse(fs.readFileSync(layoutPath, 'utf8')) as Sidecar;
  } catch {
    return fs.existsSync(layoutPath) ? 'the layout file is unreadable' : 'no layout file from an earlier write';
  }
  const img = side?.image;
  if (side?.format !== SIDECAR_FORMAT || side.version !== SIDECAR_VERSION || !img || !Array.isArray(side.files)) return 'the layout file has another format';
  if (!isInt(img.size) || !isInt(img.ino) || typeof img.mtimeNs !== 'string' || !isInt(img.structureBlock) || !isInt(img.structureBytes)) {
    return 'the layout file is damaged';
  }
  let st: fs.BigIntStats;
  try {
    st = fs.statSync(outPath, { bigint: true });
  } catch {
    return 'the image does not exist';
  }
  if (!st.isFile() || Number(st.size) !== img.size || Number(st.ino) !== img.ino || st.mtimeNs.toString() !== img.mtimeNs) {
    return 'the image was changed after the layout file was written';
  }
  const structStart = img.structureBlock * ROFS_BLOCK;
  if (img.structureBlock < 1 || structStart + img.structureBytes > img.size) return 'the layout file is damaged';
  const structure = Buffer.alloc(img.structureBytes);
  const superblock = Buffer.alloc(ROFS_BLOCK);
  try {
    const fd = fs.openSync(outPath, 'r');
    try {
      if (readAtLeast(fd, superblock, 0, ROFS_BLOCK, 0, 0) !== ROFS_BLOCK) return 'the image is shorter than recorded';
      if (readAtLeast(fd, structure, 0, img.structureBytes, 0, structStart) !== img.structureBytes) return 'the image is shorter than recorded';
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    return 'the image cannot be read';
  }
  if (metadataDigest(hasher, superblock, structure) !== img.structureDigest) return 'the image structure does not match the layout file';
  const byBlock = new Map<number, SidecarFile>();
  for (const f of side.files) {
    if (!f || typeof f.p !== 'string' || !isInt(f.b) || !isInt(f.n) || !isInt(f.s) || typeof f.d !== 'string' || f.n !== blocksFor(f.s)) {
      return 'the layout file is damaged';
    }
    if (f.n === 0) continue;
    if (f.b < 1 || f.b + f.n > img.structureBlock) return 'the layout file is damaged';
    byBlock.set(f.b, f);
  }
  return { byBlock, image: img };
}

function writeSidecar(outPath: string, layoutPath: string, layout: RofsLayout, digests: string[], hasher: Hasher): void {
  const st = fs.statSync(outPath, { bigint: true });
  const trustBefore = BigInt(Date.now()) * 1_000_000n - RACY_NS;
  const files: SidecarFile[] = layout.files.map((f, i) => {
    const entry: SidecarFile = { p: f.path, b: f.block, n: blocksFor(f.size), s: f.size, d: digests[i] as string };
    const sig = f.node.signature;
    if (sig && sig.size === f.size && sig.mtimeNs < trustBefore && sig.ctimeNs < trustBefore) {
      entry.src = path.resolve(f.node.source);
      entry.sig = signatureText(f.node) as string;
    }
    return entry;
  });
  const side: Sidecar = {
    format: SIDECAR_FORMAT,
    version: SIDECAR_VERSION,
    image: {
      size: Number(st.size),
      ino: Number(st.ino),
      mtimeNs: st.mtimeNs.toString(),
      structureBlock: layout.structureFirstBlock,
      structureBytes: layout.structure.length,
      structureDigest: metadataDigest(hasher, layout.superblock, layout.structure),
    },
    files,
  };
  writeFileAtomic(layoutPath, JSON.stringify(side));
}

function removeQuietly(p: string): void {
  try {
    fs.rmSync(p, { force: true });
  } catch {
    /* best effort */
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

function writeTail(w: ImageWriter, layout: RofsLayout): void {
  w.seek(layout.structureFirstBlock * ROFS_BLOCK);
  w.append(layout.structure);
  w.zeros(layout.imageSize - layout.structureFirstBlock * ROFS_BLOCK - layout.structure.length);
}

/** A whole new image in a temp file, renamed over `outPath`. Returns bytes written and per-file digests (when hashing). */
function writeFull(layout: RofsLayout, outPath: string, hasher: Hasher | undefined, beforeRename: () => void): { bytes: number; digests: string[] } {
  const tmp = tempNameFor(outPath);
  let fd: number | undefined;
  try {
    try {
      fd = fs.openSync(tmp, 'w');
    } catch (e) {
      throw ioError(`cannot create ${tmp}`, e);
    }
    const w = new ImageWriter(fd, 0, hasher);
    const digests: string[] = [];
    w.append(layout.superblock);
    for (const f of layout.files) {
      const d = w.copyFile(f);
      if (d !== undefined) digests.push(d);
    }
    writeTail(w, layout);
    w.flush();
    fs.closeSync(fd);
    fd = undefined;
    beforeRename();
    try {
      fs.renameSync(tmp, outPath);
    } catch (e) {
      throw ioError(`cannot rename the new image to ${outPath}`, e);
    }
    return { bytes: w.bytesWritten, digests };
  } catch (e) {
    if (fd !== undefined) fs.closeSync(fd);
    removeQuietly(tmp);
    if (e instanceof OsvbError) throw e;
    throw ioError(`cannot write ${outPath}`, e);
  }
}

const EMPTY_DIGEST_INPUT = new Uint8Array(0);

/**
 * Which files can stay where they are: same first block, same size, and the same content (by
 * stat signature when the sidecar recorded one, else by digest). Reads sources, writes nothing.
 */
function planInPlace(layout: RofsLayout, old: TrustedSidecar, hasher: Hasher): { keep: boolean[]; digests: Array<string | undefined> } {
  const keep: boolean[] = [];
  const digests: Array<string | undefined> = [];
  let scratch: Buffer | undefined;
  for (const f of layout.files) {
    if (f.size === 0) {
      keep.push(true);
      digests.push(hex(hasher.h64Raw(EMPTY_DIGEST_INPUT)));
      continue;
    }
    const prev = old.byBlock.get(f.block);
    if (!prev || prev.s !== f.size) {
      keep.push(false);
      digests.push(undefined);
      continue;
    }
    if (prev.sig !== undefined && prev.sig === signatureText(f.node) && prev.src === path.resolve(f.node.source)) {
      keep.push(true);
      digests.push(prev.d);
      continue;
    }
    scratch ??= Buffer.allocUnsafe(1 << 20);
    const d = digestSource(f, hasher, scratch);
    keep.push(d === prev.d);
    digests.push(d === prev.d ? d : undefined);
  }
  return { keep, digests };
}

/** Write the planned changes into the open image: changed file data, then structure area and superblock, then truncate. */
function writeInPlace(layout: RofsLayout, fd: number, keep: boolean[], digests: Array<string | undefined>, structureChanged: boolean, hasher: Hasher): number {
  const w = new ImageWriter(fd, 0, hasher);
  layout.files.forEach((f, i) => {
    if (keep[i]) return;
    w.seek(f.block * ROFS_BLOCK);
    digests[i] = w.copyFile(f);
  });
  if (structureChanged) {
    writeTail(w, layout);
    w.seek(0);
    w.append(layout.superblock);
  }
  w.flush();
  fs.ftruncateSync(fd, layout.imageSize);
  return w.bytesWritten;
}

/**
 * Write `tree` as a ROFS image at `outPath` (see the module comment for the incremental mode).
 * Throws OsvbError: OSVB_IMAGE_INPUT for a host file that cannot be read or a tree that cannot
 * be serialised, OSVB_IO for output failures or sources changing during the write.
 */
export async function writeRofsImage(tree: RofsTree, outPath: string, options: RofsWriteOptions): Promise<RofsWriteStats> {
  const layout = layoutRofs(tree);
  const layoutPath = options.layoutPath ?? defaultLayoutPath(outPath);
  if (!options.incremental) {
    const { bytes } = writeFull(layout, outPath, undefined, () => removeQuietly(layoutPath));
    return statsOf(layout, 'full', bytes, layout.files.filter((f) => f.size > 0).length, 0);
  }

  const hasher = await getHasher();
  const old = loadSidecar(outPath, layoutPath, hasher);
  let fullReason: string | undefined = typeof old === 'string' ? old : undefined;
  if (typeof old !== 'string') {
    // Worth updating in place only if some file could stay where it is.
    const candidates = layout.files.some((f) => f.size > 0 && old.byBlock.get(f.block)?.s === f.size);
    if (!candidates) fullReason = 'no file keeps its place in the image';
    else {
      const { keep, digests } = planInPlace(layout, old, hasher);
      const structureChanged =
        old.image.structureBlock !== layout.structureFirstBlock ||
        old.image.size !== layout.imageSize ||
        old.image.structureDigest !== metadataDigest(hasher, layout.superblock, layout.structure);
      const toWrite = keep.filter((k) => !k).length;
      const kept = layout.files.filter((f, i) => keep[i] && f.size > 0).length;
      if (toWrite === 0 && !structureChanged) {
        // Nothing to do: the image is left alone (its mtime too); refresh the sidecar's signatures.
        writeSidecar(outPath, layoutPath, layout, digests as string[], hasher);
        return statsOf(layout, 'in-place', 0, 0, kept);
      }
      let fd: number | undefined;
      try {
        fd = fs.openSync(outPath, 'r+');
      } catch {
        fullReason = 'the image cannot be opened for update';
      }
      if (fd !== undefined) {
        let bytes: number;
        try {
          // From here on the image is being changed: the old sidecar must not survive a crash.
          fs.rmSync(layoutPath, { force: true });
          bytes = writeInPlace(layout, fd, keep, digests, structureChanged, hasher);
          fs.closeSync(fd);
          fd = undefined;
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
        writeSidecar(outPath, layoutPath, layout, digests as string[], hasher);
        return statsOf(layout, 'in-place', bytes, toWrite, kept);
      }
    }
  }
  const { bytes, digests } = writeFull(layout, outPath, hasher, () => removeQuietly(layoutPath));
  writeSidecar(outPath, layoutPath, layout, digests, hasher);
  const stats = statsOf(layout, 'full', bytes, layout.files.filter((f) => f.size > 0).length, 0);
  if (fullReason !== undefined) stats.fullReason = fullReason;
  return stats;
}
