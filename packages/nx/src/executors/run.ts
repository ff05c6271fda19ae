/** What both executors share: run an engine build, print its events, map errors to `success: false`. */
import * as path from 'node:path';
import type { ExecutorContext } from '@nx/devkit';
import { build, textReporter, toOsvbError, type BuildOptions } from '@osv-build/engine';

export interface CommonExecutorOptions {
  /** The OSv base, relative to the workspace root. */
  osvBase: string;
  /** The build path (default: the base's build/<mode>). */
  buildPath?: string;
  /** osv-build's cache directory (default: $OSVB_CACHE_DIR, else <base>/.osvb/cache). */
  cacheDir?: string;
  /** Modules built at once (default: the number of cores). */
  jobs?: number;
  /** Print make's output and every module's status. */
  verbose?: boolean;
}

/** Relative export_dir= and oci= words name paths in the OSv base (as when scripts/build runs there). */
export function anchorWords(words: readonly string[], base: string): string[] {
  return words.map((w) => {
    const m = /^(export_dir|oci)=(.*)$/.exec(w);
    if (!m || m[2] === '' || path.isAbsolute(m[2] as string)) return w;
    return `${m[1]}=${path.resolve(base, m[2] as string)}`;
  });
}

/** Run `fn` with a signal that SIGINT/SIGTERM abort (the engine then stops make's process group). */
export async function withStopSignals<T>(fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const controller = new AbortController();
  const stop = (): void => controller.abort();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    return await fn(controller.signal);
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
  }
}

/**
 * The modules of this base that have a module build target (`@osv-build/nx:module`) in the
 * workspace: Nx runs those targets as tasks of their own, so with `dependsOn: ['^build']` they
 * ran (or Nx replayed their outputs) before the task that asks.
 */
export function modulesWithTasks(context: ExecutorContext, osvBase: string): Set<string> {
  const names = new Set<string>();
  const want = path.resolve(context.root, osvBase);
  for (const project of Object.values(context.projectsConfigurations?.projects ?? {})) {
    for (const target of Object.values(project.targets ?? {})) {
      if (target.executor !== '@osv-build/nx:module') continue;
      const o = (target.options ?? {}) as { osvBase?: unknown; module?: unknown };
      if (typeof o.module === 'string' && typeof o.osvBase === 'string' && path.resolve(context.root, o.osvBase) === want) names.add(o.module);
    }
  }
  return names;
}

export async function runEngineBuild(options: CommonExecutorOptions, context: ExecutorContext, extra: Partial<BuildOptions> & { words: string[] }): Promise<{ success: boolean }> {
  const base = path.resolve(context.root, options.osvBase);
  const verbose = options.verbose ?? context.isVerbose;
  return withStopSignals(async (signal) => {
    try {
      await build({
        osvBase: base,
        ...(options.buildPath ? { buildPath: path.resolve(context.root, options.buildPath) } : {}),
        ...(options.cacheDir ? { cacheDir: path.resolve(context.root, options.cacheDir) } : {}),
        ...(options.jobs ? { concurrency: options.jobs } : {}),
        reporter: textReporter({ verbose, write: (s) => process.stdout.write(s + '\n') }),
        streamMakeOutput: verbose,
        signal,
        ...extra,
        words: anchorWords(extra.words, base),
      });
      return { success: true };
    } catch (e) {
      const err = toOsvbError(e);
      process.stderr.write(err.format() + '\n');
      if (verbose && e instanceof Error && e.stack) process.stderr.write(e.stack + '\n');
      return { success: false };
    }
  });
}
