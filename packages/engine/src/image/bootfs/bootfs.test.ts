import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { OsvbError } from '../../errors/index.js';
import { initHashing } from '../../hash/index.js';
import { writeBootfs, type BootfsOptions } from './index.js';
import { useTempDirs, strippableElf } from '../../testing/index.js';

/**
 * Fixture cases: testdata/CASE.json describes a host tree and a manifest; CASE.bin and CASE.d
 * are what OSv's scripts/mkbootfs.py wrote for it (testdata/generate.py, run by hand against
 * an OSv checkout, with os.walk visiting names sorted).
 */
const TESTDATA = path.join(path.dirname(fileURLToPath(import.meta.url)), 'testdata');

interface NodeSpec {
  text?: string;
  repeat?: number;
  pattern?: number;
  mode?: number;
  link?: string;
  dir?: boolean;
}
interface Case {
  cwd: string;
  tree: Record<string, NodeSpec>;
  defines: Record<string, string>;
  manifest: string;
}

function pattern(n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + (i >> 8)) & 0xff;
  return b;
}

function materialise(root: string, tree: Record<string, NodeSpec>): void {
  for (const [rel, spec] of Object.entries(tree)) {
    const p = path.join(root, rel);
    fs.mkdirSync(path.dirname(p), { recursive: true });
    if (spec.dir) fs.mkdirSync(p, { recursive: true });
    else if (spec.link !== undefined) fs.symlinkSync(spec.link, p);
    else {
      fs.writeFileSync(p, spec.pattern !== undefined ? pattern(spec.pattern) : (spec.text ?? '').repeat(spec.repeat ?? 1));
      fs.chmodSync(p, spec.mode ?? 0o644);
    }
  }
}

const tempDir = useTempDirs('osvb-bootfs-');
beforeAll(async () => {
  await initHashing();
});

function options(root: string, cwd: string, extra: Partial<BootfsOptions> = {}): BootfsOptions & { warnings: string[] } {
  const warnings: string[] = [];
  return {
    out: 'bootfs.bin',
    depends: 'bootfs.bin.d',
    cwd,
    defines: {},
    walkOrder: 'sorted',
    strip: { strip: process.env['STRIP'] ?? 'strip', cacheDir: path.join(root, '.cache'), warn: (t) => warnings.push(t) },
    warnings,
    ...extra,
  };
}

const cases = fs
  .readdirSync(TESTDATA)
  .filter((f) => f.endsWith('.json'))
  .map((f) => f.slice(0, -5));

describe('bootfs: byte equality with mkbootfs.py', () => {
  it('has fixture cases', () => {
    expect(cases.length).toBeGreaterThanOrEqual(3);
  });
  it.each(cases)('%s', (name) => {
    const c = JSON.parse(fs.readFileSync(path.join(TESTDATA, `${name}.json`), 'utf8')) as Case;
    const root = tempDir();
    materialise(root, c.tree);
    const cwd = path.join(root, c.cwd);
    fs.mkdirSync(cwd, { recursive: true });
    const res = writeBootfs(c.manifest, '../manifest', options(root, cwd, { defines: c.defines }));
    const got = fs.readFileSync(path.join(cwd, 'bootfs.bin'));
    const want = fs.readFileSync(path.join(TESTDATA, `${name}.bin`));
    expect(got.length).toBe(want.length);
    expect(got.equals(want)).toBe(true);
    expect(res.size).toBe(want.length);
    expect(fs.readFileSync(path.join(cwd, 'bootfs.bin.d'), 'utf8')).toBe(fs.readFileSync(path.join(TESTDATA, `${name}.d`), 'utf8'));
    // No temporary files left behind, no *-stripped.so written next to inputs.
    expect(fs.readdirSync(cwd).filter((f) => f.includes('.tmp') || f.endsWith('-stripped.so'))).toEqual([]);
  });
});

/** A record as §9 describes it, built by hand. */
function record(size: number, offset: number, type: number, name: string): Buffer {
  const b = Buffer.alloc(128);
  b.writeBigUInt64LE(BigInt(size), 0);
  b.writeBigUInt64LE(BigInt(offset), 8);
  b.writeInt8(type, 16);
  b.write(name, 17, 'utf8');
  return b;
}

describe('bootfs: the §9 worked example', () => {
  it('matches the spec byte for byte', () => {
    const root = tempDir();
    const B = path.join(root, 'B');
    const H = path.join(root, 'H');
    fs.mkdirSync(path.join(B, 'dev'), { recursive: true });
    fs.mkdirSync(H);
    fs.writeFileSync(path.join(B, 'libenviron.so'), 'abc'); // not an ELF: strip fails, original used
    const big = Buffer.alloc(600, 0x5a);
    fs.writeFileSync(path.join(H, 'target'), big);
    fs.symlinkSync('target', path.join(H, 'lnk'));
    fs.writeFileSync(path.join(H, 'h'), 'hello\n');
    const manifest = `/libenviron.so: libenviron.so\n/etc/mnttab: ->/proc/mounts\n/dev: dev\n/l: !${H}/lnk\n/h: ${H}/h\n`;
    const opts = options(root, B, { depends: undefined });
    writeBootfs(manifest, 'bootfs.manifest', opts);
    const want = Buffer.concat([
      record(3, 768, 0, '/libenviron.so'),
      record(13, 771, 1, '/etc/mnttab'),
      record(0, 784, 0, '/dev/'),
      record(600, 784, 0, '/l'),
      record(6, 1384, 0, '/h'),
      Buffer.alloc(128),
      Buffer.from('abc'),
      Buffer.from('/proc/mounts\0'),
      big,
      Buffer.from('hello\n'),
    ]);
    expect(want.length).toBe(1390);
    expect(fs.readFileSync(path.join(B, 'bootfs.bin')).equals(want)).toBe(true);
    expect(fs.existsSync(path.join(B, 'bootfs.bin.d'))).toBe(false);
    expect(opts.warnings).toEqual(['Failed stripping libenviron.so. Using original.']);
  });
});

describe('bootfs: errors instead of mkbootfs crashes', () => {
  function expectError(fn: () => unknown, code: string, line: number, text: RegExp): void {
    let err: unknown;
    try {
      fn();
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(OsvbError);
    const e = err as OsvbError;
    expect(e.code).toBe(code);
    expect(e.location).toEqual({ file: 'm.manifest', line });
    expect(e.message).toMatch(text);
  }

  it('a missing host: error with file and line, nothing written (an existing output is kept)', () => {
    const root = tempDir();
    fs.writeFileSync(path.join(root, 'a'), 'a');
    fs.writeFileSync(path.join(root, 'bootfs.bin'), 'old');
    expectError(() => writeBootfs('/a: a\n# c\n/m: missing\n', 'm.manifest', options(root, root)), 'OSVB_HOST_MISSING', 3, /"missing".*does not exist/);
    expect(fs.readFileSync(path.join(root, 'bootfs.bin'), 'utf8')).toBe('old');
    expect(fs.existsSync(path.join(root, 'bootfs.bin.d'))).toBe(false);
    expect(fs.readdirSync(root).sort()).toEqual(['a', 'bootfs.bin']);
  });

  it('a dangling link (kept with !, or unresolvable) is an error', () => {
    const root = tempDir();
    fs.symlinkSync('nowhere', path.join(root, 'dang'));
    expectError(() => writeBootfs('/d: !dang\n', 'm.manifest', options(root, root)), 'OSVB_HOST_MISSING', 1, /dangling symbolic link \(-> nowhere\)/);
    expect(fs.existsSync(path.join(root, 'bootfs.bin'))).toBe(false);
  });

  it('names: 110 bytes are fine, 111 are rejected (mkbootfs truncates silently)', () => {
    const root = tempDir();
    fs.writeFileSync(path.join(root, 'f'), 'f');
    fs.mkdirSync(path.join(root, 'd'));
    const ok = '/' + 'x'.repeat(109);
    writeBootfs(`${ok}: f\n`, 'm.manifest', options(root, root));
    const blob = fs.readFileSync(path.join(root, 'bootfs.bin'));
    expect(blob.subarray(17, 17 + 110).toString()).toBe(ok);
    expect(blob[127]).toBe(0);
    expectError(() => writeBootfs(`/f: f\n${ok}y: f\n`, 'm.manifest', options(root, root)), 'OSVB_BOOTFS_NAME', 2, /111 bytes/);
    // A directory's name gets a `/`, which counts.
    expectError(() => writeBootfs(`${ok}: d\n`, 'm.manifest', options(root, root)), 'OSVB_BOOTFS_NAME', 1, /110 bytes/);
    // Multi-byte characters count in bytes.
    expectError(() => writeBootfs(`/${'é'.repeat(55)}: f\n`, 'm.manifest', options(root, root)), 'OSVB_BOOTFS_NAME', 1, /111 bytes/);
  });

  it('an empty guest name is rejected (the reader would stop there)', () => {
    const root = tempDir();
    fs.writeFileSync(path.join(root, 'f'), 'f');
    expectError(() => writeBootfs(': f\n', 'm.manifest', options(root, root)), 'OSVB_BOOTFS_NAME', 1, /empty guest path/);
  });

  it('an undefined define is an error with the line (mkbootfs runs without -D in the kernel build)', () => {
    const root = tempDir();
    expectError(() => writeBootfs('/a: x\n/b: %(libgcc_s_dir)s/libgcc_s.so.1\n', 'm.manifest', options(root, root)), 'OSVB_MANIFEST_DEFINE', 2, /libgcc_s_dir/);
  });
});

const elf = strippableElf();
const canStrip = elf !== undefined;
if (!canStrip) console.log('bootfs strip test skipped: needs `strip` and /bin/true');

describe('bootfs: .so stripping', () => {
  it.skipIf(!canStrip)('a .so under the build directory is stored stripped, without writing *-stripped.so beside it', () => {
    const root = tempDir();
    fs.copyFileSync(elf as string, path.join(root, 'libx.so'));
    execFileSync(process.env['STRIP'] ?? 'strip', ['-o', path.join(root, 'expected'), path.join(root, 'libx.so')]);
    const stripped = fs.readFileSync(path.join(root, 'expected'));
    fs.rmSync(path.join(root, 'expected'));
    const res = writeBootfs('/libx.so: libx.so\n', 'm.manifest', options(root, root));
    const blob = fs.readFileSync(path.join(root, 'bootfs.bin'));
    expect(res.records[0]?.size).toBe(stripped.length);
    expect(blob.subarray(256).equals(stripped)).toBe(true);
    expect(fs.existsSync(path.join(root, 'libx-stripped.so'))).toBe(false);
    // The depends file names the original, the file osvb actually reads.
    expect(fs.readFileSync(path.join(root, 'bootfs.bin.d'), 'utf8')).toBe('bootfs.bin: \\\n\tlibx.so \\\n\n\n');
  });
});
