/** Building the ROFS tree from a manifest (spec §8.1; §13 cases 68, 69, 74, 75, 81, 82). */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { OsvbError } from '../../errors/index.js';
import { expandEntry } from '../../manifest/index.js';
import { buildRofsTree, type RofsDir, type RofsFile, type RofsNode, type RofsTree } from './tree.js';
import { digestFile, initHashing } from '../../hash/index.js';
import { useTempDirs } from '../../testing/index.js';

const tempDir = useTempDirs('osvb-rofs-tree-', 'all');

type Plain = string | { [name: string]: Plain };

/** `{name: child}` in insertion order; files as `file:<content>`, links as `->target`. */
function plain(node: RofsNode): Plain {
  if (node.kind === 'file') return `file:${fs.readFileSync(node.source, 'latin1')}`;
  if (node.kind === 'link') return `->${node.target}`;
  const out: { [name: string]: Plain } = {};
  for (const [k, v] of node.entries) out[k] = plain(v);
  return out;
}

function names(dir: RofsDir): string[] {
  return [...dir.entries.keys()];
}

interface Env {
  build: string;
  cache: string;
  warnings: string[];
  tree(manifest: string, defines?: Record<string, string>): Promise<RofsTree>;
  error(manifest: string): Promise<OsvbError>;
}

function env(files: Record<string, string> = {}): Env {
  const root = tempDir();
  const build = path.join(root, 'build');
  fs.mkdirSync(build);
  for (const [rel, content] of Object.entries(files)) {
    const p = path.join(build, rel);
    fs.mkdirSync(path.dirname(p), { recursive: true });
    if (rel.endsWith('/')) fs.mkdirSync(p, { recursive: true });
    else fs.writeFileSync(p, content);
  }
  const cache = path.join(root, 'cache');
  const warnings: string[] = [];
  const tree = (manifest: string, defines: Record<string, string> = {}): Promise<RofsTree> =>
    buildRofsTree(manifest, { file: 'usr.manifest', cwd: build, defines, strip: { program: 'strip', cacheDir: cache, warn: (t) => warnings.push(t) } });
  return {
    build,
    cache,
    warnings,
    tree,
    error: async (manifest) => {
      try {
        await tree(manifest);
      } catch (e) {
        expect(e).toBeInstanceOf(OsvbError);
        return e as OsvbError;
      }
      throw new Error(`expected an error for:\n${manifest}`);
    },
  };
}

const haveStrip = spawnSync('strip', ['--version']).status === 0 && spawnSync('objcopy', ['--version']).status === 0;
const systemElf = ['/bin/true', '/usr/bin/true'].find((p) => fs.existsSync(p));
const elf = systemElf;

/** An ELF with something for strip to remove: a system binary plus a debug section. */
function unstrippedElf(dest: string): void {
  const note = `${dest}.note`;
  fs.writeFileSync(note, 'debug info that strip removes\n'.repeat(20));
  const r = spawnSync('objcopy', ['--add-section', `.debug_osvb=${note}`, systemElf as string, dest]);
  fs.rmSync(note);
  if (r.status !== 0) throw new Error(`objcopy failed: ${r.stderr}`);
}

describe('tree shape (gen-rofs-img dict rules)', () => {
  it('case 68: /d/f, /e, then /d as a file → root order d, e; /d keeps its position and loses /d/f', async () => {
    const e = env({ F: 'F', G: 'G', 'H/': '' });
    const t = await e.tree('/d/f: F\n/e: F\n/d: G\n');
    expect(plain(t.root)).toEqual({ d: 'file:G', e: 'file:F' });
  });

  it('case 68: a directory mapped onto an existing file leaves the file', async () => {
    const e = env({ F: 'F', 'H/': '' });
    expect(plain((await e.tree('/x: F\n/x: H\n')).root)).toEqual({ x: 'file:F' });
  });

  it('case 68: relative guests are dropped; //  gives an empty-name directory', async () => {
    const e = env({ F: 'F' });
    const t = await e.tree('rel: F\nrel2/x: F\n/usr//lib/f: F\n');
    expect(plain(t.root)).toEqual({ usr: { '': { lib: { f: 'file:F' } } } });
  });

  it('case 69: a guest mapped twice keeps the first position and the last content', async () => {
    const e = env({ big: 'x'.repeat(600), small: 'second', F: 'F' });
    const t = await e.tree('/etc/hosts: big\n/etc/a: F\n/etc/hosts: small\n');
    expect(plain(t.root)).toEqual({ etc: { hosts: 'file:second', a: 'file:F' } });
    const hosts = (t.root.entries.get('etc') as RofsDir).entries.get('hosts');
    expect(hosts?.kind === 'file' && hosts.size).toBe(6);
  });

  it('case 69: an explicit *-stripped.so host disappears', async () => {
    const e = env({ 'H/x-stripped.so': 'S', F: 'F' });
    expect(plain((await e.tree('/usr/lib/libx.so: H/x-stripped.so\n/f: F\n')).root)).toEqual({ f: 'file:F' });
  });

  it('case 81: /t2/**: G with a plain directory host makes /t2 and /t2/**', async () => {
    const e = env({ 'G/': '', F: 'F' });
    expect(plain((await e.tree('/t2/**: G\n/f: F\n')).root)).toEqual({ t2: { '**': {} }, f: 'file:F' });
  });

  it('case 82: / mapped to a directory is a no-op; to a file is an error with file and line', async () => {
    const e = env({ 'G/': '', F: 'F' });
    expect(plain((await e.tree('/f: F\n/: G\n')).root)).toEqual({ f: 'file:F' });
    const err = await e.error('/f: F\n/: F\n');
    expect(err.code).toBe('OSVB_IMAGE_INPUT');
    expect(err.location).toEqual({ file: 'usr.manifest', line: 2 });
    expect(err.format()).toMatch(/^error\[OSVB_IMAGE_INPUT\]: usr\.manifest:2: guest path "\/" is the image root/);
    expect((await e.error('/: ->/x\n')).message).toMatch(/image root/);
  });

  it('-> links, host links (! kept, plain followed), host directories', async () => {
    const e = env({ 'H/real': 'R', 'D/': '' });
    fs.symlinkSync('real', path.join(e.build, 'H/lnk'));
    const t = await e.tree('/a: ->/proc/mounts\n/b: -> /x\n/c: !H/lnk\n/d: H/lnk\n/dev: D\n');
    expect(plain(t.root)).toEqual({ a: '->/proc/mounts', b: '-> /x', c: '->real', d: 'file:R', dev: {} });
  });

  it('a link assignment replaces a whole directory but keeps its position', async () => {
    const e = env({ F: 'F' });
    expect(plain((await e.tree('/d/a: F\n/e: F\n/d: ->/elsewhere\n')).root)).toEqual({ d: '->/elsewhere', e: 'file:F' });
  });

  it('defines apply to hosts before /** expansion', async () => {
    const e = env({ 'lib/a': 'A', 'lib/sub/b': 'B' });
    const t = await e.tree('/x/**: %(dir)s/**\n', { dir: 'lib' });
    expect(plain(t.root)).toEqual({ x: { a: 'file:A', sub: { b: 'file:B' } } });
  });
});

describe('/** walks', () => {
  it.each(['sorted', 'os'] as const)('give the same tree as the same pairs written out one per line (%s order)', async (order) => {
    const e = env({
      'T/b file': 'b',
      'T/a.so': 'not elf',
      'T/z-stripped.so': 'skipped',
      'T/sub/deep/x': 'x',
      'T/sub/y': 'y',
      'T/sub/e/': '',
      'T/other/q': 'q',
    });
    fs.symlinkSync('b file', path.join(e.build, 'T/lnk'));
    fs.symlinkSync('../sub', path.join(e.build, 'T/other/dirlink'));
    fs.symlinkSync('deep/x', path.join(e.build, 'T/sub/tox'));
    const manifest = '/t/**: T/**\n/**: T/sub/**\n/u/v/**: T/other/**\n';
    const opts = { file: 'usr.manifest', cwd: e.build, walkOrder: order, strip: { program: 'strip', cacheDir: e.cache, warn: () => undefined } };
    const walked = await buildRofsTree(manifest, opts);
    const lines: string[] = [];
    for (const [line, text] of manifest.split('\n').filter(Boolean).entries()) {
      const [guest, host] = text.split(': ') as [string, string];
      for (const p of expandEntry({ guest, host, line: line + 1 }, e.build, order)) lines.push(`${p.guest}: ${p.host}`);
    }
    expect(lines.length).toBeGreaterThan(6);
    const explicit = await buildRofsTree(lines.join('\n') + '\n', opts);
    expect(plain(walked.root)).toEqual(plain(explicit.root));
    expect(JSON.stringify(plain(walked.root))).toBe(JSON.stringify(plain(explicit.root))); // same order too
  });

  // The builder remembers the directory the last leaf went into; replacing a directory must not
  // leave it putting leaves into a directory that is no longer in the tree.
  it('a directory replaced after a walk (or after a leaf) is not used again', async () => {
    const e = env({ F: 'F', 'T/sub/a': 'a', 'T/top': 't' });
    expect((await e.error('/t/**: T/**\n/t/sub: F\n/t/sub/n: F\n')).location?.line).toBe(3);
    expect((await e.error('/a/b/x: F\n/a/b: F\n/a/b/y: F\n')).location?.line).toBe(3);
    expect((await e.error('/t/**: T/**\n/t/sub: ->elsewhere\n/t/**: T/**\n')).location?.line).toBe(3);
    const twice = await e.tree('/t/**: T/**\n/t/x: F\n/t/**: T/**\n');
    expect(JSON.stringify(plain(twice.root))).toBe(JSON.stringify({ t: { top: 'file:t', sub: { a: 'file:a' }, x: 'file:F' } }));
  });
});

describe('errors where gen-rofs-img crashes (never a partial image)', () => {
  it('case 68: /x as a file then /x/y', async () => {
    const e = env({ F: 'F' });
    const err = await e.error('/x: F\n/x/y: F\n');
    expect(err.location).toEqual({ file: 'usr.manifest', line: 2 });
    expect(err.message).toMatch(/"\/x\/y" needs "\/x" to be a directory, but it was mapped to a file \(F\) by line 1/);
  });

  it('the same conflict between relative guests fails too (OSv crashes there as well)', async () => {
    const e = env({ F: 'F' });
    expect((await e.error('/f: F\nrel: F\nrel/x: F\n')).location?.line).toBe(3);
  });

  it('a directory host below a file guest', async () => {
    const e = env({ F: 'F', 'G/': '' });
    expect((await e.error('/x: F\n/x/y/z: G\n')).location?.line).toBe(2);
  });

  it('a missing host file, with its line; a missing file outside the root is ignored (OSv never reads it)', async () => {
    const e = env({ F: 'F' });
    const err = await e.error('/a: F\n/m: missing\n');
    expect(err.code).toBe('OSVB_IMAGE_INPUT');
    expect(err.location).toEqual({ file: 'usr.manifest', line: 2 });
    expect(err.message).toMatch(/host file "missing" for guest path "\/m" does not exist/);
    expect(plain((await e.tree('/a: F\nrel: missing\n')).root)).toEqual({ a: 'file:F' });
    // Replaced before it is written: no error either.
    expect(plain((await e.tree('/a: missing\n/a: F\n')).root)).toEqual({ a: 'file:F' });
  });

  it('no absolute guest path at all', async () => {
    const e = env({ F: 'F' });
    const err = await e.error('rel: F\n');
    expect(err.message).toMatch(/no absolute guest path/);
    expect(err.location).toEqual({ file: 'usr.manifest' });
    expect((await e.error('# only a comment\n')).message).toMatch(/no absolute guest path/);
  });

  it('non-ASCII names and link targets (gen-rofs-img writes a character count)', async () => {
    const e = env({ F: 'F' });
    expect((await e.error('/ü: F\n')).message).toMatch(/not ASCII/);
    expect((await e.error('/ok: F\n/l: ->/zürich\n')).location?.line).toBe(2);
  });

  it('a file name that is not UTF-8, reached by a /** walk', async () => {
    const e = env({ 'T/ok': 'ok' });
    fs.writeFileSync(Buffer.concat([Buffer.from(path.join(e.build, 'T') + '/bad-'), Buffer.from([0xff, 0xfe])]), 'x');
    const err = await e.error('/t/**: T/**\n');
    expect(err.message).toMatch(/not valid UTF-8/);
    expect(err.location?.line).toBe(1);
  });

  it('case 74: a relative host linking to an absolute path that exists nowhere (OSv hangs)', async () => {
    const e = env({});
    fs.symlinkSync('/definitely/not/here/at/all', path.join(e.build, 'abslink'));
    const err = await e.error('/x: abslink\n');
    expect(err.code).toBe('OSVB_SYMLINK');
  });

  it('a name longer than 65535 characters', async () => {
    const e = env({ F: 'F' });
    expect((await e.error(`/l: ->${'x'.repeat(70000)}\n`)).message).toMatch(/16 bits/);
  });
});

describe('.so stripping (spec §6.8, case 69 and 75)', () => {
  it('a build-dir .so that strip cannot handle is stored as is, with OSv\'s message', async () => {
    const e = env({ 'libq.so': 'not an ELF file\n' });
    const t = await e.tree('/libq.so: libq.so\n');
    expect(plain(t.root)).toEqual({ 'libq.so': 'file:not an ELF file\n' });
    expect(e.warnings).toEqual(['Failed stripping libq.so. Using original.']);
  });

  it('a .so outside the build dir is not stripped', async () => {
    const e = env({});
    const outside = path.join(path.dirname(e.build), 'libout.so');
    fs.writeFileSync(outside, 'outside');
    expect(plain((await e.tree(`/l.so: ${outside}\n`)).root)).toEqual({ 'l.so': 'file:outside' });
    expect(e.warnings).toEqual([]);
  });

  it.skipIf(!haveStrip || !elf)('case 69: a build-dir .so is stored stripped (the copy lives in the cache, not beside it)', async () => {
    const e = env({});
    unstrippedElf(path.join(e.build, 'libm.so'));
    const expected = path.join(path.dirname(e.build), 'expected.so');
    expect(spawnSync('strip', ['-o', expected, path.join(e.build, 'libm.so')]).status).toBe(0);
    const t = await e.tree('/usr/lib/libm.so: libm.so\n');
    const node = (((t.root.entries.get('usr') as RofsDir).entries.get('lib') as RofsDir).entries.get('libm.so')) as RofsNode;
    expect(node.kind).toBe('file');
    expect(node.kind === 'file' && fs.readFileSync(node.source).equals(fs.readFileSync(expected))).toBe(true);
    expect(fs.statSync(expected).size).toBeLessThan(fs.statSync(path.join(e.build, 'libm.so')).size);
    expect(fs.existsSync(path.join(e.build, 'libm-stripped.so'))).toBe(false);
  });

  it.skipIf(!haveStrip || !elf)('finds the stripped copy by the digest the caller gives (osvb build passes its stat cache)', async () => {
    const e = env({});
    unstrippedElf(path.join(e.build, 'libm.so'));
    await initHashing();
    const asked: string[] = [];
    const digest = (f: string): string => {
      asked.push(f);
      return digestFile(f);
    };
    const opts = { file: 'usr.manifest', cwd: e.build, strip: { program: 'strip', cacheDir: e.cache, warn: () => undefined, digest } };
    const first = (await buildRofsTree('/libm.so: libm.so\n', opts)).root.entries.get('libm.so') as RofsFile;
    expect(asked).toEqual([path.join(e.build, 'libm.so')]);
    expect(first.source.startsWith(e.cache)).toBe(true);
    // The copy is keyed by what the digest function says, not by reading the file again.
    const other = (await buildRofsTree('/libm.so: libm.so\n', { ...opts, strip: { ...opts.strip, digest: () => 'a-digest-of-something-else' } })).root.entries.get('libm.so') as RofsFile;
    expect(other.source).not.toBe(first.source);
  });

  it.skipIf(!haveStrip || !elf)('case 75: "!liblink.so" to an ELF becomes a regular stripped file; a dangling "!libdang.so" stays a link', async () => {
    const e = env({});
    unstrippedElf(path.join(e.build, 'libm.so'));
    fs.symlinkSync('libm.so', path.join(e.build, 'liblink.so'));
    fs.symlinkSync('nothing-here.so', path.join(e.build, 'libdang.so'));
    const t = await e.tree('/l: !liblink.so\n/d: !libdang.so\n');
    const l = t.root.entries.get('l') as RofsNode;
    expect(l.kind).toBe('file');
    expect(l.kind === 'file' && l.size).toBeLessThan(fs.statSync(path.join(e.build, 'libm.so')).size);
    expect(plain(t.root)['d' as never]).toBe('->nothing-here.so');
  });

  it('stripping can be turned off', async () => {
    const e = env({ 'libq.so': 'q' });
    const t = await buildRofsTree('/q.so: libq.so\n', { file: 'm', cwd: e.build, strip: false });
    expect(plain(t.root)).toEqual({ 'q.so': 'file:q' });
  });
});
