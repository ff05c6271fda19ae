import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OsvbError } from '../errors/index.js';
import type { WalkOrder } from '../fsutil/index.js';
import { applyDefines, classifyHost, expandEntry, expandManifestEntries, unsymlink } from './expand.js';
import type { ManifestEntry } from './parse.js';
import { error } from '../testing/index.js';

const OSV_SCRIPTS = process.env['OSV_SCRIPTS'] ?? '/work/ref/osv/scripts';
const haveOsv = fs.existsSync(path.join(OSV_SCRIPTS, 'manifest_common.py'));

const where = { file: 'usr.manifest', line: 4 };

let root: string;
let H: string;
let R: string;
let marker: string;


/** Runs OSv's manifest_common with cwd for each request: ['unsymlink', cwd, host] or ['expand', cwd, guest, host]. */
function osvManifestCommon(requests: Array<[string, string, ...string[]]>): unknown[] {
  const script = `
import json, os, sys
sys.path.insert(0, sys.argv[1])
import manifest_common as mc
out = []
for r in json.load(sys.stdin):
    os.chdir(r[1])
    if r[0] == 'unsymlink':
        out.append(mc.unsymlink(r[2]))
    else:
        out.append([list(p) for p in mc.expand([(r[2], r[3])])])
json.dump(out, sys.stdout)
`;
  const r = spawnSync('python3', ['-c', script, OSV_SCRIPTS], { input: JSON.stringify(requests), encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stderr);
  return JSON.parse(r.stdout) as unknown[];
}

beforeAll(() => {
  root = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'osvb-expand-')));
  // H of case 16: f1, lnk -> f1, a dangling link, sub/f2, sub/deep/f3, e/ (empty), dirlink -> dir.
  H = path.join(root, 'H');
  fs.mkdirSync(path.join(H, 'sub', 'deep'), { recursive: true });
  fs.mkdirSync(path.join(H, 'e'));
  fs.mkdirSync(path.join(root, 'dir'));
  fs.writeFileSync(path.join(root, 'dir', 'indir'), '');
  fs.writeFileSync(path.join(H, 'f1'), 'f1');
  fs.symlinkSync('f1', path.join(H, 'lnk'));
  fs.symlinkSync('nowhere', path.join(H, 'dangling'));
  fs.writeFileSync(path.join(H, 'sub', 'f2'), 'f2');
  fs.writeFileSync(path.join(H, 'sub', 'deep', 'f3'), 'f3');
  fs.symlinkSync('../dir', path.join(H, 'dirlink'));

  // R: a sysroot-like tree for unsymlink.
  R = path.join(root, 'R');
  const lib = path.join(R, 'usr', 'lib');
  fs.mkdirSync(lib, { recursive: true });
  fs.writeFileSync(path.join(lib, 'libreal.so.1'), 'real');
  fs.symlinkSync('/usr/lib/libreal.so.1', path.join(lib, 'libabs.so'));
  fs.symlinkSync('../lib/./libreal.so.1', path.join(lib, 'libdots.so'));
  fs.symlinkSync('libreal.so.1', path.join(lib, 'librel.so'));
  fs.symlinkSync('librel.so', path.join(lib, 'libchain.so'));
  fs.symlinkSync('/osvb-no-such-dir-7f3a/libx.so', path.join(lib, 'libnowhere.so'));
  fs.symlinkSync('libloop2.so', path.join(lib, 'libloop1.so'));
  fs.symlinkSync('libloop1.so', path.join(lib, 'libloop2.so'));
  // An absolute target that exists only from the file-system root: found at base "/", kept as "//…".
  marker = path.join(root, 'marker');
  fs.writeFileSync(marker, 'm');
  fs.symlinkSync(marker, path.join(lib, 'libmarker.so'));
  // `x/..` through a directory symlink.
  fs.mkdirSync(path.join(R, 'real', 'lib'), { recursive: true });
  fs.writeFileSync(path.join(R, 'real', 'x'), 'x');
  fs.symlinkSync('x', path.join(R, 'real', 'lnk'));
  fs.symlinkSync('../real/lib', path.join(R, 'usr', 'lib64'));
});

afterAll(() => {
  fs.rmSync(root, { recursive: true, force: true });
});

describe('applyDefines (§6.4)', () => {
  it('case 24: %% , %s and hosts without %', () => {
    expect(applyDefines('/plain', {}, where)).toBe('/plain');
    expect(applyDefines('/a%%b', {}, where)).toBe('/a%b');
    expect(applyDefines('/a%s', {}, where)).toBe('/a{}');
    expect(applyDefines('/a%s', { libgcc_s_dir: '/g' }, where)).toBe("/a{'libgcc_s_dir': '/g'}");
  });

  it('substitutes %(NAME)s', () => {
    expect(applyDefines('%(libgcc_s_dir)s/libgcc_s.so.1', { libgcc_s_dir: '/usr/lib/gcc' }, where)).toBe('/usr/lib/gcc/libgcc_s.so.1');
    expect(applyDefines('%(a)s-%(b)s%%', { a: '1', b: '2' }, where)).toBe('1-2%');
  });

  it('case 24: a missing define is OSVB_MANIFEST_DEFINE with its location', () => {
    const e = error(() => applyDefines('/a%(x)s', {}, where));
    expect(e.code).toBe('OSVB_MANIFEST_DEFINE');
    expect(e.message).toContain('%(x)s');
    expect(e.location).toEqual(where);
    expect(e.hint).toContain('-D x=');
  });

  it('does not take define names from Object.prototype', () => {
    expect(error(() => applyDefines('/a%(constructor)s', {}, where)).code).toBe('OSVB_MANIFEST_DEFINE');
  });

  it('case 24: an invalid conversion is an error, as is a trailing %', () => {
    for (const host of ['/a%b', '/a%', '/a%(x)d', '/a%d']) {
      const e = error(() => applyDefines(host, { x: '1' }, where));
      expect(e.code, host).toBe('OSVB_MANIFEST_DEFINE');
      expect(e.location).toEqual(where);
    }
  });
});

describe('expandEntry (§6.5)', () => {
  const entry = (guest: string, host: string): ManifestEntry => ({ guest, host, line: 9 });
  const run = (guest: string, host: string, order: WalkOrder = 'sorted', cwd = root) =>
    [...expandEntry(entry(guest, host), cwd, order)].map((e) => [e.guest, e.host]);

  it('case 14: /&/ with a host ending in /&', () => {
    expect(run('/&/etc/hosts', '../../static/&')).toEqual([['/etc/hosts', '../../static/etc/hosts']]);
    expect(run('/usr/lib/&/libfoo.so', '/m/lib64/&')).toEqual([['/usr/lib/libfoo.so', '/m/lib64/libfoo.so']]);
  });

  it('case 15: only the first /&/ is split; a host not ending in /& leaves the pair alone', () => {
    expect(run('/v/&/a/&/b', '/h/&')).toEqual([['/v/a/&/b', '/h/a/&/b']]);
    expect(run('/w/&/x', '/h/&/')).toEqual([['/w/&/x', '/h/&/']]);
    expect(run('/w&/x', '/h/&')).toEqual([['/w&/x', '/h/&']]);
  });

  it('case 16: /** copies every file of the tree, top files first, no empty dirs or dir links', () => {
    expect(run('/t/**', `${H}/**`)).toEqual([
      ['/t/dangling', `${H}/dangling`],
      ['/t/f1', `${H}/f1`],
      ['/t/lnk', `${H}/lnk`],
      ['/t/sub/f2', `${H}/sub/f2`],
      ['/t/sub/deep/f3', `${H}/sub/deep/f3`],
    ]);
  });

  it('case 16: relative hosts walk relative to cwd and stay relative', () => {
    expect(run('/t/**', 'H/sub/**')).toEqual([
      ['/t/f2', 'H/sub/f2'],
      ['/t/deep/f3', 'H/sub/deep/f3'],
    ]);
  });

  it('keeps the line of the source entry', () => {
    expect([...expandEntry(entry('/t/**', `${H}/**`), root, 'sorted')].every((e) => e.line === 9)).toBe(true);
  });

  it('case 17: /** on one side only is literal', () => {
    expect(run('/t2/**', H)).toEqual([['/t2/**', H]]);
    expect(run('/t2', `${H}/**`)).toEqual([['/t2', `${H}/**`]]);
  });

  it('case 18: /** at the guest root', () => {
    expect(run('/**', `${H}/sub/**`)).toEqual([
      ['/f2', `${H}/sub/f2`],
      ['/deep/f3', `${H}/sub/deep/f3`],
    ]);
  });

  it('case 19: a missing tree expands to nothing, silently', () => {
    expect(run('/n/**', '/does/not/exist/**')).toEqual([]);
  });

  it('leaves other pairs unchanged', () => {
    expect(run('/a', 'b')).toEqual([['/a', 'b']]);
    expect(run('/etc/mnttab', '->/proc/mounts')).toEqual([['/etc/mnttab', '->/proc/mounts']]);
  });

  it.skipIf(!haveOsv)("order 'os' equals OSv's expand()", () => {
    const reqs: Array<[string, string, string, string]> = [
      ['expand', root, '/t/**', `${H}/**`],
      ['expand', root, '/t/**', 'H/**'],
      ['expand', root, '/**', 'H/sub/**'],
      ['expand', root, '/t2/**', 'H'],
      ['expand', root, '/v/&/a/&/b', '/h/&'],
      ['expand', root, '/w/&/x', '/h/&/'],
    ];
    const want = osvManifestCommon(reqs);
    reqs.forEach(([, cwd, guest, host], i) => {
      expect(run(guest, host, 'os', cwd), `${guest}: ${host}`).toEqual(want[i]);
    });
  });
});

describe('unsymlink (§6.6)', () => {
  const u = (host: string, cwd = root) => unsymlink(host, cwd, where);

  it('case 20: an absolute target is searched for up the host path (sysroot)', () => {
    expect(u(`${R}/usr/lib/libabs.so`)).toBe(`${R}/usr/lib/libreal.so.1`);
  });

  it('case 21: a relative target is joined to the link directory without normalising', () => {
    expect(u(`${R}/usr/lib/libdots.so`)).toBe(`${R}/usr/lib/../lib/./libreal.so.1`);
  });

  it('case 22: found only at base "/" keeps the double slash; found nowhere keeps the link path', () => {
    expect(u(`${R}/usr/lib/libmarker.so`)).toBe('/' + marker);
    expect(u(`${R}/usr/lib/libnowhere.so`)).toBe(`${R}/usr/lib/libnowhere.so`);
  });

  it('case 23: ! removes the prefix without resolving; -> is left alone; plain files and missing paths too', () => {
    expect(u(`!${R}/usr/lib/librel.so`)).toBe(`${R}/usr/lib/librel.so`);
    expect(u('->/x')).toBe('->/x');
    expect(u(`${R}/usr/lib/libreal.so.1`)).toBe(`${R}/usr/lib/libreal.so.1`);
    expect(u(`${R}/missing`)).toBe(`${R}/missing`);
  });

  it('follows chains of links', () => {
    expect(u(`${R}/usr/lib/libchain.so`)).toBe(`${R}/usr/lib/libreal.so.1`);
  });

  it('case 73: relative hosts resolve against cwd; no directory part means the file-system root', () => {
    const cwd = path.join(R, 'usr', 'lib');
    expect(u('librel.so', cwd)).toBe('/libreal.so.1');
    expect(u('./librel.so', cwd)).toBe('./libreal.so.1');
    expect(u('R/usr/lib/librel.so', root)).toBe('R/usr/lib/libreal.so.1');
  });

  it('resolves `link/..` physically, as the kernel does', () => {
    expect(u('usr/lib64/../lnk', R)).toBe('usr/lib64/../x');
    expect(classifyHost('usr/lib64/../x', R)).toEqual({ kind: 'file' });
    expect(classifyHost('usr/lib64/../lnk', R)).toEqual({ kind: 'link', target: 'x' });
  });

  it('case 74: a search that OSv never ends is OSVB_SYMLINK (relative host, or one starting with //)', () => {
    const rel = error(() => u('libnowhere.so', path.join(R, 'usr', 'lib')));
    expect(rel.code).toBe('OSVB_SYMLINK');
    expect(rel.message).toContain('libnowhere.so');
    expect(rel.location).toEqual(where);
    const dbl = error(() => u(`/${R}/usr/lib/libnowhere.so`));
    expect(dbl.code).toBe('OSVB_SYMLINK');
  });

  it('a symlink loop is OSVB_SYMLINK', () => {
    const e = error(() => u(`${R}/usr/lib/libloop1.so`));
    expect(e.code).toBe('OSVB_SYMLINK');
    expect(e.location).toEqual(where);
  });

  it.skipIf(!haveOsv)("equals OSv's unsymlink where OSv terminates normally", () => {
    const cwdLib = path.join(R, 'usr', 'lib');
    const reqs: Array<[string, string, string]> = [
      ['unsymlink', root, `${R}/usr/lib/libabs.so`],
      ['unsymlink', root, `${R}/usr/lib/libdots.so`],
      ['unsymlink', root, `${R}/usr/lib/libmarker.so`],
      ['unsymlink', root, `${R}/usr/lib/libnowhere.so`],
      ['unsymlink', root, `!${R}/usr/lib/librel.so`],
      ['unsymlink', root, '->/x'],
      ['unsymlink', root, `${R}/usr/lib/libchain.so`],
      ['unsymlink', root, `${R}/missing`],
      ['unsymlink', cwdLib, 'librel.so'],
      ['unsymlink', cwdLib, './librel.so'],
      ['unsymlink', root, 'R/usr/lib/librel.so'],
      ['unsymlink', R, 'usr/lib64/../lnk'],
    ];
    const want = osvManifestCommon(reqs);
    reqs.forEach(([, cwd, host], i) => expect(u(host, cwd), host).toBe(want[i]));
  });
});

describe('classifyHost and expandManifestEntries (§6.7)', () => {
  it('classifies files, directories, links and missing hosts', () => {
    expect(classifyHost(`${H}/f1`, root)).toEqual({ kind: 'file' });
    expect(classifyHost('H/sub', root)).toEqual({ kind: 'dir' });
    expect(classifyHost(`${H}/lnk`, root)).toEqual({ kind: 'link', target: 'f1' });
    expect(classifyHost('->/proc/mounts', root)).toEqual({ kind: 'link', target: '/proc/mounts' });
    expect(classifyHost('-> /x', root)).toEqual({ kind: 'link', target: ' /x' });
    expect(classifyHost('H/none', root)).toEqual({ kind: 'missing' });
    expect(classifyHost('', root)).toEqual({ kind: 'missing' });
  });

  it('applies defines before expansion, then resolves and classifies every entry', () => {
    const entries: ManifestEntry[] = [
      { guest: '/x/**', host: '%(tree)s/sub/**', line: 1 },
      { guest: '/&/f1', host: 'H/&', line: 2 },
      { guest: '/l', host: 'H/lnk', line: 3 },
      { guest: '/keep', host: '!H/lnk', line: 4 },
      { guest: '/etc/mnttab', host: '->/proc/mounts', line: 5 },
      { guest: '/dev', host: 'H/e', line: 6 },
      { guest: '/gone', host: 'H/gone', line: 7 },
      { guest: '/abs', host: `${R}/usr/lib/libnowhere.so`, line: 8 },
    ];
    const out = expandManifestEntries(entries, { cwd: root, walkOrder: 'sorted', defines: { tree: H }, file: 'usr.manifest' });
    expect(out).toEqual([
      { guest: '/x/f2', host: `${H}/sub/f2`, kind: 'file', line: 1 },
      { guest: '/x/deep/f3', host: `${H}/sub/deep/f3`, kind: 'file', line: 1 },
      { guest: '/f1', host: 'H/f1', kind: 'file', line: 2 },
      { guest: '/l', host: 'H/f1', kind: 'file', line: 3 },
      { guest: '/keep', host: 'H/lnk', kind: 'link', target: 'f1', line: 4 },
      { guest: '/etc/mnttab', host: '->/proc/mounts', kind: 'link', target: '/proc/mounts', line: 5 },
      { guest: '/dev', host: 'H/e', kind: 'dir', line: 6 },
      { guest: '/gone', host: 'H/gone', kind: 'missing', line: 7 },
      { guest: '/abs', host: `${R}/usr/lib/libnowhere.so`, kind: 'link', target: '/osvb-no-such-dir-7f3a/libx.so', line: 8 },
    ]);
  });

  it('reports define and symlink errors with the manifest file and line', () => {
    const bad = error(() =>
      expandManifestEntries([{ guest: '/a', host: '%(nope)s/a', line: 12 }], { cwd: root, walkOrder: 'sorted', defines: {}, file: 'B/usr.manifest' }),
    );
    expect(bad.code).toBe('OSVB_MANIFEST_DEFINE');
    expect(bad.location).toEqual({ file: 'B/usr.manifest', line: 12 });
    const loop = error(() =>
      expandManifestEntries([{ guest: '/a', host: 'R/usr/lib/libloop2.so', line: 3 }], { cwd: root, walkOrder: 'sorted', defines: {}, file: 'B/usr.manifest' }),
    );
    expect(loop.code).toBe('OSVB_SYMLINK');
    expect(loop.location).toEqual({ file: 'B/usr.manifest', line: 3 });
  });
});
