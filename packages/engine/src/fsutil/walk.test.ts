import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pyWalk, walkDirents, type WalkOrder, type WalkStep } from './walk.js';

type Step = [string, string[], string[]];

/** Python's os.walk for each request, in one python3 process. */
function pythonWalk(requests: Array<{ top: string; cwd: string; sort: boolean }>): Step[][] {
  const script = `
import json, os, sys
out = []
for r in json.load(sys.stdin):
    os.chdir(r['cwd'])
    steps = []
    for d, dn, fn in os.walk(r['top']):
        if r['sort']:
            dn.sort()
            fn.sort()
        steps.append([d, list(dn), list(fn)])
    out.append(steps)
json.dump(out, sys.stdout)
`;
  const r = spawnSync('python3', ['-c', script], { input: JSON.stringify(requests), encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`python3 failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as Step[][];
}

const steps = (it: Iterable<WalkStep>): Step[] => [...it].map((s) => [s.dirpath, s.dirnames, s.filenames]);

let root: string;
let T: string;

function touch(rel: string, text = ''): void {
  const p = path.join(root, rel);
  fs.mkdirSync(path.dirname(p), { recursive: true });
  fs.writeFileSync(p, text);
}

beforeAll(() => {
  root = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'osvb-walk-')));
  T = path.join(root, 'T');
  // Enough names that the file system's own order is unlikely to be sorted.
  for (const n of ['f1', 'zeta', 'Alpha', '_under', 'b.so', 'é-accent', 'm0', 'm10', 'm9', 'x y', '.hidden', 'Z']) touch(`T/${n}`, n);
  for (const d of ['sub', 'dd', 'Adir', 'zz', 'mid']) touch(`T/${d}/in-${d}`);
  touch('T/sub/deep/f3');
  touch('T/sub/deep/deeper/f4');
  fs.mkdirSync(path.join(T, 'e'));
  fs.mkdirSync(path.join(T, 'sub', 'emptyish'));
  fs.symlinkSync('f1', path.join(T, 'lnk'));
  fs.symlinkSync('nowhere', path.join(T, 'dangling'));
  fs.symlinkSync('sub', path.join(T, 'dirlink'));
  fs.symlinkSync(path.join(T, 'sub', 'deep'), path.join(T, 'mid', 'abslink'));
  fs.symlinkSync('T', path.join(root, 'Tlink'));
  fs.symlinkSync('self', path.join(T, 'self')); // a link loop is a (dangling) file
  // x/.. through a symlink: the kernel goes to the link target's parent.
  touch('phys/real/lib/libr.so');
  touch('phys/real/onlyhere');
  fs.mkdirSync(path.join(root, 'phys', 'usr'));
  fs.symlinkSync('../real/lib', path.join(root, 'phys', 'usr', 'lib64'));
});

afterAll(() => {
  fs.rmSync(root, { recursive: true, force: true });
});

describe('pyWalk', () => {
  it("order 'os' equals Python's os.walk exactly", () => {
    const [want] = pythonWalk([{ top: T, cwd: root, sort: false }]);
    expect(steps(pyWalk(T, 'os'))).toEqual(want);
  });

  it("order 'sorted' equals os.walk with every listing sorted", () => {
    const [want] = pythonWalk([{ top: T, cwd: root, sort: true }]);
    const got = steps(pyWalk(T, 'sorted'));
    expect(got).toEqual(want);
    // And it really is sorted byte-wise, files before sub-directories.
    expect(got[0]?.[2]).toEqual(['.hidden', 'Alpha', 'Z', '_under', 'b.so', 'dangling', 'f1', 'lnk', 'm0', 'm10', 'm9', 'self', 'x y', 'zeta', 'é-accent']);
    expect(got[0]?.[1]).toEqual(['Adir', 'dd', 'dirlink', 'e', 'mid', 'sub', 'zz']);
  });

  it('lists symlinks to directories as dirnames without descending into them', () => {
    for (const order of ['os', 'sorted'] as WalkOrder[]) {
      const got = steps(pyWalk(T, order));
      expect(got[0]?.[1]).toContain('dirlink');
      expect(got[0]?.[2]).not.toContain('dirlink');
      const dirpaths = got.map((s) => s[0]);
      expect(dirpaths).not.toContain(path.join(T, 'dirlink'));
      expect(dirpaths).not.toContain(path.join(T, 'mid', 'abslink'));
      expect(dirpaths).toContain(path.join(T, 'sub', 'deep', 'deeper'));
    }
  });

  it('lists dangling links and links to files as filenames', () => {
    const top = steps(pyWalk(T, 'sorted'))[0] as Step;
    expect(top[2]).toEqual(expect.arrayContaining(['lnk', 'dangling', 'self']));
  });

  it('yields empty directories with empty lists', () => {
    const got = steps(pyWalk(T, 'sorted'));
    expect(got).toContainEqual([path.join(T, 'e'), [], []]);
    expect(got).toContainEqual([path.join(T, 'sub', 'emptyish'), [], []]);
  });

  it('visits all files of a directory before any sub-directory, depth first', () => {
    const got = steps(pyWalk(T, 'sorted')).map((s) => s[0].slice(T.length));
    expect(got).toEqual([
      '',
      '/Adir',
      '/dd',
      '/e',
      '/mid',
      '/sub',
      '/sub/deep',
      '/sub/deep/deeper',
      '/sub/emptyish',
      '/zz',
    ]);
  });

  it('walks a top that is a symlink to a directory, keeping the link path', () => {
    const top = path.join(root, 'Tlink');
    const [want] = pythonWalk([{ top, cwd: root, sort: false }]);
    const got = steps(pyWalk(top, 'os'));
    expect(got).toEqual(want);
    expect(got[1]?.[0].startsWith(top + '/')).toBe(true);
  });

  it('yields nothing for a missing top, a file, or a dangling link', () => {
    expect(steps(pyWalk(path.join(root, 'missing'), 'os'))).toEqual([]);
    expect(steps(pyWalk(path.join(T, 'f1'), 'os'))).toEqual([]);
    expect(steps(pyWalk(path.join(T, 'dangling'), 'sorted'))).toEqual([]);
    expect(steps(pyWalk('', 'sorted', root))).toEqual([]);
  });

  it('builds paths from top verbatim (trailing slash, relative top with cwd)', () => {
    const got = steps(pyWalk(T + '/', 'sorted'));
    expect(got[0]?.[0]).toBe(T + '/');
    expect(got[1]?.[0]).toBe(T + '/Adir');
    expect(got[6]?.[0]).toBe(T + '/sub/deep');

    const rel = steps(pyWalk('T/sub', 'sorted', root));
    expect(rel.map((s) => s[0])).toEqual(['T/sub', 'T/sub/deep', 'T/sub/deep/deeper', 'T/sub/emptyish']);
    const [want] = pythonWalk([{ top: 'T/sub', cwd: root, sort: true }]);
    expect(rel).toEqual(want);
  });

  it('resolves `link/..` physically, as the kernel does', () => {
    const cwd = path.join(root, 'phys');
    const [want] = pythonWalk([{ top: 'usr/lib64/../', cwd, sort: true }]);
    const got = steps(pyWalk('usr/lib64/../', 'sorted', cwd));
    expect(got).toEqual(want);
    expect(got[0]).toEqual(['usr/lib64/../', ['lib'], ['onlyhere']]);
  });

  it.skipIf(process.getuid?.() === 0)('skips unreadable sub-directories silently', () => {
    const locked = path.join(root, 'locked');
    touch('locked/ok/a');
    touch('locked/no/b');
    fs.chmodSync(path.join(locked, 'no'), 0o000);
    try {
      const got = steps(pyWalk(locked, 'sorted'));
      expect(got).toEqual([
        [locked, ['no', 'ok'], []],
        [path.join(locked, 'ok'), [], ['a']],
      ]);
    } finally {
      fs.chmodSync(path.join(locked, 'no'), 0o755);
    }
  });
});

describe('walkDirents', () => {
  it('is the walk pyWalk yields, with each entry typed', () => {
    for (const order of ['os', 'sorted'] as WalkOrder[]) {
      const typed = [...walkDirents(T, order)].map((s) => [s.dirpath, s.dirs.map((d) => d.name), s.files.map((f) => f.name)]);
      expect(typed).toEqual(steps(pyWalk(T, order)));
    }
    const top = [...walkDirents('T', 'sorted', root)][0];
    expect(top?.real).toBe(T);
    expect(top?.files.find((f) => f.name === 'f1')?.isFile()).toBe(true);
    expect(top?.files.find((f) => f.name === 'lnk')?.isSymbolicLink()).toBe(true);
  });

  it('tells an observer each listing, and the stat and lstat it needed (none for typed entries)', () => {
    const events: string[] = [];
    const walked = [
      ...walkDirents('mid', 'sorted', T, {
        beforeListing: (dir) => {
          events.push(`before ${dir}`);
          return `sig ${dir}`;
        },
        listed: (dir, before, entries) => events.push(`listed ${dir} ${before} ${entries?.map((e) => e.name).join(',')}`),
        saw: (kind, p, value) => events.push(`${kind} ${p} ${value}`),
      }),
    ];
    const mid = path.join(T, 'mid');
    expect(walked.map((s) => s.dirpath)).toEqual(['mid']);
    expect(events).toEqual([
      `before ${mid}`,
      `listed ${mid} sig ${mid} abslink,in-mid`,
      `S ${mid}/abslink d`,
      // A link to a directory is a dirname, and not descended into.
      `L ${mid}/abslink l`,
    ]);
  });

  it('tells an observer a directory it cannot list', () => {
    const seen: string[] = [];
    expect([...walkDirents(path.join(root, 'missing'), 'os', undefined, { listed: (d, _b, entries) => seen.push(`${d} ${entries === undefined}`) })]).toEqual([]);
    expect(seen).toEqual([`${path.join(root, 'missing')} true`]);
  });
});
