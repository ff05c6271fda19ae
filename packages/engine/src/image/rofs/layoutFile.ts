/**
 * The layout file (`<image>.osvb-layout.json`) an incremental write keeps next to the image:
 * - the image it describes: size, inode, mtime, where the structure area is, a digest of block 0
 *   plus the structure area, and the counts `osvb rofs` reports;
 * - every regular file in data order (empty ones too): guest path, inode number, first block,
 *   block count, size, content digest (xxh64), source path, and the source's stat signature
 *   (`size:mtimeMs:ctimeMs:ino`) when it was old enough to trust (else null: its content is
 *   compared by digest next time);
 * - optionally, the reads of the tree build (treeReads.ts) under a key of the manifest text and
 *   options, which let the next write skip building the tree when none of them changed.
 */
import * as fs from 'node:fs';
import { OsvbError } from '../../errors/index.js';
import { writeFileAtomic } from '../../fsutil/index.js';
import { blocksFor, ROFS_BLOCK, ROFS_INODE_BYTES } from './format.js';
import { hex, readAtLeast, type Hasher } from './io.js';
import type { RofsLayout, RofsLayoutFile } from './layout.js';
import type { RofsSourceSignature } from './statBatch.js';
import type { TreeReads } from './treeReads.js';

const FORMAT = 'osvb-rofs-layout';
const VERSION = 2;

export interface LayoutFileImage {
  size: number;
  ino: number;
  mtimeNs: string;
  structureBlock: number;
  structureBytes: number;
  structureDigest: string;
  dentries: number;
  symlinks: number;
  inodes: number;
  directories: number;
}

/** The file table: parallel columns, one row a regular file, in data order. */
export interface LayoutFileTable {
  path: string[];
  inode: number[];
  block: number[];
  blocks: number[];
  size: number[];
  digest: string[];
  source: string[];
  signature: Array<string | null>;
}

interface LayoutFileJson {
  format: typeof FORMAT;
  version: typeof VERSION;
  image: LayoutFileImage;
  files: LayoutFileTable;
  tree?: TreeReads & { key: string };
}

/** A layout file that still describes the image on disk. */
export interface TrustedLayoutFile {
  image: LayoutFileImage;
  files: LayoutFileTable;
  tree: (TreeReads & { key: string }) | undefined;
  /** Row of each file with data, by first block. */
  byBlock: Map<number, number>;
  superblock: Buffer;
  structure: Buffer;
  /** The image's device and mtime (whole milliseconds, rounded down): a file-system timestamp from before this run. */
  dev: number;
  mtimeMs: number;
}

export function defaultLayoutPath(outPath: string): string {
  return `${outPath}.osvb-layout.json`;
}

export function signatureText(s: RofsSourceSignature): string {
  return `${s.size}:${s.mtimeMs}:${s.ctimeMs}:${s.ino}`;
}

/** Digest of block 0 and the structure area together: what the layout file says the image's metadata is. */
export function metadataDigest(hasher: Hasher, superblock: Uint8Array, structure: Uint8Array): string {
  return hex(hasher.create64().update(superblock).update(structure).digest());
}

function isInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

function validTree(t: unknown): t is TreeReads & { key: string } {
  const r = t as TreeReads & { key: string };
  return (
    typeof r?.key === 'string' &&
    Array.isArray(r.reads) &&
    Array.isArray(r.seen) &&
    r.reads.length === r.seen.length &&
    r.reads.every((x) => typeof x === 'string') &&
    r.seen.every((x) => typeof x === 'string')
  );
}

/** The layout file at `layoutPath` if it describes the image at `outPath`, else why not. */
export function loadLayoutFile(outPath: string, layoutPath: string, hasher: Hasher): TrustedLayoutFile | string {
  let side: LayoutFileJson;
  try {
    side = JSON.parse(fs.readFileSync(layoutPath, 'utf8')) as LayoutFileJson;
  } catch {
    return fs.existsSync(layoutPath) ? 'the layout file is unreadable' : 'no layout file from an earlier write';
  }
  const img = side?.image;
  const t = side?.files;
  if (side?.format !== FORMAT || side.version !== VERSION || !img || !t) return 'the layout file has another format';
  const counts = [img.size, img.ino, img.structureBlock, img.structureBytes, img.dentries, img.symlinks, img.inodes, img.directories];
  if (!counts.every(isInt) || typeof img.mtimeNs !== 'string' || typeof img.structureDigest !== 'string') return 'the layout file is damaged';
  const columns = [t.path, t.inode, t.block, t.blocks, t.size, t.digest, t.source, t.signature];
  if (!columns.every((c) => Array.isArray(c) && c.length === t.path.length)) return 'the layout file is damaged';
  if (side.tree !== undefined && !validTree(side.tree)) return 'the layout file is damaged';
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
  if (img.structureBlock < 1 || structStart + img.structureBytes > img.size || img.inodes * ROFS_INODE_BYTES > img.structureBytes) return 'the layout file is damaged';
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
  const byBlock = new Map<number, number>();
  for (let i = 0; i < t.path.length; i++) {
    const b = t.block[i];
    const n = t.blocks[i];
    const size = t.size[i];
    const ino = t.inode[i];
    if (!isInt(b) || !isInt(n) || !isInt(size) || !isInt(ino) || ino < 1 || ino > img.inodes || n !== blocksFor(size)) return 'the layout file is damaged';
    if (typeof t.digest[i] !== 'string' || typeof t.source[i] !== 'string' || (t.signature[i] !== null && typeof t.signature[i] !== 'string')) return 'the layout file is damaged';
    if (b < 1 || b + n > img.structureBlock) return 'the layout file is damaged';
    if (size > 0) byBlock.set(b, i);
  }
  return { image: img, files: t, tree: side.tree, byBlock, superblock, structure, dev: Number(st.dev), mtimeMs: Number(st.mtimeMs) };
}

/**
 * When a source's stat signature may be trusted next time. A source is read after this clock was
 * taken; a later edit gets a timestamp at or after it, so a source whose mtime and ctime are
 * strictly before it cannot change without its signature changing. Two clocks: the wall clock
 * minus RACY_MS (any file system, coarse timestamps, some skew), and a timestamp the image's own
 * file system gave before any source was read (the new temp image's ctime for a full write, the
 * old image's mtime for an in-place update), which applies to sources on that same device only
 * (same clock, same timestamp granularity) and needs no margin.
 */
export interface TrustClock {
  wallBefore: number;
  dev?: number;
  fsNow?: number;
}

export function trustable(sig: RofsSourceSignature | undefined, size: number, clock: TrustClock): boolean {
  if (sig === undefined || sig.size !== size) return false;
  if (sig.mtimeMs < clock.wallBefore && sig.ctimeMs < clock.wallBefore) return true;
  return clock.fsNow !== undefined && sig.dev !== undefined && sig.dev === clock.dev && sig.mtimeMs < clock.fsNow && sig.ctimeMs < clock.fsNow;
}

/** The file table of a layout whose files' data has these digests. */
export function fileTable(layout: RofsLayout, digests: readonly string[], clock: TrustClock): LayoutFileTable {
  const t: LayoutFileTable = { path: [], inode: [], block: [], blocks: [], size: [], digest: [], source: [], signature: [] };
  layout.files.forEach((f: RofsLayoutFile, i) => {
    t.path.push(f.path);
    t.inode.push(f.inode);
    t.block.push(f.block);
    t.blocks.push(blocksFor(f.size));
    t.size.push(f.size);
    t.digest.push(digests[i] as string);
    t.source.push(f.node.source);
    const sig = f.node.signature;
    t.signature.push(sig && trustable(sig, f.size, clock) ? signatureText(sig) : null);
  });
  return t;
}

export function imageRecord(layout: RofsLayout, hasher: Hasher): Omit<LayoutFileImage, 'size' | 'ino' | 'mtimeNs'> {
  return {
    structureBlock: layout.structureFirstBlock,
    structureBytes: layout.structure.length,
    structureDigest: metadataDigest(hasher, layout.superblock, layout.structure),
    dentries: layout.dentries,
    symlinks: layout.symlinks,
    inodes: layout.inodes,
    directories: layout.directories,
  };
}

/**
 * Write the layout file for the image now at `outPath` (its size, inode and mtime are taken here).
 * A failure (a full disk) is OSVB_IO naming the layout file; the image is complete, and without a
 * layout file the next incremental write simply writes it whole.
 */
export function writeLayoutFile(
  outPath: string,
  layoutPath: string,
  image: Omit<LayoutFileImage, 'size' | 'ino' | 'mtimeNs'>,
  files: LayoutFileTable,
  tree: (TreeReads & { key: string }) | undefined,
): void {
  try {
    const st = fs.statSync(outPath, { bigint: true });
    const side: LayoutFileJson = {
      format: FORMAT,
      version: VERSION,
      image: { ...image, size: Number(st.size), ino: Number(st.ino), mtimeNs: st.mtimeNs.toString() },
      files,
      ...(tree ? { tree } : {}),
    };
    writeFileAtomic(layoutPath, JSON.stringify(side));
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new OsvbError('OSVB_IO', `cannot write the layout file ${layoutPath}: ${err.code ?? ''} ${err.message ?? String(e)}`.replace(/\s+/g, ' '), {
      cause: e,
      hint: `${outPath} itself was written completely; the next incremental write rewrites it whole`,
    });
  }
}

/** What a layout file says an image was made from, for the "nothing to do" memo. */
export interface LayoutDependencies {
  /** Each regular file's source and its signature (null: too fresh to trust when written). */
  sources: Array<[string, string | null]>;
  /** The tree build's reads (`kind:path`) and what was seen; undefined when none were recorded. */
  tree: TreeReads | undefined;
}

/** The sources and tree reads a layout file records; undefined when it is missing or not one. */
export function readLayoutDependencies(layoutPath: string): LayoutDependencies | undefined {
  let side: LayoutFileJson;
  try {
    side = JSON.parse(fs.readFileSync(layoutPath, 'utf8')) as LayoutFileJson;
  } catch {
    return undefined;
  }
  const t = side?.files;
  if (side?.format !== FORMAT || side.version !== VERSION || !t || !Array.isArray(t.source) || !Array.isArray(t.signature) || t.source.length !== t.signature.length) return undefined;
  if (side.tree !== undefined && !validTree(side.tree)) return undefined;
  return { sources: t.source.map((s, i): [string, string | null] => [s, t.signature[i] ?? null]), tree: side.tree };
}
