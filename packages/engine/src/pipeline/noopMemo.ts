/** Collecting what a build depended on, and writing the "nothing to do" memo (see noopCheck.ts). */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeFileAtomic } from '../fsutil/index.js';
import { statSignature } from '../fsutil/index.js';
import { memoEnv, noopMemoFile, type NoopMemo } from './noopCheck.js';

const RACY_MS = 2000;

export class DependencyRecorder {
  private readonly deps = new Map<string, string>();
  private failed: string | undefined;
  private readonly now = Date.now();

  /**
   * Record a path's current signature (absolute paths; follow = stat, else lstat). A path
   * changed in the last moments is not trusted (another change in the same timestamp tick
   * would go unseen) unless `anyAge`: for files that are replaced, never edited in place.
   */
  add(p: string, follow = true, anyAge = false): void {
    if (this.failed) return;
    const key = `${follow ? 'S' : 'L'}:${path.resolve(p)}`;
    if (this.deps.has(key)) return;
    const sig = statSignature(key.slice(2), follow);
    const mtime = sig === '-' ? 0 : Number(sig.split(':')[2]);
    if (!anyAge && mtime >= this.now - RACY_MS) {
      this.fail(`${p} changed moments ago`);
      return;
    }
    this.deps.set(key, sig);
  }

  fail(reason: string): void {
    this.failed ??= reason;
  }

  get reason(): string | undefined {
    return this.failed;
  }

  /** Write the memo when every dependency could be trusted; otherwise remove any old one. */
  write(opts: { cacheDir: string; osvBase: string; engine: string; argv: readonly string[]; cwd: string; env: Readonly<Record<string, string | undefined>>; lines: string[]; modules: number }): boolean {
    const file = noopMemoFile(opts.cacheDir, opts.osvBase);
    if (this.failed) {
      fs.rmSync(file, { force: true });
      return false;
    }
    // A followed stat of a path that is not a symlink says nothing its lstat does not.
    const deps = [...this.deps].filter(([key]) => {
      if (!key.startsWith('S:')) return true;
      const l = this.deps.get(`L:${key.slice(2)}`);
      return l === undefined || l.startsWith('l:');
    });
    const memo: NoopMemo = {
      v: 1,
      engine: opts.engine,
      argv: [...opts.argv],
      cwd: opts.cwd,
      env: memoEnv(opts.env),
      deps,
      lines: opts.lines,
      modules: opts.modules,
    };
    fs.mkdirSync(path.dirname(file), { recursive: true });
    writeFileAtomic(file, JSON.stringify(memo));
    return true;
  }
}

export function removeNoopMemo(cacheDir: string, osvBase: string): void {
  fs.rmSync(noopMemoFile(cacheDir, osvBase), { force: true });
}
