/** Stat helpers that answer instead of throwing (missing, not a directory, no access). */
import * as fs from 'node:fs';

export function lstatQuiet(p: string): fs.Stats | undefined {
  try {
    return fs.lstatSync(p, { throwIfNoEntry: false });
  } catch {
    return undefined;
  }
}

export function statQuiet(p: string): fs.Stats | undefined {
  try {
    return fs.statSync(p, { throwIfNoEntry: false });
  } catch {
    return undefined;
  }
}

/** The kind of a path a stat found: `f` file, `d` directory, `l` link, `o` other; `-` when it is missing. */
export function statKind(st: { mode: number } | undefined): string {
  if (!st) return '-';
  const type = st.mode & 0o170000;
  return type === 0o120000 ? 'l' : type === 0o040000 ? 'd' : type === 0o100000 ? 'f' : 'o';
}

/** What a failed stat or readlink says, in statKind's terms: `-` missing, else `!` and the error code. */
export function errorValue(e: unknown): string {
  const code = (e as NodeJS.ErrnoException)?.code;
  return code === 'ENOENT' || code === 'ENOTDIR' ? '-' : `!${code ?? 'error'}`;
}

/** os.path.lexists: true for a dangling link too. */
export function lexists(p: string): boolean {
  return lstatQuiet(p) !== undefined;
}

/** os.path.islink. */
export function isLink(p: string): boolean {
  return lstatQuiet(p)?.isSymbolicLink() ?? false;
}

/** os.path.isfile (links followed). */
export function isRegularFile(p: string): boolean {
  return statQuiet(p)?.isFile() ?? false;
}

/** The first executable regular file named `cmd` on a PATH (what a shell would run). */
export function findOnPath(cmd: string, pathVar: string | undefined): string | undefined {
  for (const dir of (pathVar ?? '').split(':')) {
    if (!dir) continue;
    const p = `${dir}/${cmd}`;
    try {
      fs.accessSync(p, fs.constants.X_OK);
      if (fs.statSync(p).isFile()) return p;
    } catch {
      /* next */
    }
  }
  return undefined;
}

/**
 * Signature of a path: kind, size, mtime, inode and mode (`-` when it does not exist). Equal
 * signatures mean "not changed" for the caches that compare them.
 */
export function statSignature(p: string, follow: boolean): string {
  const st = follow ? statQuiet(p) : lstatQuiet(p);
  if (!st) return '-';
  const kind = st.isSymbolicLink() ? 'l' : st.isDirectory() ? 'd' : st.isFile() ? 'f' : 'o';
  return `${kind}:${st.size}:${st.mtimeMs}:${st.ino}:${st.mode}`;
}
