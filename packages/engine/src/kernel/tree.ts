/**
 * The kernel's static input set: the files of the OSv tree the kernel make may read, found
 * without running it.
 *
 * Rule: every file under the base except
 *   - `.git/` and `.osvb/` anywhere, and the cache directory and build path when they lie in the base;
 *   - `build/` (make's outputs; `build/downloaded_packages/`, the aarch64 toolchain and Boost
 *     scripts/download_aarch64_packages.py puts there, stays in);
 *   - `apps/`, and the directories of the modules the image graph resolved (their own builds
 *     own them) — unless a makefile of the tree names the directory: a makefile that says
 *     `modules/libext/` or `apps/foo` (or `apps/*`, `apps/$(…)`) keeps it in.
 * Symbolic links count by their target text, and by the content of the file they lead to.
 *
 * Everything the kernel make reads outside this set (system headers, an app's file that a
 * ramfs bootfs maps, a makefile in an excluded directory) is recorded from the make's own
 * records after each build (evidence.ts) and keyed by content too.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { StatCache } from '../hash/index.js';

export interface TreeFile {
  /** Relative to the base, `/`-separated. */
  rel: string;
  kind: 'file' | 'link';
  size: number;
  mtimeMs: number;
  ino: number;
  mode: number;
}

export interface TreeDir {
  rel: string;
  mtimeMs: number;
  ino: number;
}

export interface TreeWalk {
  files: TreeFile[];
  dirs: TreeDir[];
  /** Directories left out as the image graph's (relative), after the makefile-mention rule. */
  excluded: string[];
  /** Directories the mention rule kept in, with the makefile that named them. */
  keptByMention: Array<{ dir: string; by: string }>;
}

export interface WalkOptions {
  /** Module directories of the image graph (absolute or relative to the base). */
  moduleDirs: readonly string[];
  /** Directories that are never inputs (the cache, the build path), absolute. */
  outputs: readonly string[];
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

const MAKEFILE_NAMES = new Set(['Makefile', 'makefile', 'GNUmakefile']);

/** A file make reads as a makefile by its name (Makefile, *.mk, *.gmk, Makefile.*). */
export function isMakefileLike(rel: string): boolean {
  const name = rel.slice(rel.lastIndexOf('/') + 1);
  return MAKEFILE_NAMES.has(name) || name.startsWith('Makefile.') || /\.(mk|gmk|mak|make)$/.test(name);
}

/** Base-relative, `/`-separated form of `p`, or undefined when it is not inside the base. */
export function relInside(base: string, p: string): string | undefined {
  const r = path.relative(base, path.resolve(base, p));
  if (r === '') return '';
  if (r.startsWith('..') || path.isAbsolute(r)) return undefined;
  return r.split(path.sep).join('/');
}

/**
 * Walk the static input set. `base` must be a real path (links resolved) so that excluded
 * directories given through other spellings compare equal.
 */
export function walkKernelTree(base: string, opts: WalkOptions): TreeWalk {
  const hard = new Set<string>(['build']);
  for (const o of opts.outputs) {
    const r = relInside(base, realOr(o));
    if (r !== undefined && r !== '') hard.add(r);
  }
  const soft = new Set<string>();
  for (const d of opts.moduleDirs) {
    const r = relInside(base, realOr(d));
    if (r !== undefined && r !== '') soft.add(r);
  }
  soft.add('apps');

  const files: TreeFile[] = [];
  const dirs: TreeDir[] = [];
  const walk = (rel: string, skip: (r: string) => boolean): void => {
    const abs = rel ? path.join(base, rel) : base;
    let st: fs.Stats;
    try {
      st = fs.lstatSync(abs);
    } catch {
      return;
    }
    if (!st.isDirectory()) return;
    dirs.push({ rel, mtimeMs: st.mtimeMs, ino: st.ino });
    let names: string[];
    try {
      names = fs.readdirSync(abs);
    } catch {
      return;
    }
    names.sort(compare);
    for (const name of names) {
      if (name === '.git' || name === '.osvb') continue;
      const childRel = rel ? `${rel}/${name}` : name;
      if (skip(childRel)) continue;
      let cst: fs.Stats;
      try {
        cst = fs.lstatSync(path.join(abs, name));
      } catch {
        continue;
      }
      if (cst.isDirectory()) walk(childRel, skip);
      else if (cst.isFile() || cst.isSymbolicLink()) {
        files.push({ rel: childRel, kind: cst.isSymbolicLink() ? 'link' : 'file', size: cst.size, mtimeMs: cst.mtimeMs, ino: cst.ino, mode: cst.mode });
      }
    }
  };
  const excludedNow = (r: string): boolean => hard.has(r) || soft.has(r);
  walk('', excludedNow);
  if (!hard.has('build/downloaded_packages')) walk('build/downloaded_packages', (r) => hard.has(r) || soft.has(r));

  // Which excluded directories a makefile of the tree names: those are inputs after all.
  const texts: Array<{ rel: string; text: string }> = [];
  for (const f of files) {
    if (!isMakefileLike(f.rel)) continue;
    try {
      texts.push({ rel: f.rel, text: fs.readFileSync(path.join(base, f.rel), 'utf8') });
    } catch {
      /* unreadable: it cannot be read by make either */
    }
  }
  const candidates: string[] = [];
  for (const s of soft) {
    if (s === 'apps') {
      let names: string[] = [];
      try {
        names = fs.readdirSync(path.join(base, 'apps')).filter((n) => fs.lstatSync(path.join(base, 'apps', n)).isDirectory());
      } catch {
        /* no apps/ */
      }
      for (const n of names.sort(compare)) if (!hard.has(`apps/${n}`)) candidates.push(`apps/${n}`);
      // Files directly in apps/ count with apps/ itself.
      candidates.push('apps');
    } else candidates.push(s);
  }
  const kept: TreeWalk['keptByMention'] = [];
  const excluded: string[] = [];
  for (const c of candidates) {
    const by = texts.find((t) => mentions(t.text, c));
    if (!by) {
      excluded.push(c);
      continue;
    }
    kept.push({ dir: c, by: by.rel });
    if (c === 'apps') {
      // Only the loose files of apps/ (its directories are candidates of their own).
      const abs = path.join(base, 'apps');
      const st = fs.lstatSync(abs, { throwIfNoEntry: false });
      if (st?.isDirectory()) {
        dirs.push({ rel: 'apps', mtimeMs: st.mtimeMs, ino: st.ino });
        for (const n of fs.readdirSync(abs).sort(compare)) {
          const cst = fs.lstatSync(path.join(abs, n));
          if (cst.isFile() || cst.isSymbolicLink()) files.push({ rel: `apps/${n}`, kind: cst.isSymbolicLink() ? 'link' : 'file', size: cst.size, mtimeMs: cst.mtimeMs, ino: cst.ino, mode: cst.mode });
        }
      }
    } else walk(c, (r) => hard.has(r) || (soft.has(r) && r !== c && !kept.some((k) => k.dir === r)));
  }
  files.sort((a, b) => compare(a.rel, b.rel));
  dirs.sort((a, b) => compare(a.rel, b.rel));
  return { files, dirs, excluded: excluded.sort(compare), keptByMention: kept };
}

function realOr(p: string): string {
  try {
    return fs.realpathSync(p);
  } catch {
    return path.resolve(p);
  }
}

const PATH_CHAR = /[A-Za-z0-9_.+@~-]/;

/**
 * Whether makefile text names directory `dir` (relative): `dir` followed by `/`, a separator or
 * the end, not as part of a longer name; or its parent followed by a wildcard or a variable
 * (`apps/*`, `modules/%`, `modules/$(x)`).
 */
export function mentions(text: string, dir: string): boolean {
  let i = text.indexOf(dir);
  while (i >= 0) {
    const before = i === 0 ? '' : (text[i - 1] as string);
    const after = text[i + dir.length] ?? '';
    const startOk = before === '' || !PATH_CHAR.test(before);
    const endOk = after === '' || !PATH_CHAR.test(after);
    if (startOk && endOk) return true;
    i = text.indexOf(dir, i + 1);
  }
  const slash = dir.lastIndexOf('/');
  const parent = slash < 0 ? '' : dir.slice(0, slash);
  if (parent) {
    for (const wild of ['/*', '/%', '/$(', '/${']) {
      if (mentions(text, parent) && text.includes(parent + wild)) return true;
    }
  }
  return false;
}

/** Content digest of a tree entry: files by content; links by target text and the file they lead to. */
export function treeDigest(base: string, f: Pick<TreeFile, 'rel' | 'kind'>, statCache: StatCache): string {
  const abs = path.join(base, f.rel);
  if (f.kind === 'file') return statCache.digest(abs);
  let target: string;
  try {
    target = fs.readlinkSync(abs);
  } catch {
    return 'missing';
  }
  let content = '';
  try {
    const st = fs.statSync(abs, { bigint: true });
    if (st.isFile()) content = `:${statCache.digest(abs, st)}`;
  } catch {
    content = ':dangling';
  }
  return `link:${target}${content}`;
}
