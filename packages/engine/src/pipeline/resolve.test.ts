/** resolveBuild: where a build goes and the variables it exports, as scripts/build derives them. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { useTempDirs } from '../testing/index.js';
import { resolveBuild } from './build.js';

const tempDir = useTempDirs('osvb-resolve-');

function base(): string {
  const d = tempDir();
  fs.writeFileSync(path.join(d, 'config.json'), '{"modules": {}}');
  return d;
}

describe('resolveBuild', () => {
  it('takes mode and ARCH from a build path named <mode>.<arch>, as scripts/build does from build/last', () => {
    const b = base();
    const r = resolveBuild({ words: [], osvBase: b, buildPath: path.join(b, 'build/debug.aarch64'), libgccSDir: '', env: {} });
    expect(r.words.mode).toBe('debug');
    expect(r.arch).toBe('aarch64');
    expect(r.env['mode']).toBe('debug');
    expect(r.env['ARCH']).toBe('aarch64');
  });

  it('mode= and arch= words win over the build path; other names derive nothing', () => {
    const b = base();
    const words = resolveBuild({ words: ['mode=release', 'arch=x64'], osvBase: b, buildPath: path.join(b, 'build/debug.aarch64'), libgccSDir: '', env: {} });
    expect([words.env['mode'], words.env['ARCH']]).toEqual(['release', 'x64']);
    const plain = resolveBuild({ words: [], osvBase: b, buildPath: path.join(b, 'out.d'), libgccSDir: '', env: {} });
    expect(plain.env['mode']).toBe('release');
    expect(resolveBuild({ words: ['mode=debug'], osvBase: b, libgccSDir: '', env: {} }).buildPath).toBe(path.join(b, 'build/debug'));
  });
});
