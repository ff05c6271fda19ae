/**
 * Crash safety: builds of a generated tree killed with SIGKILL (the whole process group: osvb and
 * the makes it started) at random moments — during evaluation, make, cache writes, image
 * writes. After each, a normal build must succeed with outputs identical to a clean build of
 * the same sources in a fresh directory with an empty cache, and `osvb cache verify` must find
 * no corrupt entry.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
// @ts-expect-error -- plain ESM tool shared with the benchmarks
import { generateTree } from '../../tools/gen-tree/gen-tree.mjs';
import { OSVB, osvb, tempDir } from '../helpers/cli.js';
import { count, recordFigures } from './summary.js';

const root = tempDir('osvb-crash-');
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

const MODULES = 12;
/** Seeded so a failure can be replayed (OSVB_RELIABILITY_SEED). */
let seed = Number(process.env['OSVB_RELIABILITY_SEED'] ?? 20261125);
function random(): number {
  seed = (seed * 1103515245 + 12345) % 2147483648;
  return seed / 2147483648;
}

interface Tree {
  base: string;
  cache: string;
}

function cFile(base: string, i: number): string {
  const name = `m${String(i).padStart(4, '0')}`;
  return path.join(base, 'modules', name, `${name}.c`);
}

/** Sources only (what a fresh checkout has): no outputs, no build path, no cache. */
function copySources(from: string, to: string): void {
  fs.cpSync(from, to, {
    recursive: true,
    filter: (src) => {
      const rel = path.relative(from, src);
      return !/^build(\/|$)/.test(rel) && !rel.includes('.osvb') && !src.endsWith('.so');
    },
  });
}

async function buildOf(t: Tree): Promise<{ exitCode: number; stderr: string }> {
  return osvb(['build', 'image=all', 'fs=rofs', '--osv-base', t.base, '--cache-dir', t.cache], { env: { OSVB_NO_MEMO: '1' } });
}

/** What must be identical: the image, the command line and every module's library. */
function outputsOf(base: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const f of ['build/release/rofs.img', 'build/release/cmdline']) out[f] = fs.readFileSync(path.join(base, f)).toString('base64');
  for (let i = 0; i < MODULES; i++) {
    const name = `m${String(i).padStart(4, '0')}`;
    const so = path.join(base, 'modules', name, `lib${name}.so`);
    out[so.slice(base.length)] = fs.readFileSync(so).toString('base64');
  }
  return out;
}

/** Start a build and SIGKILL its process group after `ms`. */
async function killedBuild(t: Tree, ms: number): Promise<void> {
  const child = spawn(process.execPath, [OSVB, 'build', 'image=all', 'fs=rofs', '--osv-base', t.base, '--cache-dir', t.cache], {
    detached: true,
    stdio: 'ignore',
    env: { ...process.env, OSV_BASE: undefined, OSV_BUILD_PATH: undefined, OSVB_NO_MEMO: '1', CI: 'true' },
  });
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  await new Promise((r) => setTimeout(r, ms));
  try {
    process.kill(-(child.pid as number), 'SIGKILL');
  } catch {
    /* already gone */
  }
  await exited;
}

describe('crash safety', () => {
  it('builds killed at random moments leave nothing a normal build cannot recover, and no corrupt cache entry', async () => {
    const kills = count(50, 8);
    const base = path.join(root, 'work');
    generateTree({ modules: MODULES, out: base, seed: 7, dataFiles: 4, dataBytes: 2048 });
    const t: Tree = { base, cache: path.join(root, 'cache') };
    const first = await buildOf(t);
    expect(first.exitCode, first.stderr).toBe(0);
    let failures = 0;
    let corrupt = 0;
    const problems: string[] = [];
    for (let k = 0; k < kills; k++) {
      // New sources for one or two modules, so the killed build has makes and cache writes to do.
      for (let j = 0; j < 1 + Math.floor(random() * 2); j++) {
        const file = cFile(base, Math.floor(random() * MODULES));
        const text = fs.readFileSync(file, 'utf8').replace(/\nint crash_variant = \d+;\n$/, '');
        fs.writeFileSync(file, `${text}\nint crash_variant = ${k};\n`);
      }
      await killedBuild(t, 30 + Math.floor(random() * 1500));
      const after = await buildOf(t);
      const clean: Tree = { base: path.join(root, `clean-${k}`), cache: path.join(root, `clean-cache-${k}`) };
      copySources(base, clean.base);
      const reference = await buildOf(clean);
      expect(reference.exitCode, reference.stderr).toBe(0);
      const verify = await osvb(['cache', 'verify', '--cache-dir', t.cache]);
      const bad = /(\d+) corrupt/.exec(verify.stdout + verify.stderr);
      corrupt += bad ? Number(bad[1]) : verify.exitCode === 0 ? 0 : 1;
      const same = after.exitCode === 0 && JSON.stringify(outputsOf(base)) === JSON.stringify(outputsOf(clean.base));
      if (!same || verify.exitCode !== 0) {
        failures++;
        problems.push(`kill ${k}: build exit ${after.exitCode}, outputs ${same ? 'same' : 'DIFFER'}, verify exit ${verify.exitCode}\n${after.stderr}\n${verify.stdout}${verify.stderr}`);
      }
      fs.rmSync(clean.base, { recursive: true, force: true });
      fs.rmSync(clean.cache, { recursive: true, force: true });
    }
    recordFigures({ scenario: 'SIGKILL during builds (make, cache, image writes)', runs: kills, failures, corrupt });
    expect(problems).toEqual([]);
    expect(corrupt).toBe(0);
  }, 900_000);
});
