/**
 * Python's string and path rules, reproduced exactly: OSv's tools are Python, and manifests
 * must come out text-identical, so `os.path.join`, `str.rstrip`, `os.path.expandvars` and
 * universal-newline splitting are mirrored here rather than replaced by Node's own helpers
 * (which normalise paths and trim a different set of characters).
 */
import * as path from 'node:path';

/** Characters for which Python's `str.isspace()` is true (what `rstrip()`/`strip()` remove). */
const PY_WHITESPACE = new Set(
  [
    0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x1c, 0x1d, 0x1e, 0x1f, 0x20, 0x85, 0xa0, 0x1680, 0x2000,
    0x2001, 0x2002, 0x2003, 0x2004, 0x2005, 0x2006, 0x2007, 0x2008, 0x2009, 0x200a, 0x2028,
    0x2029, 0x202f, 0x205f, 0x3000,
  ],
);

export function isPyWhitespace(code: number): boolean {
  return PY_WHITESPACE.has(code);
}

export function pyRstrip(s: string): string {
  let end = s.length;
  while (end > 0 && PY_WHITESPACE.has(s.charCodeAt(end - 1))) end--;
  return s.slice(0, end);
}

export function pyStrip(s: string): string {
  let start = 0;
  while (start < s.length && PY_WHITESPACE.has(s.charCodeAt(start))) start++;
  return pyRstrip(s.slice(start));
}

/**
 * Split text the way Python's universal-newline file iteration does: `\n`, `\r\n` and a lone
 * `\r` each end a line. Returned lines exclude the terminator; a final terminator does not
 * create an empty last line.
 */
export function splitUniversalLines(text: string): string[] {
  if (text.length === 0) return [];
  const lines = text.split(/\r\n|\r|\n/);
  if (lines[lines.length - 1] === '') lines.pop();
  return lines;
}

/** `os.path.join` (POSIX): an absolute component restarts the path; no normalisation. */
export function pyJoin(first: string, ...rest: string[]): string {
  let out = first;
  for (const part of rest) {
    if (part.startsWith('/')) out = part;
    else if (out === '' || out.endsWith('/')) out += part;
    else out += '/' + part;
  }
  return out;
}

/** `os.path.dirname` (POSIX): everything before the last `/`, trailing slashes trimmed unless all slashes. */
export function pyDirname(p: string): string {
  const i = p.lastIndexOf('/') + 1;
  let head = p.slice(0, i);
  if (head && head !== '/'.repeat(head.length)) head = head.replace(/\/+$/, '');
  return head;
}

export function pyBasename(p: string): string {
  return p.slice(p.lastIndexOf('/') + 1);
}

/** `os.path.relpath(p, start)` for absolute paths (both are normalised first, as Python does). */
export function pyRelpath(p: string, start: string): string {
  const rel = path.posix.relative(path.posix.normalize(start), path.posix.normalize(p));
  return rel === '' ? '.' : rel;
}

/**
 * `os.path.expandvars` (POSIX flavour): `$name` with name `[A-Za-z0-9_]+` and `${name}` up to the
 * first `}`; undefined variables are left as written; values are not re-scanned.
 */
export function expandVars(text: string, env: Readonly<Record<string, string | undefined>>): string {
  if (!text.includes('$')) return text;
  const re = /\$(\w+|\{[^}]*\})/g;
  return text.replace(re, (whole, ref: string) => {
    const name = ref.startsWith('{') ? ref.slice(1, -1) : ref;
    const value = Object.hasOwn(env, name) ? env[name] : undefined;
    return value === undefined ? whole : value;
  });
}
