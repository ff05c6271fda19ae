import { spawnSync } from 'node:child_process';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  expandVars,
  isPyWhitespace,
  pyBasename,
  pyDirname,
  pyJoin,
  pyRelpath,
  pyRstrip,
  pyStrip,
  splitUniversalLines,
} from './pypath.js';

/** Runs a python3 script once with `input` as JSON on stdin; the script prints JSON. */
function python<T>(script: string, input: unknown): T {
  const r = spawnSync('python3', ['-c', script], { input: JSON.stringify(input), encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`python3 failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}

const SEED = Number(process.env['OSVB_FC_SEED'] ?? 20260814);

describe('expandVars (os.path.expandvars, §2.6)', () => {
  const env = { A: '/a', B: 'bee', A_B: 'ab', '1x': 'one', 'A B': 'spaced', '': 'empty', DOLLAR: '$A' };

  it('expands $name and ${name}', () => {
    expect(expandVars('$A/x', env)).toBe('/a/x');
    expect(expandVars('${A}/x', env)).toBe('/a/x');
    expect(expandVars('${OSV_BASE}/modules/x/', { OSV_BASE: '/osv' })).toBe('/osv/modules/x/');
  });

  it('takes the longest [A-Za-z0-9_]+ name for the unbraced form', () => {
    expect(expandVars('$A_B/x', env)).toBe('ab/x');
    expect(expandVars('$A-B', env)).toBe('/a-B');
    expect(expandVars('$1x', env)).toBe('one');
  });

  it('leaves undefined variables as written', () => {
    expect(expandVars('${UNDEF}/x', env)).toBe('${UNDEF}/x');
    expect(expandVars('$UNDEF/x', env)).toBe('$UNDEF/x');
    expect(expandVars('$UNDEF$A', env)).toBe('$UNDEF/a');
  });

  it('does not re-scan substituted values', () => {
    expect(expandVars('$DOLLAR', env)).toBe('$A');
    expect(expandVars('$$A', env)).toBe('$/a');
  });

  it('braced names run to the first }', () => {
    expect(expandVars('${A B}', env)).toBe('spaced');
    expect(expandVars('${A B}', {})).toBe('${A B}');
    expect(expandVars('${}', env)).toBe('empty');
    expect(expandVars('${}', {})).toBe('${}');
    expect(expandVars('${A}}', env)).toBe('/a}');
    expect(expandVars('${A', env)).toBe('${A');
  });

  it('returns text without $ unchanged', () => {
    expect(expandVars('/plain/{A}', env)).toBe('/plain/{A}');
  });

  it('does not take names from Object.prototype', () => {
    expect(expandVars('$constructor/${toString}/$hasOwnProperty', {})).toBe('$constructor/${toString}/$hasOwnProperty');
    expect(expandVars('${constructor}', { PATH: '/bin' })).toBe('${constructor}');
  });

  it('reads a process.env-like object', () => {
    expect(expandVars('$OSVB_TEST_UNSET_VARIABLE_X/${PATH}', process.env)).toBe(`$OSVB_TEST_UNSET_VARIABLE_X/${process.env['PATH']}`);
  });
});

describe('pyJoin (os.path.join)', () => {
  it('joins with one slash and never normalises', () => {
    expect(pyJoin('a', 'b')).toBe('a/b');
    expect(pyJoin('a/', 'b')).toBe('a/b');
    expect(pyJoin('a//', 'b')).toBe('a//b');
    expect(pyJoin('a', '../b/./c')).toBe('a/../b/./c');
    expect(pyJoin('/usr/', 'lib/x')).toBe('/usr/lib/x');
    expect(pyJoin('/', 'x')).toBe('/x');
  });

  it('restarts at an absolute component', () => {
    expect(pyJoin('/a', '/b', 'c')).toBe('/b/c');
    expect(pyJoin('a', '//b')).toBe('//b');
  });

  it('handles empty components like Python', () => {
    expect(pyJoin('', 'b')).toBe('b');
    expect(pyJoin('a', '')).toBe('a/');
    expect(pyJoin('a', '', 'b')).toBe('a/b');
    expect(pyJoin('a')).toBe('a');
  });
});

describe('pyDirname / pyBasename / pyRelpath', () => {
  it('dirname keeps a root made of slashes and trims other trailing slashes', () => {
    expect(pyDirname('/usr/lib/x.so')).toBe('/usr/lib');
    expect(pyDirname('/x')).toBe('/');
    expect(pyDirname('//x')).toBe('//');
    expect(pyDirname('//')).toBe('//');
    expect(pyDirname('a//b')).toBe('a');
    expect(pyDirname('a/b/')).toBe('a/b');
    expect(pyDirname('libfoo.so')).toBe('');
    expect(pyDirname('')).toBe('');
    expect(pyDirname('./x')).toBe('.');
  });

  it('basename is everything after the last slash', () => {
    expect(pyBasename('/a/b')).toBe('b');
    expect(pyBasename('/a/b/')).toBe('');
    expect(pyBasename('b')).toBe('b');
  });

  it('relpath normalises both sides', () => {
    expect(pyRelpath('/h/lib/sub/x.so', '/h/lib')).toBe('sub/x.so');
    expect(pyRelpath('/h/lib/x', '/h/lib/')).toBe('x');
    expect(pyRelpath('/h//lib/./x', '/h/lib')).toBe('x');
    expect(pyRelpath('/h/lib', '/h/lib')).toBe('.');
    expect(pyRelpath('/h/a', '/h/lib')).toBe('../a');
  });
});

describe('pyRstrip / pyStrip (str.rstrip / str.strip)', () => {
  it('removes exactly the characters for which str.isspace() is true', () => {
    const pySpaces = python<number[]>(
      'import json, sys\njson.dump([c for c in range(0x110000) if chr(c).isspace()], sys.stdout)',
      null,
    );
    const ours: number[] = [];
    for (let c = 0; c <= 0xffff; c++) if (isPyWhitespace(c)) ours.push(c);
    expect(ours).toEqual(pySpaces);
  });

  it('strips trailing whitespace only (rstrip)', () => {
    expect(pyRstrip('/a: b \t\r\n\v\f\u00a0\u3000')).toBe('/a: b');
    expect(pyRstrip('  x  ')).toBe('  x');
    expect(pyRstrip('x\u200b')).toBe('x\u200b'); // zero-width space is not whitespace
    expect(pyRstrip('x\ufeff')).toBe('x\ufeff');
    expect(pyRstrip(' \t ')).toBe('');
  });

  it('strips both ends (strip)', () => {
    expect(pyStrip('/c ')).toBe('/c');
    expect(pyStrip('  /h/c  ')).toBe('/h/c');
    expect(pyStrip('\u2028x\u0085')).toBe('x');
    expect(pyStrip('')).toBe('');
  });
});

describe('splitUniversalLines', () => {
  it('ends lines at \\n, \\r\\n and a lone \\r', () => {
    expect(splitUniversalLines('a\nb\r\nc\rd')).toEqual(['a', 'b', 'c', 'd']);
    expect(splitUniversalLines('/a: x\r/b: y\r\n[manifest]\r\n')).toEqual(['/a: x', '/b: y', '[manifest]']);
  });

  it('does not make a last empty line from the final terminator', () => {
    expect(splitUniversalLines('a\n')).toEqual(['a']);
    expect(splitUniversalLines('a\n\n')).toEqual(['a', '']);
    expect(splitUniversalLines('a')).toEqual(['a']);
    expect(splitUniversalLines('')).toEqual([]);
    expect(splitUniversalLines('\n')).toEqual(['']);
  });

  it('does not split at \\v, \\f, U+2028 or \\r\\r\\n as one break', () => {
    expect(splitUniversalLines('a\vb\fc\u2028d\x85e')).toEqual(['a\vb\fc\u2028d\x85e']);
    expect(splitUniversalLines('a\r\r\nb')).toEqual(['a', '', 'b']);
  });
});

describe('agreement with python3 on generated inputs (fast-check)', () => {
  const names = ['A', 'B', 'A_B', 'AB', '1x', 'x y', '', 'HOME9', 'constructor', 'toString'];
  const textArb = fc
    .array(
      fc.oneof(
        fc.constantFrom('$', '${', '}', '{', '/', '$$', 'x', '-', ' ', 'é', '_', '.', '$constructor', '${toString}', '$A', '${x y}'),
        fc.constantFrom(...names),
        fc.string({ maxLength: 4 }),
      ),
      { maxLength: 10 },
    )
    .map((parts) => parts.join(''));
  const envArb = fc
    .dictionary(fc.constantFrom(...names), fc.oneof(fc.constantFrom('', '/v', '$A', '${B}', 'x}y'), fc.string({ maxLength: 6 })))
    .map((d) => ({ ...d }) as Record<string, string>);
  const segArb = fc.oneof(fc.constantFrom('', '/', '//', 'a', 'b/', '/c', '.', '..', 'd//', ' '), fc.string({ maxLength: 3 }));
  const wsChars = ['\t', '\n', '\v', '\f', '\r', ' ', '\x1c', '\x1f', '\x85', '\xa0', '\u1680', '\u2000', '\u200a', '\u200b', '\u2028', '\u2029', '\u202f', '\u205f', '\u3000', '\ufeff', '\u180e', 'a', '/'];
  const wsArb = fc.string({ unit: fc.constantFrom(...wsChars), maxLength: 8 });
  const absPathArb = fc
    .array(fc.constantFrom('a', 'b', '.', '..', '', 'c d'), { minLength: 0, maxLength: 5 })
    .map((parts) => '/' + parts.join('/'));

  const caseArb = fc.record({
    text: textArb,
    env: envArb,
    join: fc.array(segArb, { minLength: 1, maxLength: 4 }),
    ws: wsArb,
    dir: fc.array(segArb, { minLength: 1, maxLength: 4 }).map((s) => s.join('')),
    rel: fc.tuple(absPathArb, absPathArb),
    lines: fc.string({ unit: fc.constantFrom('a', '\n', '\r', '\v', ' ', 'b'), maxLength: 10 }),
  });

  it('expandVars, pyJoin, pyRstrip, pyStrip, pyDirname, pyRelpath and splitUniversalLines equal Python', () => {
    const cases = fc.sample(caseArb, { numRuns: 500, seed: SEED });
    const script = `
import io, json, os, posixpath, sys
out = []
for c in json.load(sys.stdin):
    os.environ = c['env']
    out.append({
        'text': posixpath.expandvars(c['text']),
        'join': posixpath.join(*c['join']),
        'rstrip': c['ws'].rstrip(),
        'strip': c['ws'].strip(),
        'dir': posixpath.dirname(c['dir']),
        'rel': posixpath.relpath(c['rel'][0], c['rel'][1]),
        'lines': [l[:-1] if l.endswith('\\n') else l for l in io.TextIOWrapper(io.BytesIO(c['lines'].encode()), encoding='utf-8', newline=None)],
    })
json.dump(out, sys.stdout)
`;
    const want = python<Array<Record<string, unknown>>>(script, cases);
    const mismatches: unknown[] = [];
    cases.forEach((c, i) => {
      const got = {
        text: expandVars(c.text, c.env),
        join: pyJoin(...(c.join as [string, ...string[]])),
        rstrip: pyRstrip(c.ws),
        strip: pyStrip(c.ws),
        dir: pyDirname(c.dir),
        rel: pyRelpath(c.rel[0], c.rel[1]),
        lines: splitUniversalLines(c.lines),
      };
      if (JSON.stringify(got) !== JSON.stringify(want[i])) mismatches.push({ input: c, got, want: want[i] });
    });
    expect(mismatches.slice(0, 3), `seed ${SEED}`).toEqual([]);
  });
});
