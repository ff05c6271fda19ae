/**
 * Atomic file output: every file is written to a temp name in the same directory and renamed
 * into place only when all files of a batch were written, so a failed build never leaves a
 * half-written output behind.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { uniqueSuffix } from './lazy.js';

export function tempNameFor(target: string): string {
  return path.join(path.dirname(target), `.${path.basename(target)}.osvb-${uniqueSuffix()}.tmp`);
}

export function writeFileAtomic(target: string, data: string | Uint8Array, mode?: number): void {
  const tmp = tempNameFor(target);
  try {
    fs.writeFileSync(tmp, data, mode === undefined ? undefined : { mode });
    fs.renameSync(tmp, target);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw e;
  }
}

/** Write several files; either all are renamed into place or none is. */
export function writeFilesAtomic(files: ReadonlyArray<{ path: string; data: string | Uint8Array }>): void {
  const staged: Array<{ tmp: string; target: string }> = [];
  try {
    for (const f of files) {
      fs.mkdirSync(path.dirname(f.path), { recursive: true });
      const tmp = tempNameFor(f.path);
      staged.push({ tmp, target: f.path });
      fs.writeFileSync(tmp, f.data);
    }
  } catch (e) {
    for (const s of staged) fs.rmSync(s.tmp, { force: true });
    throw e;
  }
  for (const s of staged) fs.renameSync(s.tmp, s.target);
}
