/**
 * The local cache: a content-addressed blob store (CAS) and an action cache (AC: key → record),
 * under one directory (default `<base>/.osvb/cache`). Every write is a temp file renamed into
 * place, so two builds can share the cache and a killed build leaves no torn entry; every blob
 * is verified against its digest when read, and a corrupt one is dropped.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { uniqueSuffix } from '../fsutil/index.js';
import { digestBytes, digestFile, type Digest } from '../hash/index.js';

export interface CacheEntryStats {
  blobs: number;
  blobBytes: number;
  actions: number;
  actionBytes: number;
  other: number;
  otherBytes: number;
}

export class CorruptEntryError extends Error {
  constructor(
    readonly kind: 'blob' | 'action',
    readonly id: string,
  ) {
    super(`corrupt ${kind} ${id} in the cache`);
  }
}

function tmpName(dir: string): string {
  return path.join(dir, `.tmp-${uniqueSuffix()}`);
}

export class LocalCache {
  readonly casDir: string;
  readonly acDir: string;

  /** Directories this instance made or found: one mkdir per directory, not per write. */
  private readonly dirs = new Set<string>();

  constructor(readonly root: string) {
    this.casDir = path.join(root, 'cas');
    this.acDir = path.join(root, 'ac');
  }

  private ensureDir(dir: string): void {
    if (this.dirs.has(dir)) return;
    fs.mkdirSync(dir, { recursive: true });
    this.dirs.add(dir);
  }

  /** Write a file into `dir` atomically; a directory removed meanwhile (cache clean) is made again. */
  private writeInto(dir: string, target: string, data: string | Uint8Array, mode?: number): void {
    for (let attempt = 0; ; attempt++) {
      this.ensureDir(dir);
      const tmp = tmpName(dir);
      try {
        fs.writeFileSync(tmp, data, mode === undefined ? {} : { mode });
        fs.renameSync(tmp, target);
        return;
      } catch (e) {
        fs.rmSync(tmp, { force: true });
        if ((e as NodeJS.ErrnoException).code === 'ENOENT' && attempt === 0) {
          this.dirs.delete(dir);
          continue;
        }
        throw e;
      }
    }
  }

  private blobPath(d: Digest): string {
    return path.join(this.casDir, d.slice(0, 2), d);
  }

  private actionPath(namespace: string, key: string): string {
    return path.join(this.acDir, namespace, key.slice(0, 2), `${key}.json`);
  }

  hasBlob(d: Digest): boolean {
    return fs.existsSync(this.blobPath(d));
  }

  /** True when a stored blob exists and matches its digest (a corrupt one is removed). */
  private hasGoodBlob(d: Digest): boolean {
    const target = this.blobPath(d);
    if (!fs.existsSync(target)) return false;
    try {
      if (digestFile(target) === d) return true;
    } catch {
      /* unreadable: replace it */
    }
    fs.rmSync(target, { force: true });
    return false;
  }

  /** Store a file's content under its (already computed) digest. Copies, never links. */
  putBlobFromFile(d: Digest, file: string): void {
    const target = this.blobPath(d);
    if (this.hasGoodBlob(d)) return;
    this.ensureDir(path.dirname(target));
    const tmp = tmpName(path.dirname(target));
    try {
      const before = fs.statSync(file, { bigint: true });
      fs.copyFileSync(file, tmp, fs.constants.COPYFILE_FICLONE);
      // The digest was computed from this file; if it changed meanwhile (its stat moved), the
      // copy is hashed again and stored only when it still matches.
      const after = fs.statSync(file, { bigint: true });
      const same = before.size === after.size && before.mtimeNs === after.mtimeNs && before.ino === after.ino;
      if (!same && digestFile(tmp) !== d) {
        fs.rmSync(tmp, { force: true });
        throw new Error(`${file} changed while it was being stored`);
      }
      fs.chmodSync(tmp, 0o444);
      fs.renameSync(tmp, target);
    } catch (e) {
      fs.rmSync(tmp, { force: true });
      throw e;
    }
  }

  putBlobBytes(data: Uint8Array): Digest {
    const d = digestBytes(data);
    const target = this.blobPath(d);
    if (this.hasGoodBlob(d)) return d;
    this.writeInto(path.dirname(target), target, data, 0o444);
    return d;
  }

  /** Read a blob and verify it; a corrupt blob is deleted and reported. */
  readBlob(d: Digest): Buffer | undefined {
    let data: Buffer;
    try {
      data = fs.readFileSync(this.blobPath(d));
    } catch {
      return undefined;
    }
    if (digestBytes(data) !== d) {
      fs.rmSync(this.blobPath(d), { force: true });
      throw new CorruptEntryError('blob', d);
    }
    return data;
  }

  /**
   * Copy a blob to `dest` (temp + rename), verifying the copy's digest. Returns false when the
   * blob is missing; throws CorruptEntryError (after deleting it) when it does not verify.
   */
  restoreBlob(d: Digest, dest: string, mode: number): boolean {
    const src = this.blobPath(d);
    if (!fs.existsSync(src)) return false;
    fs.mkdirSync(path.dirname(dest), { recursive: true });
    const tmp = tmpName(path.dirname(dest));
    try {
      fs.copyFileSync(src, tmp, fs.constants.COPYFILE_FICLONE);
      if (digestFile(tmp) !== d) {
        fs.rmSync(src, { force: true });
        throw new CorruptEntryError('blob', d);
      }
      fs.chmodSync(tmp, mode & 0o7777);
      fs.renameSync(tmp, dest);
      return true;
    } catch (e) {
      fs.rmSync(tmp, { force: true });
      throw e;
    }
  }

  /** Touch a blob (for LRU garbage collection). */
  touch(d: Digest): void {
    const now = new Date();
    try {
      fs.utimesSync(this.blobPath(d), now, now);
    } catch {
      /* gone: the next restore reports it */
    }
  }

  hasAction(namespace: string, key: string): boolean {
    return fs.existsSync(this.actionPath(namespace, key));
  }

  getAction<T>(namespace: string, key: string): T | undefined {
    const p = this.actionPath(namespace, key);
    let text: string;
    let fd: number;
    try {
      fd = fs.openSync(p, 'r');
    } catch {
      return undefined;
    }
    try {
      text = fs.readFileSync(fd, 'utf8');
      // Mark it used for LRU garbage collection, at most once an hour (no write per lookup).
      const st = fs.fstatSync(fd);
      if (Date.now() - st.mtimeMs > 3_600_000) {
        const now = new Date();
        fs.futimesSync(fd, now, now);
      }
    } finally {
      fs.closeSync(fd);
    }
    try {
      const rec = JSON.parse(text) as { key: string; value: T };
      if (rec.key !== key) throw new Error('key mismatch');
      return rec.value;
    } catch {
      fs.rmSync(p, { force: true });
      throw new CorruptEntryError('action', key);
    }
  }

  putAction(namespace: string, key: string, value: unknown): void {
    const p = this.actionPath(namespace, key);
    this.writeInto(path.dirname(p), p, JSON.stringify({ key, value }));
  }

  deleteAction(namespace: string, key: string): void {
    fs.rmSync(this.actionPath(namespace, key), { force: true });
  }

  private *files(dir: string): Generator<{ path: string; size: number; mtimeMs: number }> {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) yield* this.files(p);
      else {
        try {
          const st = fs.statSync(p);
          yield { path: p, size: st.size, mtimeMs: st.mtimeMs };
        } catch {
          /* removed meanwhile */
        }
      }
    }
  }

  stats(): CacheEntryStats {
    const s: CacheEntryStats = { blobs: 0, blobBytes: 0, actions: 0, actionBytes: 0, other: 0, otherBytes: 0 };
    for (const f of this.files(this.casDir)) {
      s.blobs++;
      s.blobBytes += f.size;
    }
    for (const f of this.files(this.acDir)) {
      s.actions++;
      s.actionBytes += f.size;
    }
    return s;
  }

  /** Remove least recently used entries until the cache is at most maxBytes. */
  gc(maxBytes: number): { removed: number; freedBytes: number; sizeBytes: number } {
    const all = [...this.files(this.casDir), ...this.files(this.acDir)].sort((a, b) => a.mtimeMs - b.mtimeMs);
    let total = all.reduce((n, f) => n + f.size, 0);
    let removed = 0;
    let freed = 0;
    for (const f of all) {
      if (total <= maxBytes) break;
      fs.rmSync(f.path, { force: true });
      total -= f.size;
      freed += f.size;
      removed++;
    }
    return { removed, freedBytes: freed, sizeBytes: total };
  }

  clean(): void {
    fs.rmSync(this.root, { recursive: true, force: true });
  }

  /** Check every blob and action record; corrupt ones are removed. */
  verify(): { blobs: number; actions: number; corrupt: string[] } {
    const corrupt: string[] = [];
    let blobs = 0;
    let actions = 0;
    for (const f of this.files(this.casDir)) {
      const name = path.basename(f.path);
      if (name.startsWith('.tmp-')) continue;
      blobs++;
      if (digestFile(f.path) !== name) {
        corrupt.push(f.path);
        fs.rmSync(f.path, { force: true });
      }
    }
    for (const f of this.files(this.acDir)) {
      if (path.basename(f.path).startsWith('.tmp-')) continue;
      actions++;
      try {
        const rec = JSON.parse(fs.readFileSync(f.path, 'utf8')) as { key?: unknown };
        if (`${String(rec.key)}.json` !== path.basename(f.path)) throw new Error('key mismatch');
      } catch {
        corrupt.push(f.path);
        fs.rmSync(f.path, { force: true });
      }
    }
    return { blobs, actions, corrupt };
  }
}
