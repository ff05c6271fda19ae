/**
 * The native copier (@osv-build/native): built on this machine, the same XXH64 as xxhash-wasm,
 * files split across threads, and the hand-over to the JavaScript copier when a file that had
 * to be sized turns out different (the writer tests run every copier side by side).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import xxhash from 'xxhash-wasm';
import { useTempDirs } from '../../testing/index.js';
import { nativeCopier, nativeStatsOfAny, startNativeCopy } from './nativeCopy.js';
import { readRofsFile } from './reader.js';
import { rofsDir, rofsFileFrom, type RofsTree } from './tree.js';
import { writeRofsImage } from './writer.js';

const tempDir = useTempDirs('osvb-rofs-native-');

function started<T>(copy: T | undefined): T {
  if (copy === undefined) throw new Error('the native copy did not start');
  return copy;
}
const binding = nativeCopier();

describe('the native copier', () => {
  // npm ci builds it (packages/native/install.cjs); a machine without a compiler gets the
  // JavaScript copiers, but this project's own CI must not lose it silently.
  it.runIf(process.platform === 'linux' && !process.env['OSVB_SKIP_NATIVE_BUILD'])('is built here', () => {
    expect(binding, 'packages/native was not built: run `npm rebuild @osv-build/native` and read its warning').toBeDefined();
  });
});

describe.runIf(binding !== undefined)('native copy', () => {
  const native = binding as NonNullable<typeof binding>;

  it('hashes with the same XXH64 as xxhash-wasm, at every length around the stripe and word sizes', async () => {
    const h = await xxhash();
    let seed = 12345;
    for (const n of [0, 1, 3, 4, 5, 7, 8, 9, 15, 16, 31, 32, 33, 63, 64, 65, 100, 1000, 4096, 65537, 1 << 20]) {
      const data = Buffer.alloc(n);
      for (let i = 0; i < n; i++) {
        seed = (seed * 1103515245 + 12345) >>> 0;
        data[i] = seed >>> 24;
      }
      expect(native.xxh64(data), `length ${n}`).toBe(h.h64Raw(data));
    }
  });

  it('copies at block offsets, sizes unknown files, and reports the first failure in file order', () => {
    const root = tempDir();
    const names = ['a', 'empty', 'b', 'c'];
    const contents = ['x'.repeat(700), '', 'y'.repeat(512), 'z'];
    names.forEach((n, i) => fs.writeFileSync(path.join(root, n), contents[i] as string));
    const out = path.join(root, 'out');
    const fd = fs.openSync(out, 'w');
    try {
      const sources = names.map((n) => path.join(root, n));
      const copy = started(startNativeCopy(native, { sources, sizes: [700, undefined, undefined, 1], hash: true, fd, start: 512 }));
      const sized = copy.sizes();
      if (!sized.ok) throw new Error('unexpected failure');
      expect(Array.from(sized.sizes)).toEqual([700, 0, 512, 1]);
      expect(sized.bytes).toBe(1024 + 0 + 512 + 512);
      const r = copy.finish();
      expect(r.ok).toBe(true);
      const img = fs.readFileSync(out);
      expect(img.subarray(512, 1212).toString()).toBe(contents[0]);
      expect(img.subarray(1212, 1536).every((b) => b === 0)).toBe(true);
      expect(img.subarray(1536, 2048).toString()).toBe(contents[2]);
      expect(img.subarray(2048, 2049).toString()).toBe('z');

      fs.rmSync(path.join(root, 'b'));
      fs.rmSync(path.join(root, 'c'));
      const missing = started(startNativeCopy(native, { sources, sizes: [700, undefined, undefined, undefined], hash: false, fd, start: 512 }));
      expect(missing.sizes()).toEqual({ ok: false, failure: { index: 2, kind: 'open', code: 'ENOENT', got: 0 } });
      missing.cancel();
      const grown = started(startNativeCopy(native, { sources, sizes: [699, 0, 512, 1], hash: false, fd, start: 512 }));
      expect(grown.finish()).toEqual({ ok: false, failure: { index: 0, kind: 'more', code: undefined, got: 0 } });
    } finally {
      fs.closeSync(fd);
    }
  });

  it('copies in place over old data: each file\'s padding zeroed, the bytes around untouched', () => {
    const root = tempDir();
    const sizes = [700, 0, 1, 512, 3000];
    const sources = sizes.map((n, i) => {
      const p = path.join(root, `f${i}`);
      fs.writeFileSync(p, Buffer.alloc(n, 0x41 + i));
      return p;
    });
    const out = path.join(root, 'out');
    // An old image full of 0xee: the area from byte 1024 gets the files, the rest stays.
    const area = 1024 + 512 + 512 + 3072;
    fs.writeFileSync(out, Buffer.alloc(1024 + area + 700, 0xee));
    const fd = fs.openSync(out, 'r+');
    try {
      const r = started(startNativeCopy(native, { sources, sizes, hash: true, fd, start: 1024, inPlace: true })).finish();
      expect(r.ok).toBe(true);
    } finally {
      fs.closeSync(fd);
    }
    const img = fs.readFileSync(out);
    const expected = Buffer.concat([
      Buffer.alloc(1024, 0xee),
      Buffer.alloc(700, 0x41),
      Buffer.alloc(324),
      Buffer.alloc(1, 0x43),
      Buffer.alloc(511),
      Buffer.alloc(512, 0x44),
      Buffer.alloc(3000, 0x45),
      Buffer.alloc(72),
      Buffer.alloc(700, 0xee),
    ]);
    expect(img.length).toBe(expected.length);
    expect(img.equals(expected)).toBe(true);
  });

  it('stats paths of any type as fs.statSync does (directories with a trailing slash too), a failure as its errno', () => {
    const root = tempDir();
    fs.mkdirSync(path.join(root, 'd'));
    fs.writeFileSync(path.join(root, 'd/f'), 'twelve bytes');
    fs.symlinkSync('d', path.join(root, 'link'));
    const paths = [path.join(root, 'd'), `${path.join(root, 'd')}/`, path.join(root, 'd/f'), path.join(root, 'link'), path.join(root, 'nope'), `${path.join(root, 'd/f')}/`];
    const stats = nativeStatsOfAny(native, paths) ?? [];
    expect(stats).toHaveLength(paths.length);
    paths.slice(0, 4).forEach((p, i) => {
      const st = fs.statSync(p);
      expect(stats[i]).toEqual({ size: st.size, mtimeMs: st.mtimeMs, ctimeMs: st.ctimeMs, ino: st.ino, dev: st.dev, mode: st.mode });
    });
    expect(stats[4]).toEqual({ code: 'ENOENT' });
    expect(stats[5]).toEqual({ code: 'ENOTDIR' });
    // Many paths, on several threads, in the order given.
    const many = Array.from({ length: 300 }, (_, i) => (i % 3 === 0 ? path.join(root, 'd') : i % 3 === 1 ? path.join(root, 'd/f') : path.join(root, 'nope')));
    const got = nativeStatsOfAny(native, many) ?? [];
    expect(got.map((s) => ('code' in s ? s.code : s.size))).toEqual(many.map((p) => (p.endsWith('nope') ? 'ENOENT' : fs.statSync(p).size)));
    expect(nativeStatsOfAny(native, ['/tmp/a\0b'])).toBeUndefined();
    // lstat: the link itself.
    const [link, missing] = nativeStatsOfAny(native, [path.join(root, 'link'), path.join(root, 'nope')], false) ?? [];
    const lst = fs.lstatSync(path.join(root, 'link'));
    expect(link).toEqual({ size: lst.size, mtimeMs: lst.mtimeMs, ctimeMs: lst.ctimeMs, ino: lst.ino, dev: lst.dev, mode: lst.mode });
    expect(missing).toEqual({ code: 'ENOENT' });
  });

  it('does not start for a path with a NUL in it (no system call could take it)', () => {
    expect(startNativeCopy(native, { sources: ['/tmp/a\0b'], sizes: [1], hash: false, fd: 1, start: 512 })).toBeUndefined();
  });

  it('copies a file larger than a piece on several threads, with and without copy_file_range', async () => {
    const root = tempDir();
    // Sparse: 150 MB on disk costs nothing; the data at both ends and in the middle is checked.
    const big = path.join(root, 'big');
    const fd = fs.openSync(big, 'w');
    const marks = [0, (64 << 20) - 5, 100 << 20, (150 << 20) - 7]; // the second spans two pieces
    for (const at of marks) fs.writeSync(fd, Buffer.from(`@${at}@`), 0, undefined, at);
    fs.closeSync(fd);
    const size = fs.statSync(big).size;
    const tree: RofsTree = { root: rofsDir() };
    tree.root.entries.set('big', rofsFileFrom(big));
    for (const copier of ['native', 'native-plain-io'] as const) {
      const out = path.join(root, `${copier}.img`);
      await writeRofsImage(tree, out, { incremental: false, copier });
      const back = readRofsFile(out, '/big');
      expect(back.length).toBe(size);
      for (const at of marks) expect(back.subarray(at, at + String(at).length + 2).toString()).toBe(`@${at}@`);
      fs.rmSync(out);
    }
  });

  it('hands a walked file whose size cannot be trusted (/proc) to the JavaScript copier, which reads it as it is', async () => {
    const root = tempDir();
    // A regular file whose stat size (0) is not its content: what a walked file changing
    // between the stat and the copy looks like to the copier.
    const tree: RofsTree = { root: rofsDir() };
    tree.root.entries.set('status', { kind: 'file', source: '/proc/self/status', host: '/proc/self/status' });
    const out = path.join(root, 'proc.img');
    await writeRofsImage(tree, out, { incremental: false, copier: 'native' });
    expect(readRofsFile(out, '/status').toString()).toMatch(/^Name:/);
  });
});
