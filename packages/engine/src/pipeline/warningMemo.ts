/**
 * Warnings are said once per cause: a warning (or notice) with the same text as one the last
 * build of this build path showed is held back, and one line says how many were. A no-op build
 * or a watch rebuild then does not repeat what the user has already read; a new or changed
 * warning is shown at once. `--verbose` shows them all.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeFileAtomic } from '../fsutil/index.js';
import type { BuildEvent, Reporter } from '../report/index.js';

export function warningMemoFile(cacheDir: string, buildPath: string): string {
  return path.join(cacheDir, 'warnings', `${createHash('sha256').update(path.resolve(buildPath)).digest('hex').slice(0, 24)}.json`);
}

function readShown(file: string): Set<string> {
  try {
    const data = JSON.parse(fs.readFileSync(file, 'utf8')) as unknown;
    return new Set(Array.isArray(data) ? data.filter((t): t is string => typeof t === 'string') : []);
  } catch {
    return new Set();
  }
}

/** A reporter that holds back repeated warnings; the memo is written when the build is done. */
export function onceReporter(reporter: Reporter, file: string, showAll: boolean): Reporter {
  const before = readShown(file);
  const now = new Set<string>();
  let held = 0;
  return (e: BuildEvent) => {
    if (e.type === 'warning' || e.type === 'notice') {
      const key = `${e.type}:${e.text}`;
      now.add(key);
      if (before.has(key) && !showAll) {
        if (e.type === 'warning') held++;
        return;
      }
    } else if (e.type === 'done') {
      if (held > 0) reporter({ type: 'notice', text: `(${held} warning${held === 1 ? '' : 's'} as in the last build not repeated; -v shows ${held === 1 ? 'it' : 'them'})` });
      try {
        fs.mkdirSync(path.dirname(file), { recursive: true });
        writeFileAtomic(file, JSON.stringify([...now].sort()));
      } catch {
        // Only a convenience: the next build shows the warnings again.
      }
    }
    reporter(e);
  };
}
