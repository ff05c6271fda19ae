/**
 * Directory walks with Python `os.walk(top)` semantics (top-down, links not followed, files of
 * a directory before its sub-directories, silent on unreadable directories). Two orders:
 * - 'sorted': names sorted byte-wise (UTF-8), the reproducible default;
 * - 'os': the order the OS returns (what Python's scandir sees). Node's readdir sorts, so the
 *   raw order needs `opendir` + `readSync`.
 *
 * One walk, two shapes: `walkDirents` yields each directory's entries as Dirents (their types
 * come from the listing, so a caller needs no stat for a regular file), and can tell an
 * observer every read it makes (the ROFS tree records them to check, next time, that the tree
 * would come out the same); `pyWalk` is os.walk's `(dirpath, dirnames, filenames)` on top of it.
 */
import * as fs from 'node:fs';
import { pyJoin } from './pypath.js';
import { errorValue, statKind } from './stat.js';

export type WalkOrder = 'sorted' | 'os';

export interface WalkStep {
  dirpath: string;
  dirnames: string[];
  filenames: string[];
}

/** UTF-16 order equals UTF-8 byte order unless a surrogate or a code unit above them is involved. */
const NOT_BELOW_SURROGATES = /[\ud800-\uffff]/;

/** Byte-wise (UTF-8) comparison of two names. */
export function compareBytes(a: string, b: string): number {
  if (!NOT_BELOW_SURROGATES.test(a) && !NOT_BELOW_SURROGATES.test(b)) return a < b ? -1 : a > b ? 1 : 0;
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/**
 * A directory's entries in walk order ('sorted': byte order; 'os': as the OS returns them);
 * undefined when it cannot be listed. `dir` is already resolved for the file system.
 */
export function listDir(dir: string, order: WalkOrder): fs.Dirent[] | undefined {
  try {
    if (order === 'sorted') return fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => compareBytes(a.name, b.name));
    const entries: fs.Dirent[] = [];
    // 256 entries a call into the binding instead of 32: the walk reads every entry anyway.
    const handle = fs.opendirSync(dir, { bufferSize: 256 });
    try {
      for (let d = handle.readSync(); d !== null; d = handle.readSync()) entries.push(d);
    } finally {
      handle.closeSync();
    }
    return entries;
  } catch {
    return undefined;
  }
}

/**
 * Told every read a walk makes, with file-system paths (the ROFS tree's read recorder is one).
 * - `beforeListing(dir)` just before `dir` is listed; what it returns is handed to `listed`;
 * - `listed(dir, before, entries)` with the entries in walk order (undefined: not listable);
 * - `saw('S', p, kind)`: the stat of an entry that is a link or of unknown type (is it a
 *   directory?); `saw('L', p, kind)`: the lstat of such a sub-directory (os.walk's islink test).
 *   Values are statKind's, or errorValue's when the call failed.
 */
export interface WalkObserver {
  beforeListing?(dir: string): string;
  listed?(dir: string, before: string, entries: readonly fs.Dirent[] | undefined): void;
  saw?(kind: 'S' | 'L', path: string, value: string): void;
}

/** One directory of a walk. */
export interface DirentStep {
  /** The directory as Python builds its path: `top` joined with names, never normalised. */
  dirpath: string;
  /** The path the file system resolves for it (`dirpath` against the walk's cwd). */
  real: string;
  /** os.walk's dirnames: directories and links to directories; walked after this step. */
  dirs: fs.Dirent[];
  /** os.walk's filenames: every other entry, in walk order. */
  files: fs.Dirent[];
}

/** `DirEntry.is_dir()` with links followed: a symlink to a directory counts as a directory. */
function isDirFollowing(dir: string, entry: fs.Dirent, observer: WalkObserver | undefined): boolean {
  if (entry.isDirectory()) return true;
  if (entry.isFile() || entry.isFIFO() || entry.isSocket() || entry.isBlockDevice() || entry.isCharacterDevice()) return false;
  const p = pyJoin(dir, entry.name);
  let st: fs.Stats | undefined;
  try {
    st = fs.statSync(p, { throwIfNoEntry: false });
  } catch (e) {
    observer?.saw?.('S', p, errorValue(e));
    return false;
  }
  observer?.saw?.('S', p, statKind(st));
  return st?.isDirectory() ?? false;
}

/** os.walk's islink test before descending into `at` (an entry that is not typed as a directory). */
function isLinkObserved(at: string, observer: WalkObserver | undefined): boolean {
  try {
    const st = fs.lstatSync(at, { throwIfNoEntry: false });
    observer?.saw?.('L', at, statKind(st));
    return st?.isSymbolicLink() ?? false;
  } catch (e) {
    // Unreadable: not a link; listing it fails and os.walk skips what it cannot list.
    observer?.saw?.('L', at, errorValue(e));
    return false;
  }
}

/**
 * The path the OS resolves for `p` relative to `cwd`: joined, not normalised, so that `x/..`
 * after a symlink `x` goes where the kernel (and Python, which chdirs) goes.
 */
function onDisk(p: string, cwd: string | undefined): string {
  return cwd === undefined || p === '' || p.startsWith('/') ? p : pyJoin(cwd, p);
}

/**
 * Walk `top`, yielding each directory's entries. Paths are built exactly as Python would build
 * them (`top` joined with names, never normalised); a relative `top` is resolved against `cwd`
 * for the file system only. The sub-directories of a step are walked after the step is
 * consumed, in `dirs` order.
 */
export function* walkDirents(top: string, order: WalkOrder, cwd?: string, observer?: WalkObserver): Generator<DirentStep> {
  const real = onDisk(top, cwd);
  const before = observer?.beforeListing?.(real) ?? '';
  const entries = listDir(real, order);
  observer?.listed?.(real, before, entries);
  if (!entries) return;
  const dirs: fs.Dirent[] = [];
  const files: fs.Dirent[] = [];
  for (const e of entries) {
    if (isDirFollowing(real, e, observer)) dirs.push(e);
    else files.push(e);
  }
  yield { dirpath: top, real, dirs, files };
  for (const e of dirs) {
    const sub = pyJoin(top, e.name);
    // An entry typed as a directory is no symlink (Node lstats entries of unknown type); only a
    // symlink found to lead to a directory needs the islink test.
    if (!e.isDirectory() && isLinkObserved(onDisk(sub, cwd), observer)) continue;
    yield* walkDirents(sub, order, cwd, observer);
  }
}

function names(entries: readonly fs.Dirent[]): string[] {
  const out = new Array<string>(entries.length);
  for (let i = 0; i < entries.length; i++) out[i] = (entries[i] as fs.Dirent).name;
  return out;
}

/**
 * Walk `top` as Python's `os.walk` does (see walkDirents for paths); `onDir` is told the
 * file-system path of every directory just before it is listed.
 */
export function* pyWalk(top: string, order: WalkOrder, cwd?: string, onDir?: (realPath: string) => void): Generator<WalkStep> {
  const observer: WalkObserver | undefined = onDir
    ? {
        beforeListing: (dir) => {
          onDir(dir);
          return '';
        },
      }
    : undefined;
  for (const step of walkDirents(top, order, cwd, observer)) {
    yield { dirpath: step.dirpath, dirnames: names(step.dirs), filenames: names(step.files) };
  }
}
