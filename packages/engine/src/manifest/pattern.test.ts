import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { OsvbError } from '../errors/index.js';
import { checkPattern, compilePattern, hasInnerStarStar, matchesPattern, type PatternMode } from './pattern.js';

const OSV_SCRIPTS = process.env['OSV_SCRIPTS'] ?? '/work/ref/osv/scripts';
const haveOsv = fs.existsSync(path.join(OSV_SCRIPTS, 'osv', 'modules', 'filemap.py'));
const SEED = Number(process.env['OSVB_FC_SEED'] ?? 20260814);

const m = (pattern: string, p: string, mode: PatternMode = 'osv') => matchesPattern(compilePattern(pattern, mode), p);

describe("patterns, mode 'osv' (§3.10 as run on Python >= 3.7)", () => {
  const table: Array<[string, string[], string[]]> = [
    ['*.so', ['foo.so', '.so', 'a b.so'], ['lib/foo.so', 'foo.so.1', 'foo.sox']],
    ['lib/*.so', ['lib/foo.so'], ['lib/a/foo.so', 'foo.so', 'xlib/foo.so']],
    ['lib?.so', ['liba.so', 'lib/.so'], ['liba.so.1', 'lib.so', 'libab.so']],
    ['a?c', ['abc', 'a/c'], ['ac', 'abbc']],
    ['lib/**', ['lib/x', 'lib/a/b'], ['lib', 'libx/y', 'xlib/a']],
    ['lib/**/', ['lib/x', 'lib/a/b'], ['lib', 'libx/y']],
    ['**', ['a', 'lib/a/b', '.x'], []],
    ['**/', ['a', 'lib/a/b'], []],
    ['**/**', ['a', 'lib/a/b'], []],
    ['**/*.so', [], ['foo.so', 'lib/foo.so']],
    ['a/**/b', [], ['a/b', 'a/x/b', 'a/x/y/b']],
    ['**/x', [], ['x', 'a/x']],
    ['/lib/*', [], ['lib/a', 'x/lib/a']],
    ['', [''], ['a']],
    ['lib//x', ['lib/x'], ['lib//x']],
    ['share/lua/*/luarocks/**', ['share/lua/5.3/luarocks/a/b'], ['share/lua/5.3/luarocks', 'share/lua/5/3/luarocks/a']],
    ['a.b', ['a.b'], ['axb']],
    ['(x)|[y]+{1}$^', ['(x)|[y]+{1}$^'], ['x', 'y']],
    ['a\\b', ['a\\b'], ['ab']],
  ];
  for (const [pattern, yes, no] of table) {
    it(`${JSON.stringify(pattern)} matches ${JSON.stringify(yes)} and not ${JSON.stringify(no)}`, () => {
      for (const p of yes) expect(m(pattern, p), p).toBe(true);
      for (const p of no) expect(m(pattern, p), p).toBe(false);
    });
  }

  it('matches the whole path, not a prefix or a substring', () => {
    expect(m('lib', 'lib/x')).toBe(false);
    expect(m('x', 'ax')).toBe(false);
  });

  it('a compiled pattern can be reused (no lastIndex state leaks)', () => {
    const re = compilePattern('*.so', 'osv');
    expect(matchesPattern(re, 'a.so')).toBe(true);
    expect(matchesPattern(re, 'a.so')).toBe(true);
    expect(matchesPattern(re, 'b.txt')).toBe(false);
    expect(matchesPattern(re, 'c.so')).toBe(true);
  });

  it.skipIf(!haveOsv)("agrees with OSv's _pattern_to_regex on generated patterns and paths (fast-check)", () => {
    const patTok = fc.constantFrom('*', '**', '?', '/', '//', 'a', 'b', '.', 'so', 'lib', '-', '&', ' ', '\\', '$', '(', ')', '[', ']', '|', '^', '{', '}', '+', '#', '~', '\r', '\u2028', 'é');
    const pathTok = fc.constantFrom('a', 'b', '/', 'lib', '.so', '.', 'x', '-', '&', ' ', '$', '(', '\\', '|', '^', '\r', '\u2028', '{', '}', '#', 'é');
    const join = (a: fc.Arbitrary<string>, max: number) => fc.array(a, { minLength: 0, maxLength: max }).map((x) => x.join(''));
    const cases = fc.sample(fc.tuple(join(patTok, 6), fc.array(join(pathTok, 7), { minLength: 1, maxLength: 4 })), { numRuns: 800, seed: SEED });
    const script = `
import json, re, sys, warnings
warnings.simplefilter('ignore')
sys.path.insert(0, sys.argv[1])
from osv.modules.filemap import _pattern_to_regex
out = []
for pattern, paths in json.load(sys.stdin):
    try:
        r = _pattern_to_regex(pattern)
    except Exception as e:
        out.append(['error', str(e)])
        continue
    out.append(['ok', [bool(re.match(r, p)) for p in paths]])
json.dump(out, sys.stdout)
`;
    const r = spawnSync('python3', ['-c', script, OSV_SCRIPTS], { input: JSON.stringify(cases), encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    const want = JSON.parse(r.stdout) as unknown[];
    const mismatches: unknown[] = [];
    cases.forEach(([pattern, paths], i) => {
      let got: unknown;
      try {
        const re = compilePattern(pattern, 'osv');
        got = ['ok', paths.map((p) => matchesPattern(re, p))];
      } catch (e) {
        got = ['error', (e as Error).message];
      }
      if (JSON.stringify(got) !== JSON.stringify(want[i])) mismatches.push({ pattern, paths, got, want: want[i] });
    });
    expect(mismatches.slice(0, 3), `seed ${SEED}`).toEqual([]);
  });
});

describe("patterns, mode 'default' (** = any number of directories)", () => {
  it('**/*.so matches at the top and at any depth', () => {
    for (const p of ['foo.so', 'lib/foo.so', 'a/b/c/foo.so']) expect(m('**/*.so', p, 'default'), p).toBe(true);
    for (const p of ['foo.so.1', 'lib/foo.sox']) expect(m('**/*.so', p, 'default'), p).toBe(false);
  });

  it('a/**/b matches a/b and deeper, only below a', () => {
    for (const p of ['a/b', 'a/x/b', 'a/x/y/b']) expect(m('a/**/b', p, 'default'), p).toBe(true);
    for (const p of ['b', 'x/a/b', 'a/b/c', 'ab', 'a//b']) expect(m('a/**/b', p, 'default'), p).toBe(false);
  });

  it('lib/** matches everything below lib but not lib itself', () => {
    for (const p of ['lib/x', 'lib/a/b']) expect(m('lib/**', p, 'default'), p).toBe(true);
    for (const p of ['lib', 'libx/y', 'xlib/a']) expect(m('lib/**', p, 'default'), p).toBe(false);
  });

  it('a trailing **/ means the same as a trailing **', () => {
    for (const [pattern, p] of [
      ['**/', 'a'],
      ['**/', 'lib/a/b'],
      ['lib/**/', 'lib/x'],
      ['lib/**/', 'lib/a/b'],
      ['lib/**/**/', 'lib/a/b'],
    ] as const) {
      expect(m(pattern, p, 'default'), `${pattern} ~ ${p}`).toBe(true);
    }
    expect(m('lib/**/', 'lib', 'default')).toBe(false);
  });

  it('** alone and merged runs of ** match everything', () => {
    for (const pattern of ['**', '**/**', '**//**']) for (const p of ['a', 'a/b/c']) expect(m(pattern, p, 'default')).toBe(true);
    expect(m('a/**/**/b', 'a/b', 'default')).toBe(true);
    expect(m('a/**/**/b', 'a/x/y/b', 'default')).toBe(true);
  });

  it('keeps *, ? and literal rules of osv mode', () => {
    const cases: Array<[string, string, boolean]> = [
      ['*.so', 'foo.so', true],
      ['*.so', 'lib/foo.so', false],
      ['lib?.so', 'liba.so', true],
      ['a?c', 'a/c', true],
      ['a?c', 'ac', false],
      ['/lib/*', 'lib/a', false],
      ['a.b', 'axb', false],
      ['(x)|[y]', '(x)|[y]', true],
      ['lib//*.so', 'lib/a.so', true],
      ['', '', true],
      ['', 'a', false],
    ];
    for (const [pattern, p, want] of cases) expect(m(pattern, p, 'default'), `${pattern} ~ ${p}`).toBe(want);
  });

  it('differs from osv mode only where ** is followed by more components', () => {
    expect(m('**/*.so', 'lib/foo.so', 'osv')).toBe(false);
    expect(m('**/*.so', 'lib/foo.so', 'default')).toBe(true);
  });
});

describe('pattern checks', () => {
  it("case 77: '**' next to another character is rejected with the offending 3 characters", () => {
    const cases: Array<[string, string]> = [
      ['a**', 'a**'],
      ['**a', '**a'],
      ['***', '***'],
      ['lib/x**/y', 'x**'],
      ['lib/**.so', '**.'],
    ];
    for (const [pattern, found] of cases) {
      for (const mode of ['osv', 'default'] as const) {
        let err: unknown;
        try {
          compilePattern(pattern, mode);
        } catch (e) {
          err = e;
        }
        expect(err).toBeInstanceOf(OsvbError);
        expect((err as OsvbError).code).toBe('OSVB_FILEMAP');
        expect((err as OsvbError).message).toBe(`'**' pattern may only be a in place of a full path component, but found: ${found}`);
      }
    }
    expect(() => checkPattern('lib/**')).not.toThrow();
    expect(() => checkPattern('**/x/**')).not.toThrow();
    expect(() => checkPattern('*.so')).not.toThrow();
  });

  it('hasInnerStarStar flags ** followed by more components only', () => {
    for (const p of ['**/*.so', 'a/**/b', '**/x', '**//x', '**/**/x']) expect(hasInnerStarStar(p), p).toBe(true);
    for (const p of ['**', 'lib/**', 'lib/**/', '**/', '**/**', 'a/**/**', '*.so', 'lib/*/x']) expect(hasInnerStarStar(p), p).toBe(false);
  });
});
