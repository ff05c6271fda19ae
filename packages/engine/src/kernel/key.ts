/**
 * The kernel's key, in two levels (like ccache's direct mode):
 *
 * - `k1`, computable in any checkout before anything is built: the engine, the make words
 *   (minus -j), fs and the bootfs manifest by content, the environment variables the tree's
 *   makefiles can read, the toolchain identity (toolchain.ts), the tree's version string
 *   (`scripts/osv-version.sh`, which the kernel embeds), files that word or variable values
 *   name, a `.config` osvb did not write (menuconfig), and every file of the static input
 *   set (tree.ts) by content;
 * - the full key: `k1` plus the files outside that set which a build with this `k1` recorded
 *   reading (system headers, files of excluded directories, bootfs contents), by content.
 *   The cache keeps, under `k1`, the recorded sets seen so far; a lookup takes the first whose
 *   files all still have the recorded content here.
 *
 * Absolute paths of the checkout never enter: the base is `${OSV_BASE}`.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { childProcess } from '../fsutil/index.js';
import { digestValue, type Digest, type StatCache } from '../hash/index.js';
import { relInside, type TreeWalk } from './tree.js';

export const KERNEL_KEY_SCHEMA = 1;

export interface KernelKeyInputs {
  schema: number;
  engine: string;
  /** Make words in order, -j words left out. */
  words: string[];
  fs: string;
  bootfs: { manifest: string; digest: string };
  /** Environment variables the makefiles can read (placeholders for checkout paths). */
  env: Record<string, string>;
  toolchain: Record<string, string>;
  /** `scripts/osv-version.sh` output, when the tree has that script. */
  version: string | null;
  /** Files named by word or variable values, outside the static set. */
  valueFiles: Record<string, string>;
  /** Digest of a `.config` in the out dir that osvb did not write. */
  userConfig: string | null;
  /** The static input set: relative path → content digest. */
  files: Record<string, string>;
  /**
   * The base's absolute path, when the tree opts in to path-sensitive keys with a
   * `.osvb-path-sensitive` file at its top (as modules do): OSv's loader.img and libenviron.so
   * carry the checkout path in their debug information (DW_AT_comp_dir), so without it a
   * checkout restores a kernel whose debug information names another checkout's path.
   */
  absolute?: string;
}

export const PATH_SENSITIVE_MARKER = '.osvb-path-sensitive';

/** Recorded inputs outside the static set: `${OSV_BASE}/…` or absolute path → digest. */
export type Extras = Record<string, string>;

export function k1Of(inputs: KernelKeyInputs): Digest {
  return digestValue(inputs);
}

export function fullKeyOf(k1: string, extras: Extras): Digest {
  return digestValue({ k1, extras });
}

/** Compiler and tool variables read from the environment by gcc, ld, make itself or mkbootfs.py. */
const TOOL_ENV = [
  'GCC_EXEC_PREFIX',
  'COMPILER_PATH',
  'LIBRARY_PATH',
  'CPATH',
  'C_INCLUDE_PATH',
  'CPLUS_INCLUDE_PATH',
  'OBJC_INCLUDE_PATH',
  'DEPENDENCIES_OUTPUT',
  'SUNPRO_DEPENDENCIES',
  'SOURCE_DATE_EPOCH',
  'GCC_COMPARE_DEBUG',
  'LD_PRELOAD',
  'LD_LIBRARY_PATH',
  'MAKEFLAGS',
  'MFLAGS',
  'GNUMAKEFLAGS',
  'MAKEFILES',
  'STRIP',
  'CROSS_PREFIX',
  'PYTHONPATH',
];

/** Session variables that name the user or the terminal, not the build (PATH counts through the toolchain). */
const SESSION = new Set(['PATH', 'HOME', 'USER', 'LOGNAME', 'PWD', 'OLDPWD', 'SHLVL', 'TERM', 'SHELL', 'DISPLAY', 'HOSTNAME', 'MAIL', 'EDITOR', 'VISUAL', 'PAGER', 'COLUMNS', 'LINES', '_', 'TMPDIR', 'TMP', 'TEMP', 'LANG', 'LANGUAGE', 'MAKELEVEL', 'MAKE_TERMOUT', 'MAKE_TERMERR', 'MAKEOVERRIDES', 'INIT_CWD', 'CI']);
const SESSION_PREFIXES = ['LC_', 'SSH_', 'XDG_', 'npm_', 'NODE_', 'OSVB_', 'VITEST', 'GITHUB_', 'RUNNER_', 'TERM_'];

function isSession(name: string): boolean {
  return SESSION.has(name) || SESSION_PREFIXES.some((p) => name.startsWith(p));
}

/** Every identifier in makefile texts: the variables they can read from the environment. */
export function makefileTokens(texts: Iterable<string>): Set<string> {
  const out = new Set<string>();
  for (const t of texts) for (const m of t.matchAll(/[A-Za-z_][A-Za-z0-9_]*/g)) out.add(m[0]);
  return out;
}

/** Names of the environment variables that enter the key (sorted). */
export function keyEnvNames(tokens: ReadonlySet<string>, env: Readonly<Record<string, string>>): string[] {
  const names = new Set<string>(TOOL_ENV);
  for (const extra of (env['OSVB_KEY_ENV'] ?? '').split(',')) if (extra.trim()) names.add(extra.trim());
  for (const n of Object.keys(env)) if (tokens.has(n) && !isSession(n)) names.add(n);
  return [...names].sort();
}

/** MAKEFLAGS without parallelism and jobserver details (they change per run, not the result). */
function normalizeMakeflags(v: string): string {
  return v
    .split(/\s+/)
    .filter((w) => w && !/^-j[0-9]*$/.test(w) && !w.startsWith('--jobserver-') && !/^--jobs/.test(w))
    .map((w) => (/^[a-zA-Z]+$/.test(w) ? w.replace(/j/g, '') : w))
    .filter(Boolean)
    .join(' ');
}

export function keyEnv(names: readonly string[], env: Readonly<Record<string, string>>, ph: (s: string) => string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const n of names) {
    const v = env[n];
    if (v === undefined) continue;
    out[n] = n === 'MAKEFLAGS' || n === 'MFLAGS' || n === 'GNUMAKEFLAGS' ? normalizeMakeflags(v) : ph(v);
  }
  return out;
}

/**
 * Files that word and key-variable values name (a `conf_dot_file=…`, a version script), when
 * they exist outside the static set: path (placeholder) → digest.
 */
export function valueFiles(
  base: string,
  values: readonly string[],
  inStatic: (rel: string) => boolean,
  statCache: StatCache,
  ph: (s: string) => string,
): { files: Record<string, string>; paths: string[] } {
  const files: Record<string, string> = {};
  const paths: string[] = [];
  for (const v of values) {
    if (!v || v.length > 4096 || /[\s:]/.test(v) || !(v.includes('/') || v.includes('.'))) continue;
    const abs = path.resolve(base, v);
    let real: string;
    try {
      real = fs.realpathSync(abs);
      if (!fs.statSync(real).isFile()) continue;
    } catch {
      continue;
    }
    const rel = relInside(base, real);
    if (rel !== undefined && inStatic(rel)) continue;
    files[ph(real)] = statCache.digest(real);
    paths.push(real);
  }
  return { files, paths };
}

/** The files whose stats say whether `git describe` can have changed (for the version string). */
export function gitStateFiles(base: string): string[] {
  let gitDir = path.join(base, '.git');
  const out = [gitDir];
  try {
    const st = fs.lstatSync(gitDir);
    if (st.isFile()) {
      const m = /^gitdir:\s*(.+)\s*$/m.exec(fs.readFileSync(gitDir, 'utf8'));
      if (!m) return out;
      gitDir = path.resolve(base, m[1] as string);
      out.push(gitDir);
    }
  } catch {
    return out;
  }
  out.push(path.join(gitDir, 'HEAD'), path.join(gitDir, 'packed-refs'), path.join(gitDir, 'refs', 'tags'), path.join(gitDir, 'refs', 'heads'));
  try {
    const head = fs.readFileSync(path.join(gitDir, 'HEAD'), 'utf8');
    const m = /^ref:\s*(\S+)/.exec(head);
    if (m) out.push(path.join(gitDir, m[1] as string));
  } catch {
    /* no HEAD */
  }
  return out;
}

/** What `scripts/osv-version.sh` prints (the version the kernel embeds), or null without the script. */
export function treeVersion(base: string): string | null {
  const script = path.join(base, 'scripts', 'osv-version.sh');
  if (!fs.existsSync(script)) return null;
  try {
    return childProcess().execFileSync('sh', [script], { cwd: base, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 20_000 }).trim();
  } catch {
    return '';
  }
}

/**
 * A stat fingerprint of everything the key was computed from: while each entry has the same
 * size, mtime and inode (and each directory its mtime), the key stands without hashing. Entries
 * modified within two seconds of being taken are not trusted (a later write in the same tick).
 */
export interface KernelFingerprint {
  dirs: Array<[string, string, string]>;
  files: Array<[string, string, string, string]>;
  /** Absolute paths, links followed: link targets, recorded inputs, toolchain, manifests, git state. */
  follow: Array<[string, string, string, string]>;
  /** Absolute paths that did not exist. */
  missing: string[];
}

const RACY_MS = 2000;

function sig(st: fs.Stats): [string, string, string] {
  return [String(st.size), st.mtimeMs.toString(), String(st.ino)];
}

export function makeFingerprint(base: string, walk: TreeWalk, follow: Iterable<string>): KernelFingerprint | null {
  const limit = Date.now() - RACY_MS;
  const fp: KernelFingerprint = { dirs: [], files: [], follow: [], missing: [] };
  for (const d of walk.dirs) {
    const st = fs.lstatSync(d.rel ? path.join(base, d.rel) : base, { throwIfNoEntry: false });
    if (!st || st.mtimeMs >= limit) return null;
    fp.dirs.push([d.rel, st.mtimeMs.toString(), String(st.ino)]);
  }
  const more = new Set(follow);
  for (const f of walk.files) {
    const abs = path.join(base, f.rel);
    const st = fs.lstatSync(abs, { throwIfNoEntry: false });
    if (!st || st.mtimeMs >= limit) return null;
    fp.files.push([f.rel, ...sig(st)]);
    if (f.kind === 'link') more.add(abs);
  }
  for (const p of [...more].sort()) {
    const st = fs.statSync(p, { throwIfNoEntry: false });
    if (!st) {
      fp.missing.push(p);
      continue;
    }
    if (st.mtimeMs >= limit) return null;
    fp.follow.push([p, ...sig(st)]);
  }
  return fp;
}

export function fingerprintHolds(base: string, fp: KernelFingerprint): boolean {
  for (const [rel, m, i] of fp.dirs) {
    const st = fs.lstatSync(rel ? path.join(base, rel) : base, { throwIfNoEntry: false });
    if (!st || st.mtimeMs.toString() !== m || String(st.ino) !== i) return false;
  }
  for (const [rel, s, m, i] of fp.files) {
    const st = fs.lstatSync(path.join(base, rel), { throwIfNoEntry: false });
    if (!st || String(st.size) !== s || st.mtimeMs.toString() !== m || String(st.ino) !== i) return false;
  }
  for (const [p, s, m, i] of fp.follow) {
    const st = fs.statSync(p, { throwIfNoEntry: false });
    if (!st || String(st.size) !== s || st.mtimeMs.toString() !== m || String(st.ino) !== i) return false;
  }
  for (const p of fp.missing) if (fs.existsSync(p)) return false;
  return true;
}

/** Why the key inputs differ from the ones recorded (for explain); an empty list when equal. */
export function diffKernelInputs(prev: KernelKeyInputs | undefined, cur: KernelKeyInputs, prevExtras?: Extras, curExtras?: Extras): string[] {
  if (!prev) return ['no earlier kernel build is recorded for this build directory'];
  const out: string[] = [];
  if (prev.schema !== cur.schema || prev.engine !== cur.engine) out.push(`osv-build changed (${prev.engine} → ${cur.engine})`);
  if (JSON.stringify(prev.words) !== JSON.stringify(cur.words)) out.push(`make words changed: ${prev.words.join(' ') || '(none)'} → ${cur.words.join(' ') || '(none)'}`);
  if (prev.fs !== cur.fs) out.push(`fs changed: ${prev.fs} → ${cur.fs}`);
  if (prev.bootfs.manifest !== cur.bootfs.manifest) out.push(`bootfs manifest changed: ${prev.bootfs.manifest} → ${cur.bootfs.manifest}`);
  else if (prev.bootfs.digest !== cur.bootfs.digest) out.push(`bootfs manifest ${cur.bootfs.manifest} changed`);
  for (const n of [...new Set([...Object.keys(prev.env), ...Object.keys(cur.env)])].sort()) {
    if (prev.env[n] !== cur.env[n]) out.push(`environment variable ${n} changed: ${prev.env[n] ?? '(unset)'} → ${cur.env[n] ?? '(unset)'}`);
  }
  for (const n of [...new Set([...Object.keys(prev.toolchain), ...Object.keys(cur.toolchain)])].sort()) {
    if (prev.toolchain[n] !== cur.toolchain[n]) out.push(`toolchain changed: ${n}`);
  }
  if (prev.version !== cur.version) out.push(`version changed: ${prev.version ?? '(none)'} → ${cur.version ?? '(none)'}`);
  for (const n of [...new Set([...Object.keys(prev.valueFiles), ...Object.keys(cur.valueFiles)])].sort()) {
    if (prev.valueFiles[n] !== cur.valueFiles[n]) out.push(`file named by a word or variable changed: ${n}`);
  }
  if (prev.absolute !== cur.absolute) out.push(`path-sensitive tree (${PATH_SENSITIVE_MARKER}) at ${cur.absolute ?? '(no longer path-sensitive)'}`);
  if (prev.userConfig !== cur.userConfig) out.push(cur.userConfig ? 'the build directory has a .config osvb did not write (menuconfig?)' : 'the .config osvb did not write is gone');
  let files = 0;
  const shown: string[] = [];
  for (const f of Object.keys(cur.files).sort()) {
    if (!(f in prev.files)) shown.push(`input file added: ${f}`);
    else if (prev.files[f] !== cur.files[f]) shown.push(`input file changed: ${f}`);
    else continue;
    files++;
  }
  for (const f of Object.keys(prev.files).sort()) {
    if (f in cur.files) continue;
    shown.push(`input file removed: ${f}`);
    files++;
  }
  out.push(...shown.slice(0, 20));
  if (files > 20) out.push(`… ${files - 20} more input files`);
  if (prevExtras && curExtras) {
    let n = 0;
    for (const p of Object.keys(curExtras).sort()) {
      if (prevExtras[p] === curExtras[p]) continue;
      if (n++ < 20) out.push(`recorded input changed: ${p}`);
    }
    if (n > 20) out.push(`… ${n - 20} more recorded inputs`);
  }
  return out;
}
