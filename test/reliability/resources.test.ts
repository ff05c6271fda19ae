/**
 * Resource limits: a module of very many files and a manifest with a very large file build with
 * bounded memory (peak RSS from the CLI's own report), and a high -j stays within a small
 * file-descriptor limit.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
// @ts-expect-error -- plain ESM tool shared with the benchmarks
import { generateTree } from '../../tools/gen-tree/gen-tree.mjs';
import { OSVB, osvb, tempDir, writeTree } from '../helpers/cli.js';
import { count, FULL, recordFigures } from './summary.js';

const root = tempDir('osvb-resources-');
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

function peakRss(stderr: string): number {
  const m = /osvb: peak RSS (\d+) MB/.exec(stderr);
  if (!m) throw new Error(`no RSS report in:\n${stderr}`);
  return Number(m[1]);
}

function skeleton(dir: string, files: Record<string, string>): void {
  writeTree(dir, {
    'config.json': JSON.stringify({ modules: { repositories: ['${OSV_BASE}/modules'] } }),
    'usr.manifest.skel': '[manifest]\n',
    'usr_rofs.manifest.skel': '[manifest]\n',
    'bootfs.manifest.skel': '[manifest]\n',
    ...files,
  });
}

describe('resource limits', () => {
  it('a module of many files builds into a ROFS image with bounded memory', async () => {
    const files = count(100_000, 10_000);
    const dir = path.join(root, 'many');
    skeleton(dir, { 'modules/many/module.py': 'from osv.modules import api\n', 'modules/many/usr.manifest': '/many/**: ${MODULE_DIR}/data/**\n' });
    for (let d = 0; d < files / 1000; d++) {
      const sub = path.join(dir, 'modules/many/data', `d${d}`);
      fs.mkdirSync(sub, { recursive: true });
      for (let f = 0; f < 1000; f++) fs.writeFileSync(path.join(sub, `f${f}.txt`), `${d}/${f}\n`);
    }
    const res = await osvb(['build', 'image=many', 'fs=rofs', '--require-image', '--osv-base', dir], { env: { OSVB_REPORT_RSS: '1' } });
    expect(res.exitCode, res.stderr).toBe(0);
    const rss = peakRss(res.stderr);
    const limit = FULL ? 1024 : 512;
    recordFigures({ scenario: `module of ${files} files → rofs.img`, runs: 1, failures: rss < limit ? 0 : 1, peakRssMB: rss });
    expect(rss).toBeLessThan(limit);
    const ls = await osvb(['rofs', 'ls', path.join(dir, 'build/release/rofs.img')]);
    expect(ls.stdout.split('\n').filter((l) => l.includes('/many/d')).length).toBeGreaterThanOrEqual(files);
  }, 900_000);

  it('a very large file in a manifest streams through with bounded memory', async () => {
    const size = FULL ? 4 * 1024 ** 3 : 512 * 1024 ** 2;
    const free = fs.statfsSync(root);
    const available = free.bavail * free.bsize;
    if (available < size * 2.5) {
      recordFigures({ scenario: `${size / 1024 ** 2} MB file → rofs.img`, runs: 0, failures: 0, note: `skipped: ${Math.round(available / 1024 ** 2)} MB free` });
      return;
    }
    const dir = path.join(root, 'big');
    skeleton(dir, { 'modules/big/module.py': 'from osv.modules import api\n', 'modules/big/usr.manifest': '/big.bin: ${MODULE_DIR}/big.bin\n' });
    // Sparse: reads as zeros without taking the disk space.
    const fd = fs.openSync(path.join(dir, 'modules/big/big.bin'), 'w');
    fs.ftruncateSync(fd, size);
    fs.writeSync(fd, Buffer.from('end'), 0, 3, size - 3);
    fs.closeSync(fd);
    const res = await osvb(['build', 'image=big', 'fs=rofs', '--require-image', '--osv-base', dir], { env: { OSVB_REPORT_RSS: '1' } });
    expect(res.exitCode, res.stderr).toBe(0);
    const rss = peakRss(res.stderr);
    recordFigures({ scenario: `${size / 1024 ** 2} MB file → rofs.img`, runs: 1, failures: rss < 300 ? 0 : 1, peakRssMB: rss });
    expect(rss).toBeLessThan(300);
    expect(fs.statSync(path.join(dir, 'build/release/rofs.img')).size).toBeGreaterThan(size);
    const ls = await osvb(['rofs', 'ls', path.join(dir, 'build/release/rofs.img')]);
    expect(ls.stdout).toMatch(new RegExp(`^-\\s+${size}\\s+/big\\.bin$`, 'm'));
    fs.rmSync(path.join(dir, 'build'), { recursive: true, force: true });
  }, 900_000);

  it('-j64 builds within a limit of 256 open files', () => {
    const dir = path.join(root, 'fds');
    generateTree({ modules: 48, out: dir, seed: 3, dataFiles: 20, dataBytes: 64 });
    const env: NodeJS.ProcessEnv = { ...process.env, OSVB_REPORT_RSS: '1', CI: 'true' };
    delete env['OSV_BASE'];
    delete env['OSV_BUILD_PATH'];
    const r = spawnSync('sh', ['-c', `ulimit -n 256 && exec "${process.execPath}" "${OSVB}" build image=all fs=rofs -j64 --osv-base "${dir}"`], { encoding: 'utf8', cwd: dir, env });
    recordFigures({ scenario: '48 modules, -j64, ulimit -n 256', runs: 1, failures: r.status === 0 ? 0 : 1, peakRssMB: r.status === 0 ? peakRss(r.stderr) : undefined });
    expect(r.status, r.stderr).toBe(0);
  }, 600_000);
});
