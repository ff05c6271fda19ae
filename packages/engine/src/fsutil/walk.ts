/**
 * Directory walks with Python `os.walk(top)` semantics (top-down, links not followed, files of
 * a directory before its sub-directories, silent on unreadable directories). Two orders:
 * - 'sorted': names sorted byte-wise (UTF-8), the reproducible default;
 * - 'os': the order the OS returns (what Python's scandir sees). Node's readdir sorts, so the
 *   raw order needs `opendir` + `readSync`.
 */
import * as fs from 'node:fs';
import { pyJoin } from './pypath.js';
import { isLink } from './stat.js';

export type WalkOrder = 'sorted' | 'os';

export interface WalkStep {
  dirpath: string;
  dirnames: string[];
  filenames: string[];
}

function compareBytes(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

function listDir(dir: string, order: WalkOrder): fs.Dirent[] | undefined {
  // `dir` is already resolved for the file system here.
  let entries: fs.Dirent[] = [];
  try {
    if (order === 'sorted') {
      entries = fs.readdirSync(dir, { withFileTypes: true });
      entries.sort((a, b) => compareBytes(a.name, b.name));
    } else {
      const handle = fs.opendirSync(dir);
      try {
        for (let d = handle.readSync(); d !== null; d = handle.readSync()) entries.push(d);
      } finally {
        handle.closeSync();
      }
    }
  } catch {
    return undefined;
  }
  return entries;
}

/** `DirEntry.is_dir()` with links followed: a symlink to a directory counts as a directory. */
function isDirFollowing(dir: string, entry: fs.Dirent): boolean {
  if (entry.isDirectory()) return true;
  if (entry.isSymbolicLink() || !(entry.isFile() || entry.isFIFO() || entry.isSocket() || entry.isBlockDevice() || entry.isCharacterDevice())) {
    try {
      return fs.statSync(pyJoin(dir, entry.name)).isDirectory();
    } catch {
      return false;
    }
  }
  return false;
}


/**
 * The path the OS resolves for `p` relative to `cwd`: joined, not normalised, so that `x/..`
 * after a symlink `x` goes where the kernel (and Python, which chdirs) goes.
 */
function onDisk(p: string, cwd: string | undefined): string {
  return cwd === undefined || p === '' || p.startsWith('/') ? p : pyJoin(cwd, p);
}

/**
 * Walk `top`. Paths are yielded exactly as Python would build them (`top` joined with names,
 * never normalised); a relative `top` is resolved against `cwd` for the file system only.
 */
export function* pyWalk(top: string, order: WalkOrder, cwd?: string, onDir?: (realPath: string) => void): Generator<WalkStep> {
  const real = onDisk(top, cwd);
  onDir?.(real);
  const entries = listDir(real, order);
  if (!entries) return;
  const dirnames: string[] = [];
  const filenames: string[] = [];
  for (const e of entries) {
    if (isDirFollowing(real, e)) dirnames.push(e.name);
    else filenames.push(e.name);
  }
  yield { dirpath: top, dirnames, filenames };
  for (const name of dirnames) {
    const sub = pyJoin(top, name);
    if (isLink(onDisk(sub, cwd))) continue;
    yield* pyWalk(sub, order, cwd, onDir);
  }
}
