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
