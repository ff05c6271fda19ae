/** ROFS on-disk constants (spec §8.2; OSv's fs/rofs/rofs.hh). All integers little-endian. */
export const ROFS_MAGIC = 0xdeadbead;
export const ROFS_VERSION = 1;
export const ROFS_BLOCK = 512;
export const ROFS_SUPERBLOCK_BYTES = 64;
export const ROFS_INODE_BYTES = 32;
/** u64 inode number + u16 name length. */
export const ROFS_DENTRY_HEAD = 10;
/** u16 target length. */
export const ROFS_SYMLINK_HEAD = 2;

export const MODE_DIR = 0x4000;
export const MODE_REG = 0x8000;
export const MODE_LINK = 0xa000;

export function blocksFor(size: number): number {
  return Math.ceil(size / ROFS_BLOCK);
}

/** Write a non-negative safe integer as u64 LE. */
export function putU64(buf: Buffer, offset: number, value: number): void {
  buf.writeUInt32LE(value % 0x1_0000_0000, offset);
  buf.writeUInt32LE(Math.floor(value / 0x1_0000_0000), offset + 4);
}
