/**
 * What the disk and boot tests need from the machine: OSv's prebuilt kernel (../shared/osv-kernel,
 * beside the repository in CI too), qemu-img and qemu-system-x86_64. A test file asks with
 * `missingFor(...)`: where something is missing it is skipped with a one-line reason printed,
 * except under CI=true, where a missing part fails it (never a silent pass).
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { REPO } from './cli.js';

export const SHARED_KERNEL = path.resolve(process.env['OSVB_TEST_KERNEL'] ?? path.join(REPO, '../shared/osv-kernel'));

function onPath(cmd: string): boolean {
  return spawnSync(cmd, ['--version'], { stdio: 'ignore' }).status === 0;
}

export type Need = 'kernel' | 'qemu-img' | 'qemu';

/** Why a test file cannot run here (undefined: it can); throws under CI=true instead. */
export function missingFor(file: string, needs: readonly Need[]): string | undefined {
  const missing: string[] = [];
  for (const n of needs) {
    if (n === 'kernel' && !fs.existsSync(path.join(SHARED_KERNEL, 'loader.img'))) missing.push(`the prebuilt OSv kernel (${SHARED_KERNEL}/loader.img)`);
    if (n === 'qemu-img' && !onPath('qemu-img')) missing.push('qemu-img (Debian package qemu-utils)');
    if (n === 'qemu' && !onPath(process.env['OSVB_QEMU'] ?? 'qemu-system-x86_64')) missing.push('qemu-system-x86_64 (Debian package qemu-system-x86)');
  }
  if (missing.length === 0) return undefined;
  const reason = `${file}: skipped, missing ${missing.join(' and ')}`;
  if (process.env["CI"] === "true" || process.env["OSVB_TEST_REQUIRE_QEMU"] === "1") throw new Error(`${reason} — CI=true (or OSVB_TEST_REQUIRE_QEMU=1, as .ci/run sets) requires it (.ci/run installs QEMU; ../shared/osv-kernel must exist)`);
  console.warn(reason);
  return reason;
}

/** The guest-visible bytes of a disk image (qcow2 or raw) as one raw file, via qemu-img. */
export function toRaw(image: string, rawOut: string): Buffer {
  const r = spawnSync('qemu-img', ['convert', '-O', 'raw', image, rawOut], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`qemu-img convert ${image}: ${r.stderr}`);
  return fs.readFileSync(rawOut);
}
