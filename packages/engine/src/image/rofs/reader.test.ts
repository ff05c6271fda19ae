/** The ROFS reader: round trips, corrupt images, safe extraction. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { OsvbError } from '../../errors/index.js';
import { extractRofs, listRofs, RofsImage, readRofsFile } from './reader.js';
import { rofsDir, type RofsDir, type RofsTree } from './tree.js';
import { writeRofsImage } from './writer.js';
import { useTempDirs } from '../../testing/index.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const TESTDATA = path.join(HERE, 'testdata');

const tempDir = useTempDirs('osvb-rofs-reader-', 'all');

function expected(name: string): Buffer {
  return fs.readFileSync(path.join(TESTDATA, name, 'expected.img'));
}

// ---------------------------------------------------------------------------------------------
// Round trip

type GenNode = { kind: 'file'; data: Uint8Array } | { kind: 'link'; target: string } | { kind: 'dir'; entries: Array<[string, GenNode]> };

const asciiChar = fc.integer({ min: 1, max: 0x7e }).filter((c) => c !== 0x2f).map((c) => String.fromCharCode(c));
const name = fc.string({ unit: asciiChar, minLength: 0, maxLength: 12 });
const target = fc.string({ unit: fc.integer({ min: 1, max: 0x7e }).map((c) => String.fromCharCode(c)), maxLength: 40 });

const { node: genNode } = fc.letrec<{ node: GenNode; dir: GenNode }>((tie) => ({
  node: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.record({ kind: fc.constant('file' as const), data: fc.uint8Array({ maxLength: 1500 }) }),
    fc.record({ kind: fc.constant('link' as const), target }),
    tie('dir'),
  ),
  dir: fc.record({
    kind: fc.constant('dir' as const),
    entries: fc.uniqueArray(fc.tuple(name, tie('node')), { maxLength: 6, selector: (e) => e[0] }),
  }),
}));
const genRoot = fc.uniqueArray(fc.tuple(name, genNode), { maxLength: 8, selector: (e) => e[0] });

let fileCounter = 0;
function materialise(entries: Array<[string, GenNode]>, store: string): RofsDir {
  const dir = rofsDir();
  for (const [n, node] of entries) {
    if (node.kind === 'dir') dir.entries.set(n, materialise(node.entries, store));
    else if (node.kind === 'link') dir.entries.set(n, { kind: 'link', target: node.target });
    else {
      const source = path.join(store, `f${fileCounter++}`);
      fs.writeFileSync(source, node.data);
      dir.entries.set(n, { kind: 'file', source, size: node.data.length });
    }
  }
  return dir;
}

/** What the reader should list: [path, kind, size or target], in pre-order. */
function flatten(entries: Array<[string, GenNode]>, prefix: string, out: Array<[string, string, string | number]>): void {
  for (const [n, node] of entries) {
    const p = `${prefix}/${n}`;
    if (node.kind === 'dir') {
      out.push([p, 'dir', node.entries.length]);
      flatten(node.entries, p, out);
    } else if (node.kind === 'link') out.push([p, 'link', node.target]);
    else out.push([p, 'file', node.data.length]);
  }
}

function collectFiles(entries: Array<[string, GenNode]>, prefix: string, out: Map<string, Uint8Array>): void {
  for (const [n, node] of entries) {
    const p = `${prefix}/${n}`;
    if (node.kind === 'dir') collectFiles(node.entries, p, out);
    else if (node.kind === 'file') out.set(p, node.data);
  }
}

/** Lookup by path is ambiguous for empty names; compare the pre-order listing and the file contents by inode. */
describe('round trip', () => {
  it('random guest trees → writer → reader give the same tree', async () => {
    const root = tempDir();
    await fc.assert(
      fc.asyncProperty(genRoot, async (entries) => {
        const store = fs.mkdtempSync(path.join(root, 's-'));
        const tree: RofsTree = { root: materialise(entries, store) };
        const out = path.join(store, 'img');
        await writeRofsImage(tree, out, { incremental: false });
        const img = RofsImage.open(fs.readFileSync(out));
        const want: Array<[string, string, string | number]> = [];
        flatten(entries, '', want);
        const got = img.entries.slice(1).map((e): [string, string, string | number] => [e.path, e.kind, e.kind === 'link' ? (e.target as string) : e.size]);
        expect(got).toEqual(want);
        const files = new Map<string, Uint8Array>();
        collectFiles(entries, '', files);
        for (const e of img.entries) {
          if (e.kind !== 'file') continue;
          // Paths are unambiguous when no name on them is empty.
          if (e.path.includes('//') || e.path.endsWith('/')) continue;
          expect(Buffer.from(img.readFile(e.path)).equals(Buffer.from(files.get(e.path) as Uint8Array))).toBe(true);
        }
        fs.rmSync(store, { recursive: true, force: true });
      }),
      { numRuns: 60 },
    );
  });

  it('reads from a path, an fd or a buffer alike', () => {
    const img = path.join(TESTDATA, 'worked-example', 'expected.img');
    const fd = fs.openSync(img, 'r');
    try {
      expect(listRofs(fd)).toEqual(listRofs(img));
      expect(readRofsFile(fd, '/etc/hosts').toString()).toBe('second');
    } finally {
      fs.closeSync(fd);
    }
    expect(listRofs(fs.readFileSync(img))).toEqual(listRofs(img));
    expect(readRofsFile(img, '/a').toString()).toBe('FOO');
    const chunks = [...RofsImage.open(expected('sizes-strip')).fileChunks('/s/70000', 4096)].map((c) => Buffer.from(c));
    expect(Buffer.concat(chunks).equals(readRofsFile(expected('sizes-strip'), '/s/70000'))).toBe(true);
  });

  it('cat errors are clear', () => {
    const img = expected('worked-example');
    expect(() => readRofsFile(img, '/nope')).toThrow(/not in the image/);
    expect(() => readRofsFile(img, '/etc')).toThrow(/is a directory/);
    expect(() => readRofsFile(img, '/etc/mnttab')).toThrow(/symbolic link to "\/proc\/mounts"/);
  });
});

// ---------------------------------------------------------------------------------------------
// Corruption

function corruptMessage(buf: Buffer): string {
  try {
    RofsImage.open(buf);
  } catch (e) {
    expect(e).toBeInstanceOf(OsvbError);
    expect((e as OsvbError).code).toBe('OSVB_ROFS_CORRUPT');
    return (e as OsvbError).message;
  }
  throw new Error('expected the image to be rejected');
}

/** The worked example: structure at 1536; dentries 0 hosts(ino 4) 1 mnttab(5) 2 a(2) 3 etc(3) 4 dev(6) 5 z(7); inodes at 1536+93. */
const S0 = 1536;
const DENTRY_AT = [0, 15, 31, 42, 55, 68];
const INODES_AT = S0 + 93;

function patched(fn: (b: Buffer) => void): Buffer {
  const b = Buffer.from(expected('worked-example'));
  fn(b);
  return b;
}

describe('corrupt images', () => {
  it('bad superblock fields', () => {
    expect(corruptMessage(patched((b) => b.writeUInt32LE(0x12345678, 0)))).toMatch(/bad magic 0x12345678 at byte 0/);
    expect(corruptMessage(patched((b) => b.writeUInt32LE(2, 8)))).toMatch(/unsupported version 2/);
    expect(corruptMessage(patched((b) => b.writeUInt32LE(4096, 16)))).toMatch(/block size 4096/);
    expect(corruptMessage(patched((b) => b.writeUInt32LE(0, 24)))).toMatch(/structure_info_first_block 0/);
    expect(corruptMessage(patched((b) => b.writeUInt32LE(9, 24)))).toMatch(/structure_info_first_block 9 at byte 24 is outside the image.s 4 blocks/);
    expect(corruptMessage(patched((b) => b.writeUInt32LE(4, 24)))).toMatch(/blocks 4..4\) runs past the end of the image/);
    expect(corruptMessage(patched((b) => b.writeUInt32LE(0, 32)))).toMatch(/structure_info_blocks_count 0/);
    expect(corruptMessage(patched((b) => b.writeBigUInt64LE(0xffffffffffffffffn, 32)))).toMatch(/structure_info_blocks_count/);
    expect(corruptMessage(patched((b) => b.writeBigUInt64LE(1n << 60n, 40)))).toMatch(/directory_entries_count/);
    expect(corruptMessage(patched((b) => b.writeUInt32LE(7, 40)))).toMatch(/7 directory entries for 7 inodes/);
    expect(corruptMessage(patched((b) => b.writeUInt32LE(0, 56)))).toMatch(/inodes_count/);
    expect(corruptMessage(Buffer.alloc(100))).toMatch(/shorter than the 512-byte superblock/);
  });

  it('a truncated image', () => {
    expect(corruptMessage(expected('worked-example').subarray(0, 1600))).toMatch(/runs past the end of the image \(1600 bytes/);
  });

  it('a truncated image read through an fd', () => {
    const p = path.join(tempDir(), 'trunc.img');
    fs.writeFileSync(p, expected('sizes-strip').subarray(0, 40000));
    expect(() => listRofs(p)).toThrow(OsvbError);
  });

  it('names running past the structure area', () => {
    expect(corruptMessage(patched((b) => b.writeUInt16LE(0xffff, S0 + DENTRY_AT[5]! + 8)))).toMatch(/name of directory entry #5 .* runs past the end/);
  });

  it('a directory cycle and an entry pointing at the root', () => {
    // /etc's first entry (hosts) now points at /etc itself.
    expect(corruptMessage(patched((b) => b.writeUInt32LE(3, S0 + DENTRY_AT[0]!)))).toMatch(/reaches inode #3 a second time \(a directory cycle/);
    expect(corruptMessage(patched((b) => b.writeUInt32LE(1, S0 + DENTRY_AT[0]!)))).toMatch(/refers to the root directory/);
    expect(corruptMessage(patched((b) => b.writeUInt32LE(99, S0 + DENTRY_AT[0]!)))).toMatch(/refers to inode #99, but there are 7 inodes/);
  });

  it('inode table problems', () => {
    expect(corruptMessage(patched((b) => b.writeUInt32LE(9, INODES_AT + 32 + 8)))).toMatch(/inode #2 .* is numbered 9/);
    expect(corruptMessage(patched((b) => b.writeUInt32LE(0x1234, INODES_AT + 32)))).toMatch(/mode 0x1234/);
    expect(corruptMessage(patched((b) => b.writeUInt32LE(3, INODES_AT + 32 + 16)))).toMatch(/inode #2 .* outside the data blocks 1\.\.2/);
    expect(corruptMessage(patched((b) => b.writeUInt32LE(5000, INODES_AT + 32 + 24)))).toMatch(/file data \(5000 bytes from block 1\)/);
    expect(corruptMessage(patched((b) => b.writeUInt32LE(4, INODES_AT + 16)))).toMatch(/inode #1 .* directory entries 4\.\.8 are outside/);
    expect(corruptMessage(patched((b) => b.writeUInt32LE(1, INODES_AT + 4 * 32 + 16)))).toMatch(/symlink index 1 is outside/);
    expect(corruptMessage(patched((b) => b.writeUInt32LE(0x8000, INODES_AT)))).toMatch(/root\) is not a directory/);
    // Root lists only 3 of its 4 children: /z is unreachable.
    expect(corruptMessage(patched((b) => b.writeUInt32LE(3, INODES_AT + 24)))).toMatch(/inode #7 is not reachable/);
  });

  it('bad names', () => {
    expect(corruptMessage(patched((b) => b.write('/', S0 + DENTRY_AT[2]! + 10, 'latin1')))).toMatch(/contains "\/"/);
    expect(corruptMessage(patched((b) => (b[S0 + DENTRY_AT[2]! + 10] = 0xff)))).toMatch(/not valid UTF-8/);
    expect(corruptMessage(patched((b) => (b[S0 + DENTRY_AT[2]! + 10] = 0)))).toMatch(/NUL/);
    // "a" renamed "z": two entries called z in the root.
    expect(corruptMessage(patched((b) => b.write('z', S0 + DENTRY_AT[2]! + 10, 'latin1')))).toMatch(/two entries named "z"/);
  });

  const images = ['worked-example', 'tree-copy', 'replace-order', 'nesting-order', 'links-defines', 'exact-block'].map(expected);

  it('random byte flips and truncations: the reader errors cleanly or returns, never anything else', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...images.keys()),
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 }), fc.boolean()), { minLength: 1, maxLength: 6 }),
        fc.option(fc.nat(), { nil: undefined }),
        (which, flips, cut) => {
          const orig = images[which] as Buffer;
          const b = Buffer.from(orig);
          const s = Number(b.readBigUInt64LE(24)) * 512;
          for (const [pos, value, inStructure] of flips) {
            // Half the flips aim at the superblock and structure area, where the checks are.
            const at = inStructure ? (pos % 2 ? pos % 64 : s + (pos % (b.length - s))) : pos % b.length;
            b[at] = value;
          }
          const img = cut === undefined ? b : b.subarray(0, cut % (b.length + 1));
          let opened: RofsImage | undefined;
          try {
            opened = RofsImage.open(img);
            for (const e of opened.entries) if (e.kind === 'file') opened.readFile(e.path);
          } catch (e) {
            if (!(e instanceof OsvbError)) throw e;
            if (!['OSVB_ROFS_CORRUPT', 'OSVB_IMAGE_INPUT'].includes(e.code)) throw e;
          }
        },
      ),
      { numRuns: 3000 },
    );
  });

  it('random u64 values written over structure fields', () => {
    fc.assert(
      fc.property(fc.constantFrom(...images.keys()), fc.nat(), fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), (which, pos, value) => {
        const b = Buffer.from(images[which] as Buffer);
        const s = Number(b.readBigUInt64LE(24)) * 512;
        const at = pos % 2 ? (pos % 8) * 8 : s + (pos % (b.length - s - 8));
        b.writeBigUInt64LE(value, at);
        try {
          const img = RofsImage.open(b);
          for (const e of img.entries) if (e.kind === 'file') img.readFile(e.path);
        } catch (e) {
          if (!(e instanceof OsvbError)) throw e;
        }
      }),
      { numRuns: 2000 },
    );
  });
});

// ---------------------------------------------------------------------------------------------
// Extraction

describe('extract', () => {
  it('writes files, directories and links (links are created, never followed)', () => {
    const dir = path.join(tempDir(), 'out');
    const r = extractRofs(expected('tree-copy'), dir);
    expect(r).toMatchObject({ files: 6, links: 3 });
    expect(fs.readFileSync(path.join(dir, 't/sub/lnk'), 'utf8')).toBe('f1 content\n');
    expect(fs.readlinkSync(path.join(dir, 'l/keep'))).toBe('../f1');
    expect(fs.readlinkSync(path.join(dir, 'l/dang'))).toBe('nowhere');
    expect(fs.statSync(path.join(dir, 'l/dir')).isDirectory()).toBe(true);
    const w = extractRofs(expected('worked-example'), path.join(tempDir(), 'w'));
    expect(w).toEqual({ directories: 2, files: 3, links: 1, bytes: 9 });
  });

  it('refuses "..", "." and empty names before writing anything', () => {
    // replace-order has /a/.. and /a/. and /usr/ (an empty name), as gen-rofs-img writes them.
    const dir = path.join(tempDir(), 'out');
    expect(() => extractRofs(expected('replace-order'), dir)).toThrow(/refusing to extract/);
    expect(fs.existsSync(dir)).toBe(false);
  });

  it('refuses a crafted "..": nothing lands outside the target', async () => {
    const root = tempDir();
    const src = path.join(root, 'evil');
    fs.writeFileSync(src, 'pwned');
    const tree: RofsTree = { root: rofsDir() };
    const up = rofsDir();
    up.entries.set('escaped', { kind: 'file', source: src, size: 5 });
    tree.root.entries.set('..', up);
    const img = path.join(root, 'evil.img');
    await writeRofsImage(tree, img, { incremental: false });
    const dir = path.join(root, 'x', 'out');
    let err: unknown;
    try {
      extractRofs(img, dir);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(OsvbError);
    expect((err as OsvbError).code).toBe('OSVB_ROFS_UNSAFE');
    expect((err as OsvbError).message).toMatch(/escape the target directory/);
    expect(fs.existsSync(path.join(root, 'x', 'escaped'))).toBe(false);
  });

  it('refuses a non-empty target directory (so nothing is written through an existing link)', () => {
    const dir = tempDir();
    fs.symlinkSync('/tmp', path.join(dir, 'etc'));
    expect(() => extractRofs(expected('worked-example'), dir)).toThrow(/not empty/);
  });
});
