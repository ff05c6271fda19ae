/**
 * Bad input: @osv-build/nx in a workspace whose Nx is outside its peer range (installed anyway,
 * with --legacy-peer-deps, as a user forcing it would). Every entry point Nx loads — the plugin,
 * the init generator — fails with one line naming the supported range, not a stack trace.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
// @ts-expect-error -- plain ESM helper shared with the benchmark
import { createNxWorkspace, git, nx, NX_UNSUPPORTED, packPackages } from '../../tools/nxws/workspace.mjs';
import { copyExample, tempDir } from '../helpers/cli.js';

type NxFn = (dir: string, args: string[]) => { status: number; output: string };
const runNx = nx as NxFn;
const versions = NX_UNSUPPORTED as { nx: string; devkit: string };
const root = tempDir('osvb-nx-unsupported-');
const ws = path.join(root, 'ws');
const LINE = `@osv-build/nx works with Nx >=21 <25 (nx and @nx/devkit 21.x to 24.x); this workspace runs Nx ${versions.nx}: install a supported nx and @nx/devkit`;

beforeAll(() => {
  const packs = (packPackages as (d: string) => Record<string, string>)(path.join(root, 'packs'));
  (createNxWorkspace as (d: string, p: Record<string, string>, v: unknown, o: unknown) => void)(ws, packs, versions, { legacyPeerDeps: true });
  copyExample(path.join(ws, 'osv'));
  git(ws, ['init', '-q']);
  git(ws, ['add', '-A']);
  git(ws, ['commit', '-qm', 'workspace']);
}, 300_000);

afterAll(() => {
  fs.rmSync(root, { recursive: true, force: true });
});

/** No frame of a stack trace (`    at fn (file:line:col)`) in what Nx printed. */
function noStack(output: string): void {
  expect(output).not.toMatch(/^\s+at .+:\d+:\d+\)?$/m);
}

describe(`@osv-build/nx under Nx ${versions.nx} (outside its range)`, () => {
  it('the init generator says which Nx versions it works with', () => {
    const res = runNx(ws, ['g', '@osv-build/nx:init', '--bases=osv']);
    expect(res.status, res.output).not.toBe(0);
    expect(res.output).toContain(LINE);
    noStack(res.output);
  });

  it('the plugin, registered in nx.json, fails the graph with that one line', () => {
    fs.writeFileSync(path.join(ws, 'nx.json'), JSON.stringify({ plugins: [{ plugin: '@osv-build/nx', options: { bases: ['osv'] } }] }, null, 2));
    for (const args of [['show', 'projects'], ['run', 'image:build']]) {
      const res = runNx(ws, args);
      expect(res.status, res.output).not.toBe(0);
      expect(res.output).toContain(LINE);
      expect(res.output.split(LINE).length - 1).toBe(1);
      noStack(res.output);
    }
  });
});
