/**
 * A qcow2 (version 3) writer and in-place updater, written from QEMU's format description
 * (docs/interop/qcow2.txt). All integers in the file are big-endian.
 *
 * Layout of a new image (64 KiB clusters, 16-bit refcounts, as `qemu-img create -f qcow2` lays it
 * out):
 *
 *   cluster 0    header (112 bytes, compression_type zlib, no feature bits), then the header
 *                extensions (the backing file format name when there is a backing file, then the
 *                end marker), then the backing file name
 *   cluster 1    refcount table: one cluster, 8192 refcount blocks
 *   cluster 2    refcount block 0: 32768 refcounts, i.e. the first 2 GiB of the file
 *   cluster 3…   L1 table: one 8-byte entry per L2 table (an L2 table maps 512 MiB of guest)
 *   then         L2 tables and data clusters, appended in the order they are first needed (an
 *                L2 table just before its first data cluster), and more refcount blocks (or a
 *                bigger refcount table, past 16 TiB) appended when the file outgrows them.
 *
 * Updating: open() reads all metadata (L1, every L2 table, the refcount table and every refcount
 * block: 64 KiB per 512 MiB of guest and per 2 GiB of file) and checks it, so writes need no
 * metadata reads. A write compares the new bytes with the guest's current bytes and touches only
 * clusters that differ: an allocated cluster is rewritten in place (just the changed byte range),
 * anything else gets a new cluster at the end of the file. Clusters are never reused or freed
 * (only an outgrown refcount table is freed), so a new cluster has never been written and reads
 * as zeros, and nothing that a reader may still use is overwritten. Metadata changes stay in
 * memory until close(), which writes only what changed (dirty byte ranges of existing tables,
 * new tables whole).
 *
 * Crash safety: the first change of a session sets the header's dirty bit (incompatible feature
 * bit 0, and clears the autoclear bits we do not maintain) and syncs; close() writes refcount
 * blocks, the refcount table, L2 tables, L1, header fields, syncs, then clears the dirty bit. An
 * interrupted session leaves the dirty bit set: QEMU repairs the refcounts when it opens such a
 * file read-write, and open() here refuses it (the caller rebuilds the image). A session that
 * changes nothing writes nothing, not even the header.
 *
 * Only version 3 is updated: version 2 has no "reads as zeros" L2 flag, which zero() and
 * overlays (zeros over a non-zero backing cluster) need.
 *
 * A backing file may be raw or qcow2; a qcow2 backing is read with this module (recursively, at
 * most 16 deep), so it must meet the same conditions as open() (no compression, 64 KiB clusters…).
 * A relative backing name is resolved against the overlay's directory, as QEMU does.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { OsvbError } from '../../errors/index.js';

export const QCOW2_CLUSTER_SIZE = 65536;

export interface Qcow2Backing {
  file: string;
  format: 'raw' | 'qcow2';
}

/**
 * Other cluster sizes (2^9 … 2^21) exist for tests: with 512-byte clusters a few MiB of data
 * need many L2 tables, refcount blocks and a growing refcount table. open() accepts only the
 * cluster size it is told (64 KiB unless given).
 */
export interface Qcow2Options {
  clusterBits?: number;
}

const DEFAULT_CLUSTER_BITS = 16;
const MAGIC = 0x514649fb;
const HEADER_LENGTH = 112;
const V3_MIN_HEADER = 104;
const EXT_END = 0;
const EXT_BACKING_FORMAT = 0xe2792aca;
const REFCOUNT_ORDER = 4;
const MAX_BACKING_NAME = 1023;
const MAX_BACKING_DEPTH = 16;
/** Guest bytes compared and written per step: bounds memory for big writes and copies. */
const CHUNK_BYTES = 2 * 1024 * 1024;
/** Limits on tables read from a file, so a hostile header cannot ask for gigabytes (QEMU's own limits). */
const MAX_L1_BYTES = 32 * 1024 * 1024;
const MAX_REFCOUNT_TABLE_BYTES = 8 * 1024 * 1024;

// Header offsets.
const H_BACKING_OFFSET = 8;
const H_BACKING_SIZE = 16;
const H_CLUSTER_BITS = 20;
const H_SIZE = 24;
const H_CRYPT = 32;
const H_L1_SIZE = 36;
const H_L1_OFFSET = 40;
const H_RC_OFFSET = 48;
const H_RC_CLUSTERS = 56;
const H_SNAPSHOTS = 60;
/** incompatible (8), compatible (8) and autoclear (8) feature words. */
const H_FEATURES = 72;
const H_REFCOUNT_ORDER = 96;
const H_HEADER_LENGTH = 100;

// Incompatible feature bits (all in the low word).
const F_DIRTY = 1;
const F_CORRUPT = 2;
const F_EXTERNAL_DATA = 4;
const F_COMPRESSION_TYPE = 8;
const F_EXTENDED_L2 = 16;
const F_KNOWN = F_DIRTY | F_CORRUPT | F_EXTERNAL_DATA | F_COMPRESSION_TYPE | F_EXTENDED_L2;

// A 64-bit table entry is handled as two 32-bit words: hi = bits 63..32, lo = bits 31..0.
const HI_COPIED = 0x80000000; // refcount is exactly 1
const HI_COMPRESSED = 0x40000000;
const HI_OFFSET = 0x00ffffff; // offset bits 55..32
const HI_L1_RESERVED = 0x7f000000;
const HI_L2_RESERVED = 0x3f000000;
const LO_ZERO = 1; // L2: the cluster reads as zeros
const LO_L1_RESERVED = 0x1ff;
const LO_L2_RESERVED = 0x1fe;
const LO_OFFSET = 0xfffffe00;
const TWO32 = 0x1_0000_0000;

/** A metadata table held in memory, where it lives in the file, and what must be written back. */
class Table {
  /** Dirty byte range [lo, hi) of an existing table. */
  lo = Infinity;
  hi = 0;
  constructor(
    readonly buf: Buffer,
    public host: number,
    /** Allocated in this session: written whole on close. */
    public fresh: boolean,
  ) {}

  offsetAt(i: number): number {
    return entryOffset(this.buf, i * 8);
  }

  set(i: number, hi: number, lo: number): void {
    this.buf.writeUInt32BE(hi >>> 0, i * 8);
    this.buf.writeUInt32BE(lo >>> 0, i * 8 + 4);
    this.touch(i * 8, i * 8 + 8);
  }

  touch(start: number, end: number): void {
    if (start < this.lo) this.lo = start;
    if (end > this.hi) this.hi = end;
  }
}

/** Bits 9..55 of the entry at `pos`: a cluster-aligned host offset, 0 when unallocated. */
function entryOffset(buf: Buffer, pos: number): number {
  return (buf.readUInt32BE(pos) & HI_OFFSET) * TWO32 + ((buf.readUInt32BE(pos + 4) & LO_OFFSET) >>> 0);
}

function putU64(buf: Buffer, pos: number, value: number): void {
  buf.writeUInt32BE(Math.floor(value / TWO32), pos);
  buf.writeUInt32BE(value % TWO32, pos + 4);
}

/** A u64 as a number, or undefined past 2^53 (no sane image has such an offset or size). */
function getU64(buf: Buffer, pos: number): number | undefined {
  const v = buf.readUInt32BE(pos) * TWO32 + buf.readUInt32BE(pos + 4);
  return Number.isSafeInteger(v) ? v : undefined;
}

function hex(n: number): string {
  return `0x${n.toString(16)}`;
}

function ioError(op: string, file: string, e: unknown): OsvbError {
  const code = (e as NodeJS.ErrnoException | undefined)?.code ?? (e instanceof Error ? e.message : String(e));
  return new OsvbError('OSVB_IO', `cannot ${op} ${file}: ${code}`, { cause: e });
}

function closeQuietly(fd: number): void {
  try {
    fs.closeSync(fd);
  } catch {
    // already failing; the first error is the one to report
  }
}

/** Read up to `len` bytes at `pos`; returns how many arrived (fewer only at the end of the file). */
function preadFully(fd: number, file: string, buf: Buffer, at: number, len: number, pos: number): number {
  let got = 0;
  try {
    while (got < len) {
      const n = fs.readSync(fd, buf, at + got, len - got, pos + got);
      if (n === 0) break;
      got += n;
    }
  } catch (e) {
    throw ioError('read', file, e);
  }
  return got;
}

/** Where a cluster's guest bytes come from. */
interface Entry {
  /** Host offset of the cluster (0: none). */
  host: number;
  /** Reads as zeros (v3 flag), even if a host cluster is kept for it. */
  zero: boolean;
}

/** Guest bytes below an overlay's unallocated clusters. */
interface BackingReader {
  /** Fill into[at, at+len) with the backing's bytes at `offset`; bytes past its end are left alone (zeros). */
  read(into: Buffer, at: number, offset: number, len: number): void;
  close(): void;
}

function rawBacking(file: string): BackingReader | string {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return `backing file ${file} does not exist`;
    throw ioError('open', file, e);
  }
  let size: number;
  try {
    size = fs.fstatSync(fd).size;
  } catch (e) {
    closeQuietly(fd);
    throw ioError('stat', file, e);
  }
  return {
    read(into, at, offset, len) {
      const n = Math.min(len, size - offset);
      if (n > 0) preadFully(fd, file, into, at, n, offset);
    },
    close() {
      closeQuietly(fd);
    },
  };
}

function resolveBacking(image: string, name: string): string {
  return path.isAbsolute(name) ? name : path.join(path.dirname(image), name);
}

/** Queues data writes and merges the ones that are adjacent in the file into one write. */
class WriteBatch {
  private start = 0;
  private length = 0;
  private parts: Buffer[] = [];
  constructor(private readonly write: (buf: Buffer, pos: number) => void) {}

  add(pos: number, buf: Buffer): void {
    if (this.length > 0 && this.start + this.length !== pos) this.flush();
    if (this.length === 0) this.start = pos;
    this.parts.push(buf);
    this.length += buf.length;
  }

  flush(): void {
    if (this.length === 0) return;
    const first = this.parts[0];
    this.write(this.parts.length === 1 && first ? first : Buffer.concat(this.parts, this.length), this.start);
    this.parts = [];
    this.length = 0;
  }
}

/** Set by Qcow2Image's static block: opens a qcow2 file read-only as a backing file. */
let qcow2Backing: (file: string, options: Qcow2Options, depth: number) => BackingReader | string;

interface State {
  fd: number;
  file: string;
  readOnly: boolean;
  clusterBits: number;
  virtualSize: number;
  l1: Table;
  l2: Map<number, Table>;
  rcTable: Table;
  rcBlocks: Map<number, Table>;
  nextFree: number;
  backing: BackingReader | undefined;
  /** The header's 24 feature bytes as found (create: all zero). */
  features: Buffer;
}

/**
 * One qcow2 file open for in-place updates (or read-only, as a backing file). Synchronous: the
 * disk writer calls it from synchronous code. Call close() to make the file consistent again.
 */
export class Qcow2Image {
  readonly virtualSize: number;
  private readonly fd: number;
  private readonly file: string;
  private readonly readOnly: boolean;
  private readonly cs: number;
  private readonly l2Entries: number;
  private readonly rcPerBlock: number;
  private readonly chunkBytes: number;
  private readonly zeros: Buffer;
  private readonly l1: Table;
  private readonly l2: Map<number, Table>;
  private rcTable: Table;
  private readonly rcBlocks: Map<number, Table>;
  /** Next never-used cluster index: everything is allocated here, at the end of the file. */
  private nextFree: number;
  private readonly backing: BackingReader | undefined;
  private readonly features: Buffer;
  private rcTableMoved = false;
  /** The dirty bit is on disk: close() must write metadata and clear it. */
  private mutating = false;
  private written = 0;
  private closed = false;

  private constructor(s: State) {
    this.fd = s.fd;
    this.file = s.file;
    this.readOnly = s.readOnly;
    this.virtualSize = s.virtualSize;
    this.cs = 2 ** s.clusterBits;
    this.l2Entries = this.cs / 8;
    this.rcPerBlock = (this.cs * 8) / 2 ** REFCOUNT_ORDER;
    this.chunkBytes = Math.max(this.cs, CHUNK_BYTES - (CHUNK_BYTES % this.cs));
    this.zeros = Buffer.alloc(this.cs);
    this.l1 = s.l1;
    this.l2 = s.l2;
    this.rcTable = s.rcTable;
    this.rcBlocks = s.rcBlocks;
    this.nextFree = s.nextFree;
    this.backing = s.backing;
    this.features = s.features;
  }

  /** Bytes written to the file since open/create (data + metadata). */
  get bytesWritten(): number {
    return this.written;
  }

  /** Create a new, empty qcow2 v3 file at `file` (truncating it): header, refcount table/block, L1 table; no data cluster. */
  static create(file: string, virtualSize: number, backing?: Qcow2Backing, options: Qcow2Options = {}): Qcow2Image {
    const clusterBits = clusterBitsOf(options);
    const cs = 2 ** clusterBits;
    if (!Number.isSafeInteger(virtualSize) || virtualSize < 0 || virtualSize % 512 !== 0) {
      throw new OsvbError('OSVB_IMAGE_INPUT', `cannot create ${file}: qcow2 virtual size ${virtualSize} is not a multiple of 512 bytes`);
    }
    const l1Size = Math.max(1, Math.ceil(virtualSize / (cs * (cs / 8))));
    if (l1Size * 8 > MAX_L1_BYTES) throw new OsvbError('OSVB_IMAGE_INPUT', `cannot create ${file}: virtual size ${virtualSize} is too large`);

    let name: Buffer | undefined;
    let reader: BackingReader | undefined;
    if (backing) {
      if (backing.format !== 'raw' && backing.format !== 'qcow2') {
        throw new OsvbError('OSVB_IMAGE_INPUT', `cannot create ${file}: backing format "${String(backing.format)}" is not raw or qcow2`);
      }
      name = Buffer.from(backing.file, 'utf8');
      if (name.length === 0 || name.length > MAX_BACKING_NAME) {
        throw new OsvbError('OSVB_IMAGE_INPUT', `cannot create ${file}: the backing file name must be 1 to ${MAX_BACKING_NAME} bytes long`);
      }
      const r = openBacking(resolveBacking(file, backing.file), backing.format, options, 1);
      if (typeof r === 'string') throw new OsvbError('OSVB_IMAGE_INPUT', `cannot create ${file}: ${r}`);
      reader = r;
    }

    let fd: number;
    try {
      fd = fs.openSync(file, 'w+');
    } catch (e) {
      reader?.close();
      throw ioError('create', file, e);
    }
    try {
      const img = new Qcow2Image({
        fd,
        file,
        readOnly: false,
        clusterBits,
        virtualSize,
        l1: new Table(Buffer.alloc(l1Size * 8), 0, true),
        l2: new Map(),
        rcTable: new Table(Buffer.alloc(cs), cs, true),
        rcBlocks: new Map(),
        // Cluster 0 (header) and 1 (refcount table) are placed by hand; they are counted below.
        nextFree: 2,
        backing: reader,
        features: Buffer.alloc(24),
      });
      img.mutating = true;
      img.reference(0, 2); // allocates refcount block 0 at cluster 2
      img.l1.host = img.allocate(Math.ceil((l1Size * 8) / cs)) * cs;
      const head = Buffer.alloc(HEADER_LENGTH);
      head.writeUInt32BE(MAGIC, 0);
      head.writeUInt32BE(3, 4);
      head.writeUInt32BE(clusterBits, H_CLUSTER_BITS);
      putU64(head, H_SIZE, virtualSize);
      head.writeUInt32BE(l1Size, H_L1_SIZE);
      putU64(head, H_L1_OFFSET, img.l1.host);
      putU64(head, H_RC_OFFSET, img.rcTable.host);
      head.writeUInt32BE(img.rcTable.buf.length / cs, H_RC_CLUSTERS);
      // Dirty until close() has written the tables: a half-created file is refused, not trusted.
      head.writeUInt32BE(F_DIRTY, H_FEATURES + 4);
      head.writeUInt32BE(REFCOUNT_ORDER, H_REFCOUNT_ORDER);
      head.writeUInt32BE(HEADER_LENGTH, H_HEADER_LENGTH);
      // byte 104: compression_type 0 (zlib); 105..111 padding
      const parts: Buffer[] = [head];
      if (backing && name) {
        parts.push(extension(EXT_BACKING_FORMAT, Buffer.from(backing.format, 'ascii')));
      }
      parts.push(extension(EXT_END, Buffer.alloc(0)));
      if (name) {
        const at = parts.reduce((n, p) => n + p.length, 0);
        putU64(head, H_BACKING_OFFSET, at);
        head.writeUInt32BE(name.length, H_BACKING_SIZE);
        parts.push(name);
      }
      const cluster0 = Buffer.concat(parts);
      if (cluster0.length > cs) throw new OsvbError('OSVB_IMAGE_INPUT', `cannot create ${file}: the backing file name does not fit in the header cluster`);
      img.pwrite(cluster0, 0);
      return img;
    } catch (e) {
      closeQuietly(fd);
      reader?.close();
      throw e;
    }
  }

  /**
   * Open an existing qcow2 for in-place writes, or say (a string) why it cannot be updated
   * safely. Throws OsvbError OSVB_IO when the file exists but cannot be read or opened for writing.
   */
  static open(file: string, options: Qcow2Options = {}): Qcow2Image | string {
    return Qcow2Image.load(file, options, false, 0);
  }

  private static load(file: string, options: Qcow2Options, readOnly: boolean, depth: number): Qcow2Image | string {
    let fd: number;
    try {
      fd = fs.openSync(file, readOnly ? 'r' : 'r+');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return `${file} does not exist`;
      throw ioError('open', file, e);
    }
    let state: State | string;
    try {
      state = parse(fd, file, options, readOnly, depth);
    } catch (e) {
      closeQuietly(fd);
      throw e;
    }
    if (typeof state === 'string') {
      closeQuietly(fd);
      return state;
    }
    return new Qcow2Image(state);
  }

  /** Guest bytes; unallocated clusters read as zeros or as the backing file's bytes. */
  read(guestOffset: number, length: number): Buffer {
    this.checkOpen();
    this.checkRange('read', guestOffset, length);
    const out = Buffer.alloc(length);
    this.readInto(out, 0, guestOffset, length);
    return out;
  }

  /**
   * Write guest bytes. Only clusters whose bytes change are touched: an allocated one is
   * rewritten in place (the changed byte range), an unallocated one gets a new cluster at the end
   * of the file holding the whole cluster (zeros or backing bytes around the new ones), unless
   * the result is all zeros.
   */
  write(guestOffset: number, data: Uint8Array): void {
    this.checkWritable();
    this.checkRange('write', guestOffset, data.length);
    const buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    let done = 0;
    while (done < buf.length) {
      const g = guestOffset + done;
      const n = Math.min(buf.length - done, this.chunkBytes - (g % this.cs));
      this.patch(g, buf.subarray(done, done + n));
      done += n;
    }
  }

  /**
   * Copy `length` bytes of `file` from `fileOffset` to `guestOffset` in 2 MiB steps, with the
   * same compare-then-write rule as write(). Returns the bytes this call wrote to the qcow2 file
   * (metadata is written on close()).
   */
  copyFromFile(guestOffset: number, file: string, fileOffset: number, length: number): number {
    this.checkWritable();
    this.checkRange('copy', guestOffset, length);
    if (!Number.isSafeInteger(fileOffset) || fileOffset < 0) {
      throw new OsvbError('OSVB_INTERNAL', `qcow2 copy from ${file}: bad file offset ${fileOffset}`);
    }
    const before = this.written;
    let src: number;
    try {
      src = fs.openSync(file, 'r');
    } catch (e) {
      throw ioError('open', file, e);
    }
    try {
      const buf = Buffer.allocUnsafe(Math.min(length, this.chunkBytes));
      let done = 0;
      while (done < length) {
        const g = guestOffset + done;
        const n = Math.min(length - done, this.chunkBytes - (g % this.cs));
        const got = preadFully(src, file, buf, 0, n, fileOffset + done);
        if (got < n) {
          throw new OsvbError('OSVB_IO', `cannot read ${file}: it ends at byte ${fileOffset + done + got}, before byte ${fileOffset + length}`);
        }
        this.patch(g, buf.subarray(0, n));
        done += n;
      }
    } finally {
      closeQuietly(src);
    }
    return this.written - before;
  }

  /**
   * Make guest bytes [offset, offset+length) read as zeros. A fully covered cluster becomes a
   * zero entry (an allocated one keeps its host cluster, flagged "reads as zeros", so a later
   * write reuses it); partially covered clusters get zeros written.
   */
  zero(guestOffset: number, length: number): void {
    this.checkWritable();
    this.checkRange('zero', guestOffset, length);
    const cs = this.cs;
    const end = guestOffset + length;
    let pos = guestOffset;
    while (pos < end) {
      const gc = Math.floor(pos / cs);
      const cStart = gc * cs;
      const cEnd = Math.min(cStart + cs, this.virtualSize);
      if (pos === cStart && end >= cEnd) {
        if (!this.l2.has(Math.floor(gc / this.l2Entries)) && !this.backing) {
          // No L2 table and no backing file: this whole L2 range already reads as zeros.
          pos = Math.min(end, (Math.floor(gc / this.l2Entries) + 1) * this.l2Entries * cs);
          continue;
        }
        this.zeroCluster(gc);
        pos = cEnd;
      } else {
        const n = Math.min(end, cEnd) - pos;
        this.patch(pos, this.zeros.subarray(0, n));
        pos += n;
      }
    }
  }

  /** Write back dirty metadata, clear the dirty bit and close the file (and the backing file). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    try {
      if (this.mutating) this.flush();
    } finally {
      closeQuietly(this.fd);
      this.backing?.close();
    }
  }

  // ---- guest view -------------------------------------------------------------------------

  private entry(gc: number): Entry {
    const l1i = Math.floor(gc / this.l2Entries);
    const t = this.l2.get(l1i);
    if (!t) return { host: 0, zero: false };
    const pos = (gc - l1i * this.l2Entries) * 8;
    return { host: entryOffset(t.buf, pos), zero: (t.buf.readUInt32BE(pos + 4) & LO_ZERO) !== 0 };
  }

  private readInto(out: Buffer, at: number, offset: number, length: number): void {
    const cs = this.cs;
    let done = 0;
    while (done < length) {
      const g = offset + done;
      const c0 = Math.floor(g / cs);
      const n = Math.min(length - done, this.chunkBytes - (g - c0 * cs));
      const view = this.readClusters(c0, Math.ceil((g + n) / cs) - c0);
      view.copy(out, at + done, g - c0 * cs, g - c0 * cs + n);
      done += n;
    }
  }

  /** The guest view of whole clusters [c0, c0+n), reading runs of adjacent host clusters (and backing ranges) at once. */
  private readClusters(c0: number, n: number): Buffer {
    const cs = this.cs;
    const out = Buffer.alloc(n * cs);
    let kind: 'none' | 'host' | 'backing' = 'none';
    let runHost = 0;
    let runStart = 0;
    let runLen = 0;
    const flush = (): void => {
      if (kind === 'host') preadFully(this.fd, this.file, out, runStart * cs, runLen * cs, runHost);
      else if (kind === 'backing') this.backing?.read(out, runStart * cs, (c0 + runStart) * cs, runLen * cs);
      kind = 'none';
      runLen = 0;
    };
    for (let k = 0; k < n; k++) {
      const e = this.entry(c0 + k);
      if (e.zero) {
        flush();
      } else if (e.host !== 0) {
        if (kind === 'host' && runHost + runLen * cs === e.host) {
          runLen++;
        } else {
          flush();
          kind = 'host';
          runHost = e.host;
          runStart = k;
          runLen = 1;
        }
      } else if (this.backing) {
        if (kind !== 'backing') {
          flush();
          kind = 'backing';
          runStart = k;
        }
        runLen++;
      } else {
        flush();
      }
    }
    flush();
    return out;
  }

  /** A reader of this image as another image's backing file. */
  private asBacking(): BackingReader {
    return {
      read: (into, at, offset, len) => {
        const n = Math.min(len, this.virtualSize - offset);
        if (n > 0) this.readInto(into, at, offset, n);
      },
      close: () => this.close(),
    };
  }

  // ---- writing ----------------------------------------------------------------------------

  /** Apply `data` at guest offset `offset` (at most one chunk of clusters). */
  private patch(offset: number, data: Buffer): void {
    const cs = this.cs;
    const c0 = Math.floor(offset / cs);
    const n = Math.ceil((offset + data.length) / cs) - c0;
    const old = this.readClusters(c0, n);
    const neu = Buffer.from(old);
    data.copy(neu, offset - c0 * cs);
    const batch = new WriteBatch((buf, pos) => this.pwrite(buf, pos));
    for (let k = 0; k < n; k++) {
      const o = old.subarray(k * cs, (k + 1) * cs);
      const w = neu.subarray(k * cs, (k + 1) * cs);
      if (o.equals(w)) continue;
      this.beginMutation();
      const gc = c0 + k;
      const e = this.entry(gc);
      const isZero = w.equals(this.zeros);
      if (e.host !== 0 && !e.zero) {
        if (isZero) {
          // Keep the host cluster for later, flagged: an 8-byte L2 write instead of a cluster of zeros.
          this.setEntry(gc, e.host, true);
        } else {
          let first = 0;
          while (o[first] === w[first]) first++;
          let last = cs - 1;
          while (o[last] === w[last]) last--;
          batch.add(e.host + first, w.subarray(first, last + 1));
        }
      } else if (isZero) {
        // Reachable only over a non-zero backing cluster.
        this.setEntry(gc, 0, true);
      } else if (e.host !== 0) {
        // A preallocated zero cluster: its bytes are stale, so write it whole.
        batch.add(e.host, w);
        this.setEntry(gc, e.host, false);
      } else {
        this.l2Table(gc); // before the data cluster, so consecutive data clusters stay adjacent
        const host = this.allocate(1) * cs;
        batch.add(host, w);
        this.setEntry(gc, host, false);
      }
    }
    batch.flush();
  }

  private zeroCluster(gc: number): void {
    const e = this.entry(gc);
    if (e.zero) return;
    const cs = this.cs;
    if (e.host !== 0) {
      const cur = Buffer.alloc(cs);
      preadFully(this.fd, this.file, cur, 0, cs, e.host);
      if (cur.equals(this.zeros)) return;
    } else {
      if (!this.backing) return;
      const cur = Buffer.alloc(cs);
      this.backing.read(cur, 0, gc * cs, cs);
      if (cur.equals(this.zeros)) return;
    }
    this.beginMutation();
    this.setEntry(gc, e.host, true);
  }

  private setEntry(gc: number, host: number, zero: boolean): void {
    const t = this.l2Table(gc);
    const i = gc % this.l2Entries;
    t.set(i, Math.floor(host / TWO32) | (host !== 0 ? HI_COPIED : 0), (host % TWO32) | (zero ? LO_ZERO : 0));
  }

  /** The L2 table mapping guest cluster `gc`, allocated (zeroed, after the file's end) when missing. */
  private l2Table(gc: number): Table {
    const l1i = Math.floor(gc / this.l2Entries);
    let t = this.l2.get(l1i);
    if (!t) {
      const host = this.allocate(1) * this.cs;
      t = new Table(Buffer.alloc(this.cs), host, true);
      this.l2.set(l1i, t);
      this.l1.set(l1i, Math.floor(host / TWO32) | HI_COPIED, host % TWO32);
    }
    return t;
  }

  // ---- allocation and refcounts -----------------------------------------------------------

  /** `n` adjacent new clusters at the end of the file, refcount 1; returns the first index. */
  private allocate(n: number): number {
    const first = this.nextFree;
    this.nextFree += n;
    this.reference(first, n);
    return first;
  }

  /** Count clusters [first, first+n) as used (refcount 1), creating refcount blocks as needed. */
  private reference(first: number, n: number): void {
    for (let c = first; c < first + n; c++) {
      this.ensureRefcountBlock(c);
      this.addRef(c, 1);
    }
  }

  private ensureRefcountBlock(c: number): void {
    const bi = Math.floor(c / this.rcPerBlock);
    if (this.rcBlocks.has(bi)) return;
    if (bi >= this.rcTable.buf.length / 8) {
      this.growRefcountTable(bi);
      // The new table's own clusters may have needed exactly this block.
      if (this.rcBlocks.has(bi)) return;
    }
    const b = this.nextFree++;
    this.rcBlocks.set(bi, new Table(Buffer.alloc(this.cs), b * this.cs, true));
    this.rcTable.set(bi, Math.floor((b * this.cs) / TWO32), (b * this.cs) % TWO32);
    // A refcount block counts itself: in this block, or in the next one (created just above it).
    this.ensureRefcountBlock(b);
    this.addRef(b, 1);
  }

  /**
   * Move the refcount table to the end of the file, at least doubled and big enough to cover
   * block `need` and the blocks for its own clusters; the old table's clusters are freed.
   */
  private growRefcountTable(need: number): void {
    const cs = this.cs;
    const perCluster = cs / 8;
    const oldClusters = this.rcTable.buf.length / cs;
    let clusters = oldClusters;
    for (;;) {
      clusters *= 2;
      const lastUsed = this.nextFree + clusters + Math.ceil(clusters / this.rcPerBlock) + 2;
      if (clusters * perCluster > Math.max(need, Math.floor(lastUsed / this.rcPerBlock))) break;
    }
    if (clusters * cs > MAX_REFCOUNT_TABLE_BYTES) {
      throw new OsvbError('OSVB_INTERNAL', `${this.file}: the qcow2 refcount table would need ${clusters} clusters`);
    }
    const old = this.rcTable;
    const first = this.nextFree;
    this.nextFree += clusters;
    const buf = Buffer.alloc(clusters * cs);
    old.buf.copy(buf);
    this.rcTable = new Table(buf, first * cs, true);
    this.rcTableMoved = true;
    this.reference(first, clusters);
    const oldFirst = old.host / cs;
    for (let c = oldFirst; c < oldFirst + oldClusters; c++) this.addRef(c, -1);
  }

  private addRef(c: number, delta: 1 | -1): void {
    const t = this.rcBlocks.get(Math.floor(c / this.rcPerBlock));
    const pos = (c % this.rcPerBlock) * 2;
    if (!t) throw new OsvbError('OSVB_INTERNAL', `${this.file}: no refcount block for cluster ${c}`);
    const v = t.buf.readUInt16BE(pos) + delta;
    if (v < 0 || v > 0xffff) throw new OsvbError('OSVB_INTERNAL', `${this.file}: refcount of cluster ${c} would become ${v}`);
    t.buf.writeUInt16BE(v, pos);
    t.touch(pos, pos + 2);
  }

  // ---- file I/O ---------------------------------------------------------------------------

  /** Set the dirty bit (and clear autoclear bits we do not maintain) before the first change. */
  private beginMutation(): void {
    if (this.mutating) return;
    const f = Buffer.from(this.features);
    f.writeUInt32BE((f.readUInt32BE(4) | F_DIRTY) >>> 0, 4);
    f.fill(0, 16, 24);
    this.pwrite(f, H_FEATURES);
    this.sync();
    this.mutating = true;
  }

  private flush(): void {
    // Refcounts before the tables that reference the clusters, L1 and header last.
    for (const t of this.rcBlocks.values()) this.writeTable(t);
    this.writeTable(this.rcTable);
    for (const t of this.l2.values()) this.writeTable(t);
    this.writeTable(this.l1);
    if (this.rcTableMoved) {
      const b = Buffer.alloc(12);
      putU64(b, 0, this.rcTable.host);
      b.writeUInt32BE(this.rcTable.buf.length / this.cs, 8);
      this.pwrite(b, H_RC_OFFSET);
    }
    this.sync();
    // The incompatible features as found: open() refuses any with the dirty bit.
    const incompatible = Buffer.from(this.features.subarray(0, 8));
    incompatible.writeUInt32BE((incompatible.readUInt32BE(4) & ~F_DIRTY) >>> 0, 4);
    this.pwrite(incompatible, H_FEATURES);
    this.sync();
  }

  private writeTable(t: Table): void {
    if (t.fresh) this.pwrite(t.buf, t.host);
    else if (t.lo < t.hi) this.pwrite(t.buf.subarray(t.lo, t.hi), t.host + t.lo);
    t.fresh = false;
    t.lo = Infinity;
    t.hi = 0;
  }

  private pwrite(buf: Buffer, pos: number): void {
    let done = 0;
    try {
      while (done < buf.length) done += fs.writeSync(this.fd, buf, done, buf.length - done, pos + done);
    } catch (e) {
      throw ioError('write', this.file, e);
    } finally {
      this.written += done;
    }
  }

  private sync(): void {
    try {
      fs.fdatasyncSync(this.fd);
    } catch (e) {
      throw ioError('sync', this.file, e);
    }
  }

  private checkOpen(): void {
    if (this.closed) throw new OsvbError('OSVB_INTERNAL', `qcow2 image ${this.file} is closed`);
  }

  private checkWritable(): void {
    this.checkOpen();
    if (this.readOnly) throw new OsvbError('OSVB_INTERNAL', `qcow2 image ${this.file} is open read-only (a backing file)`);
  }

  private checkRange(op: string, offset: number, length: number): void {
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > this.virtualSize) {
      throw new OsvbError('OSVB_INTERNAL', `qcow2 ${op} of ${length} bytes at ${offset} is outside the ${this.virtualSize}-byte disk ${this.file}`);
    }
  }

  static {
    // openBacking() (module scope) reads qcow2 backing files through the private loader.
    qcow2Backing = (file, options, depth) => {
      const r = Qcow2Image.load(file, options, true, depth);
      return typeof r === 'string' ? r : r.asBacking();
    };
  }
}

function clusterBitsOf(options: Qcow2Options): number {
  const bits = options.clusterBits ?? DEFAULT_CLUSTER_BITS;
  if (!Number.isInteger(bits) || bits < 9 || bits > 21) throw new OsvbError('OSVB_INTERNAL', `qcow2 cluster bits ${bits} not in 9..21`);
  return bits;
}

function extension(type: number, data: Buffer): Buffer {
  const b = Buffer.alloc(8 + Math.ceil(data.length / 8) * 8);
  b.writeUInt32BE(type, 0);
  b.writeUInt32BE(data.length, 4);
  data.copy(b, 8);
  return b;
}

function openBacking(file: string, format: string, options: Qcow2Options, depth: number): BackingReader | string {
  if (depth > MAX_BACKING_DEPTH) return `backing chain deeper than ${MAX_BACKING_DEPTH} at ${file}`;
  if (format === 'raw') return rawBacking(file);
  if (format === 'qcow2') {
    const r = qcow2Backing(file, options, depth);
    return typeof r === 'string' ? `backing file ${file}: ${r}` : r;
  }
  return `backing file format "${format}" is not supported (raw or qcow2)`;
}

/** Read and check a qcow2 file's header and metadata; a string says why it cannot be used. */
function parse(fd: number, file: string, options: Qcow2Options, readOnly: boolean, depth: number): State | string {
  const expectBits = clusterBitsOf(options);
  let size: number;
  try {
    size = fs.fstatSync(fd).size;
  } catch (e) {
    throw ioError('stat', file, e);
  }
  const h = Buffer.alloc(HEADER_LENGTH);
  const got = preadFully(fd, file, h, 0, HEADER_LENGTH, 0);
  if (got < 8 || h.readUInt32BE(0) !== MAGIC) return 'not a qcow2 image';
  const version = h.readUInt32BE(4);
  if (version === 2) return 'qcow2 version 2 (compat=0.10): only version 3 is updated in place (version 2 has no zero-cluster flag)';
  if (version !== 3) return `unsupported qcow2 version ${version}`;
  if (got < V3_MIN_HEADER) return 'truncated qcow2 header';

  const clusterBits = h.readUInt32BE(H_CLUSTER_BITS);
  if (clusterBits !== expectBits) {
    const shown = clusterBits >= 9 && clusterBits <= 21 ? `${2 ** clusterBits} bytes` : `cluster_bits ${clusterBits}`;
    return `cluster size ${shown}; only ${2 ** expectBits} is supported`;
  }
  const cs = 2 ** clusterBits;
  if (h.readUInt32BE(H_CRYPT) !== 0) return 'encrypted';
  const incompatHi = h.readUInt32BE(H_FEATURES);
  const incompat = h.readUInt32BE(H_FEATURES + 4);
  if (incompat & F_DIRTY) return 'dirty bit set: the image was not closed cleanly (refcounts may be wrong)';
  if (incompat & F_CORRUPT) return 'marked corrupt';
  if (incompat & F_EXTERNAL_DATA) return 'uses an external data file';
  if (incompat & F_EXTENDED_L2) return 'uses extended L2 entries (subclusters)';
  if (incompatHi !== 0 || (incompat & ~F_KNOWN) !== 0) {
    return `unknown incompatible features ${hex(incompatHi * TWO32 + ((incompat & ~F_KNOWN) >>> 0))}`;
  }
  // F_COMPRESSION_TYPE only matters for compressed clusters, which are refused below.
  const refcountOrder = h.readUInt32BE(H_REFCOUNT_ORDER);
  if (refcountOrder !== REFCOUNT_ORDER) return `refcount_order ${refcountOrder}: only 16-bit refcounts are supported`;
  const snapshots = h.readUInt32BE(H_SNAPSHOTS);
  if (snapshots !== 0) return `has ${snapshots} internal snapshot(s)`;
  const headerLength = h.readUInt32BE(H_HEADER_LENGTH);
  if (headerLength < V3_MIN_HEADER || headerLength % 8 !== 0 || headerLength > cs) return `corrupt header: header_length ${headerLength}`;

  const virtualSize = getU64(h, H_SIZE);
  const l1Size = h.readUInt32BE(H_L1_SIZE);
  const l1Offset = getU64(h, H_L1_OFFSET);
  const rcOffset = getU64(h, H_RC_OFFSET);
  const rcClusters = h.readUInt32BE(H_RC_CLUSTERS);
  const l2Entries = cs / 8;
  if (virtualSize === undefined || l1Offset === undefined || rcOffset === undefined) return 'corrupt header: offset or size past 2^53';
  if (l1Size * 8 > MAX_L1_BYTES || l1Size * l2Entries * cs < virtualSize) return `corrupt header: L1 size ${l1Size} for virtual size ${virtualSize}`;
  if (l1Offset % cs !== 0 || (l1Size > 0 && l1Offset === 0)) return `corrupt header: L1 table offset ${hex(l1Offset)}`;
  if (rcOffset % cs !== 0 || rcOffset === 0 || rcClusters === 0 || rcClusters * cs > MAX_REFCOUNT_TABLE_BYTES) {
    return `corrupt header: refcount table at ${hex(rcOffset)}, ${rcClusters} clusters`;
  }

  // Header extensions: only the backing format matters here; others are left as they are.
  const cluster0 = Buffer.alloc(cs);
  preadFully(fd, file, cluster0, 0, cs, 0);
  let backingFormat: string | undefined;
  for (let pos = headerLength; pos + 8 <= cs; ) {
    const type = cluster0.readUInt32BE(pos);
    const len = cluster0.readUInt32BE(pos + 4);
    if (type === EXT_END) break;
    if (pos + 8 + len > cs) return `corrupt header extension ${hex(type)} at ${pos}`;
    if (type === EXT_BACKING_FORMAT) backingFormat = cluster0.toString('utf8', pos + 8, pos + 8 + len);
    pos += 8 + Math.ceil(len / 8) * 8;
  }
  const backingOffset = getU64(h, H_BACKING_OFFSET);
  const backingSize = h.readUInt32BE(H_BACKING_SIZE);
  let backingName: string | undefined;
  if (backingOffset !== 0) {
    if (backingOffset === undefined || backingSize === 0 || backingSize > MAX_BACKING_NAME) return 'corrupt header: backing file name';
    const b = Buffer.alloc(backingSize);
    if (preadFully(fd, file, b, 0, backingSize, backingOffset) < backingSize) return 'corrupt header: backing file name past the end of the file';
    backingName = b.toString('utf8');
  }

  // L1 and every L2 table.
  const rcPerBlock = (cs * 8) / 2 ** REFCOUNT_ORDER;
  const l1 = new Table(Buffer.alloc(l1Size * 8), l1Offset, false);
  preadFully(fd, file, l1.buf, 0, l1.buf.length, l1Offset);
  const l2 = new Map<number, Table>();
  /** Clusters that must have refcount exactly 1 (rewritten in place) or at least 1 (never overwritten). */
  const owned: number[] = [];
  const used: number[] = [0];
  for (let c = 0; c < Math.ceil((l1Size * 8) / cs); c++) used.push(l1Offset / cs + c);
  for (let c = 0; c < rcClusters; c++) used.push(rcOffset / cs + c);
  for (let i = 0; i < l1Size; i++) {
    if ((l1.buf.readUInt32BE(i * 8) & HI_L1_RESERVED) !== 0 || (l1.buf.readUInt32BE(i * 8 + 4) & LO_L1_RESERVED) !== 0) {
      return `corrupt L1 entry ${i}`;
    }
    const off = l1.offsetAt(i);
    if (off === 0) continue;
    if (off % cs !== 0) return `corrupt L1 entry ${i}: L2 table at ${hex(off)}`;
    const t = new Table(Buffer.alloc(cs), off, false);
    preadFully(fd, file, t.buf, 0, cs, off);
    for (let j = 0; j < l2Entries; j++) {
      const hi = t.buf.readUInt32BE(j * 8);
      const lo = t.buf.readUInt32BE(j * 8 + 4);
      if (hi & HI_COMPRESSED) return 'has compressed clusters';
      if ((hi & HI_L2_RESERVED) !== 0 || (lo & LO_L2_RESERVED) !== 0) return `corrupt L2 entry ${j} of table ${i}`;
      const data = entryOffset(t.buf, j * 8);
      if (data % cs !== 0) return `corrupt L2 entry ${j} of table ${i}: cluster at ${hex(data)}`;
      if (data !== 0) owned.push(data / cs);
    }
    l2.set(i, t);
    owned.push(off / cs);
  }

  // The refcount table and every refcount block.
  const rcTable = new Table(Buffer.alloc(rcClusters * cs), rcOffset, false);
  preadFully(fd, file, rcTable.buf, 0, rcTable.buf.length, rcOffset);
  const rcBlocks = new Map<number, Table>();
  let lastUsed = -1;
  for (let i = 0; i < rcTable.buf.length / 8; i++) {
    if (rcTable.buf.readUInt32BE(i * 8 + 4) & LO_L1_RESERVED) return `corrupt refcount table entry ${i}`;
    const off = rcTable.offsetAt(i);
    if (off === 0) continue;
    if (off % cs !== 0) return `corrupt refcount table entry ${i}: block at ${hex(off)}`;
    const t = new Table(Buffer.alloc(cs), off, false);
    preadFully(fd, file, t.buf, 0, cs, off);
    rcBlocks.set(i, t);
    used.push(off / cs);
    for (let j = rcPerBlock - 1; j >= 0; j--) {
      if (t.buf.readUInt16BE(j * 2) !== 0) {
        lastUsed = Math.max(lastUsed, i * rcPerBlock + j);
        break;
      }
    }
  }
  const refcount = (c: number): number => rcBlocks.get(Math.floor(c / rcPerBlock))?.buf.readUInt16BE((c % rcPerBlock) * 2) ?? 0;
  for (const c of used) {
    if (refcount(c) === 0) return `inconsistent refcounts: metadata cluster at ${hex(c * cs)} has refcount 0`;
  }
  for (const c of owned) {
    const r = refcount(c);
    if (r !== 1) return `cluster at ${hex(c * cs)} has refcount ${r}, not 1 (shared, or inconsistent refcounts)`;
  }

  let backing: BackingReader | undefined;
  if (backingName !== undefined) {
    const resolved = resolveBacking(file, backingName);
    const format = backingFormat ?? probeFormat(resolved);
    const r = openBacking(resolved, format, options, depth + 1);
    if (typeof r === 'string') return r;
    backing = r;
  }

  return {
    fd,
    file,
    readOnly,
    clusterBits,
    virtualSize,
    l1,
    l2,
    rcTable,
    rcBlocks,
    nextFree: Math.max(Math.ceil(size / cs), lastUsed + 1),
    backing,
    features: Buffer.from(h.subarray(H_FEATURES, H_FEATURES + 24)),
  };
}

/** A backing file without a format extension: qcow2 if it starts with the magic, else raw (as QEMU probes). */
function probeFormat(file: string): string {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch {
    return 'raw'; // the raw reader reports the missing file
  }
  try {
    const b = Buffer.alloc(4);
    return preadFully(fd, file, b, 0, 4, 0) === 4 && b.readUInt32BE(0) === MAGIC ? 'qcow2' : 'raw';
  } finally {
    closeQuietly(fd);
  }
}
