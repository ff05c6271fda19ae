/** `@osv-build/nx:run`: osvb run for one image — boot the usr.img its build target wrote. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ExecutorContext } from '@nx/devkit';
import { defaultRunImage, runVm, toOsvbError } from '@osv-build/engine';
import { withStopSignals } from './run.js';

export interface RunExecutorOptions {
  osvBase: string;
  buildPath?: string;
  words?: string[];
  imageFormat?: 'qcow2' | 'raw';
  image?: string;
  execute?: string;
  memory?: string;
  cpus?: number;
  forward?: string[];
  timeout?: number;
  accel?: 'auto' | 'kvm' | 'tcg';
}

export default async function runExecutor(options: RunExecutorOptions, context: ExecutorContext): Promise<{ success: boolean }> {
  const base = path.resolve(context.root, options.osvBase);
  return withStopSignals(async (signal) => {
    let pending = '';
    try {
      let image: string;
      if (options.image) image = path.resolve(context.root, options.image);
      else {
        image = defaultRunImage({ words: options.words ?? [], osvBase: base, ...(options.buildPath ? { buildPath: path.resolve(context.root, options.buildPath) } : {}) });
        // usr.raw when the target writes raw (defaultRunImage prefers usr.img when both exist).
        const raw = path.join(path.dirname(image), 'usr.raw');
        if (options.imageFormat === 'raw' && fs.existsSync(raw)) image = raw;
      }
      const res = await runVm({
        image,
        ...(options.memory ? { memory: options.memory } : {}),
        ...(options.cpus ? { cpus: options.cpus } : {}),
        ...(options.forward ? { forwards: options.forward } : {}),
        ...(options.timeout ? { timeoutSeconds: options.timeout } : {}),
        ...(options.accel ? { accel: options.accel } : {}),
        ...(options.execute ? { execute: options.execute } : {}),
        signal,
        // Whole lines: Nx's task output shows each write on a line of its own.
        onOutput: (chunk) => {
          pending += chunk.toString('utf8');
          const end = pending.lastIndexOf('\n');
          if (end < 0) return;
          process.stdout.write(pending.slice(0, end + 1));
          pending = pending.slice(end + 1);
        },
        onNotice: (n) => {
          if (n.kind !== 'command' || context.isVerbose) process.stderr.write(n.text + '\n');
        },
      });
      if (pending) process.stdout.write(pending + '\n');
      if (res.error) process.stderr.write(res.error.format() + '\n');
      return { success: res.exitCode === 0 };
    } catch (e) {
      const err = toOsvbError(e);
      process.stderr.write(err.format() + '\n');
      return { success: false };
    }
  });
}
