/**
 * Read-ahead for full ROFS writes of many files: reader threads (two) open and read the sources
 * into shared ring buffers laid out exactly like the image's data area (each file followed by its
 * zero padding to a whole block); files go to the readers in batches, in turn, and the calling
 * thread writes the batches to the image in order and hashes what it writes. Per-file syscalls (open, read, close) are most of the cost of
 * an image of many small files; doing them on other threads overlaps them with the writes.
 *
 * The calling thread blocks (Atomics.wait) while the readers fill the rings — the writer is
 * synchronous anyway. The readers' source is sent as text (`eval`), so the same code works from
 * the engine's dist and from the bundled CLI without a separate file to find.
 */
import { Worker } from 'node:worker_threads';
import { ROFS_BLOCK } from './format.js';

/** A failure the worker met on file `index`. */
export class ReadAheadFailure extends Error {
  constructor(
    readonly index: number,
    /** 'open': cannot be opened; 'read': a read failed; 'more'/'short': size differs from the expected one. */
    readonly kind: 'open' | 'read' | 'more' | 'short',
    readonly code: string | undefined,
    readonly detail: string,
    /** Bytes actually found (kind 'short'). */
    readonly got: number,
  ) {
    super(detail);
  }
}

export interface ReadAheadSource {
  source: string;
  /** Expected size, or undefined to take the file as it reads. */
  size: number | undefined;
}

export interface ReadAheadHasher {
  h64Raw(data: Uint8Array): bigint;
  create64(): { update(data: Uint8Array): unknown; digest(): bigint };
}

export interface ReadAheadResult {
  sizes: number[];
  /** Content digests (hex xxh64), in file order, when a hasher was given. */
  digests: string[] | undefined;
  bytesWritten: number;
}

const RING_BYTES = 16 << 20;
/** Files per batch: batches go to the readers in turn, so each reader's stream is whole batches. */
const BATCH_FILES = 48;
/** The reader wakes the writer after this many new blocks (1 MiB) or at the end of a batch. */
const NOTIFY_BLOCKS = (1 << 20) / ROFS_BLOCK;
/** With no progress for this long a reader is taken for dead (it cannot report a crash to a thread that is blocked). */
const STALL_MS = 120_000;
const ERR_BYTES = 4096;

// The shared control array: slot 0 is the writer's wake-up counter, then CTRL_SLOTS per reader.
const EPOCH = 0;
const CTRL_SLOTS = 8;
const PRODUCED = 0; // blocks put in the ring (total, not modulo)
const CONSUMED = 1; // blocks written to the image
const FILES_DONE = 2; // of the reader's own files, how many have their size known and their last block in the ring
const STATE = 3; // 0 running, 1 finished, 2 failed
const ERR_LEN = 4;
const BATCHES_DONE = 5;

/* c8 ignore start */
/**
 * A reader's body. It is sent as source text: it must not use anything from outside itself.
 * `req` is the worker's CommonJS require.
 */
function readAheadWorker(req: (id: string) => unknown): void {
  const fs = req('node:fs') as typeof import('node:fs');
  const wt = req('node:worker_threads') as typeof import('node:worker_threads');
  const data = wt.workerData as {
    /** This reader's batches, in order: [sources, expected sizes (-1 unknown), global indexes]. */
    sources: string[];
    known: number[];
    global: number[];
    batchEnds: number[];
    ring: SharedArrayBuffer;
    ctrl: SharedArrayBuffer;
    base: number;
    batchEndBlocks: SharedArrayBuffer;
    sizes: SharedArrayBuffer;
    err: SharedArrayBuffer;
    errAt: number;
    notifyBlocks: number;
  };
  const BLOCK = 512;
  const base = data.base;
  const ctrl = new Int32Array(data.ctrl);
  const sizes = new Float64Array(data.sizes);
  const batchEndBlocks = new Int32Array(data.batchEndBlocks);
  const buf = Buffer.from(data.ring);
  const ringBlocks = buf.length / BLOCK;
  let produced = 0;
  let notified = 0;
  const wake = (): void => {
    notified = produced;
    Atomics.add(ctrl, 0, 1);
    Atomics.notify(ctrl, 0);
  };
  const publish = (force: boolean): void => {
    Atomics.store(ctrl, base + 0, produced);
    if (force || produced - notified >= data.notifyBlocks) wake();
  };
  const fail = (i: number, kind: string, e: unknown, got: number): void => {
    const err = e as { code?: string; message?: string } | undefined;
    const text = Buffer.from(JSON.stringify({ i, kind, code: err?.code, message: err?.message ?? String(e ?? ''), got }));
    const room = new Uint8Array(data.err, data.errAt, 4096);
    const n = Math.min(text.length, room.length);
    room.set(text.subarray(0, n));
    Atomics.store(ctrl, base + 4, n);
    Atomics.store(ctrl, base + 3, 2);
    wake();
  };
  let i = 0;
  let batch = 0;
  try {
    for (; i < data.sources.length; i++) {
      const want = data.known[i] as number;
      const g = data.global[i] as number;
      if (want === 0) {
        sizes[g] = 0;
        Atomics.store(ctrl, base + 2, i + 1);
      } else {
        let fd: number;
        try {
          fd = fs.openSync(data.sources[i] as string, 'r');
        } catch (e) {
          fail(g, 'open', e, 0);
          return;
        }
        try {
          let at = 0;
          for (;;) {
            let free: number;
            for (;;) {
              const consumed = Atomics.load(ctrl, base + 1);
              free = (ringBlocks - (produced - consumed)) * BLOCK;
              if (free > 0) break;
              publish(true);
              Atomics.wait(ctrl, base + 1, consumed);
            }
            const off = (produced % ringBlocks) * BLOCK;
            const contig = Math.min(free, buf.length - off);
            let n: number;
            try {
              n = fs.readSync(fd, buf, off, contig, at);
            } catch (e) {
              fail(g, 'read', e, 0);
              return;
            }
            if (want >= 0 && at + n > want) {
              fail(g, 'more', undefined, 0);
              return;
            }
            if (n === contig) {
              // Filled all the room there was: the file may go on.
              at += n;
              produced += contig / BLOCK;
              publish(false);
              continue;
            }
            // A short read: the end of a regular file.
            const size = at + n;
            if (want >= 0 && size !== want) {
              fail(g, 'short', undefined, size);
              return;
            }
            const blocks = Math.ceil(n / BLOCK);
            buf.fill(0, off + n, off + blocks * BLOCK);
            sizes[g] = size;
            Atomics.store(ctrl, base + 2, i + 1);
            produced += blocks;
            publish(false);
            break;
          }
        } finally {
          fs.closeSync(fd);
        }
      }
      if (i + 1 === data.batchEnds[batch]) {
        batchEndBlocks[batch] = produced;
        batch++;
        Atomics.store(ctrl, base + 0, produced);
        Atomics.store(ctrl, base + 5, batch);
        wake();
      }
    }
    Atomics.store(ctrl, base + 0, produced);
    Atomics.store(ctrl, base + 3, 1);
    wake();
  } catch (e) {
    fail((data.global[i] as number | undefined) ?? 0, 'read', e, 0);
  }
}
/* c8 ignore stop */

const WORKER_SOURCE = `(${readAheadWorker.toString()})(require);`;

function hex(n: bigint): string {
  return n.toString(16).padStart(16, '0');
}

/** The writer's view of one reader. */
interface Reader {
  worker: Worker;
  base: number;
  ring: Buffer;
  batchEndBlocks: Int32Array;
  /** Global indexes of the reader's files, in its stream order. */
  global: number[];
  consumed: number;
  // Hashing: local file `fi` starts at stream block `fiStart`; `fiHashed` of its bytes seen.
  fi: number;
  fiStart: number;
  fiHashed: number;
  state: ReturnType<ReadAheadHasher['create64']> | undefined;
}

/**
 * Copy `files` (in order, each padded to a whole block) to `fd` starting at byte `start`.
 * Throws ReadAheadFailure for a source that cannot be read or does not have its expected size;
 * other errors (writes) are thrown as they are.
 */
export function copyWithReadAhead(
  files: readonly ReadAheadSource[],
  fd: number,
  start: number,
  hasher: ReadAheadHasher | undefined,
  writeSync: (fd: number, buf: Buffer, off: number, len: number, pos: number) => number,
  readerCount = 2,
): ReadAheadResult {
  const n = files.length;
  const batches = Math.ceil(n / BATCH_FILES);
  const readersUsed = Math.max(1, Math.min(readerCount, batches));
  const ctrlSab = new SharedArrayBuffer((1 + readersUsed * CTRL_SLOTS) * 4);
  const ctrl = new Int32Array(ctrlSab);
  const sizesSab = new SharedArrayBuffer(Math.max(1, n) * 8);
  const sizes = new Float64Array(sizesSab);
  const errSab = new SharedArrayBuffer(readersUsed * ERR_BYTES);
  const readers: Reader[] = [];
  for (let w = 0; w < readersUsed; w++) {
    const sources: string[] = [];
    const known: number[] = [];
    const global: number[] = [];
    const batchEnds: number[] = [];
    for (let b = w; b < batches; b += readersUsed) {
      for (let i = b * BATCH_FILES; i < Math.min(n, (b + 1) * BATCH_FILES); i++) {
        const f = files[i] as ReadAheadSource;
        sources.push(f.source);
        known.push(f.size === undefined ? -1 : f.size);
        global.push(i);
      }
      batchEnds.push(sources.length);
    }
    const ringSab = new SharedArrayBuffer(RING_BYTES);
    const batchEndSab = new SharedArrayBuffer(Math.max(1, batchEnds.length) * 4);
    const base = 1 + w * CTRL_SLOTS;
    const worker = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: {
        sources,
        known,
        global,
        batchEnds,
        ring: ringSab,
        ctrl: ctrlSab,
        base,
        batchEndBlocks: batchEndSab,
        sizes: sizesSab,
        err: errSab,
        errAt: w * ERR_BYTES,
        notifyBlocks: NOTIFY_BLOCKS,
      },
    });
    // A reader ends by itself; its handle must not keep the process alive.
    worker.unref();
    readers.push({ worker, base, ring: Buffer.from(ringSab), batchEndBlocks: new Int32Array(batchEndSab), global, consumed: 0, fi: 0, fiStart: 0, fiHashed: 0, state: undefined });
  }
  const digests: Array<string | undefined> | undefined = hasher ? new Array<string | undefined>(n) : undefined;

  /** Call `fn` on the ring pieces holding a reader's stream bytes [from, to). */
  const pieces = (from: number, to: number, fn: (off: number, len: number) => void): void => {
    let s = from;
    while (s < to) {
      const off = s % RING_BYTES;
      const len = Math.min(to - s, RING_BYTES - off);
      fn(off, len);
      s += len;
    }
  };

  /** Hash the reader's files as far as its stream is written (`upTo` blocks). */
  const hashUpTo = (r: Reader, upTo: number): void => {
    if (!hasher || !digests) return;
    const ring = r.ring;
    for (;;) {
      if (r.fi >= r.global.length) return;
      const done = r.fi < Atomics.load(ctrl, r.base + FILES_DONE);
      const g = r.global[r.fi] as number;
      const size = done ? (sizes[g] as number) : Infinity;
      const avail = Math.min(size, (upTo - r.fiStart) * ROFS_BLOCK);
      if (avail > r.fiHashed) {
        const from = r.fiStart * ROFS_BLOCK + r.fiHashed;
        const off = from % RING_BYTES;
        if (r.fiHashed === 0 && avail === size && off + size <= RING_BYTES) {
          digests[g] = hex(hasher.h64Raw(ring.subarray(off, off + size)));
          r.fi++;
          r.fiStart += Math.ceil(size / ROFS_BLOCK);
          continue;
        }
        const st = (r.state ??= hasher.create64());
        pieces(from, r.fiStart * ROFS_BLOCK + avail, (o, len) => st.update(ring.subarray(o, o + len)));
        r.fiHashed = avail;
      }
      if (!done || r.fiHashed !== size) return;
      digests[g] = hex((r.state ?? hasher.create64()).digest());
      r.state = undefined;
      r.fi++;
      r.fiStart += Math.ceil(size / ROFS_BLOCK);
      r.fiHashed = 0;
    }
  };

  const failure = (w: number): ReadAheadFailure => {
    const r = readers[w] as Reader;
    const len = Atomics.load(ctrl, r.base + ERR_LEN);
    const text = Buffer.from(new Uint8Array(errSab, w * ERR_BYTES, len)).toString('utf8');
    try {
      const e = JSON.parse(text) as { i: number; kind: ReadAheadFailure['kind']; code?: string; message: string; got: number };
      return new ReadAheadFailure(e.i, e.kind, e.code, e.message, e.got);
    } catch {
      return new ReadAheadFailure(0, 'read', undefined, text, 0);
    }
  };

  let pos = start;
  try {
    let lastProgress = Date.now();
    // Batches in image order: batch j is the reader j % readers' (j / readers)-th.
    for (let j = 0; j < batches; ) {
      const w = j % readersUsed;
      const k = Math.floor(j / readersUsed);
      const r = readers[w] as Reader;
      const epoch = Atomics.load(ctrl, EPOCH);
      const batchDone = Atomics.load(ctrl, r.base + BATCHES_DONE) > k;
      const end = batchDone ? (r.batchEndBlocks[k] as number) : Atomics.load(ctrl, r.base + PRODUCED);
      if (end > r.consumed) {
        pieces(r.consumed * ROFS_BLOCK, end * ROFS_BLOCK, (off, len) => {
          let o = 0;
          while (o < len) o += writeSync(fd, r.ring, off + o, len - o, pos + o);
          pos += len;
        });
        hashUpTo(r, end);
        r.consumed = end;
        Atomics.store(ctrl, r.base + CONSUMED, end);
        Atomics.notify(ctrl, r.base + CONSUMED);
        lastProgress = Date.now();
        continue;
      }
      if (batchDone) {
        j++;
        continue;
      }
      if (Atomics.load(ctrl, r.base + STATE) === 2) throw failure(w);
      if (Atomics.wait(ctrl, EPOCH, epoch, 1000) === 'timed-out' && Date.now() - lastProgress > STALL_MS) {
        throw new Error(`the read-ahead thread made no progress for ${STALL_MS / 1000} s`);
      }
    }
    for (const r of readers) hashUpTo(r, r.consumed);
  } finally {
    for (const r of readers) void r.worker.terminate();
  }
  return { sizes: Array.from(sizes.subarray(0, n)), digests: digests as string[] | undefined, bytesWritten: pos - start };
}
