import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initHashing, StatCache } from '../hash/index.js';
import { cutoffEligibility, evidenceChange, makefileImpurity, parseMakeDatabase, takeEvidence } from './cutoff.js';
import type { ModuleKeyInputs } from './moduleKeys.js';

const inputs = (over: Partial<ModuleKeyInputs> = {}): ModuleKeyInputs => ({
  engine: 'e1',
  name: 'm',
  dir: '${OSV_BASE}/modules/m',
  files: { Makefile: 'a', 'm.c': 'b', 'usr.manifest': 'c' },
  vars: { mode: 'release' },
  record: 'r',
  deps: { lib: 'k1' },
  ...over,
});

describe('cutoffEligibility', () => {
  it('required modules, osv-build-only files and the record are eligible; anything else is not', () => {
    expect(cutoffEligibility(inputs(), inputs({ deps: { lib: 'k2' } }))).toEqual({ ok: true, changes: ['required module lib changed'], changedDeps: ['lib'] });
    expect(cutoffEligibility(inputs(), inputs({ files: { Makefile: 'a', 'm.c': 'b', 'usr.manifest': 'x', 'module.py': 'p' } }))).toMatchObject({ ok: true, changes: ['usr.manifest changed', 'module.py added'] });
    expect(cutoffEligibility(inputs(), inputs({ files: { Makefile: 'a', 'm.c': 'x', 'usr.manifest': 'c' } }))).toMatchObject({ ok: false });
    expect(cutoffEligibility(inputs(), inputs({ files: { Makefile: 'a', 'm.c': 'b', 'usr.manifest': 'c', 'sub/usr.manifest': 'd' } }))).toMatchObject({ ok: false });
    expect(cutoffEligibility(inputs(), inputs({ vars: { mode: 'debug' } }))).toMatchObject({ ok: false });
    expect(cutoffEligibility(inputs(), inputs({ deps: { lib: 'k1', other: 'k3' } }))).toMatchObject({ ok: false });
    expect(cutoffEligibility(inputs(), inputs({ engine: 'e2', deps: { lib: 'k2' } }))).toMatchObject({ ok: false });
    expect(cutoffEligibility(inputs(), inputs())).toMatchObject({ ok: false });
  });
});

describe('makefileImpurity', () => {
  it('names what makes a parse depend on more than the text and the variables', () => {
    expect(makefileImpurity('module: a.so\na.so: a.c\n\t$(CC) -o $@ a.c\n')).toBeUndefined();
    expect(makefileImpurity('X := $(shell ls)\n')).toContain('shell');
    expect(makefileImpurity('X := ${wildcard *.c}\n')).toContain('wildcard');
    expect(makefileImpurity('$(eval Y := 1)\n')).toContain('eval');
    expect(makefileImpurity('X != ls\n')).toContain('!=');
    expect(makefileImpurity('-include deps.d\n')).toContain('optional includes');
    expect(makefileImpurity('vpath %.c src\n')).toContain('vpath');
    expect(makefileImpurity('module:\n\t$(MAKE) -C sub\n')).toContain('recursively');
    expect(makefileImpurity('module:\n\t+touch x\n')).toContain('(+)');
    expect(makefileImpurity('ifneq (,$(findstring q,$(MAKEFLAGS)))\nendif\n')).toContain('flags');
  });
});

const haveMake = spawnSync('make', ['--version']).status === 0;

describe.skipIf(!haveMake)('make -pq data base and evidence (real make)', () => {
  let dir: string;
  let dep: string;
  beforeAll(async () => {
    await initHashing();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'osvb-cutoff-'));
    dep = path.join(dir, 'dep');
    fs.mkdirSync(path.join(dir, 'm'));
    fs.mkdirSync(dep);
    fs.writeFileSync(path.join(dep, 'g.h'), '#define G 1\n');
    fs.writeFileSync(path.join(dep, 'libdep.so'), 'not really a library\n');
    fs.writeFileSync(path.join(dir, 'm/m.c'), 'int m;\n');
    fs.writeFileSync(
      path.join(dir, 'm/Makefile'),
      `D = ${dep}\n.PHONY: module\nmodule: libm.so\nlibm.so: CFLAGS = -O2\nlibm.so: m.c $(D)/g.h\n\tcp m.c $@\n`,
    );
    fs.writeFileSync(path.join(dir, 'm/libm.so'), 'int m;\n');
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  const ask = (...extra: string[]): { code: number | null; db: string } => {
    const r = spawnSync('make', ['-pq', ...extra, 'module'], { cwd: path.join(dir, 'm'), env: { ...process.env, LC_ALL: 'C' }, encoding: 'utf8' });
    return { code: r.status, db: r.stdout };
  };

  it('lists the makefiles and the files rules name; a file only passed with -o is left out', () => {
    const { code, db } = ask('-o', path.join(dep, 'libdep.so'));
    expect(code).toBe(0);
    const parsed = parseMakeDatabase(db);
    expect(parsed?.makefiles).toEqual(['Makefile']);
    expect(parsed?.files).toEqual(expect.arrayContaining(['module', 'libm.so', 'm.c', path.join(dep, 'g.h')]));
    expect(parsed?.files).not.toContain(path.join(dep, 'libdep.so'));
    expect(parsed?.files).not.toContain('CFLAGS');
  });

  it('evidence holds until a named file, a makefile or a listed directory changes; not for unnamed files', () => {
    const stat = new StatCache(undefined);
    const vars = { mode: 'release' };
    const ev = takeEvidence(path.join(dir, 'm'), ask().db, vars, stat);
    if ('unusable' in ev) throw new Error(ev.unusable);
    expect(evidenceChange(ev, vars, stat)).toBeUndefined();
    // A file of the required module that no rule names: the answer still holds.
    fs.writeFileSync(path.join(dep, 'libdep.so'), 'other bytes\n');
    expect(evidenceChange(ev, vars, stat)).toBeUndefined();
    // Touched, same content: holds (as make -o would treat it).
    const t = new Date(Date.now() + 10_000);
    fs.utimesSync(path.join(dep, 'g.h'), t, t);
    expect(evidenceChange(ev, vars, stat)).toBeUndefined();
    expect(evidenceChange(ev, { mode: 'debug' }, stat)).toBe('a make variable changed');
    // A named header's content: no longer.
    fs.writeFileSync(path.join(dep, 'g.h'), '#define G 2\n');
    expect(evidenceChange(ev, vars, stat)).toContain('g.h changed');
    fs.writeFileSync(path.join(dep, 'g.h'), '#define G 1\n');
    expect(evidenceChange(ev, vars, stat)).toBeUndefined();
    // A new file beside a named one (it could feed an implicit rule): no longer.
    fs.writeFileSync(path.join(dep, 'g.h.y'), '');
    expect(evidenceChange(ev, vars, stat)).toContain('entries of');
  });

  it('a data base with a name it cannot read with certainty gives no evidence', () => {
    expect(parseMakeDatabase('MAKEFILE_LIST := Makefile\n# Files\n\nodd\\ name: x\n# files hash-table stats:\n')).toBeUndefined();
    expect(parseMakeDatabase('MAKEFILE_LIST := Makefile\n# Files\n\na: b\n')).toBeUndefined();
  });
});
