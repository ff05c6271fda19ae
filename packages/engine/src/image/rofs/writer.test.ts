/** The ROFS writer: streaming, atomic full writes, incremental in-place updates. */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { OsvbError } from '../../errors/index.js';
import { listRofs, readRofsFile } from './reader.js';
import { buildRofsTree, rofsDir, rofsFileFrom, type RofsTree } from './tree.js';
import { nativeCopier } from './nativeCopy.js';
import { defaultLayoutPath, writeRofsImage, type RofsCopier } from './writer.js';
import { bytes, useTempDirs } from '../../testing/index.js';

const tempDir = useTempDirs('osvb-rofs-writer-', 'all');

/** Every way a full write can copy file data; the native ones where @osv-build/native is built (see nativeCopy.test.ts). */
const COPIERS: RofsCopier[] = nativeCopier() ? ['plain', 'threads', 'native', 'native-plain-io'] : ['plain', 'threads'];


/**
 * 30 "modules" of a few files each, and the manifest that maps them: one line per file (so the
 * tree stats them, and the writer can tell when one changes under it), or one `/**` line per
 * module (walked files are sized when they are read, or stat'ed by an incremental write).
 */
function moduleTree(root: string, walk = false): { build: string; manifest: string; files: string[] } {
  const build = path.join(root, 'build');
  const files: string[] = [];
  let manifest = '';
  for (let m = 0; m < 30; m++) {
    for (let f = 0; f < 4; f++) {
      const rel = `mods/m${m}/f${f}`;
      fs.mkdirSync(path.join(build, `mods/m${m}`), { recursive: true });
      fs.writeFileSync(path.join(build, rel), bytes(((m * 7 + f * 13) % 9) * 700 + 37, m * 10 + f));
      files.push(rel);
      if (!walk) manifest += `/m${m}/f${f}: ${rel}\n`;
    }
    if (walk) manifest += `/m${m}/**: mods/m${m}/**\n`;
  }
  manifest += '/etc/mnttab: ->/proc/mounts\n';
  fs.writeFileSync(path.join(build, 'usr.manifest'), manifest);
  return { build, manifest, files };
}

async function treeOf(build: string): Promise<RofsTree> {
  return buildRofsTree(fs.readFileSync(path.join(build, 'usr.manifest'), 'utf8'), { file: 'usr.manifest', cwd: build, strip: false });
}

/** Make sure a file's new mtime/ctime differ from what a sidecar recorded (coarse timestamps). */
function rewrite(file: string, data: Buffer): void {
  fs.writeFileSync(file, data);
  const t = new Date(Date.now() + 5000);
  fs.utimesSync(file, t, t);
}

describe.each(COPIERS)('full writes (copier: %s)', (copier) => {
  it('are atomic: a failure leaves neither a temp file nor a partial image', async () => {
    const root = tempDir();
    const { build } = moduleTree(root);
    const tree = await treeOf(build);
    // A source that grows between building the tree and writing the image.
    fs.appendFileSync(path.join(build, 'mods/m3/f1'), 'more');
    const out = path.join(root, 'rofs.img');
    await expect(writeRofsImage(tree, out, { incremental: false, copier })).rejects.toMatchObject({ code: 'OSVB_IO' });
    expect(fs.readdirSync(root)).toEqual(['build']);
  });

  it('report a source that shrank or vanished', async () => {
    const root = tempDir();
    const { build } = moduleTree(root);
    const tree = await treeOf(build);
    fs.truncateSync(path.join(build, 'mods/m5/f2'), 3);
    await expect(writeRofsImage(tree, path.join(root, 'a.img'), { incremental: false, copier })).rejects.toThrow(/changed while the image was written: expected \d+ bytes, it has 3/);
    fs.rmSync(path.join(build, 'mods/m5/f2'));
    const err = await writeRofsImage(tree, path.join(root, 'a.img'), { incremental: false, copier }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OsvbError);
    expect((err as OsvbError).message).toMatch(/does not exist/);
    expect((err as OsvbError).location).toEqual({ file: 'usr.manifest', line: 23 });
  });

  it('stream files larger than the write buffer (and detect growth after the last chunk)', async () => {
    const root = tempDir();
    const big = path.join(root, 'big');
    const data = bytes(20 * 1024 * 1024 + 123, 7);
    fs.writeFileSync(big, data);
    const small = path.join(root, 'small');
    fs.writeFileSync(small, 'small');
    const tree: RofsTree = { root: rofsDir() };
    tree.root.entries.set('s', rofsFileFrom(small));
    tree.root.entries.set('big', rofsFileFrom(big));
    tree.root.entries.set('t', rofsFileFrom(small));
    const out = path.join(root, 'big.img');
    const stats = await writeRofsImage(tree, out, { incremental: false, copier });
    expect(stats.bytesWritten).toBe(fs.statSync(out).size);
    expect(readRofsFile(out, '/big').equals(data)).toBe(true);
    expect(readRofsFile(out, '/t').toString()).toBe('small');
    fs.appendFileSync(big, 'x');
    await expect(writeRofsImage(tree, out, { incremental: false, copier })).rejects.toThrow(/it has more/);
    expect(readRofsFile(out, '/big').equals(data)).toBe(true); // the old image is untouched
  });

  it('walked files are sized by reading them: a file that changed since the walk is written as it is now', async () => {
    const root = tempDir();
    const { build } = moduleTree(root, true);
    const tree = await treeOf(build);
    fs.writeFileSync(path.join(build, 'mods/m7/f1'), 'changed after the walk');
    const out = path.join(root, 'rofs.img');
    await writeRofsImage(tree, out, { incremental: false, copier });
    expect(readRofsFile(out, '/m7/f1').toString()).toBe('changed after the walk');
    const again = path.join(root, 'again.img');
    await writeRofsImage(await treeOf(build), again, { incremental: false, copier });
    expect(fs.readFileSync(out).equals(fs.readFileSync(again))).toBe(true);
  });

  it('a non-incremental write removes a stale layout file', async () => {
    const root = tempDir();
    const { build } = moduleTree(root);
    const out = path.join(root, 'rofs.img');
    await writeRofsImage(await treeOf(build), out, { incremental: true, copier });
    expect(fs.existsSync(defaultLayoutPath(out))).toBe(true);
    await writeRofsImage(await treeOf(build), out, { incremental: false, copier });
    expect(fs.existsSync(defaultLayoutPath(out))).toBe(false);
  });
});

describe('incremental updates', () => {
  async function scratch(build: string, root: string): Promise<Buffer> {
    const p = path.join(root, `scratch-${Math.random().toString(36).slice(2)}.img`);
    await writeRofsImage(await treeOf(build), p, { incremental: false });
    const b = fs.readFileSync(p);
    fs.rmSync(p);
    return b;
  }

  it('one file changed in the middle (same size): only it is rewritten; the image equals a from-scratch one', async () => {
    const root = tempDir();
    const { build } = moduleTree(root);
    const out = path.join(root, 'rofs.img');
    const first = await writeRofsImage(await treeOf(build), out, { incremental: true });
    expect(first.mode).toBe('full');
    const target = path.join(build, 'mods/m15/f2');
    const size = fs.statSync(target).size;
    rewrite(target, bytes(size, 999));
    const second = await writeRofsImage(await treeOf(build), out, { incremental: true });
    expect(second.mode).toBe('in-place');
    expect(second.filesWritten).toBe(1);
    expect(second.filesReused).toBe(first.filesWritten - 1);
    expect(second.bytesWritten).toBeLessThan(first.bytesWritten / 10);
    expect(fs.readFileSync(out).equals(await scratch(build, root))).toBe(true);
  });

  it('one file grows by a block: everything after it moves; still identical to a from-scratch image (walked tree)', async () => {
    const root = tempDir();
    const { build, files } = moduleTree(root, true);
    const out = path.join(root, 'rofs.img');
    const first = await writeRofsImage(await treeOf(build), out, { incremental: true });
    const target = path.join(build, 'mods/m20/f0');
    rewrite(target, Buffer.concat([fs.readFileSync(target), bytes(900, 1)]));
    const second = await writeRofsImage(await treeOf(build), out, { incremental: true });
    expect(second.mode).toBe('in-place');
    expect(second.filesReused).toBeGreaterThan(0);
    expect(second.filesWritten).toBeLessThan(files.length);
    expect(second.bytesWritten).toBeLessThan(first.bytesWritten);
    expect(fs.readFileSync(out).equals(await scratch(build, root))).toBe(true);
  });

  it('a shrinking tree truncates the image (walked tree)', async () => {
    const root = tempDir();
    const { build } = moduleTree(root, true);
    const out = path.join(root, 'rofs.img');
    await writeRofsImage(await treeOf(build), out, { incremental: true });
    const manifest = fs.readFileSync(path.join(build, 'usr.manifest'), 'utf8').split('\n');
    fs.writeFileSync(path.join(build, 'usr.manifest'), manifest.filter((l) => !/^\/m(2\d)\//.test(l)).join('\n'));
    const second = await writeRofsImage(await treeOf(build), out, { incremental: true });
    expect(second.mode).toBe('in-place');
    expect(fs.readFileSync(out).equals(await scratch(build, root))).toBe(true);
  });

  it('nothing changed: nothing is written and the image keeps its mtime (walked tree)', async () => {
    const root = tempDir();
    const { build } = moduleTree(root, true);
    const out = path.join(root, 'rofs.img');
    await writeRofsImage(await treeOf(build), out, { incremental: true });
    const before = fs.statSync(out, { bigint: true }).mtimeNs;
    const again = await writeRofsImage(await treeOf(build), out, { incremental: true });
    expect(again).toMatchObject({ mode: 'in-place', bytesWritten: 0, filesWritten: 0 });
    expect(fs.statSync(out, { bigint: true }).mtimeNs).toBe(before);
  });

  it('a touched but unchanged file is compared by content and not rewritten', async () => {
    const root = tempDir();
    const { build } = moduleTree(root);
    const out = path.join(root, 'rofs.img');
    await writeRofsImage(await treeOf(build), out, { incremental: true });
    const target = path.join(build, 'mods/m1/f1');
    rewrite(target, fs.readFileSync(target));
    const again = await writeRofsImage(await treeOf(build), out, { incremental: true });
    expect(again.filesWritten).toBe(0);
  });

  it('an image changed behind its layout file is rewritten from scratch', async () => {
    const root = tempDir();
    const { build } = moduleTree(root);
    const out = path.join(root, 'rofs.img');
    await writeRofsImage(await treeOf(build), out, { incremental: true });
    const fd = fs.openSync(out, 'r+');
    fs.writeSync(fd, Buffer.from('garbage'), 0, 7, 600);
    fs.closeSync(fd);
    const t = new Date(Date.now() + 10_000);
    fs.utimesSync(out, t, t);
    const again = await writeRofsImage(await treeOf(build), out, { incremental: true });
    expect(again.mode).toBe('full');
    expect(again.fullReason).toMatch(/changed after the layout file/);
    expect(fs.readFileSync(out).equals(await scratch(build, root))).toBe(true);
  });

  it('a damaged or foreign layout file is not trusted', async () => {
    const root = tempDir();
    const { build } = moduleTree(root);
    const out = path.join(root, 'rofs.img');
    await writeRofsImage(await treeOf(build), out, { incremental: true });
    fs.writeFileSync(defaultLayoutPath(out), '{"format":"something else"}');
    expect((await writeRofsImage(await treeOf(build), out, { incremental: true })).mode).toBe('full');
    fs.writeFileSync(defaultLayoutPath(out), '{not json');
    expect((await writeRofsImage(await treeOf(build), out, { incremental: true })).mode).toBe('full');
  });

  it('a run that fails half-way leaves no layout file and no image; the next run writes from scratch', async () => {
    const root = tempDir();
    const { build } = moduleTree(root);
    const out = path.join(root, 'rofs.img');
    await writeRofsImage(await treeOf(build), out, { incremental: true });
    const a = path.join(build, 'mods/m4/f0');
    const b = path.join(build, 'mods/m25/f3');
    rewrite(a, bytes(fs.statSync(a).size, 4242));
    rewrite(b, bytes(fs.statSync(b).size + 10, 4243)); // planned as "write" without reading it
    const tree = await treeOf(build);
    fs.appendFileSync(b, 'grew after the tree was built');
    await expect(writeRofsImage(tree, out, { incremental: true })).rejects.toMatchObject({ code: 'OSVB_IO' });
    expect(fs.existsSync(defaultLayoutPath(out))).toBe(false);
    expect(fs.existsSync(out)).toBe(false);
    const next = await writeRofsImage(await treeOf(build), out, { incremental: true });
    expect(next.mode).toBe('full');
    expect(fs.readFileSync(out).equals(await scratch(build, root))).toBe(true);
  });

  it('the files that move after a grown one (copied as one run) fail the same way when one of them changed', async () => {
    const root = tempDir();
    const { build } = moduleTree(root);
    const out = path.join(root, 'rofs.img');
    await writeRofsImage(await treeOf(build), out, { incremental: true });
    const grown = path.join(build, 'mods/m3/f0');
    rewrite(grown, Buffer.concat([fs.readFileSync(grown), bytes(600, 5)])); // every file after it moves
    const tree = await treeOf(build);
    const follower = path.join(build, 'mods/m20/f1');
    fs.appendFileSync(follower, 'grew after the tree was built');
    const err = await writeRofsImage(tree, out, { incremental: true }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'OSVB_IO' });
    expect((err as OsvbError).message).toMatch(/mods\/m20\/f1.*changed while the image was written/);
    expect(fs.existsSync(defaultLayoutPath(out))).toBe(false);
    expect(fs.existsSync(out)).toBe(false);
    const next = await writeRofsImage(await treeOf(build), out, { incremental: true });
    expect(fs.readFileSync(out).equals(await scratch(build, root))).toBe(true);
    expect(next.mode).toBe('full');
  });

  it('a source that changes while being compared fails before the image is touched', async () => {
    const root = tempDir();
    const { build } = moduleTree(root);
    const out = path.join(root, 'rofs.img');
    await writeRofsImage(await treeOf(build), out, { incremental: true });
    const before = fs.readFileSync(out);
    const b = path.join(build, 'mods/m25/f3');
    rewrite(b, fs.readFileSync(b)); // same content, new mtime: it will be read and compared
    const tree = await treeOf(build);
    fs.appendFileSync(b, 'grew after the tree was built');
    await expect(writeRofsImage(tree, out, { incremental: true })).rejects.toMatchObject({ code: 'OSVB_IO' });
    expect(fs.readFileSync(out).equals(before)).toBe(true);
    expect(fs.existsSync(defaultLayoutPath(out))).toBe(true);
  });

  it('a process killed mid-update (layout file deleted, image half-written) is not trusted next time', async () => {
    const root = tempDir();
    const { build } = moduleTree(root);
    const out = path.join(root, 'rofs.img');
    await writeRofsImage(await treeOf(build), out, { incremental: true });
    // What a kill leaves: the sidecar already removed, some bytes changed.
    fs.rmSync(defaultLayoutPath(out));
    const fd = fs.openSync(out, 'r+');
    fs.writeSync(fd, Buffer.alloc(512, 0xee), 0, 512, 512 * 3);
    fs.closeSync(fd);
    const next = await writeRofsImage(await treeOf(build), out, { incremental: true });
    expect(next.mode).toBe('full');
    expect(fs.readFileSync(out).equals(await scratch(build, root))).toBe(true);
  });

  it('stat signatures are recorded once sources are old enough, and a same-size edit with a restored mtime is still caught (ctime)', async () => {
    const root = tempDir();
    const { build } = moduleTree(root);
    await new Promise((r) => setTimeout(r, 2200)); // past the racy window
    const out = path.join(root, 'rofs.img');
    await writeRofsImage(await treeOf(build), out, { incremental: true });
    const side = JSON.parse(fs.readFileSync(defaultLayoutPath(out), 'utf8')) as { files: { path: string[]; signature: Array<string | null>; digest: string[] } };
    expect(side.files.path).toHaveLength(120);
    expect(side.files.signature.every((sig) => typeof sig === 'string')).toBe(true);
    expect(side.files.digest.every((d) => /^[0-9a-f]{16}$/.test(d))).toBe(true);
    const target = path.join(build, 'mods/m9/f3');
    const st = fs.statSync(target);
    fs.writeFileSync(target, bytes(st.size, 31337));
    fs.utimesSync(target, st.atime, st.mtime);
    const again = await writeRofsImage(await treeOf(build), out, { incremental: true });
    expect(again.filesWritten).toBe(1);
    expect(fs.readFileSync(out).equals(await scratch(build, root))).toBe(true);
  });

  it("sources older than the write on the image's file system are trusted by stat at once, newer ones are not", async () => {
    const root = tempDir();
    const { build } = moduleTree(root, true);
    const future = path.join(build, 'mods/m4/f2');
    const later = new Date(Date.now() + 60_000);
    fs.utimesSync(future, later, later); // its mtime is after the write: racy, compared by content next time
    await new Promise((r) => setTimeout(r, 50)); // past any coarse timestamp tick
    const out = path.join(root, 'rofs.img');
    await writeRofsImage(await treeOf(build), out, { incremental: true });
    const side = JSON.parse(fs.readFileSync(defaultLayoutPath(out), 'utf8')) as { files: { path: string[]; signature: Array<string | null> } };
    expect(side.files.path).toHaveLength(120);
    side.files.path.forEach((p, i) => expect([p, side.files.signature[i] === null]).toEqual([p, p === '/m4/f2']));
    // A same-size edit of a trusted source with its mtime restored is still caught (ctime), and
    // the racy one is compared by content.
    const target = path.join(build, 'mods/m9/f3');
    const st = fs.statSync(target);
    fs.writeFileSync(target, bytes(st.size, 4242));
    fs.utimesSync(target, st.atime, st.mtime);
    const fst = fs.statSync(future);
    fs.writeFileSync(future, bytes(fst.size, 777));
    fs.utimesSync(future, fst.atime, fst.mtime);
    const again = await writeRofsImage(await treeOf(build), out, { incremental: true });
    expect(again.mode).toBe('in-place');
    expect(again.filesWritten).toBe(2);
    expect(fs.readFileSync(out).equals(await scratch(build, root))).toBe(true);
  });

  it('the image lists the same tree after an incremental update', async () => {
    const root = tempDir();
    const { build } = moduleTree(root);
    const out = path.join(root, 'rofs.img');
    await writeRofsImage(await treeOf(build), out, { incremental: true });
    rewrite(path.join(build, 'mods/m0/f0'), Buffer.from('tiny now'));
    await writeRofsImage(await treeOf(build), out, { incremental: true });
    expect(readRofsFile(out, '/m0/f0').toString()).toBe('tiny now');
    expect(listRofs(out).filter((e) => e.kind === 'file')).toHaveLength(120);
  });
});

describe('copiers side by side', () => {
  /** 300 files over 7 batches, some empty, one larger than the ring, listed or walked. */
  function bigTree(root: string, walk: boolean): string {
    const build = path.join(root, 'build');
    let manifest = '';
    for (let m = 0; m < 6; m++) {
      fs.mkdirSync(path.join(build, `m${m}`), { recursive: true });
      for (let f = 0; f < 50; f++) {
        const rel = `m${m}/f${String(f).padStart(2, '0')}`;
        const size = m === 3 && f === 7 ? 17 * 1024 * 1024 + 5 : f % 11 === 0 ? 0 : ((m * 31 + f * 17) % 23) * 611 + 1;
        fs.writeFileSync(path.join(build, rel), bytes(size, m * 100 + f));
        if (!walk) manifest += `/${rel}: ${rel}\n`;
      }
      if (walk) manifest += `/m${m}/**: m${m}/**\n`;
    }
    fs.writeFileSync(path.join(build, 'usr.manifest'), manifest);
    return build;
  }

  for (const walk of [false, true]) {
    it(`writes the same image and the same content digests as the single-threaded writer (${walk ? 'walked' : 'listed'} files)`, async () => {
      const root = tempDir();
      const build = bigTree(root, walk);
      const images: Buffer[] = [];
      const digests: unknown[] = [];
      for (const copier of COPIERS) {
        for (const incremental of [false, true]) {
          const out = path.join(root, `${copier}-${incremental}.img`);
          const stats = await writeRofsImage(await treeOf(build), out, { incremental, copier });
          expect(stats.mode).toBe('full');
          expect(stats.bytesWritten).toBe(fs.statSync(out).size);
          images.push(fs.readFileSync(out));
          if (incremental) digests.push((JSON.parse(fs.readFileSync(defaultLayoutPath(out), 'utf8')) as { files: { digest: string[] } }).files.digest);
        }
      }
      expect(images).toHaveLength(COPIERS.length * 2);
      for (const img of images.slice(1)) expect(img.equals(images[0] as Buffer)).toBe(true);
      for (const d of digests.slice(1)) expect(d).toEqual(digests[0]);
      expect((digests[0] as string[]).length).toBeGreaterThan(250);
      expect(readRofsFile(path.join(root, 'threads-false.img'), '/m3/f07').equals(fs.readFileSync(path.join(build, 'm3/f07')))).toBe(true);
    });
  }

  it.each(COPIERS)('reports the first unreadable file in image order, with its manifest line, and leaves nothing behind (%s)', async (copier) => {
    const root = tempDir();
    const build = bigTree(root, false);
    const tree = await treeOf(build);
    fs.rmSync(path.join(build, 'm5/f40'));
    fs.rmSync(path.join(build, 'm4/f03'));
    const out = path.join(root, 'out', 'rofs.img');
    fs.mkdirSync(path.dirname(out));
    const err = await writeRofsImage(tree, out, { incremental: false, copier }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OsvbError);
    expect((err as OsvbError).code).toBe('OSVB_IMAGE_INPUT');
    expect((err as OsvbError).message).toMatch(/"m4\/f03" for guest path "\/m4\/f03" does not exist/);
    expect((err as OsvbError).location).toEqual({ file: 'usr.manifest', line: 204 });
    expect(fs.readdirSync(path.dirname(out))).toEqual([]);
  });
});

// A real full file system: a 1 MiB tmpfs (needs the right to mount, as root in CI; skipped elsewhere).
function tinyFileSystem(root: string): string | undefined {
  const dir = path.join(root, 'tiny');
  fs.mkdirSync(dir);
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', dir]);
  return r.status === 0 ? dir : undefined;
}

describe('a layout file that cannot be written', () => {
  it('is OSVB_IO naming it; the image is complete, no temp file is left, and the next write is a whole one', async () => {
    const root = tempDir();
    const { build } = moduleTree(root);
    const out = path.join(root, 'rofs.img');
    const layoutPath = path.join(root, 'no-such-dir', 'rofs.img.osvb-layout.json');
    const err = await writeRofsImage(await treeOf(build), out, { incremental: true, layoutPath }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OsvbError);
    expect((err as OsvbError).code).toBe('OSVB_IO');
    expect((err as OsvbError).message).toMatch(/^cannot write the layout file .*no-such-dir.*ENOENT/);
    expect(fs.readdirSync(root).sort()).toEqual(['build', 'rofs.img']);
    const whole = path.join(root, 'whole.img');
    await writeRofsImage(await treeOf(build), whole, { incremental: false });
    expect(fs.readFileSync(out).equals(fs.readFileSync(whole))).toBe(true);
    fs.mkdirSync(path.dirname(layoutPath));
    expect((await writeRofsImage(await treeOf(build), out, { incremental: true, layoutPath })).mode).toBe('full');
  });
});

describe('a full disk', () => {
  it('fails every copier with OSVB_IO, no temp file, and the old image untouched', async () => {
    const root = tempDir();
    const tiny = tinyFileSystem(root);
    if (!tiny) return; // no mount here: nothing to test with a real full disk
    try {
      const { build } = moduleTree(root);
      fs.writeFileSync(path.join(build, 'big'), Buffer.alloc(3 << 20, 7));
      fs.appendFileSync(path.join(build, 'usr.manifest'), '/big: big\n');
      const out = path.join(tiny, 'rofs.img');
      fs.writeFileSync(out, 'the old image');
      for (const copier of COPIERS) {
        for (const incremental of [false, true]) {
          const err = await writeRofsImage(await treeOf(build), out, { incremental, copier }).catch((e: unknown) => e);
          expect(err, `${copier}, incremental ${incremental}: ${String(err)}`).toBeInstanceOf(OsvbError);
          expect((err as OsvbError).code).toBe('OSVB_IO');
          expect((err as OsvbError).message).toMatch(/^cannot write .*rofs\.img: ENOSPC/);
          expect(fs.readdirSync(tiny)).toEqual(['rofs.img']);
          expect(fs.readFileSync(out, 'utf8')).toBe('the old image');
        }
      }
    } finally {
      spawnSync('umount', [tiny]);
    }
  });
});
