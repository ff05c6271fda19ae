/**
 * usr.img writes, full and in place, raw and qcow2: every result is compared with a fresh full
 * write of the same inputs (guest-visible bytes, via qemu-img for qcow2), and the in-place paths
 * are checked to write only what changed. A synthetic loader.img (boot sector signature and
 * block count as OSv's Makefile makes them) keeps these tests independent of a real kernel.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { initHashing } from '../../hash/index.js';
import { bytes, error, useTempDirs } from '../../testing/index.js';
import { writeRofsImageFromManifest } from '../rofs/index.js';
import { CMDLINE_AREA, checkLoader, chs, cmdlinePatch, partitionEntry } from './mbr.js';
import { fsSizeFromWords, planDisk } from './plan.js';
import { diskRecordPath, fileSignature, writeDiskImage, type DiskFormat, type DiskWriteInput } from './writer.js';

const tempDir = useTempDirs('osvb-disk-');
const MiB = 1024 * 1024;
const hasQemuImg = spawnSync('qemu-img', ['--version'], { stdio: 'ignore' }).status === 0;

/** A loader.img as OSv's Makefile lays it out: boot sector, command line area, kernel at 64 KiB. */
function fakeLoader(file: string, kernelBytes: number, seed = 1): void {
  const b = Buffer.alloc(64 * 1024 + kernelBytes);
  bytes(400, seed).copy(b, 0);
  b.writeUInt16LE(Math.ceil(kernelBytes / 32768), 0x10);
  b[510] = 0x55;
  b[511] = 0xaa;
  bytes(kernelBytes, seed + 1).copy(b, 64 * 1024);
  fs.writeFileSync(file, b);
}

function guestBytes(image: string, format: DiskFormat, scratch: string): Buffer {
  if (format === 'raw') return fs.readFileSync(image);
  const raw = path.join(scratch, `guest-${Math.random().toString(36).slice(2)}.raw`);
  const r = spawnSync('qemu-img', ['convert', '-O', 'raw', image, raw], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stderr);
  const data = fs.readFileSync(raw);
  fs.rmSync(raw);
  return data;
}

function qcow2Check(image: string): void {
  const r = spawnSync('qemu-img', ['check', image], { encoding: 'utf8' });
  expect(r.status, r.stdout + r.stderr).toBe(0);
}

describe('MBR and command line bytes', () => {
  it('packs partition 2 as imgedit.py setpartition does', () => {
    // 4 MiB start (LBA 8192), 300 KiB: chs(8192) = (0, 130, 3); end chs(8792) = (0, 139, 36).
    const p = partitionEntry(2, 4 * MiB, 300 * 1024);
    expect(p.offset).toBe(0x1ce + 1);
    expect([...p.bytes]).toEqual([130, 3, 0, 0x83, 139, 36, 0, 0x00, 0x20, 0, 0, 0x58, 0x02, 0, 0]);
    expect(chs(20_000_000)).toEqual({ c: 1023, h: 254, s: 63 });
  });

  it('collapses blanks like the shell and limits the command line to what the boot sector reads', () => {
    expect(cmdlinePatch(' --rootfs=rofs  /a\tb\n').bytes.toString()).toBe('--rootfs=rofs /a b\0');
    expect(cmdlinePatch('x'.repeat(CMDLINE_AREA - 1)).bytes.length).toBe(CMDLINE_AREA);
    const e = error(() => cmdlinePatch('x'.repeat(CMDLINE_AREA), '/b/cmdline'));
    expect(e.code).toBe('OSVB_DISK_CMDLINE');
    expect(e.format()).toContain('/b/cmdline');
  });

  it('plans sizes as scripts/build does and rejects what it would fail on', () => {
    expect(planDisk({ fs: 'rofs', bareSize: 3_801_088, loaderSize: 3_801_088, rofsSize: 1024, fsSize: 512 * MiB, createDisk: false })).toMatchObject({
      kernelEnd: 4 * MiB,
      partitionOffset: 4 * MiB,
      partitionSize: 1024,
      virtualSize: 512 * MiB,
    });
    expect(planDisk({ fs: 'ramfs', bareSize: 5 * MiB, loaderSize: 5 * MiB, fsSize: 512 * MiB, createDisk: false })).toMatchObject({ partitionOffset: 6 * MiB, partitionSize: 0, virtualSize: 6 * MiB });
    expect(planDisk({ fs: 'rofs', bareSize: 512, loaderSize: 3 * MiB, rofsSize: 10 * MiB, fsSize: 16 * MiB, createDisk: true })).toMatchObject({ name: 'disk', partitionOffset: 512, cmdline: false });
    const big = error(() => planDisk({ fs: 'rofs', bareSize: 3 * MiB, loaderSize: 3 * MiB, rofsSize: 13 * MiB, fsSize: 16 * MiB, createDisk: false }));
    expect(big.code).toBe('OSVB_DISK_SIZE');
    expect(big.hint).toContain('fs_size_mb=17');
    expect(error(() => planDisk({ fs: 'zfs', bareSize: 1, loaderSize: 1, fsSize: MiB, createDisk: false })).code).toBe('OSVB_DISK_UNSUPPORTED');
    expect(fsSizeFromWords({})).toEqual({ bytes: 512 * MiB });
    expect(fsSizeFromWords({ fs_size_mb: '64' })).toEqual({ bytes: 64 * MiB });
    expect(fsSizeFromWords({ fs_size: '1000', fs_size_mb: '64' })).toMatchObject({ bytes: 512, warning: expect.stringContaining('multiple of 512') });
    expect(error(() => fsSizeFromWords({ fs_size_mb: '1G' })).code).toBe('OSVB_USAGE');
  });

  it('tells a whole loader.img from a truncated one', () => {
    const dir = tempDir();
    const f = path.join(dir, 'loader.img');
    fakeLoader(f, 100_000);
    const data = fs.readFileSync(f);
    checkLoader(data.subarray(0, 512), data.length, f);
    expect(error(() => checkLoader(data.subarray(0, 512), data.length - 40_000, f)).code).toBe('OSVB_KERNEL_INVALID');
    const noSig = Buffer.from(data.subarray(0, 512));
    noSig[511] = 0;
    expect(error(() => checkLoader(noSig, data.length, f)).message).toContain('boot sector signature');
  });
});

describe.each(['raw', 'qcow2'] as const)('writeDiskImage (%s)', (format) => {
  beforeAll(async () => {
    await initHashing();
  });
  const skip = format === 'qcow2' && !hasQemuImg;

  /** A build path with a loader, a ROFS tree and its image; `write` writes usr.img and checks it against a full write. */
  async function setup() {
    const dir = tempDir();
    const build = path.join(dir, 'build');
    fs.mkdirSync(path.join(build, 'files'), { recursive: true });
    fakeLoader(path.join(build, 'loader.img'), 200_000);
    for (let i = 0; i < 12; i++) fs.writeFileSync(path.join(build, `files/f${i}`), bytes(20_000 + i * 3000, i));
    let manifest = '[manifest]\n' + Array.from({ length: 12 }, (_, i) => `/f${i}: files/f${i}\n`).join('');
    const rofsImg = path.join(build, 'rofs.img');
    let cmdline = '--rootfs=rofs /f0';
    const rofs = async () => {
      const before = fileSignature(rofsImg);
      const s = await writeRofsImageFromManifest(manifest, { file: 'usr.manifest', cwd: build, walkOrder: 'sorted', strip: false }, rofsImg, { incremental: true });
      return { before, changed: s.changed };
    };
    const input = (over: Partial<DiskWriteInput> = {}): DiskWriteInput => ({
      buildPath: build,
      fs: 'rofs',
      loaderImg: path.join(build, 'loader.img'),
      rofsImg,
      cmdline,
      fsSize: 16 * MiB,
      createDisk: false,
      format,
      ...over,
    });
    /** Write, then compare with a full write of the same inputs elsewhere. */
    const write = (over: Partial<DiskWriteInput> = {}) => {
      const res = writeDiskImage(input(over));
      const ref = path.join(dir, 'ref');
      fs.rmSync(ref, { recursive: true, force: true });
      fs.mkdirSync(ref);
      const full = writeDiskImage({ ...input(over), buildPath: ref, rofsUpdate: undefined });
      expect(full.mode).toBe('full');
      if (format === 'qcow2') qcow2Check(res.file);
      expect(guestBytes(res.file, format, dir).equals(guestBytes(full.file, format, dir)), 'equals a full write').toBe(true);
      return res;
    };
    return {
      build,
      dir,
      rofsImg,
      rofs,
      write,
      input,
      setManifest: (m: string) => (manifest = m),
      manifest: () => manifest,
      setCmdline: (c: string) => (cmdline = c),
    };
  }

  it.skipIf(skip)('writes nothing when nothing changed, and keeps the mtime', async () => {
    const s = await setup();
    await s.rofs();
    expect(s.write()).toMatchObject({ mode: 'full', reason: `no ${format === 'raw' ? 'usr.raw' : 'usr.img'} yet` });
    const file = s.write().file;
    const sig = fileSignature(file);
    const again = writeDiskImage(s.input({ rofsUpdate: await s.rofs() }));
    expect(again).toMatchObject({ mode: 'unchanged', bytesWritten: 0 });
    expect(fileSignature(file)).toBe(sig);
  });

  it.skipIf(skip)('a changed command line rewrites the first sectors only', async () => {
    const s = await setup();
    await s.rofs();
    s.write();
    s.setCmdline('--rootfs=rofs /f1 a much longer command line than before');
    const r = s.write();
    expect(r.mode).toBe('in-place');
    expect(r.bytesWritten).toBeLessThanOrEqual(64 * 1024 + 8 * 1024);
    s.setCmdline('--rootfs=rofs /f');
    expect(s.write().mode).toBe('in-place'); // shorter: the old tail after the NUL stays, as imgedit leaves it
  });

  it.skipIf(skip)('follows the ranges the ROFS update wrote: one file changed', async () => {
    const s = await setup();
    await s.rofs();
    s.write();
    fs.writeFileSync(path.join(s.build, 'files/f5'), bytes(fs.statSync(path.join(s.build, 'files/f5')).size, 999));
    const upd = await s.rofs();
    expect(upd.changed?.length).toBeGreaterThan(0);
    const r = s.write({ rofsUpdate: upd });
    expect(r.mode).toBe('in-place');
    expect(r.bytesWritten).toBeLessThan(format === 'raw' ? 40_000 : 3 * 64 * 1024 + 8192);
  });

  it.skipIf(skip)('a ROFS image that grew, shrank, or changed behind its back is copied whole', async () => {
    const s = await setup();
    await s.rofs();
    s.write();
    s.setManifest(s.manifest() + '/big: files/f11\n/big2: files/f10\n');
    const grown = s.write({ rofsUpdate: await s.rofs() });
    expect(grown.mode).toBe('in-place');
    s.setManifest('[manifest]\n/f0: files/f0\n');
    expect(s.write({ rofsUpdate: await s.rofs() }).mode).toBe('in-place');
    // rofs.img rewritten by something else (osvb rofs, gen-rofs-img.py): no ranges to trust.
    await writeRofsImageFromManifest('[manifest]\n/f3: files/f3\n/f4: files/f4\n', { file: 'm', cwd: s.build, walkOrder: 'sorted', strip: false }, s.rofsImg, { incremental: false });
    expect(s.write().mode).toBe('in-place');
  });

  it.skipIf(skip)('writes anew when the image was changed by something else, or the loader or layout changed', async () => {
    const s = await setup();
    await s.rofs();
    const first = s.write();
    const fd = fs.openSync(first.file, 'r+');
    fs.writeSync(fd, Buffer.from('x'), 0, 1, 600);
    fs.closeSync(fd);
    expect(s.write()).toMatchObject({ mode: 'full', reason: `${path.basename(first.file)} was changed by something else` });
    fakeLoader(path.join(s.build, 'loader.img'), 180_000, 7);
    expect(s.write()).toMatchObject({ mode: 'full', reason: 'loader.img changed' });
    expect(s.write({ fsSize: 20 * MiB })).toMatchObject({ mode: 'full', reason: 'the disk layout changed' });
    fs.rmSync(diskRecordPath(first.file));
    expect(s.write({ fsSize: 20 * MiB })).toMatchObject({ mode: 'full', reason: `no record of what ${path.basename(first.file)} holds` });
  });

  it.skipIf(skip)('bad input: a clear error, and the old image left as it was', async () => {
    const s = await setup();
    await s.rofs();
    const first = s.write();
    const before = fs.readFileSync(first.file);
    const tooBig = error(() => writeDiskImage(s.input({ fsSize: 2 * MiB })));
    expect(tooBig.code).toBe('OSVB_DISK_SIZE');
    expect(error(() => writeDiskImage(s.input({ cmdline: 'y'.repeat(40_000) }))).code).toBe('OSVB_DISK_CMDLINE');
    const loader = path.join(s.build, 'loader.img');
    fs.truncateSync(loader, 100_000);
    expect(error(() => writeDiskImage(s.input())).code).toBe('OSVB_KERNEL_INVALID');
    expect(error(() => writeDiskImage(s.input({ loaderImg: path.join(s.build, 'nope.img') }))).code).toBe('OSVB_KERNEL_MISSING');
    expect(fs.readFileSync(first.file).equals(before)).toBe(true);
    expect(fs.readdirSync(s.build).filter((n) => n.includes('.tmp'))).toEqual([]);
  });

  it.skipIf(skip)('ramfs and virtiofs: partition 2 of size 0 at the end of the kernel, no ROFS', async () => {
    const s = await setup();
    const r = s.write({ fs: 'ramfs', rofsImg: undefined, cmdline: '--rootfs=ramfs /f0' });
    expect(r.plan).toMatchObject({ partitionSize: 0, virtualSize: 2 * MiB, rofs: false });
    const g = guestBytes(r.file, format, s.dir);
    expect(g.length).toBe(2 * MiB);
    expect(g.subarray(512, 512 + 19).toString()).toBe('--rootfs=ramfs /f0\0');
    expect(s.write({ fs: 'ramfs', rofsImg: undefined, cmdline: '--rootfs=ramfs /f0' }).mode).toBe('unchanged');
  });
});
