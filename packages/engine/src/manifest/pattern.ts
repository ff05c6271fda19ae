/**
 * FileMap include/exclude patterns (spec §3.10), matched against a whole relative path.
 *
 * - compat 'osv': the regex OSv builds on Python >= 3.7, reproduced step by step, including its
 *   quirk that `**` followed by more components (`**∕*.so`, `a∕**∕b`) matches nothing;
 * - 'default': `**` as a full component means "zero or more directories" (`**∕*.so` matches
 *   `x.so` and `lib/x.so`), the meaning module authors intend.
 * In both, `*` is any run of non-`/` characters and `?` any single character (including `/`,
 * as in OSv).
 */
import { OsvbError } from '../errors/index.js';

export type PatternMode = 'osv' | 'default';

const BAD_STARSTAR = /(([^/]\*\*)|(\*\*[^/]))/;

function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\/]/g, (c) => (c === '/' ? '/' : '\\' + c));
}

function reduce(s: string, re: RegExp, sub: string): string {
  for (;;) {
    const next = s.replace(re, sub);
    if (next === s) return s;
    s = next;
  }
}

function osvRegexSource(pattern: string): string {
  let p = '^' + escapeRegex(pattern) + '$';
  p = p.replace(/\/+/g, '/');
  p = reduce(p, /\\\*\\\*\/\\\*\\\*/g, '\\*\\*');
  p = p.replace(/(\^|\/)\\\*\\\*(\/|\$)/g, '((^|/).*($|\\|^))');
  p = p.split('\\*').join('[^/]*');
  p = p.split('\\?').join('.');
  return p;
}

function defaultRegexSource(pattern: string): string {
  const comps = pattern.replace(/\/+/g, '/').split('/');
  // Merge runs of `**` components.
  const merged: string[] = [];
  for (const c of comps) if (!(c === '**' && merged[merged.length - 1] === '**')) merged.push(c);
  // A trailing `**/` is a trailing `**` (as in OSv: `P/**/` matches what `P/**` matches).
  if (merged.length > 1 && merged[merged.length - 1] === '' && merged[merged.length - 2] === '**') merged.pop();
  let src = '';
  merged.forEach((c, i) => {
    const last = i === merged.length - 1;
    if (c === '**') {
      // `**` at the end: anything (one or more characters) below; elsewhere zero or more dirs.
      src += last ? (i === 0 ? '.*' : '.+') : '(?:[^/]+/)*';
      return;
    }
    const body = escapeRegex(c).split('\\*').join('[^/]*').split('\\?').join('.');
    src += body + (last ? '' : '/');
  });
  // `P/**` must not match `P` itself; `.+` after `P/` ensures that.
  return '^' + src + '$';
}

export function checkPattern(pattern: string): void {
  const bad = BAD_STARSTAR.exec(pattern);
  if (bad) {
    throw new OsvbError('OSVB_FILEMAP', `'**' pattern may only be a in place of a full path component, but found: ${bad[1]}`);
  }
}

/** True when `**` is followed by more components (it matches nothing in OSv). */
export function hasInnerStarStar(pattern: string): boolean {
  return /(^|\/)\*\*\/+[^/]/.test(pattern.replace(/(\*\*\/+)+\*\*(\/|$)/g, '**$2'));
}

export function compilePattern(pattern: string, mode: PatternMode): RegExp {
  checkPattern(pattern);
  return new RegExp(mode === 'osv' ? osvRegexSource(pattern) : defaultRegexSource(pattern), 'sy');
}

/** Python's `re.match`: anchored at the start only. */
export function matchesPattern(re: RegExp, path: string): boolean {
  re.lastIndex = 0;
  return re.test(path);
}
