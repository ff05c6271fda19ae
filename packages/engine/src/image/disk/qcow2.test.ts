/**
 * The qcow2 writer against the real `qemu-img` (Debian qemu-utils): every image we write must
 * pass `qemu-img check` and convert to exactly the bytes of an in-memory model; every image
 * qemu-img writes with its defaults must open and update; every image we cannot update safely
 * must be refused with a reason.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { OsvbError } from '../../errors/index.js';
import { bytes, error, useTempDirs } from '../../testing/index.js';
import { QCOW2_CLUSTER_SIZE, Qcow2Image, type Qcow2Options } from './qcow2.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;
const CS = QCOW2_CLUSTER_SIZE;
const haveQemuImg = spawnSync('qemu-img', ['--version']).status === 0;
const tempDir = useTempDirs('osvb-qcow2-');

function qemuImg(...args: string[]): string {
  const r = spawnSync('qemu-img', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`qemu-img ${args.join(' ')} exited ${String(r.status)}: ${r.stderr}${r.stdout}`);
  return r.stdout;
}

/** `qemu-img check` must find no error, leak or corruption. */
function expectClean(file: string): void {
  const r = spawnSync('qemu-img', ['check', '--output=json', '-f', 'qcow2', file], { encoding: 'utf8' });
  expect(r.status, `qemu-img check ${file}: ${r.stdout}${r.stderr}`).toBe(0);
  const j = JSON.parse(r.stdout) as Record<string, unknown>;
  expect(j['check-errors']).toBe(0);
  expect(j['leaks'] ?? 0).toBe(0);
  expect(j['corruptions'] ?? 0).toBe(0);
}

interface Info {
  'virtual-size': number;
  'cluster-size': number;
  'dirty-flag': boolean;
  'backing-filename'?: string;
  'backing-filename-format'?: string;
  'format-specific': { data: { compat: string; 'refcount-bits': number; corrupt: boolean } };
}

function info(file: string): Info {
  return JSON.parse(qemuImg('info', '--output=json', '-f', 'qcow2', file)) as Info;
}

/** The guest disk as qemu-img reads it. */
function guestBytes(file: string): Buffer {
  const out = `${file}.converted.raw`;
  qemuImg('convert', '-f', 'qcow2', '-O', 'raw', file, out);
  const b = fs.readFileSync(out);
  fs.rmSync(out);
  return b;
}

function expectGuest(file: string, model: Buffer): void {
  const got = guestBytes(file);
  expect(got.length).toBe(model.length);
  if (!got.equals(model)) {
    let i = 0;
    while (got[i] === model[i]) i++;
    expect.fail(`${file}: guest byte ${i} is ${String(got[i])}, the model says ${String(model[i])}`);
  }
}

function opened(file: string, options?: Qcow2Options): Qcow2Image {
  const img = Qcow2Image.open(file, options);
  if (typeof img === 'string') throw new Error(`open ${file}: ${img}`);
  return img;
}

/** Which guest ranges hold data in the file, per `qemu-img map`. */
function dataAt(file: string, offset: number): boolean {
  const map = JSON.parse(qemuImg('map', '--output=json', '-f', 'qcow2', file)) as { start: number; length: number; data: boolean; depth: number }[];
  const m = map.find((e) => e.start <= offset && offset < e.start + e.length);
  return m !== undefined && m.data && m.depth === 0;
}

function header(file: string): Buffer {
  const b = Buffer.alloc(112);
  const fd = fs.openSync(file, 'r');
  fs.readSync(fd, b, 0, 112, 0);
  fs.closeSync(fd);
  return b;
}

describe.runIf(haveQemuImg)('qcow2 writer', () => {
  it('creates an empty image qemu-img reads: 512 MiB, v3, 64 KiB clusters, 16-bit refcounts, nothing allocated', () => {
    const file = path.join(tempDir(), 'usr.img');
    const img = Qcow2Image.create(file, 512 * MiB);
    expect(img.virtualSize).toBe(512 * MiB);
    img.close();
    expectClean(file);
    const i = info(file);
    expect(i['virtual-size']).toBe(512 * MiB);
    expect(i['cluster-size']).toBe(CS);
    expect(i['dirty-flag']).toBe(false);
    expect(i['format-specific'].data.compat).toBe('1.1');
    expect(i['format-specific'].data['refcount-bits']).toBe(16);
    // header, refcount table, refcount block, then the 8-byte L1: qemu-img create's layout
    expect(fs.statSync(file).size).toBe(3 * CS + 8);
    const map = JSON.parse(qemuImg('map', '--output=json', '-f', 'qcow2', file)) as { length: number; data: boolean; zero: boolean }[];
    expect(map).toEqual([expect.objectContaining({ length: 512 * MiB, data: false, zero: true })]);
  });

  it('writes and copies at odd offsets, across clusters and at the very end, equal to a model; zero clusters stay unallocated', () => {
    const dir = tempDir();
    const file = path.join(dir, 'a.qcow2');
    const size = 16 * MiB;
    const model = Buffer.alloc(size);
    // a source with two whole zero clusters (at guest 4 MiB + 1 MiB … + 1 MiB + 128 KiB, cluster-aligned below)
    const src = bytes(3 * MiB + 4321, 7);
    const guest = 4 * MiB + 12345;
    const fileOffset = 777;
    const zeroGuest = 5 * MiB; // cluster-aligned guest range that the source fills with zeros
    src.fill(0, zeroGuest - guest + fileOffset - CS, zeroGuest - guest + fileOffset + 3 * CS);
    fs.writeFileSync(path.join(dir, 'src.bin'), src);

    const img = Qcow2Image.create(file, size);
    const length = 3 * MiB - 1000;
    const wrote = img.copyFromFile(guest, path.join(dir, 'src.bin'), fileOffset, length);
    src.copy(model, guest, fileOffset, fileOffset + length);
    expect(wrote).toBeGreaterThan(0);
    expect(wrote).toBeLessThan(length + 2 * CS); // whole clusters, minus the zero ones
    const edits: [number, Buffer][] = [
      [1, bytes(10, 1)],
      [CS - 5, bytes(100, 2)], // spans a cluster boundary
      [3 * CS + 17, bytes(5 * CS + 3, 3)], // several clusters
      [size - 10, bytes(10, 4)], // the last bytes of the disk
      [guest + 100, bytes(333, 5)], // over copied data
      [9 * MiB, Buffer.alloc(3 * CS)], // zeros into unallocated clusters: nothing
    ];
    for (const [at, data] of edits) {
      img.write(at, data);
      data.copy(model, at);
    }
    expect(img.read(0, size).equals(model)).toBe(true);
    expect(img.read(CS - 7, 20).equals(model.subarray(CS - 7, CS + 13))).toBe(true);
    img.close();

    expectClean(file);
    expect(info(file)['virtual-size']).toBe(size);
    expectGuest(file, model);
    expect(dataAt(file, zeroGuest)).toBe(false);
    expect(dataAt(file, zeroGuest + CS)).toBe(false);
    expect(dataAt(file, 9 * MiB)).toBe(false);
    expect(dataAt(file, guest)).toBe(true);
  });

  it('reopens and updates in place: only changed bytes are written, a no-op writes nothing', () => {
    const dir = tempDir();
    const file = path.join(dir, 'u.qcow2');
    const size = 32 * MiB;
    const src = bytes(2 * MiB + 99, 11);
    const srcFile = path.join(dir, 'rofs.img');
    fs.writeFileSync(srcFile, src);
    const model = Buffer.alloc(size);
    const first = Qcow2Image.create(file, size);
    first.copyFromFile(4 * MiB, srcFile, 0, src.length);
    src.copy(model, 4 * MiB);
    first.close();
    const sizeBefore = fs.statSync(file).size;

    // No-op: open + close, and re-copying identical bytes, write nothing and keep mtime.
    const past = new Date('2020-01-01T00:00:00Z');
    fs.utimesSync(file, past, past);
    const same = opened(file);
    expect(same.virtualSize).toBe(size);
    expect(same.copyFromFile(4 * MiB, srcFile, 0, src.length)).toBe(0);
    same.write(4 * MiB + 5, src.subarray(5, 5000));
    same.zero(20 * MiB, 4 * MiB); // already zeros
    same.close();
    expect(same.bytesWritten).toBe(0);
    expect(fs.statSync(file).mtime.getTime()).toBe(past.getTime());
    expect(fs.statSync(file).size).toBe(sizeBefore);

    // A few bytes inside allocated clusters: those bytes + the dirty bit set (24) and cleared (8).
    const upd = opened(file);
    const patch = Buffer.from(model.subarray(4 * MiB + CS + 50, 4 * MiB + CS + 150).map((b) => b ^ 0x5a));
    upd.write(4 * MiB + CS + 50, patch);
    patch.copy(model, 4 * MiB + CS + 50);
    upd.write(4 * MiB + 3 * CS + 7, Buffer.from([model[4 * MiB + 3 * CS + 7]! ^ 0xff]));
    model[4 * MiB + 3 * CS + 7] = model[4 * MiB + 3 * CS + 7]! ^ 0xff;
    upd.close();
    expect(upd.bytesWritten).toBe(100 + 1 + 24 + 8);
    expect(fs.statSync(file).size).toBe(sizeBefore);
    expectClean(file);
    expectGuest(file, model);

    // A changed source: copyFromFile rewrites only the changed range.
    for (let i = 300 * KiB; i < 300 * KiB + 10; i++) src[i] = src[i]! ^ 0xff;
    fs.writeFileSync(srcFile, src);
    const again = opened(file);
    // (it also puts back the 101 bytes written above: the source never had them)
    expect(again.copyFromFile(4 * MiB, srcFile, 0, src.length)).toBe(24 + 10 + 100 + 1);
    src.copy(model, 4 * MiB);
    again.close();
    expect(fs.statSync(file).size).toBe(sizeBefore);
    expectGuest(file, model);

    // A write into an unallocated cluster appends exactly one cluster; its L2 entry and refcount follow.
    const grow = opened(file);
    grow.write(12 * MiB + 3, Buffer.from('hello'));
    model.write('hello', 12 * MiB + 3);
    grow.close();
    expect(fs.statSync(file).size).toBe(sizeBefore + CS);
    expect(grow.bytesWritten).toBe(24 + CS + 8 + 2 + 8);
    expectClean(file);
    expectGuest(file, model);

    // zero(): whole allocated clusters become "reads as zeros" entries (no data written), partial ones get zeros.
    const z = opened(file);
    z.zero(4 * MiB + 100, 3 * CS);
    model.fill(0, 4 * MiB + 100, 4 * MiB + 100 + 3 * CS);
    z.close();
    expect(z.bytesWritten).toBeLessThan(2 * CS + 100);
    expectClean(file);
    expectGuest(file, model);
    expect(dataAt(file, 4 * MiB + CS)).toBe(false);

    // ... and writing there again reuses the kept host cluster: the file does not grow.
    const w = opened(file);
    w.write(4 * MiB + CS + 1, Buffer.from('again'));
    model.write('again', 4 * MiB + CS + 1);
    w.close();
    expect(fs.statSync(file).size).toBe(sizeBefore + CS);
    expectClean(file);
    expectGuest(file, model);
  });

  it('an unfinished session leaves the dirty bit set, and open() refuses the image until it is closed', () => {
    const file = path.join(tempDir(), 'd.qcow2');
    Qcow2Image.create(file, 4 * MiB).close();
    const img = opened(file);
    img.write(100, Buffer.from('x'));
    expect(header(file).readUInt32BE(76) & 1).toBe(1);
    expect(Qcow2Image.open(file)).toMatch(/dirty/);
    img.close();
    expect(header(file).readUInt32BE(76) & 1).toBe(0);
    expectClean(file);
    const again = opened(file);
    expect(again.read(100, 1).toString()).toBe('x');
    again.close();
  });

  it('updates images made by qemu-img create and qemu-img convert -O qcow2', () => {
    const dir = tempDir();
    const size = 24 * MiB;

    const created = path.join(dir, 'created.qcow2');
    qemuImg('create', '-q', '-f', 'qcow2', created, String(size));
    const model = Buffer.alloc(size);
    const a = opened(created);
    a.write(777, bytes(3 * CS, 21));
    bytes(3 * CS, 21).copy(model, 777);
    a.write(size - 1, Buffer.from([9]));
    model[size - 1] = 9;
    a.close();
    expectClean(created);
    expectGuest(created, model);

    const raw = path.join(dir, 'disk.raw');
    const rawModel = Buffer.alloc(size);
    bytes(5 * MiB + 17, 22).copy(rawModel, 0);
    bytes(MiB, 23).copy(rawModel, 12 * MiB);
    fs.writeFileSync(raw, rawModel);
    const converted = path.join(dir, 'converted.qcow2');
    qemuImg('convert', '-q', '-f', 'raw', '-O', 'qcow2', raw, converted);
    const sizeBefore = fs.statSync(converted).size;
    const c = opened(converted);
    expect(c.read(0, size).equals(rawModel)).toBe(true);
    c.write(12 * MiB + 5, bytes(1000, 24)); // allocated: in place
    bytes(1000, 24).copy(rawModel, 12 * MiB + 5);
    c.close();
    expect(fs.statSync(converted).size).toBe(sizeBefore);
    expectClean(converted);
    expectGuest(converted, rawModel);

    const c2 = opened(converted);
    c2.write(20 * MiB + 1, bytes(CS, 25)); // unallocated: new clusters
    bytes(CS, 25).copy(rawModel, 20 * MiB + 1);
    c2.zero(2 * MiB - 3, CS * 2 + 6); // one whole allocated cluster, two partial
    rawModel.fill(0, 2 * MiB - 3, 2 * MiB + 2 * CS + 3);
    c2.close();
    expectClean(converted);
    expectGuest(converted, rawModel);
  });

  it('refuses images it cannot update safely, with a reason', () => {
    const dir = tempDir();
    const at = (n: string): string => path.join(dir, n);
    const compressible = Buffer.alloc(4 * MiB, 'compressible text ');
    fs.writeFileSync(at('text.raw'), compressible);
    fs.writeFileSync(at('plain.raw'), bytes(MiB, 3));

    qemuImg('create', '-q', '-f', 'qcow2', '-o', 'compat=0.10', at('v2.qcow2'), '8M');
    qemuImg('convert', '-q', '-c', '-f', 'raw', '-O', 'qcow2', at('text.raw'), at('compressed.qcow2'));
    qemuImg('create', '-q', '-f', 'qcow2', '-o', 'extended_l2=on', at('ext.qcow2'), '8M');
    qemuImg('create', '-q', '-f', 'qcow2', '-o', 'refcount_bits=8', at('rc8.qcow2'), '8M');
    qemuImg('create', '-q', '-f', 'qcow2', '-o', 'cluster_size=4096', at('c4k.qcow2'), '8M');
    qemuImg('create', '-q', '-f', 'qcow2', at('snap.qcow2'), '8M');
    qemuImg('snapshot', '-c', 'one', at('snap.qcow2'));
    // (qemu-img's LUKS key derivation takes seconds: crypt_method is set by hand instead)
    Qcow2Image.create(at('aes.qcow2'), 8 * MiB).close();
    Qcow2Image.create(at('dirty.qcow2'), 8 * MiB).close();
    Qcow2Image.create(at('corrupt.qcow2'), 8 * MiB).close();
    Qcow2Image.create(at('unknown.qcow2'), 8 * MiB).close();
    const setU32 = (n: string, pos: number, value: number): void => {
      const fd = fs.openSync(at(n), 'r+');
      const b = Buffer.alloc(4);
      b.writeUInt32BE(value, 0);
      fs.writeSync(fd, b, 0, 4, pos);
      fs.closeSync(fd);
    };
    setU32('aes.qcow2', 32, 1);
    setU32('dirty.qcow2', 76, 1);
    setU32('corrupt.qcow2', 76, 2);
    setU32('unknown.qcow2', 76, 1 << 20);

    const cases: [string, RegExp][] = [
      ['plain.raw', /not a qcow2 image/],
      ['v2.qcow2', /version 2/],
      ['compressed.qcow2', /compressed clusters/],
      ['ext.qcow2', /extended L2/],
      ['rc8.qcow2', /refcount_order 3/],
      ['c4k.qcow2', /cluster size 4096/],
      ['snap.qcow2', /snapshot/],
      ['aes.qcow2', /encrypted/],
      ['dirty.qcow2', /dirty/],
      ['corrupt.qcow2', /corrupt/],
      ['unknown.qcow2', /unknown incompatible features 0x100000/],
      ['missing.qcow2', /does not exist/],
    ];
    for (const [name, reason] of cases) expect(Qcow2Image.open(at(name)), name).toMatch(reason);
  });

  it('overlays a raw backing file: 600 bytes at 512 change only those bytes', () => {
    const dir = tempDir();
    const base = bytes(4 * MiB, 31);
    fs.writeFileSync(path.join(dir, 'base.raw'), base);
    const overlay = path.join(dir, 'run.qcow2');
    const img = Qcow2Image.create(overlay, base.length, { file: 'base.raw', format: 'raw' });
    const cmdline = Buffer.from('--verbose /hello '.repeat(40).slice(0, 600));
    img.write(512, cmdline);
    img.close();
    // header, refcount table, refcount block, L1, one L2 table, one data cluster
    expect(img.bytesWritten).toBeLessThan(5 * CS);
    const model = Buffer.from(base);
    cmdline.copy(model, 512);

    expectClean(overlay);
    const i = info(overlay);
    expect(i['backing-filename']).toBe('base.raw');
    expect(i['backing-filename-format']).toBe('raw');
    expect(i['virtual-size']).toBe(base.length);
    expectGuest(overlay, model);
    expect(dataAt(overlay, 0)).toBe(true);
    expect(dataAt(overlay, CS)).toBe(false); // read from the backing file
    expect(fs.readFileSync(path.join(dir, 'base.raw')).equals(base)).toBe(true);

    // Reopened with its backing file: zeros over backing data become zero entries (whole
    // clusters) or copied-up clusters (partial); writing backing bytes again changes nothing.
    const again = opened(overlay);
    expect(again.read(0, base.length).equals(model)).toBe(true);
    again.zero(2 * CS, CS);
    again.write(5 * CS + 10, Buffer.alloc(20));
    again.write(7 * CS, base.subarray(7 * CS, 9 * CS));
    again.close();
    model.fill(0, 2 * CS, 3 * CS);
    model.fill(0, 5 * CS + 10, 5 * CS + 30);
    expectClean(overlay);
    expectGuest(overlay, model);
    expect(dataAt(overlay, 2 * CS)).toBe(false);
    expect(dataAt(overlay, 5 * CS)).toBe(true);
    expect(dataAt(overlay, 7 * CS)).toBe(false);

    // An overlay qemu-img made opens and updates the same way.
    const theirs = path.join(dir, 'theirs.qcow2');
    qemuImg('create', '-q', '-f', 'qcow2', '-b', 'base.raw', '-F', 'raw', theirs);
    const q = opened(theirs);
    q.write(3 * CS - 2, Buffer.from('boundary'));
    q.close();
    const qModel = Buffer.from(base);
    qModel.write('boundary', 3 * CS - 2);
    expectClean(theirs);
    expectGuest(theirs, qModel);
  });

  it('overlays a qcow2 backing file (its own overlay chain) and an absolute backing path', () => {
    const dir = tempDir();
    const base = path.join(dir, 'base.qcow2');
    const size = 2 * MiB;
    const model = Buffer.alloc(size);
    const b = Qcow2Image.create(base, size);
    b.write(1000, bytes(200 * KiB, 41));
    bytes(200 * KiB, 41).copy(model, 1000);
    b.close();

    const mid = path.join(dir, 'mid.qcow2');
    const m = Qcow2Image.create(mid, size, { file: base, format: 'qcow2' });
    m.write(CS + 3, Buffer.from('middle'));
    model.write('middle', CS + 3);
    m.close();

    const top = path.join(dir, 'top.qcow2');
    const t = Qcow2Image.create(top, size, { file: 'mid.qcow2', format: 'qcow2' });
    t.write(CS, Buffer.from('top'));
    model.write('top', CS);
    expect(t.read(0, size).equals(model)).toBe(true);
    t.close();

    for (const f of [base, mid, top]) expectClean(f);
    expect(info(mid)['backing-filename']).toBe(base);
    expect(info(top)['backing-filename-format']).toBe('qcow2');
    expectGuest(top, model);
  });

  it('handles a 40 GiB virtual disk: several L2 tables, writes across an L2 boundary and at the end', () => {
    const dir = tempDir();
    const file = path.join(dir, 'big.qcow2');
    const size = 40 * GiB;
    const img = Qcow2Image.create(file, size);
    const edits: [number, Buffer][] = [
      [0, bytes(1000, 51)],
      [20 * GiB - 3 * KiB, bytes(8 * KiB, 52)], // ends in the next L2 table
      [size - 5000, bytes(5000, 53)],
    ];
    const modelFile = path.join(dir, 'model.raw');
    fs.writeFileSync(modelFile, '');
    fs.truncateSync(modelFile, size);
    const fd = fs.openSync(modelFile, 'r+');
    for (const [at, data] of edits) {
      img.write(at, data);
      fs.writeSync(fd, data, 0, data.length, at);
    }
    fs.closeSync(fd);
    for (const [at, data] of edits) expect(img.read(at, data.length).equals(data)).toBe(true);
    img.close();
    expect(header(file).readUInt32BE(36)).toBe(80); // L1 entries: one per 512 MiB
    expectClean(file);
    expect(info(file)['virtual-size']).toBe(size);
    const r = spawnSync('qemu-img', ['compare', '-f', 'raw', '-F', 'qcow2', modelFile, file], { encoding: 'utf8' });
    expect(r.status, r.stdout + r.stderr).toBe(0);

    const again = opened(file);
    again.zero(0, size); // everything, fast: clusters become zero entries
    again.close();
    expectClean(file);
    fs.truncateSync(modelFile, 0);
    fs.truncateSync(modelFile, size);
    const z = spawnSync('qemu-img', ['compare', '-f', 'raw', '-F', 'qcow2', modelFile, file], { encoding: 'utf8' });
    expect(z.status, z.stdout + z.stderr).toBe(0);
    const map = JSON.parse(qemuImg('map', '--output=json', '-f', 'qcow2', file)) as { data: boolean }[];
    expect(map.every((e) => !e.data)).toBe(true);
  });

  it('grows past the first refcount block and moves a full refcount table (512-byte clusters make it cheap)', () => {
    // With 512-byte clusters a refcount block counts 256 clusters (128 KiB of file) and a
    // one-cluster refcount table 64 blocks (8 MiB): 10 MiB of data needs a bigger table.
    const dir = tempDir();
    const file = path.join(dir, 'small.qcow2');
    const options = { clusterBits: 9 };
    const size = 40 * MiB;
    const model = Buffer.alloc(size);
    const src = bytes(10 * MiB, 61);
    fs.writeFileSync(path.join(dir, 'src'), src);
    const img = Qcow2Image.create(file, size, undefined, options);
    img.copyFromFile(1 * MiB + 3, path.join(dir, 'src'), 0, src.length);
    src.copy(model, MiB + 3);
    img.close();
    const h = header(file);
    expect(h.readUInt32BE(52)).not.toBe(512); // refcount table moved from cluster 1
    expect(h.readUInt32BE(56)).toBe(2); // and doubled
    expectClean(file);
    expectGuest(file, model);

    expect(Qcow2Image.open(file)).toMatch(/cluster size 512/);
    const again = opened(file, options);
    const more = bytes(9 * MiB, 62);
    again.write(20 * MiB + 1, more);
    more.copy(model, 20 * MiB + 1);
    again.close();
    expect(header(file).readUInt32BE(56)).toBe(4);
    expectClean(file);
    expectGuest(file, model);
  });

  it('reports I/O failures and bad calls as OsvbError', () => {
    const dir = tempDir();
    const e1 = error(() => Qcow2Image.create(path.join(dir, 'no', 'such', 'dir.qcow2'), MiB));
    expect(e1.code).toBe('OSVB_IO');
    expect(e1.message).toBe(`cannot create ${path.join(dir, 'no', 'such', 'dir.qcow2')}: ENOENT`);
    expect(error(() => Qcow2Image.create(path.join(dir, 'odd.qcow2'), 1000)).code).toBe('OSVB_IMAGE_INPUT');
    expect(error(() => Qcow2Image.create(path.join(dir, 'o.qcow2'), MiB, { file: 'missing.raw', format: 'raw' })).message).toMatch(/missing\.raw does not exist/);

    const file = path.join(dir, 'x.qcow2');
    const img = Qcow2Image.create(file, MiB);
    expect(error(() => img.write(MiB - 1, Buffer.alloc(2))).code).toBe('OSVB_INTERNAL');
    fs.writeFileSync(path.join(dir, 'short'), Buffer.alloc(10, 1));
    const e2 = error(() => img.copyFromFile(0, path.join(dir, 'short'), 0, 20));
    expect(e2.code).toBe('OSVB_IO');
    expect(e2.message).toMatch(/short: it ends at byte 10/);
    const e3 = error(() => img.copyFromFile(0, path.join(dir, 'absent'), 0, 20));
    expect(e3).toBeInstanceOf(OsvbError);
    expect(e3.message).toBe(`cannot open ${path.join(dir, 'absent')}: ENOENT`);
    img.close();
    expect(error(() => img.read(0, 1)).code).toBe('OSVB_INTERNAL');

    const ro = path.join(dir, 'ro.qcow2');
    Qcow2Image.create(ro, MiB).close();
    fs.chmodSync(ro, 0o444);
    if (process.getuid?.() !== 0) expect(error(() => Qcow2Image.open(ro)).message).toBe(`cannot open ${ro}: EACCES`);
  });

  it('random write/zero/copy/reopen sequences match a model and pass qemu-img check (property)', () => {
    const dir = tempDir();
    const srcFile = path.join(dir, 'src.bin');
    const src = bytes(600 * KiB, 71);
    src.fill(0, 100 * KiB, 300 * KiB);
    fs.writeFileSync(srcFile, src);
    const baseFile = path.join(dir, 'base.raw');

    type Op =
      | { op: 'write'; at: number; len: number; seed: number; zeros: boolean }
      | { op: 'zero'; at: number; len: number }
      | { op: 'copy'; at: number; len: number; from: number }
      | { op: 'read'; at: number; len: number }
      | { op: 'reopen' };
    const frac = fc.double({ min: 0, max: 1, noNaN: true, maxExcluded: true });
    const len = fc.oneof(fc.integer({ min: 1, max: 3000 }), fc.integer({ min: 1, max: 300 * KiB }));
    const op: fc.Arbitrary<{ kind: string; at: number; len: number; seed: number; zeros: boolean; from: number }> = fc.record({
      kind: fc.constantFrom('write', 'write', 'zero', 'copy', 'read', 'reopen'),
      at: frac,
      len,
      seed: fc.integer({ min: 1, max: 1_000_000 }),
      zeros: fc.boolean(),
      from: frac,
    });
    let run = 0;
    fc.assert(
      fc.property(fc.constantFrom(9, 12, 16), fc.boolean(), fc.array(op, { minLength: 1, maxLength: 12 }), (clusterBits, withBacking, raw) => {
        const size = 1 * MiB + 1536; // the last cluster is partial
        const file = path.join(dir, `p${run++}.qcow2`);
        const model = withBacking ? bytes(size, run) : Buffer.alloc(size);
        if (withBacking) fs.writeFileSync(baseFile, model.subarray(0, size - 4096)); // shorter: its tail reads as zeros
        if (withBacking) model.fill(0, size - 4096);
        const options = { clusterBits };
        let img = Qcow2Image.create(file, size, withBacking ? { file: baseFile, format: 'raw' } : undefined, options);
        const ops: Op[] = raw.map((r) => {
          const at = Math.floor(r.at * size);
          const n = Math.min(r.len, size - at);
          if (r.kind === 'write') return { op: 'write', at, len: n, seed: r.seed, zeros: r.zeros };
          if (r.kind === 'zero') return { op: 'zero', at, len: n };
          if (r.kind === 'copy') return { op: 'copy', at, len: Math.min(n, src.length - Math.floor(r.from * src.length)), from: Math.floor(r.from * src.length) };
          if (r.kind === 'read') return { op: 'read', at, len: n };
          return { op: 'reopen' };
        });
        for (const o of ops) {
          if (o.op === 'write') {
            const data = o.zeros ? Buffer.alloc(o.len) : bytes(o.len, o.seed);
            img.write(o.at, data);
            data.copy(model, o.at);
          } else if (o.op === 'zero') {
            img.zero(o.at, o.len);
            model.fill(0, o.at, o.at + o.len);
          } else if (o.op === 'copy') {
            img.copyFromFile(o.at, srcFile, o.from, o.len);
            src.copy(model, o.at, o.from, o.from + o.len);
          } else if (o.op === 'read') {
            expect(img.read(o.at, o.len).equals(model.subarray(o.at, o.at + o.len))).toBe(true);
          } else {
            img.close();
            img = opened(file, options);
            // reopening and closing without a change writes nothing
            const probe = opened(file, options);
            probe.close();
            expect(probe.bytesWritten).toBe(0);
          }
        }
        img.close();
        expectClean(file);
        expectGuest(file, model);
        fs.rmSync(file);
      }),
      { numRuns: 30 },
    );
  });
});
