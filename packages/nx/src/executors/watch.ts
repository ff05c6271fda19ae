/** `@osv-build/nx:watch` (continuous): osvb watch for one image — build, then rebuild on every change until stopped. */
import * as path from 'node:path';
import type { ExecutorContext } from '@nx/devkit';
import { describeCycle, textReporter, watchBuild, type BuildEvent } from '@osv-build/engine';
import { anchorWords, withStopSignals } from './run.js';
import type { ImageExecutorOptions } from './image.js';

export interface WatchExecutorOptions extends ImageExecutorOptions {
  /** Quiet time after a change before a rebuild starts, in milliseconds (default 50). */
  debounce?: number;
}

export default async function watchExecutor(options: WatchExecutorOptions, context: ExecutorContext): Promise<{ success: boolean }> {
  const base = path.resolve(context.root, options.osvBase);
  const verbose = options.verbose ?? context.isVerbose;
  const text = textReporter({ verbose, write: (s) => process.stderr.write(s + '\n') });
  return withStopSignals(async (signal) => {
    await watchBuild({
      osvBase: base,
      words: anchorWords(options.words ?? [], base),
      ...(options.buildPath ? { buildPath: path.resolve(context.root, options.buildPath) } : {}),
      ...(options.cacheDir ? { cacheDir: path.resolve(context.root, options.cacheDir) } : {}),
      ...(options.jobs ? { concurrency: options.jobs } : {}),
      ...(options.keepGoing ? { keepGoing: true } : {}),
      ...(options.compat ? { compat: options.compat } : {}),
      ...(options.requireImage ? { requireImage: true } : {}),
      ...(options.debounce !== undefined ? { debounceMs: options.debounce } : {}),
      ...(options.kernel ? { kernel: path.resolve(context.root, options.kernel) } : {}),
      ...(options.imageFormat ? { imageFormat: options.imageFormat } : {}),
      reporter: (e: BuildEvent) => {
        if (verbose || e.type === 'warning' || e.type === 'module-py-output') text(e);
      },
      streamMakeOutput: verbose,
      signal,
      onCycle: (c) => {
        process.stdout.write(describeCycle(c) + '\n');
        if (!c.ok && c.error) process.stderr.write(c.error.format() + '\n');
      },
      onWatching: (info) => {
        if (!signal.aborted) process.stdout.write(`watching ${info.paths} paths\n`);
      },
    });
    return { success: true };
  });
}
