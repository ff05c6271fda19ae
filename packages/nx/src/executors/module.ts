/**
 * `@osv-build/nx:module`: build (or restore from the cache) one module. The modules it requires
 * that have build targets of their own ran first as their own Nx tasks (the target's
 * `dependsOn: ['^build']`), here or on another machine: their make does not run again here.
 * Required modules without a project (outside the workspace) are built here, as before.
 */
import type { ExecutorContext } from '@nx/devkit';
import { modulesWithTasks, runEngineBuild, type CommonExecutorOptions } from './run.js';

export interface ModuleExecutorOptions extends CommonExecutorOptions {
  /** The module's name, as `require()` and config.json know it. */
  module: string;
  /** NAME=value / mode= / arch= words passed on to make. */
  words?: string[];
}

export default async function moduleExecutor(options: ModuleExecutorOptions, context: ExecutorContext): Promise<{ success: boolean }> {
  const elsewhere = modulesWithTasks(context, options.osvBase);
  elsewhere.delete(options.module);
  return runEngineBuild(options, context, { words: [`image=${options.module}`, ...(options.words ?? [])], modulesOnly: true, builtElsewhere: elsewhere });
}
