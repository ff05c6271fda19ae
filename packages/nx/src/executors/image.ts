/** `@osv-build/nx:image`: everything `osvb build` does, for one image of a base. */
import * as path from 'node:path';
import type { ExecutorContext } from '@nx/devkit';
import { modulesWithTasks, runEngineBuild, type CommonExecutorOptions } from './run.js';

export interface ImageExecutorOptions extends CommonExecutorOptions {
  /** `osvb build` words: image=…, fs=…, export=…, NAME=value, … */
  words?: string[];
  /** Build the other modules when one fails (the command still fails). */
  keepGoing?: boolean;
  /** `default` (reproducible) or `osv` (OSv's exact bytes on this machine). */
  compat?: 'default' | 'osv';
  /** Fail when rofs.img cannot be made (default: warn, as OSv's module.py succeeds). */
  requireImage?: boolean;
  /** A prebuilt OSv kernel (directory or loader.img), relative to the workspace root: usr.img is written too. */
  kernel?: string;
  /** usr.img as qcow2 (default) or raw (usr.raw). */
  imageFormat?: 'qcow2' | 'raw';
  /**
   * The modules' own build targets ran first (the plugin's moduleTasks, with `dependsOn:
   * ['^build']`): only assemble the image from them; make runs only for modules without a target.
   */
  moduleTasks?: boolean;
}

export default async function imageExecutor(options: ImageExecutorOptions, context: ExecutorContext): Promise<{ success: boolean }> {
  return runEngineBuild(options, context, {
    words: options.words ?? [],
    ...(options.keepGoing ? { keepGoing: true } : {}),
    ...(options.compat ? { compat: options.compat } : {}),
    ...(options.requireImage ? { requireImage: true } : {}),
    ...(options.kernel ? { kernel: path.resolve(context.root, options.kernel) } : {}),
    ...(options.imageFormat ? { imageFormat: options.imageFormat } : {}),
    ...(options.moduleTasks ? { builtElsewhere: modulesWithTasks(context, options.osvBase) } : {}),
  });
}
