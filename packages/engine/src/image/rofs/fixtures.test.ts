/**
 * Byte equality with OSv's gen-rofs-img.py: the expected images under testdata/ were produced
 * by OSv's own script (testdata/regen.mjs); here the same trees are built and compared.
 * A few more cases run OSv live when an OSv checkout is around (OSV_REF or /work/ref/osv).
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { OsvbError } from '../../errors/index.js';
import type { WalkOrder } from '../../fsutil/index.js';
import { listRofs } from './reader.js';
import { buildRofsTree } from './tree.js';
import { writeRofsImage } from './writer.js';
import { useTempDirs } from '../../testing/index.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const TESTDATA = path.join(HERE, 'testdata');
const OSV_REF = process.env['OSV_REF'] ?? '/work/ref/osv';
const GEN_ROFS = path.join(OSV_REF, 'scripts', 'gen-rofs-img.py');
const haveOsv = fs.existsSync(GEN_ROFS) && spawnSync('python3', ['--version']).status === 0;

const tempDir = useTempDirs('osvb-rofs-', 'all');

interface Case {
  description: string;
  defines: Record<string, string>;
  mkdirs: string[];
}

const fixtures = fs
  .readdirSync(TESTDATA)
  .filter((n) => fs.existsSync(path.join(TESTDATA, n, 'case.json')))
  .sort();

/** Copy a fixture's build directory to a temp dir (plus the empty dirs git cannot keep). */
function stage(name: string): { build: string; c: Case; tmp: string } {
  const c = JSON.parse(fs.readFileSync(path.join(TESTDATA, name, 'case.json'), 'utf8')) as Case;
  const tmp = tempDir();
  const build = path.join(tmp, 'build');
  fs.cpSync(path.join(TESTDATA, name, 'build'), build, { recursive: true, verbatimSymlinks: true });
  for (const d of c.mkdirs) fs.mkdirSync(path.join(build, d), { recursive: true });
  return { build, c, tmp };
}

async function buildImage(build: string, out: string, opts: { defines?: Record<string, string>; walkOrder?: WalkOrder; cacheDir: string; manifest?: string }): Promise<void> {
  const file = opts.manifest ?? 'usr.manifest';
  const tree = await buildRofsTree(fs.readFileSync(path.join(build, file), 'utf8'), {
    file,
    cwd: build,
    defines: opts.defines ?? {},
    walkOrder: opts.walkOrder ?? 'sorted',
    strip: { program: 'strip', cacheDir: opts.cacheDir, warn: () => undefined },
  });
  await writeRofsImage(tree, out, { incremental: false });
}

describe('images identical to gen-rofs-img.py (committed expected images)', () => {
  it('has at least six fixtures', () => {
    expect(fixtures.length).toBeGreaterThanOrEqual(6);
  });

  for (const name of fixtures) {
    it(name, async () => {
      const { build, c, tmp } = stage(name);
      const out = path.join(tmp, 'rofs.img');
      await buildImage(build, out, { defines: c.defines, cacheDir: path.join(tmp, 'cache') });
      const expected = fs.readFileSync(path.join(TESTDATA, name, 'expected.img'));
      const actual = fs.readFileSync(out);
      expect(actual.length).toBe(expected.length);
      expect(actual.equals(expected)).toBe(true);
    });
  }
});

describe('spec §8.4 worked example (case 66)', () => {
  it('matches the documented bytes', async () => {
    const { build, tmp } = stage('worked-example');
    const out = path.join(tmp, 'rofs.img');
    await buildImage(build, out, { cacheDir: path.join(tmp, 'cache') });
    const img = fs.readFileSync(out);
    expect(img.length).toBe(2048);
    const sb = [0, 1, 2, 3, 4, 5, 6, 7].map((i) => Number(img.readBigUInt64LE(i * 8)));
    expect(sb).toEqual([0xdeadbead, 1, 512, 3, 1, 6, 1, 7]);
    expect(img.subarray(512, 515).toString()).toBe('FOO');
    expect(img.subarray(515, 1024).every((b) => b === 0)).toBe(true);
    expect(img.subarray(1024, 1030).toString()).toBe('second');
    expect([...img.subarray(1536, 1553)]).toEqual([0x04, 0, 0, 0, 0, 0, 0, 0, 0x05, 0x00, 0x68, 0x6f, 0x73, 0x74, 0x73, 0x05, 0x00]);
    // Dentries 79 bytes + symlinks 14 + inodes 224 = 317; 195 zero bytes of padding.
    const inodes = 1536 + 79 + 14;
    const table = [];
    for (let i = 0; i < 7; i++) {
      const o = inodes + i * 32;
      table.push([img.readBigUInt64LE(o), img.readBigUInt64LE(o + 8), img.readBigUInt64LE(o + 16), img.readBigUInt64LE(o + 24)].map(Number));
    }
    expect(table).toEqual([
      [0x4000, 1, 2, 4],
      [0x8000, 2, 1, 3],
      [0x4000, 3, 0, 2],
      [0x8000, 4, 2, 6],
      [0xa000, 5, 0, 1],
      [0x4000, 6, 2, 0],
      [0x8000, 7, 3, 0],
    ]);
    expect(img.subarray(1536 + 317).every((b) => b === 0)).toBe(true);
    expect(listRofs(img).map((e) => e.path)).toEqual(['/', '/a', '/etc', '/etc/hosts', '/etc/mnttab', '/dev', '/z']);
  });

  it('case 67: a structure of exactly 512 bytes gets a whole extra zero block', async () => {
    const { build, tmp } = stage('exact-block');
    const out = path.join(tmp, 'rofs.img');
    await buildImage(build, out, { cacheDir: path.join(tmp, 'cache') });
    const img = fs.readFileSync(out);
    expect(Number(img.readBigUInt64LE(24))).toBe(4); // S
    expect(Number(img.readBigUInt64LE(32))).toBe(1); // C
    expect(img.length).toBe(3072);
    expect(img.subarray(2560).every((b) => b === 0)).toBe(true);
  });
});

function runOsv(build: string, out: string, defines: Record<string, string> = {}): { status: number | null; output: string } {
  const args = [GEN_ROFS, '-o', out, '-m', 'usr.manifest'];
  for (const [k, v] of Object.entries(defines)) args.push('-D', `${k}=${v}`);
  const env = { ...process.env };
  delete env['STRIP'];
  const r = spawnSync('python3', args, { cwd: build, env, encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, output: r.stdout + r.stderr };
}

describe.skipIf(!haveOsv)('live comparison with gen-rofs-img.py (OSv checkout present)', () => {
  it("directories with many entries, in the OS's own order (--compat=osv)", async () => {
    const tmp = tempDir();
    const build = path.join(tmp, 'build');
    for (let d = 0; d < 5; d++) {
      for (let f = 0; f < 12; f++) {
        const p = path.join(build, 'tree', `dir${(d * 7) % 5}`, `n${(f * 5) % 12}-${'x'.repeat(f)}`);
        fs.mkdirSync(path.dirname(p), { recursive: true });
        fs.writeFileSync(p, `d${d} f${f}\n`.repeat(f * 40));
      }
    }
    fs.writeFileSync(path.join(build, 'usr.manifest'), '/t/**: tree/**\n/again/**: tree/dir3/**\n/x: tree/dir1/n0-\n');
    const osvOut = path.join(tmp, 'osv.img');
    expect(runOsv(build, osvOut).status).toBe(0);
    const ours = path.join(tmp, 'ours.img');
    await buildImage(build, ours, { walkOrder: 'os', cacheDir: path.join(tmp, 'cache') });
    expect(fs.readFileSync(ours).equals(fs.readFileSync(osvOut))).toBe(true);
  });

  it('every committed fixture still matches a fresh gen-rofs-img.py run', () => {
    for (const name of fixtures) {
      const { build, c, tmp } = stage(name);
      const out = path.join(tmp, 'osv.img');
      expect(runOsv(build, out, c.defines).status).toBe(0);
      expect(fs.readFileSync(out).equals(fs.readFileSync(path.join(TESTDATA, name, 'expected.img'))), name).toBe(true);
    }
  });

  it('fails where gen-rofs-img.py crashes, but leaves no image behind', async () => {
    const cases: Array<[string, RegExp]> = [
      ['/a: f\n/m: missing\n', /does not exist/],
      ['/x: f\n/x/y: f\n', /needs "\/x" to be a directory/],
      ['rel: f\n', /no absolute guest path/],
      ['/: f\n', /image root/],
    ];
    for (const [manifest, message] of cases) {
      const tmp = tempDir();
      const build = path.join(tmp, 'build');
      fs.mkdirSync(build);
      fs.writeFileSync(path.join(build, 'f'), 'F\n');
      fs.writeFileSync(path.join(build, 'usr.manifest'), manifest);
      expect(runOsv(build, path.join(tmp, 'osv.img')).status, manifest).not.toBe(0);
      const out = path.join(tmp, 'ours.img');
      const err = await buildImage(build, out, { cacheDir: path.join(tmp, 'cache') }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err, manifest).toBeInstanceOf(OsvbError);
      expect((err as OsvbError).message).toMatch(message);
      expect(fs.existsSync(out)).toBe(false);
    }
  });
});
