/**
 * The kernel's bootfs blob (spec §9), byte-identical to OSv's `scripts/mkbootfs.py`:
 *
 *   N records of 128 bytes (`QQb111s`, little-endian: size, offset, type, name), one all-zero
 *   record, then the data of every non-directory entry in order, unpadded.
 *
 * Entry list: parse → `-D` defines (before expansion) → `/**` and `/&/` → unsymlink → drop
 * guests ending in `-stripped.so` → strip `.so` (into the cache, see ../strip.ts).
 *
 * Deliberate differences from mkbootfs (all are cases where mkbootfs crashes or writes a blob
 * that OSv's reader misreads):
 * - a missing host or a dangling link is an OsvbError with the manifest file and line, and
 *   nothing is written (mkbootfs leaves a partial blob);
 * - a name longer than 110 bytes (after the `/` appended to directories) is rejected
 *   (mkbootfs truncates it silently to 111 bytes, without the NUL the reader relies on);
 * - an empty guest name is rejected (the reader stops at the first empty name, silently
 *   dropping it and every later entry);
 * - in the depends file a stripped `.so` is listed under its own host path, not under
 *   `<host>-stripped.so`: osvb strips into its cache, so the original is the file to depend on.
 * Outputs are written to temporary names and renamed into place only when complete.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { OsvbError } from '../../errors/index.js';
import { pyJoin, tempNameFor, type WalkOrder } from '../../fsutil/index.js';
import { applyDefines, expandEntry, parseManifest, unsymlink } from '../../manifest/index.js';
import { contentPathFor, type StripContext } from '../strip.js';

export const BOOTFS_RECORD_SIZE = 128;
/** Bytes of a name that fit with the terminating NUL the reader needs (111-byte field). */
export const BOOTFS_MAX_NAME = 110;

export interface BootfsOptions {
  /** Output path as given (`-o`): relative to `cwd` for writing, verbatim in the depends file. */
  out: string;
  /** Depends file (`-d`), relative to `cwd`; none when absent. */
  depends?: string;
  /** BUILD: relative hosts (and `out`/`depends`) resolve against it. */
  cwd: string;
  defines?: Readonly<Record<string, string>>;
  walkOrder: WalkOrder;
  /** How `.so` files are stripped (its `cwd` defaults to `cwd` above). */
  strip: Omit<StripContext, 'cwd'> & { cwd?: string };
}

export interface BootfsRecord {
  /** Guest name as stored (directories end with `/`). */
  name: string;
  /** 0 = file or directory, 1 = guest symlink (`->`). */
  type: 0 | 1;
  size: number;
  offset: number;
  kind: 'file' | 'dir' | 'link';
  /** Host string for the depends file. */
  host: string;
  /** File whose bytes are stored (kind 'file'). */
  source?: string;
  /** Link target (kind 'link'). */
  target?: string;
  line: number;
}

export interface BootfsPlan {
  records: BootfsRecord[];
  /** Total blob size in bytes. */
  size: number;
}

function onDisk(cwd: string, p: string): string {
  return p === '' || p.startsWith('/') ? p : pyJoin(cwd, p);
}

/** The entry list and layout, without writing anything. Throws on every case mkbootfs crashes on. */
export function planBootfs(manifestText: string, file: string, opts: Omit<BootfsOptions, 'out' | 'depends'>): BootfsPlan {
  const defines = opts.defines ?? {};
  const ctx: StripContext = { ...opts.strip, cwd: opts.strip.cwd ?? opts.cwd };
  const pairs: Array<{ guest: string; host: string; line: number }> = [];
  for (const raw of parseManifest(manifestText, file)) {
    const where = { file, line: raw.line };
    const defined = { ...raw, host: applyDefines(raw.host, defines, where) };
    for (const e of expandEntry(defined, opts.cwd, opts.walkOrder)) {
      pairs.push({ guest: e.guest, host: unsymlink(e.host, opts.cwd, where), line: e.line });
    }
  }
  const kept = pairs.filter((p) => !p.guest.endsWith('-stripped.so'));

  const records: BootfsRecord[] = [];
  let pos = (kept.length + 1) * BOOTFS_RECORD_SIZE;
  for (const { guest, host, line } of kept) {
    const where = { file, line };
    let rec: BootfsRecord;
    if (host.startsWith('->')) {
      const target = host.slice(2);
      const size = Buffer.byteLength(target, 'utf8') + 1;
      rec = { name: guest, type: 1, size, offset: pos, kind: 'link', host, target, line };
    } else {
      const source = contentPathFor(host, ctx);
      let st: fs.Stats;
      try {
        st = fs.statSync(source);
      } catch (e) {
        let dangling = false;
        try {
          dangling = fs.lstatSync(onDisk(opts.cwd, host)).isSymbolicLink();
        } catch {
          /* missing */
        }
        throw new OsvbError(
          'OSVB_HOST_MISSING',
          dangling
            ? `host path "${host}" for guest "${guest}" is a dangling symbolic link (-> ${fs.readlinkSync(onDisk(opts.cwd, host))})`
            : `host path "${host}" for guest "${guest}" does not exist`,
          {
            location: where,
            cause: e,
            hint: `relative host paths are relative to the build directory ${opts.cwd}; mkbootfs.py crashes here and leaves a partial blob`,
          },
        );
      }
      if (st.isDirectory()) {
        rec = { name: guest.endsWith('/') ? guest : guest + '/', type: 0, size: 0, offset: pos, kind: 'dir', host, line };
      } else {
        rec = { name: guest, type: 0, size: st.size, offset: pos, kind: 'file', host, source, line };
      }
    }
    const nameBytes = Buffer.byteLength(rec.name, 'utf8');
    if (nameBytes === 0) {
      throw new OsvbError('OSVB_BOOTFS_NAME', `empty guest path for host "${host}"`, {
        location: where,
        hint: "OSv's bootfs reader stops at the first empty name, so this entry and all after it would be lost",
      });
    }
    if (nameBytes > BOOTFS_MAX_NAME) {
      throw new OsvbError('OSVB_BOOTFS_NAME', `guest path "${rec.name}" is ${nameBytes} bytes; bootfs names are limited to ${BOOTFS_MAX_NAME} bytes`, {
        location: where,
        hint: 'mkbootfs.py would truncate the name silently (and drop its terminating NUL); use a shorter guest path',
      });
    }
    records.push(rec);
    pos += rec.size;
  }
  return { records, size: pos };
}

/** The 128-byte record table plus the all-zero terminator. */
export function encodeBootfsHeader(records: readonly BootfsRecord[]): Buffer {
  const buf = Buffer.alloc((records.length + 1) * BOOTFS_RECORD_SIZE);
  records.forEach((r, i) => {
    const at = i * BOOTFS_RECORD_SIZE;
    buf.writeBigUInt64LE(BigInt(r.size), at);
    buf.writeBigUInt64LE(BigInt(r.offset), at + 8);
    buf.writeInt8(r.type, at + 16);
    Buffer.from(r.name, 'utf8').copy(buf, at + 17, 0, 111);
  });
  return buf;
}

/** mkbootfs's depends text: `OUT: \`, one `\t<host> \` line per entry, then two newlines. */
export function bootfsDependsText(out: string, records: readonly BootfsRecord[]): string {
  return `${out}: \\\n` + records.map((r) => `\t${r.host} \\\n`).join('') + '\n\n';
}

const CHUNK = 1 << 20;

function copyInto(fd: number, source: string, expected: number, buf: Buffer, where: { file: string; line: number }): void {
  const src = fs.openSync(source, 'r');
  let total = 0;
  try {
    for (;;) {
      const n = fs.readSync(src, buf, 0, buf.length, null);
      if (n <= 0) break;
      total += n;
      if (total > expected) break;
      fs.writeSync(fd, buf, 0, n);
    }
  } finally {
    fs.closeSync(src);
  }
  if (total !== expected) {
    throw new OsvbError('OSVB_IO', `${source} changed size while the bootfs was written (expected ${expected} bytes)`, { location: where });
  }
}

export interface BootfsResult extends BootfsPlan {
  /** Absolute path of the blob written. */
  output: string;
  dependsFile?: string;
}

/** Write the blob (and the depends file): complete files renamed into place, or nothing. */
export function writeBootfs(manifestText: string, file: string, opts: BootfsOptions): BootfsResult {
  const plan = planBootfs(manifestText, file, opts);
  const output = path.resolve(opts.cwd, opts.out);
  const dependsFile = opts.depends === undefined ? undefined : path.resolve(opts.cwd, opts.depends);
  const tmpOut = tempNameFor(output);
  const tmpDeps = dependsFile === undefined ? undefined : tempNameFor(dependsFile);
  try {
    const fd = fs.openSync(tmpOut, 'w', 0o644);
    try {
      fs.writeSync(fd, encodeBootfsHeader(plan.records));
      const buf = Buffer.allocUnsafe(CHUNK);
      for (const r of plan.records) {
        if (r.kind === 'link') fs.writeSync(fd, Buffer.from((r.target as string) + '\0', 'utf8'));
        else if (r.kind === 'file') copyInto(fd, r.source as string, r.size, buf, { file, line: r.line });
      }
    } finally {
      fs.closeSync(fd);
    }
    if (tmpDeps !== undefined) fs.writeFileSync(tmpDeps, bootfsDependsText(opts.out, plan.records));
    fs.renameSync(tmpOut, output);
    if (tmpDeps !== undefined) fs.renameSync(tmpDeps, dependsFile as string);
  } catch (e) {
    fs.rmSync(tmpOut, { force: true });
    if (tmpDeps !== undefined) fs.rmSync(tmpDeps, { force: true });
    throw e;
  }
  return { ...plan, output, ...(dependsFile !== undefined ? { dependsFile } : {}) };
}
