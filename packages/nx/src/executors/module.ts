/** `@osv-build/nx:module`: build (or restore from the cache) one module and what it requires. */
import type { ExecutorContext } from '@nx/devkit';
import { runEngineBuild, type CommonExecutorOptions } from './run.js';

export interface ModuleExecutorOptions extends CommonExecutorOptions {
  /** The module's name, as `require()` and config.json know it. */
  module: string;
  /** NAME=value / mode= / arch= words passed on to make. */
  words?: string[];
}

export default async function moduleExecutor(options: ModuleExecutorOptions, context: ExecutorContext): Promise<{ success: boolean }> {
  return runEngineBuild(options, context, { words: [`image=${options.module}`, ...(options.words ?? [])], modulesOnly: true });
}
