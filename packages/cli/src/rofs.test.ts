/** `osvb rofs`: the CLI run as a process (built dist/main.js), from a build directory like OSv's Makefile. */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { parseDefines } from './rofs.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const MAIN = path.resolve(HERE, '../dist/main.js');
const TESTDATA = path.resolve(HERE, '../../engine/src/image/rofs/testdata');

const temps: string[] = [];
function tempDir(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'osvb-cli-rofs-'));
  temps.push(d);
  return d;
}
afterAll(() => {
  for (const d of temps) fs.rmSync(d, { recursive: true, force: true });
});

function osvb(cwd: string, ...args: string[]): { status: number | null; stdout: string; stderr: string; stdoutBytes: Buffer } {
  const code = `const m = await import(${JSON.stringify(pathToFileURL(MAIN).href)}); process.exitCode = await m.main(process.argv.slice(1));`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', code, '--', ...args], {
    cwd,
    env: { ...process.env, OSVB_CACHE_DIR: path.join(cwd, '.cache'), STRIP: '' },
    timeout: 60_000,
  });
  return { status: r.status, stdout: r.stdout.toString(), stderr: r.stderr.toString(), stdoutBytes: r.stdout };
}

function stageFixture(name: string): string {
  const build = path.join(tempDir(), 'build');
  fs.cpSync(path.join(TESTDATA, name, 'build'), build, { recursive: true, verbatimSymlinks: true });
  const c = JSON.parse(fs.readFileSync(path.join(TESTDATA, name, 'case.json'), 'utf8')) as { mkdirs: string[] };
  for (const d of c.mkdirs) fs.mkdirSync(path.join(build, d), { recursive: true });
  return build;
}

describe.skipIf(!fs.existsSync(MAIN))('osvb rofs', () => {
  it('builds the gen-rofs-img image from the build path (relative hosts, -D defines)', () => {
    const build = stageFixture('links-defines');
    const r = osvb(build, 'rofs', '-m', 'usr.manifest', '-o', 'rofs.img', '-D', 'libgcc_s_dir=R/gcc', '-Dother=R/etc/hosts');
    expect(r.stderr).toMatch(/osvb rofs: rofs\.img: /);
    expect(r.status).toBe(0);
    expect(fs.readFileSync(path.join(build, 'rofs.img')).equals(fs.readFileSync(path.join(TESTDATA, 'links-defines', 'expected.img')))).toBe(true);
    // Again: nothing to do.
    const again = osvb(build, 'rofs', '-m', 'usr.manifest', '-o', 'rofs.img', '-D', 'libgcc_s_dir=R/gcc', '-D', 'other=R/etc/hosts', '--json');
    expect(again.status).toBe(0);
    expect(JSON.parse(again.stdout)).toMatchObject({ type: 'rofs', mode: 'in-place', bytesWritten: 0 });
  });

  it('--compat=osv and --no-incremental; -v prints what gen-rofs-img prints', () => {
    const build = stageFixture('worked-example');
    const r = osvb(build, 'rofs', '-m', 'usr.manifest', '-o', 'out/rofs.img', '--compat=osv', '--no-incremental', '-v');
    expect(r.status).toBe(1); // out/ does not exist: an I/O failure
    expect(r.stderr).toMatch(/^error\[OSVB_IO\]/);
    fs.mkdirSync(path.join(build, 'out'));
    const ok = osvb(build, 'rofs', '-m', 'usr.manifest', '-o', 'out/rofs.img', '--compat=osv', '--no-incremental', '-v');
    expect(ok.status).toBe(0);
    expect(ok.stdout).toBe(
      'Adding /a\nAdding /etc/hosts\nLink /etc/mnttab to /proc/mounts\nAdding /z\n' +
        'First block: 3, blocks count: 1\nDirectory entries count 6\nSymlinks count 1\nInodes count 7\n',
    );
    expect(fs.existsSync(path.join(build, 'out/rofs.img.osvb-layout.json'))).toBe(false);
  });

  // The installed entry point loads a bundle of its own for `osvb rofs` (dist/osvb-rofs.mjs).
  it.skipIf(!fs.existsSync(path.resolve(HERE, '../dist/osvb-rofs.mjs')))('through bin/osvb.js: --timings names the copier; errors as from the full CLI', () => {
    const build = stageFixture('worked-example');
    const bin = (...args: string[]) => spawnSync(process.execPath, [path.resolve(HERE, '../bin/osvb.js'), ...args], { cwd: build, env: { ...process.env, OSVB_CACHE_DIR: path.join(build, '.cache'), STRIP: '' }, encoding: 'utf8' });
    const r = bin('rofs', '-m', 'usr.manifest', '-o', 'rofs.img', '--compat=osv', '--no-incremental', '--timings');
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/osvb rofs: timings: total \d+ ms, tree \d+ ms, .*data \d+ ms.*; copier: (native|plain)/);
    expect(fs.readFileSync(path.join(build, 'rofs.img')).equals(fs.readFileSync(path.join(TESTDATA, 'worked-example', 'expected.img')))).toBe(true);
    const bad = bin('rofs', '-m', 'nope.manifest', '-o', 'x.img', '--json');
    expect(bad.status).toBe(2);
    expect(JSON.parse(bad.stdout)).toMatchObject({ type: 'error', code: 'OSVB_IMAGE_INPUT' });
    expect(bad.stderr).toMatch(/^error\[OSVB_IMAGE_INPUT\]/);
    expect(bad.stderr).not.toMatch(/\n\s+at /);
  });

  it('bad input exits 2 with error[CODE]: file:line: message', () => {
    const build = tempDir();
    fs.writeFileSync(path.join(build, 'f'), 'F');
    fs.writeFileSync(path.join(build, 'usr.manifest'), '/a: f\n/b: missing\n');
    const r = osvb(build, 'rofs', '-m', 'usr.manifest', '-o', 'rofs.img');
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/^error\[OSVB_IMAGE_INPUT\]: usr\.manifest:2: host file "missing" for guest path "\/b" does not exist/);
    expect(fs.existsSync(path.join(build, 'rofs.img'))).toBe(false);
    fs.writeFileSync(path.join(build, 'usr.manifest'), '/a: f\n/b:f\n');
    expect(osvb(build, 'rofs', '-m', 'usr.manifest', '-o', 'rofs.img').stderr).toMatch(/^error\[OSVB_MANIFEST_SYNTAX\]: usr\.manifest:2: /);
    expect(osvb(build, 'rofs', '-o', 'rofs.img')).toMatchObject({ status: 2, stderr: expect.stringMatching(/needs -m MANIFEST/) });
    expect(osvb(build, 'rofs', '-m', 'usr.manifest', '-o', 'x', '-D', 'a=b=c')).toMatchObject({ status: 2, stderr: expect.stringMatching(/exactly one "="/) });
    expect(osvb(build, 'rofs', '--bogus')).toMatchObject({ status: 2, stderr: expect.stringMatching(/bogus/) });
  });

  it('ls, cat', () => {
    const img = path.join(TESTDATA, 'worked-example', 'expected.img');
    const ls = osvb(tempDir(), 'rofs', 'ls', img);
    expect(ls.status).toBe(0);
    expect(ls.stdout.split('\n').filter(Boolean).map((l) => l.replace(/ +/g, ' '))).toEqual([
      'd 4 /',
      '- 3 /a',
      'd 2 /etc',
      '- 6 /etc/hosts',
      'l /etc/mnttab -> /proc/mounts',
      'd 0 /dev',
      '- 0 /z',
    ]);
    const json = osvb(tempDir(), 'rofs', 'ls', img, '--json');
    expect(JSON.parse(json.stdout.split('\n')[4] as string)).toMatchObject({ path: '/etc/mnttab', kind: 'link', target: '/proc/mounts' });
    const cat = osvb(tempDir(), 'rofs', 'cat', path.join(TESTDATA, 'sizes-strip', 'expected.img'), '/s/70000');
    expect(cat.status).toBe(0);
    expect(cat.stdoutBytes.equals(fs.readFileSync(path.join(TESTDATA, 'sizes-strip', 'build', 'S', 's70000')))).toBe(true);
    expect(osvb(tempDir(), 'rofs', 'cat', img, '/nope')).toMatchObject({ status: 2, stderr: expect.stringMatching(/"\/nope" is not in the image/) });
  });

  it('a corrupt image is rejected with exit 2 and what is wrong where', () => {
    const dir = tempDir();
    const b = fs.readFileSync(path.join(TESTDATA, 'worked-example', 'expected.img'));
    b.writeUInt32LE(3, 1536); // /etc's first entry points at /etc: a cycle
    fs.writeFileSync(path.join(dir, 'bad.img'), b);
    const r = osvb(dir, 'rofs', 'ls', 'bad.img');
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/^error\[OSVB_ROFS_CORRUPT\]: bad\.img: corrupt ROFS image: directory entry #0 "hosts" in "\/etc" reaches inode #3 a second time/);
  });

  it('extract refuses to escape the target directory', () => {
    const dir = tempDir();
    // A hostile image: an entry named ".." holding a file, and an entry whose name contains "/".
    const build = path.join(dir, 'b');
    fs.mkdirSync(build);
    fs.writeFileSync(path.join(build, 'f'), 'pwned');
    fs.writeFileSync(path.join(build, 'usr.manifest'), '/ok: f\n/x/../escaped: f\n');
    expect(osvb(build, 'rofs', '-m', 'usr.manifest', '-o', '../evil.img').status).toBe(0);
    const r = osvb(dir, 'rofs', 'extract', 'evil.img', 'out/tree');
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/^error\[OSVB_ROFS_UNSAFE\]: evil\.img: refusing to extract "\/x\/\.\.": .*escape the target directory/);
    expect(fs.existsSync(path.join(dir, 'out', 'escaped'))).toBe(false);
    expect(fs.existsSync(path.join(dir, 'out', 'tree'))).toBe(false);

    const img = fs.readFileSync(path.join(dir, 'evil.img'));
    const at = img.indexOf(Buffer.from('escaped'));
    img.write('../x/me', at, 'latin1'); // same length: "../x/me"
    fs.writeFileSync(path.join(dir, 'slash.img'), img);
    const s = osvb(dir, 'rofs', 'extract', 'slash.img', 'out2');
    expect(s.status).toBe(2);
    expect(s.stderr).toMatch(/contains "\/"/);
    expect(fs.existsSync(path.join(dir, 'out2'))).toBe(false);

    // A good image extracts; links stay links.
    const good = osvb(dir, 'rofs', 'extract', path.join(TESTDATA, 'worked-example', 'expected.img'), 'good');
    expect(good.status).toBe(0);
    expect(fs.readlinkSync(path.join(dir, 'good/etc/mnttab'))).toBe('/proc/mounts');
    expect(fs.readFileSync(path.join(dir, 'good/etc/hosts'), 'utf8')).toBe('second');
    // ...but not twice into the same place.
    expect(osvb(dir, 'rofs', 'extract', path.join(TESTDATA, 'worked-example', 'expected.img'), 'good')).toMatchObject({ status: 2, stderr: expect.stringMatching(/not empty/) });
  });

  it('help', () => {
    const r = osvb(tempDir(), 'rofs', '--help');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/osvb rofs -m MANIFEST -o OUT/);
  });
});

describe('parseDefines', () => {
  it('splits like gen-rofs-img (exactly one "="; later wins)', () => {
    expect(parseDefines(['a=1', 'b=', 'a=2'])).toEqual({ a: '2', b: '' });
    expect(() => parseDefines(['novalue'])).toThrow(/exactly one/);
  });
});
