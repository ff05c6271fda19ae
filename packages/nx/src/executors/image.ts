/** `@osv-build/nx:image`: everything `osvb build` does, for one image of a base. */
import type { ExecutorContext } from '@nx/devkit';
import { runEngineBuild, type CommonExecutorOptions } from './run.js';

export interface ImageExecutorOptions extends CommonExecutorOptions {
  /** `osvb build` words: image=…, fs=…, export=…, NAME=value, … */
  words?: string[];
  /** Build the other modules when one fails (the command still fails). */
  keepGoing?: boolean;
  /** `default` (reproducible) or `osv` (OSv's exact bytes on this machine). */
  compat?: 'default' | 'osv';
  /** Fail when rofs.img cannot be made (default: warn, as OSv's module.py succeeds). */
  requireImage?: boolean;
}

export default async function imageExecutor(options: ImageExecutorOptions, context: ExecutorContext): Promise<{ success: boolean }> {
  return runEngineBuild(options, context, {
    words: options.words ?? [],
    ...(options.keepGoing ? { keepGoing: true } : {}),
    ...(options.compat ? { compat: options.compat } : {}),
    ...(options.requireImage ? { requireImage: true } : {}),
  });
}
