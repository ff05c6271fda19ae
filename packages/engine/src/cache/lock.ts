/**
 * A per-directory lock so two builds never run `make module` in the same module directory at
 * once: an exclusive-create file holding the owner's pid; a lock whose owner died (kill -9)
 * is taken over.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export async function withLock<T>(lockFile: string, fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
  fs.mkdirSync(path.dirname(lockFile), { recursive: true });
  for (;;) {
    try {
      const fd = fs.openSync(lockFile, 'wx');
      fs.writeSync(fd, String(process.pid));
      fs.closeSync(fd);
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      let owner = NaN;
      try {
        owner = Number(fs.readFileSync(lockFile, 'utf8'));
      } catch {
        continue;
      }
      if (Number.isFinite(owner) && owner > 0 && !alive(owner)) {
        // Stale: rename it away first so only one waiter removes it.
        const stale = `${lockFile}.stale-${process.pid}`;
        try {
          fs.renameSync(lockFile, stale);
          fs.rmSync(stale, { force: true });
        } catch {
          /* someone else took it over */
        }
        continue;
      }
      if (signal?.aborted) throw signal.reason;
      await sleep(50);
    }
  }
  try {
    return await fn();
  } finally {
    try {
      if (fs.readFileSync(lockFile, 'utf8') === String(process.pid)) fs.rmSync(lockFile, { force: true });
    } catch {
      /* already gone */
    }
  }
}
