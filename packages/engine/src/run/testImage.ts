/**
 * For boot tests only (not exported): a bootable raw OSv image made the way scripts/build makes
 * a fs=rofs usr.img — loader.img, partition 2 (type 0x83) at 4 MiB holding a ROFS image, the
 * command line at byte 512 — from a prebuilt kernel directory (loader.img, libenviron.so) and
 * extra guest files, through the engine's ROFS and disk writers.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { initHashing } from '../hash/index.js';
import { writeDiskImage } from '../image/disk/index.js';
import { writeRofsImageFromManifest } from '../image/rofs/index.js';

/** static/etc/fstab_rofs of OSv's tree. */
const FSTAB_ROFS = `/dev/vblk0.1 /          rofs      defaults 0 0
none         /dev       devfs     defaults 0 0
none         /proc      procfs    defaults 0 0
none         /sys       sysfs     defaults 0 0
none         /tmp       ramfs     defaults 0 0
`;

/** The prebuilt kernel tests boot: $OSVB_TEST_KERNEL, else ../shared/osv-kernel beside the project root. */
export const TEST_KERNEL_DIR = process.env['OSVB_TEST_KERNEL'] || path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../../../shared/osv-kernel');

/** Why boot tests cannot run here (no QEMU, no kernel, no gcc), or undefined. */
export function bootSkipReason(): string | undefined {
  const qemu = process.env['OSVB_QEMU'] || 'qemu-system-x86_64';
  if (spawnSync(qemu, ['--version'], { stdio: 'ignore' }).status !== 0) return `no ${qemu} (apt-get install qemu-system-x86)`;
  for (const f of ['loader.img', 'libenviron.so']) {
    if (!fs.existsSync(path.join(TEST_KERNEL_DIR, f))) return `no prebuilt OSv kernel at ${TEST_KERNEL_DIR} (set OSVB_TEST_KERNEL)`;
  }
  if (spawnSync('gcc', ['--version'], { stdio: 'ignore' }).status !== 0) return 'no gcc to build the test program';
  return undefined;
}

/**
 * A PIE built like OSv's apps/native-example that prints `hello from osv:` and its arguments
 * in brackets; an argument `sN` makes it sleep N seconds afterwards.
 */
export function compileHello(dir: string): string {
  const src = path.join(dir, 'hello.c');
  fs.writeFileSync(
    src,
    `#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
int main(int argc, char **argv) {
  printf("hello from osv:");
  for (int i = 1; i < argc; i++) printf(" [%s]", argv[i]);
  printf("\\n");
  fflush(stdout);
  if (argc > 1 && argv[1][0] == 's') sleep(atoi(argv[1] + 1));
  return 0;
}
`,
  );
  const out = path.join(dir, 'hello');
  execFileSync('gcc', ['-std=gnu99', '-fpie', '-rdynamic', '-pie', '-o', out, src], { stdio: 'inherit' });
  return out;
}

export interface TestImageInput {
  /** Directory with loader.img and libenviron.so. */
  kernelDir: string;
  /** Guest path → host file, on top of usr_rofs.manifest.skel's entries. */
  files: Record<string, string>;
  cmdline: string;
  /** Scratch directory (fstab, empty dir, rofs.img). */
  workDir: string;
  out: string;
}

export async function writeTestImage(input: TestImageInput): Promise<void> {
  const empty = path.join(input.workDir, 'empty');
  fs.mkdirSync(empty, { recursive: true });
  const fstab = path.join(input.workDir, 'fstab');
  fs.writeFileSync(fstab, FSTAB_ROFS);
  const libgcc = execFileSync('gcc', ['-print-file-name=libgcc_s.so.1'], { encoding: 'utf8' }).trim();
  const entries: Record<string, string> = {
    '/libenviron.so': path.join(input.kernelDir, 'libenviron.so'),
    '/usr/lib/libgcc_s.so.1': libgcc,
    '/etc/fstab': fstab,
    '/dev': empty,
    '/proc': empty,
    '/sys': empty,
    '/tmp': empty,
    ...input.files,
  };
  const manifest = '[manifest]\n' + Object.entries(entries).map(([g, h]) => `${g}: ${h}\n`).join('');
  const rofsFile = path.join(input.workDir, 'rofs.img');
  await writeRofsImageFromManifest(manifest, { file: 'usr.manifest', cwd: input.workDir, strip: false }, rofsFile, { incremental: false });

  await initHashing();
  // The engine's usr.img writer, raw (the disk conformance test pins it to OSv's own tools).
  const res = writeDiskImage({
    buildPath: input.workDir,
    fs: 'rofs',
    loaderImg: path.join(input.kernelDir, 'loader.img'),
    rofsImg: rofsFile,
    cmdline: input.cmdline,
    fsSize: 64 * 1024 * 1024,
    createDisk: false,
    format: 'raw',
  });
  fs.renameSync(res.file, input.out);
}
