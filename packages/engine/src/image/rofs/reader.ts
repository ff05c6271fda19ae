/**
 * Reading ROFS images defensively. Everything read from the image is treated as hostile: every
 * count and offset is checked against the image size before it is used, tables are parsed
 * sequentially inside the structure area, loops are bounded by counts that were themselves
 * bounded by the structure size, the directory graph must be a tree (each inode reached exactly
 * once from the root, so no cycles and no exponential sharing), and names must be valid UTF-8
 * without NUL or `/`. Any violation is an OsvbError `OSVB_ROFS_CORRUPT` that says what is wrong
 * and where (table index and byte offset in the image).
 *
 * The checks are at least as strict as OSv's reader (fs/rofs, spec §8.5) and also require what
 * gen-rofs-img always produces (inode i has number i+1, `D = inodes - 1` dentries, each symlink
 * used once, file data between the superblock and the structure area).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { OsvbError } from '../../errors/index.js';
import {
  blocksFor,
  MODE_DIR,
  MODE_LINK,
  MODE_REG,
  ROFS_BLOCK,
  ROFS_DENTRY_HEAD,
  ROFS_INODE_BYTES,
  ROFS_MAGIC,
  ROFS_SYMLINK_HEAD,
  ROFS_VERSION,
} from './format.js';

/** An image in memory, an open file descriptor, or a path. */
export type RofsSource = Uint8Array | number | string;

export type RofsEntryKind = 'dir' | 'file' | 'link';

export interface RofsEntry {
  /** Guest path: `/` for the root, `/etc/hosts` below it. */
  path: string;
  name: string;
  kind: RofsEntryKind;
  inode: number;
  /** File: size in bytes; directory: number of children; link: 0. */
  size: number;
  /** Link target. */
  target?: string;
  /** File: first data block. */
  block?: number;
}

export interface RofsSuperblock {
  structureFirstBlock: number;
  structureBlocks: number;
  dentries: number;
  symlinks: number;
  inodes: number;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });
const MAX_STRUCTURE_BYTES = 1 << 30;

interface ByteSource {
  readonly size: number;
  /** Exactly `len` bytes at `pos` (the caller has checked the range against `size`). */
  read(pos: number, len: number): Buffer;
  readInto(buf: Buffer, pos: number, len: number): void;
  close(): void;
}

function bufferSource(data: Uint8Array): ByteSource {
  const b = Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  return {
    size: b.length,
    read: (pos, len) => b.subarray(pos, pos + len),
    readInto: (buf, pos, len) => {
      b.copy(buf, 0, pos, pos + len);
    },
    close: () => undefined,
  };
}

function fdSource(fd: number, name: string, owned: boolean): ByteSource {
  let size: number;
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile() && !st.isBlockDevice()) throw new OsvbError('OSVB_IMAGE_INPUT', 'not a regular file', { location: { file: name } });
    size = st.size;
  } catch (e) {
    if (owned) fs.closeSync(fd);
    if (e instanceof OsvbError) throw e;
    throw new OsvbError('OSVB_IO', `cannot read the image: ${(e as Error).message}`, { location: { file: name }, cause: e });
  }
  const readInto = (buf: Buffer, pos: number, len: number): void => {
    let got = 0;
    while (got < len) {
      const n = fs.readSync(fd, buf, got, len - got, pos + got);
      if (n === 0) throw corrupt(name, `the image ended at byte ${pos + got} while reading ${len} bytes at ${pos} (was it truncated while being read?)`);
      got += n;
    }
  };
  return {
    size,
    read: (pos, len) => {
      const buf = Buffer.allocUnsafe(len);
      readInto(buf, pos, len);
      return buf;
    },
    readInto,
    close: () => {
      if (owned) fs.closeSync(fd);
    },
  };
}

function corrupt(image: string, message: string): OsvbError {
  return new OsvbError('OSVB_ROFS_CORRUPT', `corrupt ROFS image: ${message}`, { location: { file: image } });
}

function u64(buf: Buffer, off: number): bigint {
  return buf.readBigUInt64LE(off);
}

/** A bigint that must fit `limit` (inclusive) to be used as a number. */
function small(v: bigint, limit: number): number | undefined {
  return v <= BigInt(limit) ? Number(v) : undefined;
}

interface Inode {
  mode: number;
  offset: number;
  count: number;
}

export class RofsImage {
  readonly superblock: RofsSuperblock;
  readonly imageSize: number;
  /** Every entry, root first, in depth-first pre-order (the order gen-rofs-img numbered them). */
  readonly entries: readonly RofsEntry[];
  private readonly children = new Map<number, Map<string, number>>();
  private readonly byInode: RofsEntry[] = [];
  private closed = false;

  private constructor(
    private readonly src: ByteSource,
    readonly name: string,
  ) {
    try {
      const parsed = this.parse();
      this.superblock = parsed.sb;
      this.entries = parsed.entries;
      this.imageSize = src.size;
    } catch (e) {
      src.close();
      throw e;
    }
  }

  /** Parse and check an image. The caller closes it (for an fd or path source) with close(). */
  static open(source: RofsSource, name?: string): RofsImage {
    if (typeof source === 'string') {
      let fd: number;
      try {
        fd = fs.openSync(source, 'r');
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        throw new OsvbError('OSVB_IMAGE_INPUT', code === 'ENOENT' ? 'the image does not exist' : `cannot open the image (${code ?? String(e)})`, {
          location: { file: name ?? source },
          cause: e,
        });
      }
      return new RofsImage(fdSource(fd, name ?? source, true), name ?? source);
    }
    if (typeof source === 'number') return new RofsImage(fdSource(source, name ?? `fd ${source}`, false), name ?? `fd ${source}`);
    return new RofsImage(bufferSource(source), name ?? '<image>');
  }

  close(): void {
    if (!this.closed) this.src.close();
    this.closed = true;
  }

  private fail(message: string): OsvbError {
    return corrupt(this.name, message);
  }

  private parse(): { sb: RofsSuperblock; entries: RofsEntry[] } {
    const size = this.src.size;
    if (size < ROFS_BLOCK) throw this.fail(`the image is ${size} bytes, shorter than the ${ROFS_BLOCK}-byte superblock`);
    const sbBuf = this.src.read(0, 64);
    const magic = u64(sbBuf, 0);
    if (magic !== BigInt(ROFS_MAGIC)) throw this.fail(`bad magic 0x${magic.toString(16)} at byte 0 (expected 0x${ROFS_MAGIC.toString(16)}; is this a ROFS image?)`);
    const version = u64(sbBuf, 8);
    if (version !== BigInt(ROFS_VERSION)) throw this.fail(`unsupported version ${version} at byte 8 (expected ${ROFS_VERSION})`);
    const blockSize = u64(sbBuf, 16);
    if (blockSize !== BigInt(ROFS_BLOCK)) throw this.fail(`block size ${blockSize} at byte 16 (OSv's reader only works with ${ROFS_BLOCK})`);
    const totalBlocks = Math.floor(size / ROFS_BLOCK);
    const S = small(u64(sbBuf, 24), totalBlocks);
    const C = small(u64(sbBuf, 32), totalBlocks);
    if (S === undefined || S < 1) throw this.fail(`structure_info_first_block ${u64(sbBuf, 24)} at byte 24 is outside the image's ${totalBlocks} blocks`);
    if (C === undefined || C < 1) throw this.fail(`structure_info_blocks_count ${u64(sbBuf, 32)} at byte 32 must be between 1 and the image's ${totalBlocks} blocks`);
    if (S + C > totalBlocks) {
      throw this.fail(`the structure area (blocks ${S}..${S + C - 1}) runs past the end of the image (${size} bytes, ${totalBlocks} blocks; truncated?)`);
    }
    const structBytes = C * ROFS_BLOCK;
    if (structBytes > MAX_STRUCTURE_BYTES) throw this.fail(`the structure area is ${structBytes} bytes, more than this reader accepts (${MAX_STRUCTURE_BYTES})`);
    const D = small(u64(sbBuf, 40), Math.floor(structBytes / ROFS_DENTRY_HEAD));
    const L = small(u64(sbBuf, 48), Math.floor(structBytes / ROFS_SYMLINK_HEAD));
    const N = small(u64(sbBuf, 56), Math.floor(structBytes / ROFS_INODE_BYTES));
    if (D === undefined) throw this.fail(`directory_entries_count ${u64(sbBuf, 40)} at byte 40 cannot fit in a ${structBytes}-byte structure area`);
    if (L === undefined) throw this.fail(`symlinks_count ${u64(sbBuf, 48)} at byte 48 cannot fit in a ${structBytes}-byte structure area`);
    if (N === undefined) throw this.fail(`inodes_count ${u64(sbBuf, 56)} at byte 56 cannot fit in a ${structBytes}-byte structure area`);
    if (N < 1) throw this.fail('inodes_count is 0 (there is no root directory)');
    if (D !== N - 1) throw this.fail(`${D} directory entries for ${N} inodes (every inode but the root has exactly one entry)`);

    const base = S * ROFS_BLOCK;
    const st = this.src.read(base, structBytes);
    const at = (o: number): string => `structure byte ${o}, image byte ${base + o}`;
    let o = 0;

    // Directory entries.
    const dIno = new Array<number>(D);
    const dName = new Array<string>(D);
    for (let k = 0; k < D; k++) {
      if (o + ROFS_DENTRY_HEAD > structBytes) throw this.fail(`directory entry #${k} (${at(o)}) runs past the end of the structure area`);
      const ino = small(u64(st, o), N);
      if (ino === undefined || ino < 1) throw this.fail(`directory entry #${k} (${at(o)}) refers to inode #${u64(st, o)}, but there are ${N} inodes`);
      if (ino === 1) throw this.fail(`directory entry #${k} (${at(o)}) refers to the root directory (a cycle)`);
      const len = st.readUInt16LE(o + 8);
      if (o + ROFS_DENTRY_HEAD + len > structBytes) throw this.fail(`the name of directory entry #${k} (${at(o)}, ${len} bytes) runs past the end of the structure area`);
      dIno[k] = ino;
      dName[k] = this.text(st.subarray(o + ROFS_DENTRY_HEAD, o + ROFS_DENTRY_HEAD + len), `the name of directory entry #${k} (${at(o)})`, true);
      o += ROFS_DENTRY_HEAD + len;
    }
    // Symlinks.
    const links = new Array<string>(L);
    for (let k = 0; k < L; k++) {
      if (o + ROFS_SYMLINK_HEAD > structBytes) throw this.fail(`symlink #${k} (${at(o)}) runs past the end of the structure area`);
      const len = st.readUInt16LE(o);
      if (o + ROFS_SYMLINK_HEAD + len > structBytes) throw this.fail(`the target of symlink #${k} (${at(o)}, ${len} bytes) runs past the end of the structure area`);
      links[k] = this.text(st.subarray(o + ROFS_SYMLINK_HEAD, o + ROFS_SYMLINK_HEAD + len), `the target of symlink #${k} (${at(o)})`, false);
      o += ROFS_SYMLINK_HEAD + len;
    }
    // Inodes.
    if (o + N * ROFS_INODE_BYTES > structBytes) throw this.fail(`the inode table (${N} inodes from ${at(o)}) runs past the end of the structure area`);
    const used = o + N * ROFS_INODE_BYTES;
    if (blocksFor(used) !== C) throw this.fail(`the tables end at structure byte ${used}, which needs ${blocksFor(used)} blocks, but the superblock says ${C}`);
    const inodes = new Array<Inode>(N);
    const linkUsed = new Uint8Array(L);
    let linkCount = 0;
    for (let i = 0; i < N; i++) {
      const p = o + i * ROFS_INODE_BYTES;
      const where = `inode #${i + 1} (${at(p)})`;
      const mode = u64(st, p);
      const no = u64(st, p + 8);
      if (no !== BigInt(i + 1)) throw this.fail(`${where} is numbered ${no}; entry ${i} of the inode table must hold inode #${i + 1}`);
      const off = u64(st, p + 16);
      const cnt = u64(st, p + 24);
      if (mode === BigInt(MODE_DIR)) {
        const c = small(cnt, D);
        const f = small(off, D);
        if (c === undefined || f === undefined || f + c > D) throw this.fail(`${where}: directory entries ${off}..${off + cnt} are outside the ${D}-entry table`);
        inodes[i] = { mode: MODE_DIR, offset: f, count: c };
      } else if (mode === BigInt(MODE_REG)) {
        const bytes = small(cnt, (S - 1) * ROFS_BLOCK);
        const first = small(off, S);
        if (bytes === undefined || first === undefined || first < 1 || first + blocksFor(bytes) > S) {
          throw this.fail(`${where}: file data (${cnt} bytes from block ${off}) is outside the data blocks 1..${S - 1}`);
        }
        inodes[i] = { mode: MODE_REG, offset: first, count: bytes };
      } else if (mode === BigInt(MODE_LINK)) {
        const idx = small(off, L - 1);
        if (L === 0 || idx === undefined) throw this.fail(`${where}: symlink index ${off} is outside the ${L}-entry symlink table`);
        if (cnt !== 1n) throw this.fail(`${where}: a symlink inode has count ${cnt} (expected 1)`);
        if (linkUsed[idx]) throw this.fail(`${where}: symlink #${idx} is used by two inodes`);
        linkUsed[idx] = 1;
        linkCount++;
        inodes[i] = { mode: MODE_LINK, offset: idx, count: 1 };
      } else {
        throw this.fail(`${where} has mode 0x${mode.toString(16)} (expected a directory 0x4000, file 0x8000 or symlink 0xa000)`);
      }
    }
    if (linkCount !== L) throw this.fail(`${L - linkCount} of the ${L} symlinks belong to no inode`);
    if ((inodes[0] as Inode).mode !== MODE_DIR) throw this.fail('inode #1 (the root) is not a directory');

    // Walk the tree from the root: every inode exactly once.
    const seen = new Uint8Array(N + 1);
    seen[1] = 1;
    const entries: RofsEntry[] = [];
    const rootInode = inodes[0] as Inode;
    const root: RofsEntry = { path: '/', name: '', kind: 'dir', inode: 1, size: rootInode.count };
    entries.push(root);
    this.byInode[1] = root;
    const stack: Array<{ ino: number; path: string }> = [{ ino: 1, path: '' }];
    while (stack.length > 0) {
      const { ino, path: dirPath } = stack.pop() as { ino: number; path: string };
      const dir = inodes[ino - 1] as Inode;
      const names = new Map<string, number>();
      this.children.set(ino, names);
      const subdirs: Array<{ ino: number; path: string }> = [];
      for (let k = dir.offset; k < dir.offset + dir.count; k++) {
        const child = dIno[k] as number;
        const name = dName[k] as string;
        if (seen[child]) throw this.fail(`directory entry #${k} "${name}" in "${dirPath || '/'}" reaches inode #${child} a second time (a directory cycle or a shared entry)`);
        seen[child] = 1;
        if (names.has(name)) throw this.fail(`directory "${dirPath || '/'}" has two entries named "${name}"`);
        names.set(name, child);
        const node = inodes[child - 1] as Inode;
        const p = `${dirPath}/${name}`;
        let e: RofsEntry;
        if (node.mode === MODE_DIR) {
          e = { path: p, name, kind: 'dir', inode: child, size: node.count };
          subdirs.push({ ino: child, path: p });
        } else if (node.mode === MODE_REG) {
          e = { path: p, name, kind: 'file', inode: child, size: node.count, block: node.offset };
        } else {
          e = { path: p, name, kind: 'link', inode: child, size: 0, target: links[node.offset] as string };
        }
        entries.push(e);
        this.byInode[child] = e;
      }
      for (let k = subdirs.length - 1; k >= 0; k--) stack.push(subdirs[k] as { ino: number; path: string });
    }
    for (let i = 1; i <= N; i++) if (!seen[i]) throw this.fail(`inode #${i} is not reachable from the root directory`);
    // Pre-order by inode number: gen-rofs-img numbers inodes in pre-order.
    entries.sort((a, b) => a.inode - b.inode);
    return { sb: { structureFirstBlock: S, structureBlocks: C, dentries: D, symlinks: L, inodes: N }, entries };
  }

  private text(bytes: Buffer, what: string, isName: boolean): string {
    let s: string;
    try {
      s = utf8.decode(bytes);
    } catch {
      throw this.fail(`${what} is not valid UTF-8`);
    }
    if (s.includes('\0')) throw this.fail(`${what} contains a NUL byte`);
    if (isName && s.includes('/')) throw this.fail(`${what} "${s}" contains "/"`);
    return s;
  }

  /** The entry at a guest path (`/` is the root; links are not followed), or undefined. */
  lookup(guestPath: string): RofsEntry | undefined {
    if (guestPath === '/' || guestPath === '') return this.byInode[1];
    const tokens = (guestPath.startsWith('/') ? guestPath.slice(1) : guestPath).split('/');
    let ino = 1;
    for (const t of tokens) {
      const names = this.children.get(ino);
      const next = names?.get(t);
      if (next === undefined) return undefined;
      ino = next;
    }
    return this.byInode[ino];
  }

  private fileEntry(guestPath: string): RofsEntry {
    const e = this.lookup(guestPath);
    if (!e) throw new OsvbError('OSVB_IMAGE_INPUT', `"${guestPath}" is not in the image`, { location: { file: this.name } });
    if (e.kind === 'dir') throw new OsvbError('OSVB_IMAGE_INPUT', `"${guestPath}" is a directory`, { location: { file: this.name } });
    if (e.kind === 'link') throw new OsvbError('OSVB_IMAGE_INPUT', `"${guestPath}" is a symbolic link to "${e.target}"`, { location: { file: this.name } });
    return e;
  }

  /** A regular file's content, in chunks of at most `chunkBytes` (the same buffer is reused). */
  *fileChunks(guestPath: string, chunkBytes = 1 << 20): Generator<Buffer> {
    yield* this.chunksOf(this.fileEntry(guestPath), chunkBytes);
  }

  private *chunksOf(e: RofsEntry, chunkBytes: number): Generator<Buffer> {
    const start = (e.block as number) * ROFS_BLOCK;
    const buf = Buffer.allocUnsafe(Math.min(chunkBytes, Math.max(e.size, 1)));
    for (let at = 0; at < e.size; ) {
      const n = Math.min(buf.length, e.size - at);
      this.src.readInto(buf, start + at, n);
      yield buf.subarray(0, n);
      at += n;
    }
  }

  /** A regular file's whole content. */
  readFile(guestPath: string): Buffer {
    const e = this.fileEntry(guestPath);
    return Buffer.from(this.src.read((e.block as number) * ROFS_BLOCK, e.size));
  }

  /**
   * Write the image's tree into `dir` (created if missing; must be empty). Names that could not
   * be a single path component (`..`, `.`, empty) are refused before anything is written; files
   * are created exclusively (never through an existing entry); links are created as links and
   * never followed.
   */
  extract(dir: string): { directories: number; files: number; links: number; bytes: number } {
    for (const e of this.entries) {
      if (e.inode === 1) continue;
      if (e.name === '' || e.name === '.' || e.name === '..' || e.name.includes('/') || e.name.includes('\0')) {
        throw new OsvbError('OSVB_ROFS_UNSAFE', `refusing to extract "${e.path}": the name "${e.name}" is not a plain file name and would ${e.name === '..' ? 'escape the target directory' : 'not be extracted faithfully'}`, {
          location: { file: this.name },
        });
      }
    }
    let existing: string[] | undefined;
    try {
      existing = fs.readdirSync(dir);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new OsvbError('OSVB_ROFS_UNSAFE', `cannot extract into "${dir}": ${(e as Error).message}`, { cause: e });
    }
    if (existing && existing.length > 0) throw new OsvbError('OSVB_ROFS_UNSAFE', `cannot extract into "${dir}": the directory is not empty`);
    if (!existing) fs.mkdirSync(dir, { recursive: true });
    const out = { directories: 0, files: 0, links: 0, bytes: 0 };
    const hostOf = new Map<number, string>([[1, dir]]);
    const parentOf = new Map<number, number>();
    for (const [parent, names] of this.children) for (const child of names.values()) parentOf.set(child, parent);
    for (const e of this.entries) {
      if (e.inode === 1) continue;
      const parent = hostOf.get(parentOf.get(e.inode) as number) as string;
      const target = path.join(parent, e.name);
      try {
        if (e.kind === 'dir') {
          fs.mkdirSync(target);
          hostOf.set(e.inode, target);
          out.directories++;
        } else if (e.kind === 'link') {
          fs.symlinkSync(e.target as string, target);
          out.links++;
        } else {
          const fd = fs.openSync(target, 'wx');
          try {
            let pos = 0;
            for (const chunk of this.chunksOf(e, 1 << 20)) {
              let w = 0;
              while (w < chunk.length) w += fs.writeSync(fd, chunk, w, chunk.length - w, pos + w);
              pos += chunk.length;
            }
          } finally {
            fs.closeSync(fd);
          }
          out.files++;
          out.bytes += e.size;
        }
      } catch (err) {
        if (err instanceof OsvbError) throw err;
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'EEXIST') {
          throw new OsvbError('OSVB_ROFS_UNSAFE', `refusing to extract "${e.path}": "${target}" already exists (names that differ only in case on this file system?)`, {
            location: { file: this.name },
          });
        }
        throw new OsvbError('OSVB_IO', `cannot extract "${e.path}" to "${target}": ${(err as Error).message}`, { cause: err });
      }
    }
    return out;
  }
}

function withImage<T>(source: RofsSource, fn: (img: RofsImage) => T): T {
  const img = RofsImage.open(source);
  try {
    return fn(img);
  } finally {
    img.close();
  }
}

/** Every entry of an image, root first, in pre-order. */
export function listRofs(source: RofsSource): RofsEntry[] {
  return withImage(source, (img) => [...img.entries]);
}

/** The content of the regular file at `guestPath`. */
export function readRofsFile(source: RofsSource, guestPath: string): Buffer {
  return withImage(source, (img) => img.readFile(guestPath));
}

/** Extract an image into `dir` (see RofsImage.extract). */
export function extractRofs(source: RofsSource, dir: string): { directories: number; files: number; links: number; bytes: number } {
  return withImage(source, (img) => img.extract(dir));
}
