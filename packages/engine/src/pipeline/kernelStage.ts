/**
 * Where a build's kernel comes from: a prebuilt one (`--kernel DIR|FILE`, placed in the build
 * path), or none (osvb then stops at rofs.img, as module.py does). The kernel make of an OSv
 * source tree is kernel/'s node.
 */
import { OsvbError } from '../errors/index.js';
import type { StatCache } from '../hash/index.js';
import { placePrebuiltKernel } from '../kernel/prebuilt.js';
import type { Reporter } from '../report/index.js';
import type { FsType } from './words.js';

export interface KernelStageInput {
  /** `--kernel DIR|FILE`. */
  kernel: string | undefined;
  fs: FsType;
  buildPath: string;
  statCache: StatCache;
  reporter: Reporter;
}

/** The loader.img in the build path, or undefined when this build has no kernel. */
export function prepareKernel(input: KernelStageInput): string | undefined {
  if (input.kernel === undefined) return undefined;
  if (input.fs === 'ramfs' || input.fs === 'virtiofs') {
    throw new OsvbError('OSVB_USAGE', `fs=${input.fs} links the generated bootfs into the kernel: a prebuilt --kernel cannot be used`, {
      hint: 'build in an OSv source tree (the kernel is built with the image), or use fs=rofs with --kernel',
    });
  }
  const placed = placePrebuiltKernel(input.kernel, input.buildPath, (f) => input.statCache.digest(f));
  input.reporter({
    type: 'log',
    text: `kernel: prebuilt ${input.kernel} (${placed.copied.length ? `copied ${placed.copied.join(', ')}` : `${placed.files.join(', ')} already in place`})`,
  });
  return placed.loaderImg;
}
