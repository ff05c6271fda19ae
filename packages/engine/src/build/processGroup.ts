/**
 * Waiting for a make started as its own process group (spawned `detached`): aborting `signal`
 * stops the whole group — make and every compiler it runs — with SIGTERM, then SIGKILL after
 * 5 s for whatever ignored it.
 */
import type { ChildProcess } from 'node:child_process';

export interface GroupExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** The spawn failed (ENOENT: no such program). */
  error?: NodeJS.ErrnoException;
  /** Stopped because `signal` was aborted. */
  canceled: boolean;
}

export async function waitForGroup(sub: ChildProcess, signal: AbortSignal | undefined): Promise<GroupExit> {
  let canceled = false;
  let forceTimer: NodeJS.Timeout | undefined;
  const stopGroup = (): void => {
    canceled = true;
    const kill = (sig: NodeJS.Signals): void => {
      try {
        if (sub.pid) process.kill(-sub.pid, sig);
      } catch {
        /* already gone */
      }
    };
    kill('SIGTERM');
    forceTimer = setTimeout(() => kill('SIGKILL'), 5000);
    forceTimer.unref();
  };
  signal?.addEventListener('abort', stopGroup, { once: true });
  const exit = await new Promise<Omit<GroupExit, 'canceled'>>((resolve) => {
    sub.once('error', (error: NodeJS.ErrnoException) => resolve({ code: null, signal: null, error }));
    sub.once('close', (code, sig) => resolve({ code, signal: sig }));
  });
  signal?.removeEventListener('abort', stopGroup);
  if (forceTimer) clearTimeout(forceTimer);
  return { ...exit, canceled };
}
