import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OsvbError } from '../errors/index.js';
import type { CallSite, FileMapMapping, FileMapRecord } from '../evaluate/types.js';
import { expandFileMap, type FileMapOptions } from './filemap.js';
import { error } from '../testing/index.js';

const OSV_SCRIPTS = process.env['OSV_SCRIPTS'] ?? '/work/ref/osv/scripts';
const haveOsv = fs.existsSync(path.join(OSV_SCRIPTS, 'osv', 'modules', 'filemap.py'));
const SHIM = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../python/shim');

let root: string;
let H: string;

beforeAll(() => {
  root = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'osvb-filemap-')));
  H = path.join(root, 'H');
  // Fixture H of §13: readme.txt, lib/{libz.so, liba.so, liba.so.1 -> liba.so, dangling -> nowhere,
  // dirlink -> a directory, sub/x.so}, bin/tool, empty/.
  fs.mkdirSync(path.join(H, 'lib', 'sub'), { recursive: true });
  fs.mkdirSync(path.join(H, 'bin'));
  fs.mkdirSync(path.join(H, 'empty'));
  fs.writeFileSync(path.join(H, 'readme.txt'), 'readme');
  fs.writeFileSync(path.join(H, 'lib', 'libz.so'), 'z');
  fs.writeFileSync(path.join(H, 'lib', 'liba.so'), 'a');
  fs.symlinkSync('liba.so', path.join(H, 'lib', 'liba.so.1'));
  fs.symlinkSync('nowhere', path.join(H, 'lib', 'dangling'));
  fs.symlinkSync('../bin', path.join(H, 'lib', 'dirlink'));
  fs.writeFileSync(path.join(H, 'lib', 'sub', 'x.so'), 'x');
  fs.writeFileSync(path.join(H, 'bin', 'tool'), 'tool');
});

afterAll(() => {
  fs.rmSync(root, { recursive: true, force: true });
});

interface MapSpec {
  filters?: Array<[pattern: string, exclude: boolean]>;
  allowSymlink?: boolean;
  site?: CallSite;
}

function add(host: string, guest: string | null, spec: MapSpec = {}): FileMapMapping {
  return {
    host,
    guest,
    filters: (spec.filters ?? []).map(([pattern, exclude]) => ({ pattern, exclude })),
    allowSymlink: spec.allowSymlink ?? false,
    site: spec.site ?? null,
  };
}

const opts: FileMapOptions = { walkOrder: 'sorted', patternMode: 'osv', moduleName: 'mod' };

function expand(mappings: FileMapMapping[], links: FileMapRecord['links'] = [], o: Partial<FileMapOptions> = {}): string[] {
  const text = expandFileMap({ mappings, links }, { ...opts, ...o });
  expect(text === '' || text.endsWith('\n')).toBe(true);
  return text === '' ? [] : text.slice(0, -1).split('\n');
}


describe('expandFileMap (§3.9)', () => {
  it('case 25: a directory maps every file, incl. links to files and dangling links, not dir links or empty dirs', () => {
    expect(expand([add(H, '/app')])).toEqual([
      `/app/readme.txt: ${H}/readme.txt`,
      `/app/bin/tool: ${H}/bin/tool`,
      `/app/lib/dangling: ${H}/lib/dangling`,
      `/app/lib/liba.so: ${H}/lib/liba.so`,
      `/app/lib/liba.so.1: ${H}/lib/liba.so.1`,
      `/app/lib/libz.so: ${H}/lib/libz.so`,
      `/app/lib/sub/x.so: ${H}/lib/sub/x.so`,
    ]);
  });

  it("case 25 in 'os' order: top-level files first, same set", () => {
    const lines = expand([add(H, '/app')], [], { walkOrder: 'os' });
    expect(lines[0]).toBe(`/app/readme.txt: ${H}/readme.txt`);
    expect([...lines].sort()).toEqual([...expand([add(H, '/app')])].sort());
  });

  it('case 26: include lib/** then exclude lib/sub/**', () => {
    const filters: MapSpec['filters'] = [
      ['lib/**', false],
      ['lib/sub/**', true],
    ];
    expect(expand([add(H, '/app', { filters })])).toEqual([
      `/app/lib/dangling: ${H}/lib/dangling`,
      `/app/lib/liba.so: ${H}/lib/liba.so`,
      `/app/lib/liba.so.1: ${H}/lib/liba.so.1`,
      `/app/lib/libz.so: ${H}/lib/libz.so`,
    ]);
  });

  it("case 27: exclude('**/*.so') does nothing in mode 'osv' and excludes .so files in mode 'default'", () => {
    const filters: MapSpec['filters'] = [['**/*.so', true]];
    expect(expand([add(H, '/app', { filters })])).toEqual(expand([add(H, '/app')]));
    expect(expand([add(H, '/app', { filters })], [], { patternMode: 'default' })).toEqual([
      `/app/readme.txt: ${H}/readme.txt`,
      `/app/bin/tool: ${H}/bin/tool`,
      `/app/lib/dangling: ${H}/lib/dangling`,
      `/app/lib/liba.so.1: ${H}/lib/liba.so.1`,
    ]);
  });

  it("case 28: include('lib?.so') on H/lib", () => {
    expect(expand([add(`${H}/lib`, '/usr/lib', { filters: [['lib?.so', false]] })])).toEqual([
      `/usr/lib/liba.so: ${H}/lib/liba.so`,
      `/usr/lib/libz.so: ${H}/lib/libz.so`,
    ]);
  });

  it('case 29: the last matching filter wins', () => {
    const filters: MapSpec['filters'] = [
      ['*.so', false],
      ['liba*', true],
      ['liba.so', false],
    ];
    expect(expand([add(`${H}/lib`, '/usr/lib', { filters })])).toEqual([
      `/usr/lib/liba.so: ${H}/lib/liba.so`,
      `/usr/lib/libz.so: ${H}/lib/libz.so`,
    ]);
  });

  it('starts from "include" only when there is no include filter', () => {
    expect(expand([add(`${H}/lib`, '/l', { filters: [['*.so*', true]] })])).toEqual([
      `/l/dangling: ${H}/lib/dangling`,
      `/l/sub/x.so: ${H}/lib/sub/x.so`,
    ]);
    expect(expand([add(`${H}/lib`, '/l', { filters: [['nothing', false]] })])).toEqual([]);
  });

  it('case 30: allow_symlink prefixes walked symlinks with !', () => {
    expect(expand([add(`${H}/lib`, '/usr/lib', { allowSymlink: true })])).toEqual([
      `/usr/lib/dangling: !${H}/lib/dangling`,
      `/usr/lib/liba.so: ${H}/lib/liba.so`,
      `/usr/lib/liba.so.1: !${H}/lib/liba.so.1`,
      `/usr/lib/libz.so: ${H}/lib/libz.so`,
      `/usr/lib/sub/x.so: ${H}/lib/sub/x.so`,
    ]);
  });

  it('case 31: a single file (or link to one) maps verbatim; allow_symlink always adds !', () => {
    expect(expand([add(`${H}/lib/liba.so.1`, '/l')])).toEqual([`/l: ${H}/lib/liba.so.1`]);
    expect(expand([add(`${H}/lib/liba.so.1`, '/l', { allowSymlink: true })])).toEqual([`/l: !${H}/lib/liba.so.1`]);
    expect(expand([add(`${H}/readme.txt`, '/r', { allowSymlink: true })])).toEqual([`/r: !${H}/readme.txt`]);
  });

  it('a dangling root maps only with allow_symlink; a root link to a directory is walked through the link', () => {
    expect(expand([add(`${H}/lib/dangling`, '/d')])).toEqual([]);
    expect(expand([add(`${H}/lib/dangling`, '/d', { allowSymlink: true })])).toEqual([`/d: !${H}/lib/dangling`]);
    expect(expand([add(`${H}/lib/dirlink`, '/d')])).toEqual([`/d/tool: ${H}/lib/dirlink/tool`]);
  });

  it('joins guest paths like os.path.join and keeps the host root verbatim', () => {
    expect(expand([add(`${H}/bin`, '/')])).toEqual([`/tool: ${H}/bin/tool`]);
    expect(expand([add(`${H}/bin`, '/usr/')])).toEqual([`/usr/tool: ${H}/bin/tool`]);
    expect(expand([add(`${H}/bin/`, '/usr')])).toEqual([`/usr/tool: ${H}/bin/tool`]);
    expect(expand([add(`${H}//lib/sub`, 'rel')])).toEqual([`rel/x.so: ${H}//lib/sub/x.so`]);
  });

  it('case 32: relative and missing hosts fail with OSv\'s messages and the call site', () => {
    const site = { file: '/m/module.py', line: 7 };
    const rel = error(() => expand([add('rel/path', '/l', { site })]));
    expect(rel.code).toBe('OSVB_FILEMAP');
    expect(rel.message).toBe('Relative paths not allowed: rel/path');
    expect(rel.location).toEqual(site);
    const missing = error(() => expand([add(`${root}/nope/x`, '/l', { site })]));
    expect(missing.message).toBe(`Path does not exist: ${root}/nope/x`);
    expect(missing.location).toEqual(site);
    expect(missing.hint).toContain('mod');
  });

  it('case 33: a mapping without guest, or filters on a file', () => {
    expect(error(() => expand([add(`${H}/readme.txt`, null)])).message).toBe(
      `Unfinished mapping for ${H}/readme.txt. Did you forget to call .to()?`,
    );
    expect(error(() => expand([add(`${H}/readme.txt`, '')])).message).toBe(`Unfinished mapping for ${H}/readme.txt. Did you forget to call .to()?`);
    const filters = error(() => expand([add(`${H}/readme.txt`, '/r', { filters: [['x', false]] })]));
    expect(filters.code).toBe('OSVB_FILEMAP');
    expect(filters.message).toBe('Filters only allowed when adding directory');
  });

  it('checks relative before unfinished before missing', () => {
    expect(error(() => expand([add('rel', null)])).message).toBe('Relative paths not allowed: rel');
    expect(error(() => expand([add(`${root}/nope`, null)])).message).toMatch(/^Unfinished mapping/);
  });

  it('case 34: a guest mapped to two hosts fails; the same mapping twice is one line', () => {
    const e = error(() => expand([add(`${H}/readme.txt`, '/r'), add(`${H}/bin/tool`, '/r')]));
    expect(e.code).toBe('OSVB_FILEMAP');
    expect(e.message).toBe(`Guest path '/r' already mapped to '${H}/readme.txt', tried to remap to '${H}/bin/tool'`);
    expect(expand([add(`${H}/readme.txt`, '/r'), add(`${H}/bin/tool`, '/t'), add(`${H}/readme.txt`, '/r')])).toEqual([
      `/r: ${H}/readme.txt`,
      `/t: ${H}/bin/tool`,
    ]);
  });

  it('a directory walked twice is a no-op (first positions kept)', () => {
    expect(expand([add(`${H}/lib`, '/l'), add(`${H}/bin`, '/l'), add(`${H}/lib`, '/l')])).toEqual([
      `/l/dangling: ${H}/lib/dangling`,
      `/l/liba.so: ${H}/lib/liba.so`,
      `/l/liba.so.1: ${H}/lib/liba.so.1`,
      `/l/libz.so: ${H}/lib/libz.so`,
      `/l/sub/x.so: ${H}/lib/sub/x.so`,
      `/l/tool: ${H}/bin/tool`,
    ]);
  });

  it('case 76: the same walk twice with allow_symlink fails on its first symlink', () => {
    const m = () => add(`${H}/lib`, '/usr/lib', { allowSymlink: true });
    const e = error(() => expand([m(), m()]));
    expect(e.message).toBe(`Guest path '/usr/lib/dangling' already mapped to '!${H}/lib/dangling', tried to remap to '${H}/lib/dangling'`);
    // The same single file twice with allow_symlink compares the !-prefixed hosts: a no-op.
    const f = () => add(`${H}/lib/liba.so.1`, '/l', { allowSymlink: true });
    expect(expand([f(), f()])).toEqual([`/l: !${H}/lib/liba.so.1`]);
  });

  it('case 35: files first, then links, each in order', () => {
    const links = [
      { guest: '/usr/bin/java', target: '/usr/lib/jvm/java', site: null },
      { guest: '/a', target: 'rel target', site: null },
    ];
    expect(expand([add(`${H}/readme.txt`, '/r/')], links)).toEqual([
      `/r/: ${H}/readme.txt`,
      '/usr/bin/java: ->/usr/lib/jvm/java',
      '/a: ->rel target',
    ]);
    expect(expand([], links.slice(0, 1))).toEqual(['/usr/bin/java: ->/usr/lib/jvm/java']);
  });

  it('an unfinished link is an OSVB_FILEMAP error with its site (OSv crashes)', () => {
    const site = { file: '/m/module.py', line: 3 };
    for (const target of [null, '']) {
      const e = error(() => expand([], [{ guest: '/l', target, site }]));
      expect(e.code).toBe('OSVB_FILEMAP');
      expect(e.message).toContain('/l');
      expect(e.location).toEqual(site);
    }
  });

  it('compiles filters only for directories and reports bad ** patterns', () => {
    const e = error(() => expand([add(`${H}/lib`, '/l', { filters: [['a**', false]] })]));
    expect(e.code).toBe('OSVB_FILEMAP');
    expect(e.message).toBe("'**' pattern may only be a in place of a full path component, but found: a**");
  });

  it.skipIf(!haveOsv)("agrees with OSv's FileMap in 'os' order and 'osv' patterns", () => {
    type Op = { host: string; guest: string | null; filters: Array<[string, boolean]>; allow: boolean };
    const scenarios: Array<{ ops: Op[]; links: Array<[string, string]> }> = [];
    const op = (host: string, guest: string | null, filters: Array<[string, boolean]> = [], allow = false): Op => ({ host, guest, filters, allow });
    scenarios.push({ ops: [op(H, '/app')], links: [] });
    scenarios.push({ ops: [op(H, '/app', [['lib/**', false], ['lib/sub/**', true]])], links: [] });
    scenarios.push({ ops: [op(H, '/app', [['**/*.so', true]])], links: [] });
    scenarios.push({ ops: [op(`${H}/lib`, '/usr/lib', [['lib?.so', false]])], links: [] });
    scenarios.push({ ops: [op(`${H}/lib`, '/usr/lib', [['*.so', false], ['liba*', true], ['liba.so', false]])], links: [] });
    scenarios.push({ ops: [op(`${H}/lib`, '/usr/lib', [], true)], links: [] });
    scenarios.push({ ops: [op(`${H}/lib/liba.so.1`, '/l')], links: [] });
    scenarios.push({ ops: [op(`${H}/lib/liba.so.1`, '/l', [], true)], links: [] });
    scenarios.push({ ops: [op(`${H}/readme.txt`, '/r', [], true)], links: [] });
    scenarios.push({ ops: [op(`${H}/lib/dangling`, '/d')], links: [] });
    scenarios.push({ ops: [op(`${H}/lib/dirlink`, '/d')], links: [] });
    scenarios.push({ ops: [op(`${H}/bin/`, '/usr/')], links: [] });
    scenarios.push({ ops: [op('rel/path', '/l')], links: [] });
    scenarios.push({ ops: [op(`${root}/nope`, '/l')], links: [] });
    scenarios.push({ ops: [op(`${H}/readme.txt`, null)], links: [] });
    scenarios.push({ ops: [op(`${H}/readme.txt`, '/r', [['x', false]])], links: [] });
    scenarios.push({ ops: [op(`${H}/readme.txt`, '/r'), op(`${H}/bin/tool`, '/r')], links: [] });
    scenarios.push({ ops: [op(`${H}/readme.txt`, '/r'), op(`${H}/readme.txt`, '/r')], links: [] });
    scenarios.push({ ops: [op(`${H}/lib`, '/usr/lib', [], true), op(`${H}/lib`, '/usr/lib', [], true)], links: [] });
    scenarios.push({ ops: [op(`${H}/lib`, '/usr/lib'), op(`${H}/lib`, '/usr/lib')], links: [] });
    scenarios.push({ ops: [op(`${H}/readme.txt`, '/r/')], links: [['/usr/bin/java', '/usr/lib/jvm/java']] });
    const script = `
import io, json, sys
sys.path.insert(0, sys.argv[1])
from osv.modules.filemap import FileMap, as_manifest
out = []
for s in json.load(sys.stdin):
    fm = FileMap()
    for o in s['ops']:
        m = fm.add(o['host'])
        if o['guest'] is not None:
            m.to(o['guest'])
        for pattern, exclude in o['filters']:
            (m.exclude if exclude else m.include)(pattern)
        if o['allow']:
            m.allow_symlink()
    for g, t in s['links']:
        fm.link(g).to(t)
    buf = io.StringIO()
    try:
        as_manifest(fm, buf.write)
        out.append(['ok', buf.getvalue()])
    except Exception as e:
        out.append(['error', str(e)])
json.dump(out, sys.stdout)
`;
    const r = spawnSync('python3', ['-c', script, OSV_SCRIPTS], { input: JSON.stringify(scenarios), encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    const want = JSON.parse(r.stdout) as Array<[string, string]>;
    scenarios.forEach((s, i) => {
      let got: [string, string];
      try {
        got = [
          'ok',
          expandFileMap(
            {
              mappings: s.ops.map((o) => add(o.host, o.guest, { filters: o.filters, allowSymlink: o.allow })),
              links: s.links.map(([guest, target]) => ({ guest, target, site: null })),
            },
            { walkOrder: 'os', patternMode: 'osv', moduleName: 'm' },
          ),
        ];
      } catch (e) {
        got = ['error', (e as Error).message];
      }
      expect(got, JSON.stringify(s)).toEqual(want[i]);
    });
  });
});

describe('FileMap API of the python shim (what reaches expandFileMap)', () => {
  function shim(code: string): { status: number | null; stdout: string; stderr: string } {
    const r = spawnSync('python3', ['-c', `import sys\nsys.path.insert(0, sys.argv[1])\nfrom osv.modules.filemap import FileMap, _serialize\n${code}`, SHIM], {
      encoding: 'utf8',
      env: { ...process.env, OSVB_TEST_HOME: '/home/someone' },
    });
    return { status: r.status, stdout: r.stdout.trim(), stderr: r.stderr };
  }

  it("case 32: add() expands ${VAR} and rejects patterns in the host path", () => {
    const r = shim(
      [
        'fm = FileMap()',
        "fm.add('${OSVB_TEST_HOME}/x').to('/l')",
        'print(_serialize(fm)["mappings"][0]["host"])',
        'try:',
        "    fm.add('/tmp/*')",
        'except Exception as e:',
        '    print(e.code, e)',
      ].join('\n'),
    );
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.split('\n')).toEqual(['/home/someone/x', 'OSVB_FILEMAP Host path must not be a pattern: /tmp/*']);
  });

  it('case 36: allow_symlink() returns nothing, so chaining fails', () => {
    const r = shim(
      ['fm = FileMap()', 'try:', "    fm.add('/x').to('/a').allow_symlink().include('x')", 'except AttributeError as e:', "    print('AttributeError')"].join('\n'),
    );
    expect(r.stdout).toBe('AttributeError');
  });

  it('records guests, filters, allow_symlink, links and call sites as plain data', () => {
    const r = shim(
      [
        'import json',
        'fm = FileMap()',
        "m = fm.add('/h').to('/g').include('lib/**').exclude('*.a')",
        'm.allow_symlink()',
        "fm.add('/h2')",
        "fm.link('/l').to('/t')",
        "fm.link('/u')",
        'print(json.dumps(_serialize(fm)))',
      ].join('\n'),
    );
    expect(r.status, r.stderr).toBe(0);
    const rec = JSON.parse(r.stdout) as FileMapRecord;
    expect(rec.mappings.map(({ site: _s, ...rest }) => rest)).toEqual([
      { host: '/h', guest: '/g', filters: [{ pattern: 'lib/**', exclude: false }, { pattern: '*.a', exclude: true }], allowSymlink: true },
      { host: '/h2', guest: null, filters: [], allowSymlink: false },
    ]);
    expect(rec.mappings[0]?.site?.line).toBe(6); // the line of fm.add(), after the 3-line prelude
    expect(rec.links.map((l) => [l.guest, l.target])).toEqual([
      ['/l', '/t'],
      ['/u', null],
    ]);
  });

  it("case 77: bad '**' patterns fail when the filter is added", () => {
    const r = shim(['fm = FileMap()', 'try:', "    fm.add('/h').to('/g').include('**a')", 'except Exception as e:', '    print(e.code, e)'].join('\n'));
    expect(r.stdout).toBe("OSVB_FILEMAP '**' pattern may only be a in place of a full path component, but found: **a");
  });
});
