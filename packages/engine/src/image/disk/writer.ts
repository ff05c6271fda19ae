/**
 * `usr.img` as scripts/build assembles it — loader.img at byte 0 with partition 2 set and the
 * command line at byte 512, rofs.img at the 2 MiB-aligned end of the kernel, the rest zeros up
 * to fs_size — written as qcow2 (scripts/build's `qemu-img convert -O qcow2`) or raw (`usr.raw`).
 *
 * Incremental: a record beside the image (`<image>.osvb-disk.json`) says what the image holds
 * (the boot image's digest, the patched first sectors' digest, rofs.img's signature when it
 * was copied, the image file's own signature). The next write changes only what differs: the
 * first sectors when the command line or the partition changed, and in the ROFS partition only
 * the byte ranges this build's ROFS update wrote (`RofsWriteStats.changed`), or, when rofs.img
 * changed some other way, the whole partition. Nothing changed: nothing is written and the image
 * keeps its mtime. Anything the record cannot vouch for (another boot image, another size, an
 * image touched by something else) is a full write to a temporary file renamed into place.
 * The record is removed before an in-place change and written after it, so a run that dies
 * half-way leaves no record and the next run writes the image anew.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { OsvbError } from '../../errors/index.js';
import { tempNameFor, writeFileAtomic } from '../../fsutil/index.js';
import { digestBytes, digestFile } from '../../hash/index.js';
import { checkLoader, cmdlinePatch, partitionEntry, type BytePatch } from './mbr.js';
import { planDisk, type DiskFs, type DiskPlan } from './plan.js';
import { Qcow2Image } from './qcow2.js';
import { RawDisk, type DiskTarget } from './raw.js';

export type DiskFormat = 'qcow2' | 'raw';

/** The first bytes of the disk, where every patch lands (the command line area ends at 32 KiB). */
const HEAD_BYTES = 64 * 1024;
const RECORD_VERSION = 1;

export interface DiskWriteInput {
  buildPath: string;
  fs: DiskFs;
  /** BUILD/loader.img. */
  loaderImg: string;
  /** `--create-disk`: the kernel-less boot sector image (OSv's scripts/disk.bin). */
  diskBin?: string;
  /** BUILD/rofs.img for the ROFS file systems. */
  rofsImg?: string;
  /**
   * What this build's ROFS write did: rofs.img's signature before it (fileSignature), and the
   * ranges it wrote in place (undefined: a full write, or unknown).
   */
  rofsUpdate?: { before: string | undefined; changed: ReadonlyArray<readonly [number, number]> | undefined };
  /** The final command line (BUILD/cmdline after scripts/build's `--rootfs=` prefix). */
  cmdline: string;
  fsSize: number;
  createDisk: boolean;
  format: DiskFormat;
  /** A file's content digest (the build's stat cache); default: read and hash it. */
  digest?: (file: string) => string;
}

export interface DiskWriteResult {
  file: string;
  plan: DiskPlan;
  /** 'full': written anew; 'in-place': changed where it is; 'unchanged': nothing to write. */
  mode: 'full' | 'in-place' | 'unchanged';
  bytesWritten: number;
  /** Why a full write was needed. */
  reason?: string;
  durationMs: number;
}

interface DiskRecord {
  v: number;
  format: DiskFormat;
  virtualSize: number;
  partitionOffset: number;
  bare: string;
  head: string;
  /** rofs.img's signature when the partition was last brought up to date with it; null: no ROFS. */
  rofs: string | null;
  rofsSize: number;
  image: string;
}

/** size, mtime, ctime and inode: any write through the file system changes one of them. */
export function fileSignature(file: string): string | undefined {
  try {
    const st = fs.statSync(file, { bigint: true });
    return `${st.size}:${st.mtimeNs}:${st.ctimeNs}:${st.ino}`;
  } catch {
    return undefined;
  }
}

export function diskImagePath(buildPath: string, name: 'usr' | 'disk', format: DiskFormat): string {
  return path.join(buildPath, format === 'raw' ? `${name}.raw` : `${name}.img`);
}

export function diskRecordPath(image: string): string {
  return `${image}.osvb-disk.json`;
}

function readHead(file: string, size: number): Buffer {
  const head = Buffer.alloc(Math.min(size, HEAD_BYTES));
  const fd = fs.openSync(file, 'r');
  try {
    fs.readSync(fd, head, 0, head.length, 0);
  } finally {
    fs.closeSync(fd);
  }
  return head;
}

function sizeOf(file: string, what: string, hint: string): number {
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new OsvbError(code === 'ENOENT' ? 'OSVB_KERNEL_MISSING' : 'OSVB_IO', `${what} ${file} ${code === 'ENOENT' ? 'does not exist' : `cannot be read (${code})`}`, { hint });
  }
  if (!st.isFile()) throw new OsvbError('OSVB_KERNEL_INVALID', `${what} ${file} is not a regular file`, { hint });
  return st.size;
}

/** loader.img's size and first sectors, after checking it is a whole loader (mbr.ts checkLoader). */
export function readCheckedLoader(file: string): { size: number; head: Buffer } {
  const size = sizeOf(file, 'the kernel image', 'build the kernel, or pass --kernel DIR|loader.img');
  const head = readHead(file, size);
  checkLoader(head, size, file);
  return { size, head };
}

function loadRecord(file: string): DiskRecord | undefined {
  try {
    const r = JSON.parse(fs.readFileSync(file, 'utf8')) as DiskRecord;
    return r && r.v === RECORD_VERSION ? r : undefined;
  } catch {
    return undefined;
  }
}

function openTarget(format: DiskFormat, file: string, virtualSize: number): DiskTarget | string {
  let t: DiskTarget | string;
  try {
    t = format === 'qcow2' ? Qcow2Image.open(file) : RawDisk.open(file, virtualSize);
  } catch (e) {
    // Not openable for update (a read-only file, …): written anew, which names the problem if it persists.
    return e instanceof OsvbError ? e.message : String(e);
  }
  if (typeof t === 'string') return t;
  if (format === 'qcow2' && (t as Qcow2Image).virtualSize !== virtualSize) {
    t.close();
    return 'its virtual size is not the disk size';
  }
  return t;
}

function createTarget(format: DiskFormat, file: string, virtualSize: number): DiskTarget {
  return format === 'qcow2' ? Qcow2Image.create(file, virtualSize) : RawDisk.create(file, virtualSize);
}

export function writeDiskImage(input: DiskWriteInput): DiskWriteResult {
  const t0 = performance.now();
  const { size: loaderSize, head: loaderHead } = readCheckedLoader(input.loaderImg);
  const bare = input.createDisk ? input.diskBin : input.loaderImg;
  if (!bare) throw new OsvbError('OSVB_KERNEL_MISSING', '--create-disk needs OSv\'s scripts/disk.bin', { hint: 'run osvb in an OSv source tree' });
  const bareSize = bare === input.loaderImg ? loaderSize : sizeOf(bare, 'the boot sector image', 'scripts/disk.bin comes with OSv\'s sources');
  const rofsSize = input.rofsImg !== undefined ? sizeOf(input.rofsImg, 'the ROFS image', 'it is written by the same build; see the warnings above') : undefined;
  const plan = planDisk({ fs: input.fs, bareSize, loaderSize, ...(rofsSize !== undefined ? { rofsSize } : {}), fsSize: input.fsSize, createDisk: input.createDisk });
  const out = diskImagePath(input.buildPath, plan.name, input.format);
  const recordFile = diskRecordPath(out);

  // The first sectors as the image must hold them: the boot image's, with OSv's patches.
  const patches: BytePatch[] = [partitionEntry(2, plan.partitionOffset, plan.partitionSize)];
  if (plan.cmdline) patches.push(cmdlinePatch(input.cmdline, path.join(input.buildPath, 'cmdline')));
  // The loader's first sectors were read for the check already; disk.bin is read here.
  const headBytes = bare === input.loaderImg ? loaderHead : readHead(bare, bareSize);
  for (const p of patches) {
    if (p.offset + p.bytes.length > headBytes.length) {
      throw new OsvbError('OSVB_KERNEL_INVALID', `${bare} is ${bareSize} bytes long: too short for the boot sector's partition table`);
    }
    p.bytes.copy(headBytes, p.offset);
  }
  const digest = input.digest ?? digestFile;
  const bareDigest = digest(bare);
  const headDigest = digestBytes(headBytes);
  const rofs = plan.rofs ? (input.rofsImg as string) : undefined;
  const old = loadRecord(recordFile);
  const imageSig = fileSignature(out);
  let reason: string | undefined;
  if (!old) reason = imageSig === undefined ? `no ${path.basename(out)} yet` : `no record of what ${path.basename(out)} holds`;
  else if (old.format !== input.format || old.virtualSize !== plan.virtualSize || old.partitionOffset !== plan.partitionOffset) reason = 'the disk layout changed';
  else if (old.bare !== bareDigest) reason = `${path.basename(bare)} changed`;
  else if (old.image !== imageSig) reason = `${path.basename(out)} was changed by something else`;
  else if ((old.rofs === null) !== (rofs === undefined)) reason = 'the file system changed';

  if (reason === undefined && old) {
    const r = updateInPlace(old, rofs);
    if (typeof r !== 'string') return { file: out, plan, ...r, durationMs: performance.now() - t0 };
    reason = r;
  }
  const bytesWritten = writeFull(rofs);
  saveRecord({ v: RECORD_VERSION, format: input.format, virtualSize: plan.virtualSize, partitionOffset: plan.partitionOffset, bare: bareDigest, head: headDigest, rofs: rofs ? (fileSignature(rofs) ?? '') : null, rofsSize: rofsSize ?? 0, image: '' });
  return { file: out, plan, mode: 'full', bytesWritten, reason, durationMs: performance.now() - t0 };

  function saveRecord(rec: DiskRecord): void {
    rec.image = fileSignature(out) ?? '';
    const text = JSON.stringify(rec) + '\n';
    try {
      writeFileAtomic(recordFile, text);
    } catch (e) {
      throw new OsvbError('OSVB_IO', `cannot write ${recordFile}: ${(e as NodeJS.ErrnoException).code ?? e}`, {
        hint: `${path.basename(out)} is complete; the next build writes it anew`,
        cause: e,
      });
    }
  }

  function writeFull(rofsFile: string | undefined): number {
    fs.rmSync(recordFile, { force: true });
    const tmp = tempNameFor(out);
    let target: DiskTarget | undefined;
    try {
      target = createTarget(input.format, tmp, plan.virtualSize);
      target.write(0, headBytes);
      if (bareSize > headBytes.length) target.copyFromFile(headBytes.length, bare as string, headBytes.length, bareSize - headBytes.length);
      if (rofsFile) target.copyFromFile(plan.partitionOffset, rofsFile, 0, rofsSize as number);
      target.close();
      const bytes = target.bytesWritten;
      target = undefined;
      fs.renameSync(tmp, out);
      return bytes;
    } catch (e) {
      try {
        target?.close();
      } catch {
        /* the write failed already */
      }
      fs.rmSync(tmp, { force: true });
      if (e instanceof OsvbError) throw e;
      throw new OsvbError('OSVB_IO', `cannot write ${out}: ${(e as NodeJS.ErrnoException).code ?? e}`, { cause: e });
    }
  }

  function updateInPlace(rec: DiskRecord, rofsFile: string | undefined): { mode: 'in-place' | 'unchanged'; bytesWritten: number } | string {
    const rofsNow = rofsFile ? (fileSignature(rofsFile) ?? '') : null;
    const headChanged = rec.head !== headDigest;
    const rofsChanged = rofsNow !== rec.rofs;
    if (!headChanged && !rofsChanged) return { mode: 'unchanged', bytesWritten: 0 };
    // Only the ranges this build wrote, if the partition held rofs.img as it was before them.
    const ranges = rofsChanged && input.rofsUpdate?.before === rec.rofs ? input.rofsUpdate.changed : undefined;
    const target = openTarget(input.format, out, plan.virtualSize);
    if (typeof target === 'string') return `${path.basename(out)}: ${target}`;
    fs.rmSync(recordFile, { force: true });
    try {
      if (headChanged) target.write(0, headBytes);
      if (rofsFile && rofsChanged) {
        const size = rofsSize as number;
        const po = plan.partitionOffset;
        if (ranges) {
          for (const [s, e] of ranges) if (s < size) target.copyFromFile(po + s, rofsFile, s, Math.min(e, size) - s);
          // Growth that no range covers reads as zeros in rofs.img: copy it all the same.
          if (size > rec.rofsSize) target.copyFromFile(po + rec.rofsSize, rofsFile, rec.rofsSize, size - rec.rofsSize);
        } else target.copyFromFile(po, rofsFile, 0, size);
        if (size < rec.rofsSize) target.zero(po + size, rec.rofsSize - size);
      }
      target.close();
    } catch (e) {
      try {
        target.close();
      } catch {
        /* the write failed already */
      }
      // Half-updated: never leave it looking like a good image.
      fs.rmSync(out, { force: true });
      if (e instanceof OsvbError) throw e;
      throw new OsvbError('OSVB_IO', `cannot update ${out}: ${(e as NodeJS.ErrnoException).code ?? e}`, { cause: e });
    }
    saveRecord({ ...rec, head: headDigest, rofs: rofsNow, rofsSize: rofsSize ?? 0, image: '' });
    return { mode: 'in-place', bytesWritten: target.bytesWritten };
  }
}
