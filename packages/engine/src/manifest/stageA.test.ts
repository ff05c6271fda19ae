import { describe, expect, it } from 'vitest';
import { OsvbError } from '../errors/index.js';
import { splitUniversalLines } from '../fsutil/index.js';
import { stageA, type StageAInput } from './stageA.js';
import { error } from '../testing/index.js';

const moduleVars = { MODULE_DIR: '/m', OSV_BASE: '/osv' };

function run(lines: string[], over: Partial<StageAInput> = {}): string {
  return stageA({ file: '/m/usr.manifest', lines, variables: moduleVars, libgccSDir: '', kind: 'module', ...over });
}


describe('stageA (§6.2)', () => {
  it('case 1: substitutes ${MODULE_DIR}', () => {
    expect(run(['/a.txt: ${MODULE_DIR}/a.txt'])).toBe('/a.txt: /m/a.txt\n');
    expect(run(['/b: ${OSV_BASE}/b'])).toBe('/b: /osv/b\n');
  });

  it('keeps MODULE_DIR verbatim (a trailing slash gives //)', () => {
    expect(run(['/i: ${MODULE_DIR}/x'], { variables: { MODULE_DIR: '/osv/modules/cloud-init/', OSV_BASE: '/osv' } })).toBe(
      '/i: /osv/modules/cloud-init//x\n',
    );
  });

  it('case 2: drops the [manifest] header, keeps comments and blank lines', () => {
    expect(run(['[manifest]', '# comment', '', '/x: y'])).toBe('# comment\n\n/x: y\n');
  });

  it('drops a header with trailing whitespace but keeps an indented one', () => {
    expect(run(['[manifest]  \t', '/x: y'])).toBe('/x: y\n');
    expect(run(['  [manifest]', '/x: y'])).toBe('  [manifest]\n/x: y\n');
  });

  it('right-strips every line with Python whitespace rules', () => {
    expect(run(['/a: b \t\v\f\u00a0', '   ', '# c  '])).toBe('/a: b\n\n# c\n');
  });

  it('case 3 (deliberate difference): substitutes every ${…} on a line', () => {
    expect(run(['/a: ${MODULE_DIR}/a ${OSV_BASE}/b'])).toBe('/a: /m/a /osv/b\n');
    expect(run(['/${MODULE_DIR}: ${MODULE_DIR}/a}'])).toBe('//m: /m/a}\n');
  });

  it('does not re-scan substituted values and leaves $NAME alone', () => {
    expect(run(['/a: ${MODULE_DIR}/$OSV_BASE'], { variables: { MODULE_DIR: '/m/${OSV_BASE}', OSV_BASE: '/osv' } })).toBe(
      '/a: /m/${OSV_BASE}/$OSV_BASE\n',
    );
  });

  it('case 4: an undefined variable fails with its name, file and line, even in a comment', () => {
    const e = error(() => run(['/a: b', '', '# uses ${HOME}']));
    expect(e.code).toBe('OSVB_MANIFEST_UNDEFINED_VAR');
    expect(e.message).toBe('Undefined variable: HOME');
    expect(e.location).toEqual({ file: '/m/usr.manifest', line: 3 });
    expect(e.hint).toContain('MODULE_DIR');
  });

  it('reports the first undefined name of a line and the empty name of ${}', () => {
    expect(error(() => run(['/a: ${MODULE_DIR}/${NOPE}/${ALSO}'])).message).toBe('Undefined variable: NOPE');
    expect(error(() => run(['/a: ${}'])).message).toBe('Undefined variable: ');
  });

  it('does not take variable names from Object.prototype', () => {
    const e = error(() => run(['/a: ${constructor}/x']));
    expect(e.code).toBe('OSVB_MANIFEST_UNDEFINED_VAR');
    expect(e.message).toBe('Undefined variable: constructor');
  });

  it('skeletons have no variables', () => {
    const e = error(() =>
      stageA({ file: '/osv/usr.manifest.skel', lines: ['/x: ${MODULE_DIR}/x'], variables: {}, libgccSDir: '', kind: 'skeleton' }),
    );
    expect(e.code).toBe('OSVB_MANIFEST_UNDEFINED_VAR');
    expect(e.message).toBe('Undefined variable: MODULE_DIR');
    expect(e.location).toEqual({ file: '/osv/usr.manifest.skel', line: 1 });
    expect(e.hint).toContain('skeleton');
  });

  it('case 5: replaces %(libgcc_s_dir)s when non-empty, leaves it when empty', () => {
    const line = '/usr/lib/libgcc_s.so.1: %(libgcc_s_dir)s/libgcc_s.so.1';
    expect(run([line], { libgccSDir: '/usr/lib/gcc/x/12' })).toBe('/usr/lib/libgcc_s.so.1: /usr/lib/gcc/x/12/libgcc_s.so.1\n');
    expect(run([line], { libgccSDir: '' })).toBe(line + '\n');
    expect(run(['/a: %(libgcc_s_dir)s/a %(libgcc_s_dir)s'], { libgccSDir: '/g' })).toBe('/a: /g/a /g\n');
    expect(run(['/a: %(other)s/a'], { libgccSDir: '/g' })).toBe('/a: %(other)s/a\n');
  });

  it('case 6: a last line without newline is appended with one', () => {
    expect(run(splitUniversalLines('/sysinfo.so: ${MODULE_DIR}/sysinfo.so'))).toBe('/sysinfo.so: /m/sysinfo.so\n');
  });

  it('case 72: a lone \\r ends a line and a CRLF [manifest] is dropped', () => {
    const text = '/a: x\r/b: ${MODULE_DIR}/y\r\n[manifest]\r\n';
    expect(run(splitUniversalLines(text), { variables: { MODULE_DIR: 'M', OSV_BASE: '/osv' } })).toBe('/a: x\n/b: M/y\n');
  });

  it('a line without ": " fails with OSVB_MANIFEST_SYNTAX and its line', () => {
    const e = error(() => run(['[manifest]', '/a: x', '/b:/h/b']));
    expect(e.code).toBe('OSVB_MANIFEST_SYNTAX');
    expect(e.location).toEqual({ file: '/m/usr.manifest', line: 3 });
    expect(e.message).toContain('/b:/h/b');
    expect(error(() => run(['/b:\t/h/b'])).code).toBe('OSVB_MANIFEST_SYNTAX');
  });

  it('checks the syntax after substitution', () => {
    expect(error(() => run(['/b:${MODULE_DIR}'])).message).toContain('/b:/m');
    expect(run(['/b${MODULE_DIR}'], { variables: { MODULE_DIR: ': /m', OSV_BASE: '' } })).toBe('/b: /m\n');
  });

  it('lets comments, blank and header-like lines through the syntax check', () => {
    expect(run(['\t# no separator here', ' \t', '  [manifest]'])).toBe('\t# no separator here\n\n  [manifest]\n');
  });

  it('empty input gives empty output', () => {
    expect(run([])).toBe('');
    expect(run(['[manifest]'])).toBe('');
  });
});
