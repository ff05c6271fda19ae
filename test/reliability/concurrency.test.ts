/**
 * Concurrency: four builds of the same tree at once (one cache), and two builds of different
 * images sharing one cache (separate build paths); every result must equal a build made alone.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
// @ts-expect-error -- plain ESM tool shared with the benchmarks
import { generateTree } from '../../tools/gen-tree/gen-tree.mjs';
import { osvb, tempDir } from '../helpers/cli.js';
import { count, recordFigures } from './summary.js';

const root = tempDir('osvb-concurrency-');
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));
const MODULES = 16;

function tree(name: string): string {
  const base = path.join(root, name);
  generateTree({ modules: MODULES, out: base, seed: 11, dataFiles: 2, dataBytes: 512 });
  return base;
}

const read = (p: string): string => fs.readFileSync(p).toString('base64');

describe('concurrent builds', () => {
  it('four builds of the same tree at once agree with a build made alone', async () => {
    const rounds = count(5, 2);
    let failures = 0;
    for (let r = 0; r < rounds; r++) {
      const alone = tree(`alone-${r}`);
      const ref = await osvb(['build', 'image=all', 'fs=rofs', '--osv-base', alone, '--cache-dir', path.join(root, `alone-cache-${r}`)]);
      expect(ref.exitCode, ref.stderr).toBe(0);
      const shared = tree(`shared-${r}`);
      const cache = path.join(root, `shared-cache-${r}`);
      const runs = await Promise.all([0, 1, 2, 3].map(() => osvb(['build', 'image=all', 'fs=rofs', '--osv-base', shared, '--cache-dir', cache], { env: { OSVB_NO_MEMO: '1' } })));
      const ok = runs.every((x) => x.exitCode === 0) && read(path.join(shared, 'build/release/rofs.img')) === read(path.join(alone, 'build/release/rofs.img'));
      const verify = await osvb(['cache', 'verify', '--cache-dir', cache]);
      if (!ok || verify.exitCode !== 0) failures++;
      expect(runs.map((x) => x.exitCode), runs.map((x) => x.stderr).join('\n')).toEqual([0, 0, 0, 0]);
    }
    recordFigures({ scenario: '4 concurrent builds of one tree', runs: rounds * 4, failures, corrupt: 0 });
    expect(failures).toBe(0);
  }, 600_000);

  it('two images built at once from one cache (separate build paths) each equal their build alone', async () => {
    const base = tree('two-images');
    const cache = path.join(root, 'two-images-cache');
    const specs = ['image=all', 'image=m0003,m0009,m0015'];
    const [a, b] = await Promise.all(specs.map((spec, i) => osvb(['build', spec, 'fs=rofs', '--osv-base', base, '--build-path', path.join(base, `build/img${i}`), '--cache-dir', cache])));
    expect(a?.exitCode, a?.stderr).toBe(0);
    expect(b?.exitCode, b?.stderr).toBe(0);
    let failures = 0;
    for (const [i, spec] of specs.entries()) {
      const alone = tree(`two-images-alone-${i}`);
      const res = await osvb(['build', spec, 'fs=rofs', '--osv-base', alone, '--build-path', path.join(alone, `build/img${i}`), '--cache-dir', path.join(root, `two-alone-cache-${i}`)]);
      expect(res.exitCode, res.stderr).toBe(0);
      if (read(path.join(base, `build/img${i}/rofs.img`)) !== read(path.join(alone, `build/img${i}/rofs.img`))) failures++;
    }
    const verify = await osvb(['cache', 'verify', '--cache-dir', cache]);
    expect(verify.exitCode).toBe(0);
    recordFigures({ scenario: '2 images built at once, one cache', runs: 2, failures, corrupt: 0 });
    expect(failures).toBe(0);
  }, 600_000);
});
