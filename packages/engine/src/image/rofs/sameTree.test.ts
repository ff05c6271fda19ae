/**
 * Incremental writes from a manifest (writeRofsImageFromManifest): the tree is not built again
 * when its recorded reads all agree, and the image is then updated from the layout file alone.
 * Every check compares the updated image with a fresh full write of the same manifest: a reused
 * tree that should have changed would show as a difference.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bytes, strippableElf, useTempDirs } from '../../testing/index.js';
import { nativeCopier } from './nativeCopy.js';
import { readRofsFile } from './reader.js';
import type { RofsTreeOptions } from './tree.js';
import { defaultLayoutPath, writeRofsImageFromManifest, type RofsWriteStats } from './writer.js';

const tempDir = useTempDirs('osvb-rofs-same-tree-');


/**
 * A build directory with what manifests map: module directories copied with `/**` (one with a
 * sub-directory and an empty file), files listed one by one, a host symlink (resolved by
 * unsymlink), a guest link.
 */
function workspace(root: string, walkOrder: 'sorted' | 'os' = 'sorted') {
  const build = path.join(root, 'build');
  for (let m = 0; m < 4; m++) {
    fs.mkdirSync(path.join(build, `mods/m${m}/sub`), { recursive: true });
    for (let f = 0; f < 3; f++) fs.writeFileSync(path.join(build, `mods/m${m}/f${f}`), bytes(300 + m * 200 + f * 90, m * 10 + f));
    fs.writeFileSync(path.join(build, `mods/m${m}/sub/deep`), bytes(1500, m));
  }
  fs.writeFileSync(path.join(build, 'mods/m0/empty'), '');
  fs.mkdirSync(path.join(build, 'lib'), { recursive: true });
  fs.writeFileSync(path.join(build, 'lib/a.txt'), bytes(2000, 77));
  fs.writeFileSync(path.join(build, 'lib/b.txt'), bytes(100, 78));
  fs.symlinkSync('b.txt', path.join(build, 'lib/link.txt'));
  let text = '';
  for (let m = 0; m < 4; m++) text += `/m${m}/**: mods/m${m}/**\n`;
  text += '/usr/lib/a.txt: lib/a.txt\n/usr/lib/b.txt: lib/link.txt\n/etc/mnttab: ->/proc/mounts\n';
  const out = path.join(root, 'rofs.img');
  const opts: RofsTreeOptions = { file: 'usr.manifest', cwd: build, walkOrder, strip: false };
  /** Write incrementally, and check the image equals a full write of the same manifest. */
  const write = async (manifest = text, options = opts): Promise<RofsWriteStats> => {
    const before = fs.existsSync(out) ? fs.readFileSync(out) : undefined;
    const stats = await writeRofsImageFromManifest(manifest, options, out, { incremental: true });
    const ref = path.join(root, 'ref.img');
    await writeRofsImageFromManifest(manifest, options, ref, { incremental: false });
    const now = fs.readFileSync(ref);
    expect(fs.readFileSync(out).equals(now), 'the updated image equals a full write').toBe(true);
    if (stats.mode === 'in-place') {
      // The reported ranges alone bring a copy of the old image up to date (usr.img relies on it).
      const copy = Buffer.alloc(now.length);
      (before as Buffer).copy(copy, 0, 0, Math.min(now.length, (before as Buffer).length));
      for (const [s, e] of stats.changed ?? []) now.copy(copy, s, s, e);
      expect(copy.equals(now), 'the changed ranges make the old image the new one').toBe(true);
    } else expect(stats.changed).toBeUndefined();
    fs.rmSync(ref);
    return stats;
  };
  return { build, text, out, opts, write, at: (rel: string) => path.join(build, rel) };
}

/** The same-tree check stats on native threads when they are built, else in JavaScript: both, where both exist. */
const CHECKERS = nativeCopier() ? ['native', 'javascript'] : ['javascript'];

describe.each(CHECKERS)('writeRofsImageFromManifest (incremental; stats: %s)', (checker) => {
  const saved = process.env['OSVB_NATIVE'];
  beforeAll(() => {
    if (checker === 'javascript') process.env['OSVB_NATIVE'] = '0';
  });
  afterAll(() => {
    if (saved === undefined) delete process.env['OSVB_NATIVE'];
    else process.env['OSVB_NATIVE'] = saved;
  });

  it('reuses the tree after a content change: one file rewritten where it is, nothing else', async () => {
    const w = workspace(tempDir());
    const first = await w.write();
    expect(first).toMatchObject({ mode: 'full', treeReused: false, treeReason: 'no layout file from an earlier write' });
    fs.writeFileSync(w.at('mods/m2/f1'), bytes(fs.statSync(w.at('mods/m2/f1')).size, 999));
    const s = await w.write();
    expect(s).toMatchObject({ mode: 'in-place', treeReused: true, filesWritten: 1 });
    expect(s.bytesWritten).toBe(1024);
    expect(s.files).toBe(first.files);
  });

  it('leaves the image and its layout file alone when nothing changed', async () => {
    const w = workspace(tempDir());
    await w.write();
    await w.write(); // records what a fresh tree could not vouch for yet
    const before = fs.statSync(w.out, { bigint: true }).mtimeNs;
    const layoutBefore = fs.readFileSync(defaultLayoutPath(w.out));
    const s = await w.write();
    expect(s).toMatchObject({ mode: 'in-place', treeReused: true, filesWritten: 0, bytesWritten: 0 });
    expect(fs.statSync(w.out, { bigint: true }).mtimeNs).toBe(before);
    expect(fs.readFileSync(defaultLayoutPath(w.out)).equals(layoutBefore)).toBe(true);
  });

  it('patches the inode when a size changes within the file’s blocks; lays out anew when the blocks change', async () => {
    const w = workspace(tempDir());
    await w.write();
    fs.writeFileSync(w.at('mods/m1/f0'), bytes(510, 5)); // 500 → 510 bytes: still one block
    const s = await w.write();
    expect(s).toMatchObject({ mode: 'in-place', treeReused: true, filesWritten: 1 });
    fs.writeFileSync(w.at('mods/m1/f0'), bytes(2000, 5)); // four blocks now: everything after it moves
    const t = await w.write();
    expect(t.treeReused).toBe(false);
    expect(t.treeReason).toMatch(/\/m1\/f0 now needs 4 blocks instead of 1/);
  });

  it('builds the tree again when a walked directory gains, loses or renames an entry', async () => {
    const w = workspace(tempDir());
    await w.write();
    fs.writeFileSync(w.at('mods/m3/new'), 'new file');
    expect((await w.write()).treeReason).toMatch(/directory .*mods\/m3\/ changed/);
    fs.renameSync(w.at('mods/m3/new'), w.at('mods/m3/renamed'));
    expect((await w.write()).treeReused).toBe(false);
    fs.rmSync(w.at('mods/m0/sub'), { recursive: true });
    expect((await w.write()).treeReused).toBe(false);
    fs.mkdirSync(w.at('mods/m2/sub/newdir'));
    expect((await w.write()).treeReused).toBe(false);
  });

  it('lists a touched directory again and keeps the tree when its entries are the same', async () => {
    const w = workspace(tempDir());
    await w.write();
    fs.writeFileSync(w.at('mods/m1/tmp'), 'x');
    fs.rmSync(w.at('mods/m1/tmp'));
    // A file replaced by a new one of the same name (as a linker writes its output).
    const size = fs.statSync(w.at('mods/m1/f2')).size;
    fs.rmSync(w.at('mods/m1/f2'));
    fs.writeFileSync(w.at('mods/m1/f2'), bytes(size, 12345));
    const s = await w.write();
    expect(s).toMatchObject({ treeReused: true, filesWritten: 1 });
  });

  it('builds the tree again when a host link, a listed file or a walked entry changes kind or target', async () => {
    const w = workspace(tempDir());
    await w.write();
    fs.rmSync(w.at('lib/link.txt'));
    fs.symlinkSync('a.txt', w.at('lib/link.txt'));
    expect((await w.write()).treeReason).toMatch(/link\.txt changed/);
    fs.rmSync(w.at('lib/a.txt'));
    fs.mkdirSync(w.at('lib/a.txt'));
    fs.writeFileSync(w.at('lib/a.txt/inside'), 'in a directory now');
    expect((await w.write()).treeReused).toBe(false);
    // A walked file replaced by a link to a directory (os.walk lists it as a directory, not descended).
    fs.rmSync(w.at('mods/m2/f0'));
    fs.symlinkSync('sub', w.at('mods/m2/f0'));
    expect((await w.write()).treeReused).toBe(false);
  });

  it('reports a listed file that disappeared with its manifest line, and leaves the image as it was', async () => {
    const w = workspace(tempDir());
    await w.write();
    const before = fs.readFileSync(w.out);
    fs.rmSync(w.at('lib/a.txt'));
    await expect(writeRofsImageFromManifest(w.text, w.opts, w.out, { incremental: true })).rejects.toMatchObject({
      code: 'OSVB_IMAGE_INPUT',
      location: { file: 'usr.manifest', line: 5 },
    });
    expect(fs.readFileSync(w.out).equals(before)).toBe(true);
  });

  it('builds the tree again when the manifest text, a define or the walk order changes', async () => {
    const w = workspace(tempDir());
    const text = w.text + '/x/%(name)s: lib/b.txt\n';
    await w.write(text, { ...w.opts, defines: { name: 'one' } });
    expect((await w.write(text, { ...w.opts, defines: { name: 'one' } })).treeReused).toBe(true);
    expect((await w.write(text, { ...w.opts, defines: { name: 'two' } })).treeReason).toBe('the manifest or its options changed');
    expect((await w.write(text + '/y: lib/b.txt\n', { ...w.opts, defines: { name: 'two' } })).treeReused).toBe(false);
    expect((await w.write(text + '/y: lib/b.txt\n', { ...w.opts, defines: { name: 'two' }, walkOrder: 'os' })).treeReused).toBe(false);
  });

  it('trusts a directory by its signature once it is old enough, and still sees a change to it', async () => {
    const w = workspace(tempDir());
    // Older than the racy window: the layout file records the directories' signatures.
    await new Promise((r) => setTimeout(r, 2100));
    await w.write();
    const layout = JSON.parse(fs.readFileSync(defaultLayoutPath(w.out), 'utf8')) as { tree: { reads: string[]; seen: string[] } };
    const dirs = layout.tree.reads.map((r, i) => [r, layout.tree.seen[i] as string] as const).filter(([r]) => r.startsWith('D:'));
    expect(dirs.length).toBe(8);
    expect(dirs.every(([, seen]) => !seen.startsWith('|'))).toBe(true);
    expect((await w.write()).treeReused).toBe(true);
    fs.writeFileSync(w.at('mods/m0/sub/another'), 'x');
    expect((await w.write()).treeReason).toMatch(/mods\/m0\/sub changed/);
  });

  it('keeps walk order "os" (the listing order is part of what is compared)', async () => {
    const w = workspace(tempDir(), 'os');
    await w.write();
    fs.writeFileSync(w.at('mods/m0/f1'), bytes(fs.statSync(w.at('mods/m0/f1')).size, 4242));
    expect((await w.write()).treeReused).toBe(true);
    fs.writeFileSync(w.at('mods/m0/zz'), 'x');
    expect((await w.write()).treeReused).toBe(false);
  });

  it('does not reuse a tree recorded by an older layout file format or a tree-less write', async () => {
    const w = workspace(tempDir());
    await w.write();
    const file = defaultLayoutPath(w.out);
    const layout = JSON.parse(fs.readFileSync(file, 'utf8')) as { tree?: unknown; version: number };
    delete layout.tree;
    fs.writeFileSync(file, JSON.stringify(layout));
    // A layout file with no tree still allows an in-place update (the tree is built).
    const s = await w.write();
    expect(s).toMatchObject({ mode: 'in-place', treeReused: false, treeReason: 'the layout file records no tree' });
    layout.version = 1;
    fs.writeFileSync(file, JSON.stringify(layout));
    expect((await w.write()).treeReason).toBe('the layout file has another format');
  });

  it('--compat=osv uses an existing <x>-stripped.so that is not older than <x>.so, as gen-rofs-img.py does; by default strips afresh', async () => {
    const elf = strippableElf();
    if (!elf) return;
    const root = tempDir();
    const w = workspace(root);
    const lib = w.at('lib/libx.so');
    fs.copyFileSync(elf, lib);
    const prestripped = bytes(3000, 4242);
    fs.writeFileSync(w.at('lib/libx-stripped.so'), prestripped);
    const text = `${w.text}/usr/lib/libx.so: lib/libx.so\n`;
    const cacheDir = path.join(root, 'cache');
    const out = path.join(root, 'rofs.img');
    const content = async (reuseExisting: boolean): Promise<Buffer> => {
      await writeRofsImageFromManifest(text, { ...w.opts, strip: { program: 'strip', cacheDir, warn: () => {}, reuseExisting } }, out, { incremental: false });
      return readRofsFile(out, '/usr/lib/libx.so');
    };
    expect((await content(true)).equals(prestripped)).toBe(true);
    const fresh = await content(false);
    expect(fresh.equals(prestripped)).toBe(false);
    expect(fresh.subarray(0, 4).toString('latin1')).toBe('\x7fELF');
    // Older than the .so (the .so was rebuilt): stripped afresh in both modes.
    const old = new Date(fs.statSync(lib).mtimeMs - 60_000);
    fs.utimesSync(w.at('lib/libx-stripped.so'), old, old);
    expect((await content(true)).equals(fresh)).toBe(true);
  });

  it('strips again when a stripped .so changes, and when the strip program does', async () => {
    const elf = strippableElf();
    if (!elf) return;
    const root = tempDir();
    const w = workspace(root);
    fs.copyFileSync(elf, w.at('mods/m1/libx.so'));
    const cacheDir = path.join(root, 'cache');
    const opts: RofsTreeOptions = { ...w.opts, strip: { program: 'strip', cacheDir, warn: () => {} } };
    await w.write(w.text, opts);
    expect((await w.write(w.text, opts)).treeReused).toBe(true);
    const grown = Buffer.concat([fs.readFileSync(elf), Buffer.alloc(16)]);
    fs.writeFileSync(w.at('mods/m1/libx.so'), grown);
    const s = await w.write(w.text, opts);
    expect(s.treeReused).toBe(false);
    expect(s.treeReason).toMatch(/libx\.so/);
    // Another strip program: another key.
    const other = path.join(root, 'mystrip');
    fs.writeFileSync(other, '#!/bin/sh\n[ "$1" = --version ] && { echo "my strip 1.0"; exit 0; }\nexec strip "$@"\n', { mode: 0o755 });
    const mine: RofsTreeOptions = { ...opts, strip: { program: other, cacheDir, warn: () => {} } };
    expect((await w.write(w.text, mine)).treeReason).toBe('the manifest or its options changed');
    const layout = JSON.parse(fs.readFileSync(defaultLayoutPath(w.out), 'utf8')) as { tree: { reads: string[]; seen: string[] } };
    const identity = layout.tree.reads.indexOf(`P:${other}`);
    expect(layout.tree.seen[identity]).toBe('my strip 1.0');
    expect(layout.tree.reads.some((r) => r.startsWith('C:') && r.endsWith('libx.so'))).toBe(true);
    expect((await w.write(w.text, mine)).treeReused).toBe(true);
  });

  it('random edits between writes: every update equals a full write, and the tree is reused exactly when nothing but contents changed', async () => {
    const files = ['mods/m0/f0', 'mods/m0/f1', 'mods/m1/f2', 'mods/m2/sub/deep', 'mods/m3/f1', 'lib/a.txt', 'lib/b.txt', 'mods/m0/empty'];
    const edit = fc.record({
      op: fc.constantFrom('content', 'same-blocks', 'resize', 'add', 'remove', 'touch-dir', 'relink', 'replace', 'chmod', 'nothing'),
      file: fc.integer({ min: 0, max: files.length - 1 }),
      seed: fc.integer({ min: 1, max: 1_000_000 }),
    });
    let reused = 0;
    let built = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(edit, { minLength: 1, maxLength: 8 }), async (edits) => {
        const w = workspace(tempDir());
        await w.write();
        for (const e of edits) {
          const f = w.at(files[e.file] as string);
          const size = fs.existsSync(f) && fs.statSync(f).isFile() ? fs.statSync(f).size : 0;
          let shapeChanged = false;
          switch (e.op) {
            case 'content':
              if (size > 0) fs.writeFileSync(f, bytes(size, e.seed));
              break;
            case 'same-blocks':
              // Any size that needs as many 512-byte blocks.
              if (size > 0) {
                const lo = Math.floor((size - 1) / 512) * 512 + 1;
                fs.writeFileSync(f, bytes(lo + (e.seed % 512), e.seed));
              }
              break;
            case 'resize':
              fs.writeFileSync(f, bytes(size + 512 + (e.seed % 3000), e.seed));
              shapeChanged = true;
              break;
            case 'add':
              fs.writeFileSync(path.join(path.dirname(f), `n${e.seed}`), bytes(e.seed % 2000, e.seed));
              shapeChanged = true;
              break;
            case 'remove':
              if (fs.existsSync(f) && !f.endsWith('a.txt') && !f.endsWith('b.txt')) {
                fs.rmSync(f);
                shapeChanged = true;
              }
              break;
            case 'touch-dir':
              fs.writeFileSync(path.join(path.dirname(f), '.tmp'), 'x');
              fs.rmSync(path.join(path.dirname(f), '.tmp'));
              break;
            case 'relink':
              fs.rmSync(w.at('lib/link.txt'));
              fs.symlinkSync(e.seed % 2 ? 'a.txt' : 'b.txt', w.at('lib/link.txt'));
              shapeChanged = true; // may be the same target: then the tree is reused, which the image check accepts
              break;
            case 'replace':
              if (size > 0) {
                fs.rmSync(f);
                fs.writeFileSync(f, bytes(size, e.seed));
              }
              break;
            case 'chmod':
              if (fs.existsSync(f)) fs.chmodSync(f, 0o600);
              break;
            case 'nothing':
              break;
          }
          const s = await w.write();
          if (s.treeReused) reused++;
          else built++;
          if (!shapeChanged) expect(s.treeReused, `${e.op} ${files[e.file]}: ${s.treeReason}`).toBe(true);
        }
      }),
      { numRuns: 40, seed: 20261126 },
    );
    expect(reused).toBeGreaterThan(20);
    expect(built).toBeGreaterThan(20);
  }, 120_000);
});
