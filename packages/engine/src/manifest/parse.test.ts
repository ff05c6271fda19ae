import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { OsvbError } from '../errors/index.js';
import { isSkippedLine, parseManifest } from './parse.js';
import { error } from '../testing/index.js';

/** OSv's scripts, used as an oracle when present (OSV_SCRIPTS overrides the location). */
const OSV_SCRIPTS = process.env['OSV_SCRIPTS'] ?? '/work/ref/osv/scripts';
const haveOsv = fs.existsSync(path.join(OSV_SCRIPTS, 'manifest_common.py'));

const pairs = (text: string) => parseManifest(text, 'm.manifest').map((e) => [e.guest, e.host]);


describe('parseManifest (stage B, §6.3)', () => {
  it('case 8: a line without ": " is OSVB_MANIFEST_SYNTAX with file and line', () => {
    const e = error(() => parseManifest('[manifest]\n/a: /h/a\n\n/b:/h/b\n', '/B/usr.manifest'));
    expect(e.code).toBe('OSVB_MANIFEST_SYNTAX');
    expect(e.location).toEqual({ file: '/B/usr.manifest', line: 4 });
    expect(e.message).toContain('/b:/h/b');
    expect(error(() => parseManifest('/b:\t/h/b', 'f')).code).toBe('OSVB_MANIFEST_SYNTAX');
  });

  it('case 9: a third part is dropped', () => {
    expect(pairs('/d: /h/d: extra\n')).toEqual([['/d', '/h/d']]);
  });

  it('case 10: both sides are stripped', () => {
    expect(pairs('/c :  /h/c  \r\n')).toEqual([['/c', '/h/c']]);
    expect(pairs('\t/c\u00a0: \u3000/h/c\v\n')).toEqual([['/c', '/h/c']]);
  });

  it('case 11: there are no trailing comments', () => {
    expect(pairs('/e: /h/e # not a comment\n')).toEqual([['/e', '/h/e # not a comment']]);
  });

  it('case 12: skips blank, comment and [manifest] lines, indented or not', () => {
    expect(pairs('[manifest]\n  [manifest]\n   # x\n#y\n\t\n\n \t \n/a: b\n')).toEqual([['/a', 'b']]);
    for (const l of ['', '   ', '\t', '#', '  # c', '\t[manifest]', '[manifest]']) expect(isSkippedLine(l)).toBe(true);
    for (const l of ['x # c', '[manifest] x', '[Manifest]', '\v# c', '/a: b']) expect(isSkippedLine(l)).toBe(false);
  });

  it('skips a comment holding U+2028 or U+0085 (Python\'s "." matches them)', () => {
    expect(pairs('# a\u2028b\n# c\u0085d\n/a: b\n')).toEqual([['/a', 'b']]);
  });

  it('case 13: keeps the -> link syntax verbatim', () => {
    expect(pairs('/h: -> /x\n/etc/mnttab: ->/proc/mounts\n')).toEqual([
      ['/h', '-> /x'],
      ['/etc/mnttab', '->/proc/mounts'],
    ]);
  });

  it('case 72: \\n, \\r\\n and a lone \\r end lines; \\v does not', () => {
    const entries = parseManifest('/a: F/f\r/b: F/g\n/c: F/f\v\n', 'f');
    expect(entries).toEqual([
      { guest: '/a', host: 'F/f', line: 1 },
      { guest: '/b', host: 'F/g', line: 2 },
      { guest: '/c', host: 'F/f', line: 3 },
    ]);
  });

  it('numbers lines counting skipped ones, keeps duplicates and order', () => {
    const entries = parseManifest('[manifest]\n# c\n/x: a\n\n/x: b\n/a: c', 'f');
    expect(entries.map((e) => [e.guest, e.host, e.line])).toEqual([
      ['/x', 'a', 3],
      ['/x', 'b', 5],
      ['/a', 'c', 6],
    ]);
  });

  it('keeps an empty host or guest as Python does', () => {
    expect(pairs('/x: : y\n: /h\n')).toEqual([
      ['/x', ''],
      ['', '/h'],
    ]);
  });

  const mixed = [
    '[manifest]',
    '/libenviron.so: libenviron.so',
    '  /c :  /h/c  ',
    '/d: /h/d: extra',
    '# comment: with colon',
    '  [manifest]',
    '/e: /h/e # trailing',
    '/&/etc/hosts: ../../static/&',
    '/h: -> /x',
    '/u: \u00e9t\u00e9\u2003',
    '/w: a\u2028b',
    '# a\u2028b',
    '\t',
    '/x/**: %(libgcc_s_dir)s/**',
    '/lone: cr\r/next: line\r\n/last: one',
  ].join('\n');
  const mixedPairs = [
    ['/libenviron.so', 'libenviron.so'],
    ['/c', '/h/c'],
    ['/d', '/h/d'],
    ['/e', '/h/e # trailing'],
    ['/&/etc/hosts', '../../static/&'],
    ['/h', '-> /x'],
    ['/u', '\u00e9t\u00e9'],
    ['/w', 'a\u2028b'],
    ['/x/**', '%(libgcc_s_dir)s/**'],
    ['/lone', 'cr'],
    ['/next', 'line'],
    ['/last', 'one'],
  ];

  it('parses a mixed file', () => {
    expect(pairs(mixed)).toEqual(mixedPairs);
  });

  it.skipIf(!haveOsv)("agrees with OSv's own read_manifest on the mixed file", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'osvb-parse-'));
    try {
      const file = path.join(dir, 'usr.manifest');
      fs.writeFileSync(file, mixed);
      const r = spawnSync(
        'python3',
        ['-c', 'import json, sys\nsys.path.insert(0, sys.argv[1])\nfrom manifest_common import read_manifest\njson.dump(read_manifest(sys.argv[2]), sys.stdout)', OSV_SCRIPTS, file],
        { encoding: 'utf8', env: { ...process.env, PYTHONUTF8: '1' } },
      );
      expect(r.status, r.stderr).toBe(0);
      expect(JSON.parse(r.stdout)).toEqual(mixedPairs);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
