import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { buildEnvironment, findLibgccSDir, hostArch } from './environment.js';
import { parseBuildWords } from './words.js';

const input = (words: string[], base: Record<string, string | undefined> = {}) => ({
  base,
  words: parseBuildWords(words),
  osvBase: '/osv',
  buildPath: '/osv/build/release',
  arch: 'x64',
  libgccSDir: '/usr/lib/gcc/x86_64-linux-gnu/12',
});

describe('buildEnvironment (§5.2)', () => {
  it('adds fs_type, mode, OSV_BUILD_PATH, libgcc_s_dir, ARCH and OSV_BASE to the caller environment', () => {
    const env = buildEnvironment(input([], { PATH: '/bin', HOME: '/root' }));
    expect(env).toEqual({
      PATH: '/bin',
      HOME: '/root',
      fs_type: 'zfs',
      mode: 'release',
      OSV_BUILD_PATH: '/osv/build/release',
      libgcc_s_dir: '/usr/lib/gcc/x86_64-linux-gnu/12',
      ARCH: 'x64',
      OSV_BASE: '/osv',
    });
  });

  it('fs_type follows fs=, mode follows mode=', () => {
    const env = buildEnvironment(input(['fs=rofs', 'mode=debug']));
    expect(env['fs_type']).toBe('rofs');
    expect(env['mode']).toBe('debug');
    expect(env['fs']).toBeUndefined();
  });

  it('exports NAME=value words verbatim, last one wins, but not image/modules/fs/usrskel', () => {
    const env = buildEnvironment(input(['JAVA_VERSION=10', 'X=a b', 'X=c d', 'image=x', 'modules=y', 'usrskel=none', 'export=selected']));
    expect(env['JAVA_VERSION']).toBe('10');
    expect(env['X']).toBe('c d');
    expect(env['export']).toBe('selected');
    for (const k of ['image', 'modules', 'usrskel', 'fs']) expect(env[k], k).toBeUndefined();
  });

  it('words override the caller environment', () => {
    const env = buildEnvironment(input(['FOO=word'], { FOO: 'base' }));
    expect(env['FOO']).toBe('word');
  });

  it('computed values override the caller environment', () => {
    const env = buildEnvironment(
      input([], { fs_type: 'base', mode: 'base', OSV_BUILD_PATH: '/base', libgcc_s_dir: '/base', ARCH: 'base', OSV_BASE: '/base' }),
    );
    expect(env).toMatchObject({
      fs_type: 'zfs',
      mode: 'release',
      OSV_BUILD_PATH: '/osv/build/release',
      libgcc_s_dir: '/usr/lib/gcc/x86_64-linux-gnu/12',
      ARCH: 'x64',
      OSV_BASE: '/osv',
    });
  });

  it('a word of the same name beats fs_type, mode, OSV_BUILD_PATH and libgcc_s_dir, but not ARCH or OSV_BASE', () => {
    const env = buildEnvironment(
      input(['fs_type=w1', 'OSV_BUILD_PATH=/w2', 'libgcc_s_dir=/w3', 'ARCH=w4', 'OSV_BASE=/w5', 'fs=rofs'], { ARCH: 'b', OSV_BASE: '/b' }),
    );
    expect(env).toMatchObject({ fs_type: 'w1', OSV_BUILD_PATH: '/w2', libgcc_s_dir: '/w3', ARCH: 'x64', OSV_BASE: '/osv' });
  });

  it('drops undefined values of the caller environment and does not modify it', () => {
    const base = { KEEP: 'k', GONE: undefined };
    const env = buildEnvironment(input(['A=1'], base));
    expect('GONE' in env).toBe(false);
    expect(env['KEEP']).toBe('k');
    expect(base).toEqual({ KEEP: 'k', GONE: undefined });
  });

  it('keeps an empty libgcc_s_dir (stage A then leaves %(libgcc_s_dir)s alone)', () => {
    expect(buildEnvironment({ ...input([]), libgccSDir: '' })['libgcc_s_dir']).toBe('');
  });
});

describe('findLibgccSDir', () => {
  const saved = process.env['CROSS_PREFIX'];
  afterEach(() => {
    if (saved === undefined) delete process.env['CROSS_PREFIX'];
    else process.env['CROSS_PREFIX'] = saved;
  });

  let gccLib: string | undefined;
  try {
    gccLib = execFileSync('gcc', ['-print-file-name=libgcc_s.so.1'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    gccLib = undefined;
  }

  it.skipIf(gccLib === undefined || !path.isAbsolute(gccLib ?? ''))('returns the real directory of gcc\'s libgcc_s.so.1', () => {
    const r = findLibgccSDir(hostArch());
    expect(r.warning).toBeUndefined();
    expect(path.isAbsolute(r.dir)).toBe(true);
    expect(r.dir).toBe(path.dirname(fs.realpathSync(gccLib as string)));
  });

  it.skipIf(hostArch() !== 'x64')('warns and returns an empty dir when the cross compiler is missing', () => {
    process.env['CROSS_PREFIX'] = 'osvb-no-such-prefix-';
    const r = findLibgccSDir('aarch64');
    expect(r.dir).toBe('');
    expect(r.warning).toContain('osvb-no-such-prefix-gcc');
  });
});
