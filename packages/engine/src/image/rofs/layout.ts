/**
 * Where everything goes in a ROFS image (spec §8.2/§8.3), computed before a byte is written:
 * inode numbers and file data in depth-first pre-order, each directory's dentries appended in
 * post-order, symlink targets in pre-order, then the inode table. File sizes come from the tree,
 * so the superblock and the structure area are known up front and the image can be written in
 * one sequential pass. Pure apart from reading nothing at all.
 */
import { OsvbError } from '../../errors/index.js';
import {
  blocksFor,
  MODE_DIR,
  MODE_LINK,
  MODE_REG,
  putU64,
  ROFS_BLOCK,
  ROFS_DENTRY_HEAD,
  ROFS_INODE_BYTES,
  ROFS_MAGIC,
  ROFS_SYMLINK_HEAD,
  ROFS_VERSION,
} from './format.js';
import { rofsTextProblem, type RofsDir, type RofsFile, type RofsNode, type RofsTree } from './tree.js';

export interface RofsLayoutFile {
  node: RofsFile;
  /** Guest path, e.g. `/etc/hosts`. */
  path: string;
  inode: number;
  /** First data block. */
  block: number;
  size: number;
}

export interface RofsLayout {
  /** Regular files in data order (pre-order); zero-length files included (they occupy no block). */
  files: RofsLayoutFile[];
  /** The 512-byte block 0. */
  superblock: Buffer;
  /** Dentry table, symlink table and inode table, packed (no padding). */
  structure: Buffer;
  structureFirstBlock: number;
  structureBlocks: number;
  dentries: number;
  symlinks: number;
  inodes: number;
  directories: number;
  /** Total image size, including the extra zero block when the structure is a multiple of 512 bytes. */
  imageSize: number;
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Python's recursion limit makes gen-rofs-img fail far earlier; this only keeps our stack safe. */
const MAX_DEPTH = 4096;

function bad(node: RofsNode, message: string): OsvbError {
  return new OsvbError('OSVB_IMAGE_INPUT', message, node.origin ? { location: { file: node.origin.file, line: node.origin.line } } : {});
}

/** The regular files of a tree in the order their data is laid out (depth-first pre-order), with guest paths. */
export function orderedFiles(tree: RofsTree): Array<{ node: RofsFile; path: string }> {
  const out: Array<{ node: RofsFile; path: string }> = [];
  const visit = (dir: RofsDir, dirPath: string, depth: number): void => {
    if (depth > MAX_DEPTH) throw bad(dir, `guest path "${dirPath}" is nested more than ${MAX_DEPTH} directories deep`);
    for (const [name, node] of dir.entries) {
      if (node.kind === 'dir') visit(node, `${dirPath}/${name}`, depth + 1);
      else if (node.kind === 'file') out.push({ node, path: `${dirPath}/${name}` });
    }
  };
  visit(tree.root, '', 0);
  return out;
}

/**
 * The part of a layout that does not depend on file sizes: inode numbers, modes, dentries and
 * symlinks, every regular file in data order. Planning can go on while the sizes are still
 * being found (the native copier stats walked files meanwhile); placeRofs finishes the layout.
 */
export interface RofsPlan {
  files: Array<{ node: RofsFile; path: string; inode: number }>;
  modes: number[];
  /** Directories: first dentry; links: symlink index; files: filled in by placeRofs. */
  offsets: number[];
  /** Directories: dentry count; links: 1; files: filled in by placeRofs. */
  counts: number[];
  dentryInodes: number[];
  dentryNames: string[];
  symlinks: string[];
  directories: number;
}

export function planRofs(tree: RofsTree): RofsPlan {
  const modes: number[] = [];
  const offsets: number[] = [];
  const counts: number[] = [];
  const dentryInodes: number[] = [];
  const dentryNames: string[] = [];
  const symlinks: string[] = [];
  const files: RofsPlan['files'] = [];
  let directories = 1;

  const newInode = (): number => {
    modes.push(0);
    offsets.push(0);
    counts.push(0);
    return modes.length; // 1-based
  };

  const writeDir = (dir: RofsDir, dirPath: string, depth: number): [number, number] => {
    if (depth > MAX_DEPTH) throw bad(dir, `guest path "${dirPath}" is nested more than ${MAX_DEPTH} directories deep`);
    const childInodes: number[] = [];
    const childNames: string[] = [];
    for (const [name, node] of dir.entries) {
      const guest = `${dirPath}/${name}`;
      if (name.includes('/')) throw bad(node, `guest name "${name}" in "${dirPath || '/'}" contains "/"`);
      const np = rofsTextProblem(name, 'name');
      if (np) throw bad(node, `guest path "${guest}": ${np}`);
      const ino = newInode();
      childInodes.push(ino);
      childNames.push(name);
      const i = ino - 1;
      if (node.kind === 'dir') {
        directories++;
        modes[i] = MODE_DIR;
        const [count, first] = writeDir(node, guest, depth + 1);
        counts[i] = count;
        offsets[i] = first;
      } else if (node.kind === 'link') {
        const tp = rofsTextProblem(node.target, 'link target');
        if (tp) throw bad(node, `guest link "${guest}" -> "${node.target}": ${tp}`);
        modes[i] = MODE_LINK;
        offsets[i] = symlinks.length;
        counts[i] = 1;
        symlinks.push(node.target);
      } else {
        modes[i] = MODE_REG;
        files.push({ node, path: guest, inode: ino });
      }
    }
    const first = dentryInodes.length;
    for (let k = 0; k < childInodes.length; k++) {
      dentryInodes.push(childInodes[k] as number);
      dentryNames.push(childNames[k] as string);
    }
    return [childInodes.length, first];
  };

  const root = newInode();
  modes[root - 1] = MODE_DIR;
  const [rootCount, rootFirst] = writeDir(tree.root, '', 0);
  counts[root - 1] = rootCount;
  offsets[root - 1] = rootFirst;
  return { files, modes, offsets, counts, dentryInodes, dentryNames, symlinks, directories };
}

/** Every file's size must be known (see RofsFile.size). */
export function layoutRofs(tree: RofsTree): RofsLayout {
  return placeRofs(planRofs(tree));
}

/** Place a plan's files (their sizes are known now) and serialise the structure area and block 0. */
export function placeRofs(plan: RofsPlan): RofsLayout {
  const { modes, dentryInodes, dentryNames, symlinks, directories } = plan;
  const offsets = plan.offsets.slice();
  const counts = plan.counts.slice();
  const files: RofsLayoutFile[] = new Array<RofsLayoutFile>(plan.files.length);
  let block = 1;
  for (let k = 0; k < plan.files.length; k++) {
    const { node, path, inode } = plan.files[k] as RofsPlan['files'][number];
    const size = node.size;
    if (size === undefined || !Number.isSafeInteger(size) || size < 0) throw bad(node, `file "${path}" has ${size === undefined ? 'no known size' : `an invalid size ${size}`}`);
    offsets[inode - 1] = block;
    counts[inode - 1] = size;
    files[k] = { node, path, inode, block, size };
    block += blocksFor(size);
  }

  // Names and targets are checked ASCII above, so string length = byte length.
  let bytes = modes.length * ROFS_INODE_BYTES;
  for (const n of dentryNames) bytes += ROFS_DENTRY_HEAD + n.length;
  for (const s of symlinks) bytes += ROFS_SYMLINK_HEAD + s.length;
  const structure = Buffer.alloc(bytes);
  let o = 0;
  // Byte by byte: names are short, and a call into Buffer.write per name costs more than the copy.
  for (let k = 0; k < dentryNames.length; k++) {
    const name = dentryNames[k] as string;
    const ino = dentryInodes[k] as number;
    const len = name.length;
    structure[o] = ino & 0xff;
    structure[o + 1] = (ino >>> 8) & 0xff;
    structure[o + 2] = (ino >>> 16) & 0xff;
    structure[o + 3] = (ino >>> 24) & 0xff;
    // bytes 4..7 (inode numbers above 2^32 are impossible: the table would not fit in memory) stay 0
    structure[o + 8] = len & 0xff;
    structure[o + 9] = len >>> 8;
    o += ROFS_DENTRY_HEAD;
    for (let c = 0; c < len; c++) structure[o + c] = name.charCodeAt(c);
    o += len;
  }
  for (const s of symlinks) {
    structure.writeUInt16LE(s.length, o);
    structure.write(s, o + ROFS_SYMLINK_HEAD, 'latin1');
    o += ROFS_SYMLINK_HEAD + s.length;
  }
  // The inode table through an aligned Uint32Array (little-endian hosts), else byte by byte.
  const table = new Uint32Array(modes.length * 8);
  for (let k = 0, q = 0; k < modes.length; k++, q += 8) {
    const off = offsets[k] as number;
    const cnt = counts[k] as number;
    table[q] = modes[k] as number;
    table[q + 2] = k + 1;
    table[q + 4] = off % 0x1_0000_0000;
    table[q + 5] = Math.floor(off / 0x1_0000_0000);
    table[q + 6] = cnt % 0x1_0000_0000;
    table[q + 7] = Math.floor(cnt / 0x1_0000_0000);
  }
  if (LITTLE_ENDIAN) {
    structure.set(new Uint8Array(table.buffer), o);
  } else {
    for (let q = 0; q < table.length; q++) structure.writeUInt32LE(table[q] as number, o + q * 4);
  }
  o += modes.length * ROFS_INODE_BYTES;

  const structureBlocks = blocksFor(bytes);
  const superblock = Buffer.alloc(ROFS_BLOCK);
  putU64(superblock, 0, ROFS_MAGIC);
  putU64(superblock, 8, ROFS_VERSION);
  putU64(superblock, 16, ROFS_BLOCK);
  putU64(superblock, 24, block);
  putU64(superblock, 32, structureBlocks);
  putU64(superblock, 40, dentryNames.length);
  putU64(superblock, 48, symlinks.length);
  putU64(superblock, 56, modes.length);
  // gen-rofs-img pads with `512 - bytes % 512`: a whole zero block when the structure fills its last block.
  const imageSize = block * ROFS_BLOCK + bytes + (ROFS_BLOCK - (bytes % ROFS_BLOCK));
  return {
    files,
    superblock,
    structure,
    structureFirstBlock: block,
    structureBlocks,
    dentries: dentryNames.length,
    symlinks: symlinks.length,
    inodes: modes.length,
    directories,
    imageSize,
  };
}
