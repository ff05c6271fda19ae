/**
 * OSv's command line on the disk (bytes from 512 up to a NUL; scripts/imgedit.py getargs and
 * setargs), and run.py's `-e CMD` done without writing to the image: a temporary qcow2
 * overlay backed by it carries the new command line.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { OsvbError } from '../errors/index.js';
import { CMDLINE_AREA, CMDLINE_OFFSET } from '../image/disk/mbr.js';
import { Qcow2Image } from '../image/disk/qcow2.js';
import type { DiskFormat } from './qemu.js';


/** The C string at the start of `bytes` (all of it when there is no NUL), as UTF-8 text. */
function cString(bytes: Buffer): string {
  const nul = bytes.indexOf(0);
  return bytes.subarray(0, nul < 0 ? bytes.length : nul).toString('utf8');
}

/**
 * The image's command line (imgedit.py getargs). A qcow2 image is read through a throwaway
 * overlay (the qcow2 module opens backing files read-only), so the image is never opened for writing.
 */
export function readImageCmdline(image: string, format: DiskFormat): string {
  if (format === 'raw') {
    const fd = fs.openSync(image, 'r');
    try {
      const buf = Buffer.alloc(CMDLINE_AREA);
      const n = fs.readSync(fd, buf, 0, buf.length, CMDLINE_OFFSET);
      return cString(buf.subarray(0, n));
    } finally {
      fs.closeSync(fd);
    }
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'osvb-run-'));
  try {
    const q = overlayOn(path.join(dir, 'read.qcow2'), virtualSize(image, format), path.resolve(image), format);
    try {
      return cString(q.read(CMDLINE_OFFSET, CMDLINE_AREA));
    } finally {
      q.close();
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * The command line `-e CMD` boots with. run.py writes CMD as it is (imgedit.py setargs), which
 * drops the `--rootfs=X` that scripts/build put in front of the image's command line; OSv then
 * auto-discovers the root file system (rofs, virtio-fs, ext, zfs in turn). osvb keeps that
 * option when it is among the old line's leading options and CMD has no `--rootfs=` of its own,
 * so the image boots the file system it was built for.
 */
export function commandLineForExecute(imageCmdline: string, execute: string): string {
  if (/(^|\s)--rootfs=/.test(execute)) return execute;
  for (const word of imageCmdline.split(/\s+/).filter(Boolean)) {
    if (!word.startsWith('--')) break;
    if (word.startsWith('--rootfs=')) return `${word} ${execute}`;
  }
  return execute;
}

/** The C string for byte 512, checked against the 63 sectors OSv's boot sector reads. */
export function cmdlineBytes(cmdline: string): Buffer {
  const bytes = Buffer.from(cmdline + '\0', 'utf8');
  if (bytes.length > CMDLINE_AREA) {
    throw new OsvbError('OSVB_USAGE', `-e: the command line is ${bytes.length - 1} bytes long; OSv's boot sector reads at most ${CMDLINE_AREA - 1}`, {
      hint: 'shorten the command, or move arguments into a file the app reads',
    });
  }
  if (cmdline.includes('\0')) throw new OsvbError('OSVB_USAGE', '-e: the command line contains a NUL character');
  return bytes;
}

/** The virtual size of a disk image: the file's size for raw, the qcow2 header's `size` field (big-endian u64 at byte 24). */
function virtualSize(image: string, format: DiskFormat): number {
  if (format === 'raw') return fs.statSync(image).size;
  const fd = fs.openSync(image, 'r');
  try {
    const head = Buffer.alloc(32);
    if (fs.readSync(fd, head, 0, 32, 0) !== 32) throw new OsvbError('OSVB_RUN_IMAGE', `${image}: a qcow2 header cut short`);
    return Number(head.readBigUInt64BE(24));
  } finally {
    fs.closeSync(fd);
  }
}

/** A new qcow2 overlay of `backing`; the images the qcow2 module cannot read (compressed, version 2, …) are named in the error. */
function overlayOn(file: string, size: number, backing: string, format: DiskFormat): Qcow2Image {
  try {
    return Qcow2Image.create(file, size, { file: backing, format });
  } catch (e) {
    if (!(e instanceof OsvbError) || e.code !== 'OSVB_IMAGE_INPUT') throw e;
    const why = e.message.replace(/^cannot create [^:]*: (backing file [^:]*: )?/, '');
    throw new OsvbError('OSVB_RUN_IMAGE', `-e: cannot read ${backing} through an overlay: ${why}`, {
      hint: `osvb reads uncompressed qcow2 version 3 and raw images; convert it (qemu-img convert -O qcow2 ${backing} new.img), or boot it without -e`,
      cause: e,
    });
  }
}

export interface Overlay {
  /** The qcow2 overlay to boot. */
  file: string;
  /** The command line written into it. */
  cmdline: string;
  /** Removes the overlay's temporary directory. */
  dispose(): void;
}

/**
 * run.py's `-e CMD` without touching the image: a temporary qcow2 overlay backed by `image`
 * (by its absolute path; the image is opened read-only) whose byte 512 holds the command line
 * `commandLineForExecute` makes from the image's own line (read through the overlay) and CMD.
 */
export function createExecuteOverlay(image: string, format: DiskFormat, execute: string): Overlay {
  const backing = path.resolve(image);
  const size = virtualSize(backing, format);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'osvb-run-'));
  const dispose = (): void => fs.rmSync(dir, { recursive: true, force: true });
  try {
    const file = path.join(dir, 'overlay.qcow2');
    const q = overlayOn(file, size, backing, format);
    let cmdline: string;
    try {
      cmdline = commandLineForExecute(cString(q.read(CMDLINE_OFFSET, CMDLINE_AREA)), execute);
      q.write(CMDLINE_OFFSET, cmdlineBytes(cmdline));
    } finally {
      q.close();
    }
    return { file, cmdline, dispose };
  } catch (e) {
    dispose();
    throw e;
  }
}
