/**
 * The bytes scripts/build changes in the first sectors of OSv's disk image, as pure functions:
 * the MBR entry of partition 2 (`imgedit.py setpartition`), the command line at byte 512
 * (`imgedit.py setargs`), and the checks that a loader.img is whole.
 */
import { OsvbError } from '../../errors/index.js';

export const SECTOR = 512;
/** Where OSv's x64 boot sector reads the command line from, and how much of it (63 sectors). */
export const CMDLINE_OFFSET = 512;
export const CMDLINE_AREA = 63 * SECTOR;
/** lzloader.elf starts at sector 128 of loader.img (OSv's Makefile: `dd … seek=128`). */
export const KERNEL_OFFSET = 128 * SECTOR;
const KERNEL_BLOCK = 32 * 1024;

/** A change to the disk's bytes. */
export interface BytePatch {
  offset: number;
  bytes: Buffer;
}

/** Cylinder/head/sector of an LBA sector, clamped as imgedit.py clamps it. */
export function chs(sector: number): { c: number; h: number; s: number } {
  const secPerTrack = 63;
  const heads = 255;
  let c = Math.floor(Math.floor(sector / secPerTrack) / heads);
  let h = Math.floor(sector / secPerTrack) % heads;
  let s = (sector % secPerTrack) + 1;
  if (c > 1023) {
    c = 1023;
    h = 254;
    s = 63;
  }
  return { c, h, s };
}

/**
 * The bytes `imgedit.py setpartition IMG N START SIZE` writes: bytes 1–15 of the partition's
 * 16-byte entry (byte 0, the boot flag, is left as it is). The CHS words are OSv's own packing,
 * `(cyl << 6) | sec` as a little-endian u16, kept for identical bytes.
 */
export function partitionEntry(partition: 1 | 2 | 3 | 4, start: number, size: number): BytePatch {
  const startLba = Math.floor(start / SECTOR);
  const sizeLba = Math.floor(size / SECTOR);
  if (startLba > 0xffffffff || sizeLba > 0xffffffff) {
    throw new OsvbError('OSVB_DISK_SIZE', `partition ${partition} (${start} + ${size} bytes) does not fit an MBR entry (2 TiB at most)`);
  }
  const first = chs(startLba);
  const last = chs(Math.floor((start + size) / SECTOR));
  const b = Buffer.alloc(15);
  b.writeUInt8(first.h, 0);
  b.writeUInt16LE(((first.c << 6) | first.s) & 0xffff, 1);
  b.writeUInt8(0x83, 3);
  b.writeUInt8(last.h, 4);
  b.writeUInt16LE(((last.c << 6) | last.s) & 0xffff, 5);
  b.writeUInt32LE(startLba, 7);
  b.writeUInt32LE(sizeLba, 11);
  return { offset: 0x1be + (partition - 1) * 16 + 1, bytes: b };
}

/**
 * The command line as `imgedit.py setargs usr.img \`cat cmdline\`` writes it: the shell splits
 * the text into words (runs of blanks and newlines become one space), and the result goes to
 * byte 512 as a C string. osvb does not expand glob characters against the build directory's
 * file names, as that unquoted shell line does (README, "Differences from OSv").
 */
export function cmdlinePatch(cmdline: string, file?: string): BytePatch {
  const words = cmdline.split(/[ \t\n]+/).filter((w) => w !== '');
  const bytes = Buffer.from(words.join(' ') + '\0', 'utf8');
  if (bytes.length > CMDLINE_AREA) {
    throw new OsvbError(
      'OSVB_DISK_CMDLINE',
      `the command line is ${bytes.length - 1} bytes long; OSv's boot sector reads at most ${CMDLINE_AREA - 1} (63 sectors from byte 512)`,
      { ...(file ? { location: { file } } : {}), hint: 'shorten the run commands of the image (module.py run entries), or move arguments into a file the app reads' },
    );
  }
  return { offset: CMDLINE_OFFSET, bytes };
}

/**
 * Check that `head` (the first sectors of loader.img) and its size make a whole x64 loader:
 * the boot signature, and as many 32 KiB kernel blocks after sector 128 as the boot sector's
 * read count at 0x10 says (`imgedit.py setsize`). A copy cut short fails here, not at boot.
 */
export function checkLoader(head: Buffer, size: number, file: string): void {
  const bad = (why: string): OsvbError =>
    new OsvbError('OSVB_KERNEL_INVALID', `${file} is not a whole OSv x64 loader.img: ${why}`, {
      hint: 'rebuild the kernel (make in the OSv source tree) or point --kernel at a complete kernel build',
    });
  if (size < KERNEL_OFFSET + 1 || head.length < SECTOR) throw bad(`it is ${size} bytes long`);
  if (head[510] !== 0x55 || head[511] !== 0xaa) throw bad('it has no boot sector signature (0x55 0xaa at byte 510)');
  const blocks = head.readUInt16LE(0x10);
  const have = Math.ceil((size - KERNEL_OFFSET) / KERNEL_BLOCK);
  if (blocks !== have) throw bad(`its boot sector loads ${blocks} blocks of 32 KiB after byte ${KERNEL_OFFSET}, the file holds ${have} (truncated or padded?)`);
}
