/**
 * `--kernel DIR|FILE`: a prebuilt OSv kernel instead of the kernel make. Its files are placed in
 * the build path as the kernel make leaves them there (loader.img, and the files the skeletons
 * map from the build directory, such as `/libenviron.so: libenviron.so`), copied only when
 * their content differs, each atomically.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { OsvbError } from '../errors/index.js';
import { tempNameFor } from '../fsutil/index.js';
import { readCheckedLoader } from '../image/disk/writer.js';

import { KERNEL_BUILD_FILES } from '../image/kernelFiles.js';

export { KERNEL_BUILD_FILES };

export interface PlacedKernel {
  /** The loader.img in the build path. */
  loaderImg: string;
  /** Files copied this time (relative to the build path); empty when all were in place. */
  copied: string[];
  /** Kernel files found (relative names). */
  files: string[];
}

const HINT = '--kernel takes a directory holding a kernel build\'s outputs (loader.img, libenviron.so, …) or a loader.img';

function sameContent(a: string, b: string, digest: (file: string) => string): boolean {
  try {
    const sa = fs.statSync(a);
    const sb = fs.statSync(b);
    if (!sb.isFile() || sa.size !== sb.size) return false;
  } catch {
    return false;
  }
  return digest(a) === digest(b);
}

function copyAtomic(from: string, to: string): void {
  fs.mkdirSync(path.dirname(to), { recursive: true });
  const tmp = tempNameFor(to);
  try {
    fs.copyFileSync(from, tmp);
    fs.chmodSync(tmp, fs.statSync(from).mode & 0o777);
    fs.renameSync(tmp, to);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw new OsvbError('OSVB_IO', `cannot copy ${from} to ${to}: ${(e as NodeJS.ErrnoException).code ?? e}`, { cause: e });
  }
}

export function placePrebuiltKernel(kernel: string, buildPath: string, digest: (file: string) => string): PlacedKernel {
  const src = path.resolve(kernel);
  let st: fs.Stats;
  try {
    st = fs.statSync(src);
  } catch {
    throw new OsvbError('OSVB_KERNEL_MISSING', `--kernel ${kernel}: ${src} does not exist`, { hint: HINT });
  }
  const sources = new Map<string, string>();
  if (st.isDirectory()) {
    for (const rel of KERNEL_BUILD_FILES) {
      const f = path.join(src, rel);
      if (fs.statSync(f, { throwIfNoEntry: false })?.isFile()) sources.set(rel, f);
    }
    if (!sources.has('loader.img')) throw new OsvbError('OSVB_KERNEL_MISSING', `--kernel ${kernel}: ${src} has no loader.img`, { hint: HINT });
  } else sources.set('loader.img', src);

  readCheckedLoader(sources.get('loader.img') as string);

  const copied = copyKernelFiles(sources, buildPath, digest);
  return { loaderImg: path.join(buildPath, 'loader.img'), copied, files: [...sources.keys()] };
}

/**
 * Put kernel files (build-path-relative name → source file) into the build path: each one whose
 * content differs is copied atomically. Returns the names copied. Shared by `--kernel` and the
 * kernel node when the build path is not its out dir.
 */
export function copyKernelFiles(sources: ReadonlyMap<string, string>, buildPath: string, digest: (file: string) => string): string[] {
  const copied: string[] = [];
  for (const [rel, from] of sources) {
    const to = path.join(buildPath, rel);
    if (path.resolve(from) === path.resolve(to) || sameContent(from, to, digest)) continue;
    copyAtomic(from, to);
    copied.push(rel);
  }
  return copied;
}
