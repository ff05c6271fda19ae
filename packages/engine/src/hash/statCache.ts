/**
 * Stat cache: path → (size, mtime ns, inode, digest), persisted, so an unchanged file costs one
 * `stat` and never a read. A file modified within the last two seconds before the cache is
 * saved is not trusted later (the "racy" case git's index also guards against: a second
 * write in the same timestamp tick would go unnoticed).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeFileAtomic } from '../fsutil/index.js';
import { digestFile, type Digest } from './digest.js';

interface Entry {
  s: number;
  m: string;
  i: number;
  d: Digest;
}

const RACY_NS = 2_000_000_000n;
const VERSION = 1;

export interface FileSignature {
  size: number;
  mtimeNs: bigint;
  ino: number;
}

export function signatureOf(st: fs.BigIntStats): FileSignature {
  return { size: Number(st.size), mtimeNs: st.mtimeNs, ino: Number(st.ino) };
}

export class StatCache {
  private entries = new Map<string, Entry>();
  private dirty = false;
  hashed = 0;
  hits = 0;

  constructor(private readonly file: string | undefined) {
    if (!file) return;
    try {
      const data = JSON.parse(fs.readFileSync(file, 'utf8')) as { v: number; e: Record<string, Entry> };
      if (data.v === VERSION) this.entries = new Map(Object.entries(data.e));
    } catch {
      /* missing or unreadable: start empty (it is only a cache) */
    }
  }

  /** Digest of a regular file's content, from the cache when its stat is unchanged. */
  digest(file: string, st?: fs.BigIntStats): Digest {
    const abs = path.resolve(file);
    const s = st ?? fs.statSync(abs, { bigint: true });
    const e = this.entries.get(abs);
    const m = s.mtimeNs.toString();
    if (e && e.s === Number(s.size) && e.m === m && e.i === Number(s.ino)) {
      this.hits++;
      return e.d;
    }
    const d = digestFile(abs);
    this.hashed++;
    this.entries.set(abs, { s: Number(s.size), m, i: Number(s.ino), d });
    this.dirty = true;
    return d;
  }

  /** Forget a path (e.g. after writing it). */
  forget(file: string): void {
    if (this.entries.delete(path.resolve(file))) this.dirty = true;
  }

  save(): void {
    if (!this.file || !this.dirty) return;
    const now = BigInt(Date.now()) * 1_000_000n;
    const out: Record<string, Entry> = {};
    for (const [k, e] of this.entries) {
      if (BigInt(e.m) >= now - RACY_NS) continue;
      out[k] = e;
    }
    fs.mkdirSync(path.dirname(this.file), { recursive: true });
    writeFileAtomic(this.file, JSON.stringify({ v: VERSION, e: out }));
    this.dirty = false;
  }
}
