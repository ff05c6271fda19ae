/**
 * Module keys. A key is the digest of everything that can change what `make module` produces
 * for a module: its input files, the variables it gets, its evaluated record, the keys of the
 * modules it requires and the engine version. Absolute paths enter as `${OSV_BASE}` /
 * `${OSV_BUILD_PATH}`, so two checkouts of the same tree compute the same keys.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { lstatQuiet } from '../fsutil/index.js';
import { canonicalJson, digestValue, listModuleInputs, type Digest, type ListedInputs, type StatCache } from '../hash/index.js';
import type { EvaluatedModule } from '../evaluate/index.js';

export interface ModuleKeyInputs {
  engine: string;
  name: string;
  dir: string;
  files: Record<string, string>;
  vars: Record<string, string>;
  record: string;
  deps: Record<string, string>;
  /**
   * The module directory as it is on this machine, for a module that opted in to path-sensitive
   * keys (a `.osvb-path-sensitive` file in its directory): its outputs embed absolute paths, so
   * checkouts at different places must not share them.
   */
  absolute?: string;
}

/** A module whose outputs depend on where the tree is checked out says so with this file. */
export const PATH_SENSITIVE_MARKER = '.osvb-path-sensitive';

/** Environment variables (besides OSv's and the NAME=value words) that shape a module build. */
export const TOOLCHAIN_ENV = ['CC', 'CXX', 'CFLAGS', 'CXXFLAGS', 'CPPFLAGS', 'LDFLAGS', 'LDLIBS', 'AR', 'LD', 'STRIP', 'CROSS_PREFIX', 'MAKEFLAGS'];

export interface KeyContext {
  engine: string;
  osvBase: string;
  buildPath: string;
  env: Readonly<Record<string, string>>;
  /** Names of the NAME=value words. */
  words: readonly string[];
  statCache: StatCache;
}

export function placeholders(ctx: Pick<KeyContext, 'osvBase' | 'buildPath'>): (s: string) => string {
  const base = ctx.osvBase.replace(/\/+$/, '');
  const build = ctx.buildPath.replace(/\/+$/, '');
  return (s: string) => {
    // The build path usually lies inside the base: test it first.
    if (s === build || s.startsWith(build + '/')) return '${OSV_BUILD_PATH}' + s.slice(build.length);
    if (s === base || s.startsWith(base + '/')) return '${OSV_BASE}' + s.slice(base.length);
    return s;
  };
}

/** Apply `f` to every string in a JSON-like value (object keys unchanged). */
export function mapStrings(v: unknown, f: (s: string) => string): unknown {
  if (typeof v === 'string') return f(v);
  if (Array.isArray(v)) return v.map((x) => mapStrings(x, f));
  if (v && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) out[k] = mapStrings(x, f);
    return out;
  }
  return v;
}

export function keyVariables(ctx: KeyContext): Record<string, string> {
  const ph = placeholders(ctx);
  const vars: Record<string, string> = {};
  const names = new Set(['fs_type', 'mode', 'ARCH', 'libgcc_s_dir', 'OSV_BASE', 'OSV_BUILD_PATH', ...ctx.words, ...TOOLCHAIN_ENV]);
  for (const extra of (ctx.env['OSVB_KEY_ENV'] ?? '').split(',')) if (extra.trim()) names.add(extra.trim());
  for (const n of [...names].sort()) {
    const v = ctx.env[n];
    if (v !== undefined) vars[n] = ph(v);
  }
  return vars;
}

/**
 * A stat-only fingerprint of a module's inputs: the directories listed and the input files.
 * While every entry still has the same (size,) mtime and inode, the input set and contents are
 * unchanged, so the key can be reused without listing or hashing anything. Entries modified
 * within two seconds of being fingerprinted are marked untrusted (a later write in the same
 * timestamp tick would go unseen).
 */
export interface InputFingerprint {
  dirs: Array<[string, string, string]>;
  files: Array<[string, string, string, string]>;
}

const RACY_MS = 2000;

export function makeFingerprint(root: string, listed: ListedInputs): InputFingerprint | null {
  const nowMs = Date.now();
  const fp: InputFingerprint = { dirs: [], files: [] };
  const top = path.resolve(root);
  const base = top + '/';
  // Taken with the same plain stats fingerprintHolds compares against.
  for (const d of listed.dirs) {
    const st = lstatQuiet(d.rel ? base + d.rel : top);
    if (!st || st.mtimeMs >= nowMs - RACY_MS) return null;
    fp.dirs.push([d.rel, msString(st), String(st.ino)]);
  }
  for (const f of listed.files) {
    const st = lstatQuiet(base + f.rel);
    if (!st || st.mtimeMs >= nowMs - RACY_MS) return null;
    fp.files.push([f.rel, String(st.size), msString(st), String(st.ino)]);
  }
  return fp;
}

export function fingerprintHolds(dir: string, fp: InputFingerprint): boolean {
  const top = path.resolve(dir);
  const root = top + '/';
  // Plain (non-bigint) stats: cheaper, and mtimeMs keeps sub-millisecond precision.
  for (const [rel, m, i] of fp.dirs) {
    const st = lstatQuiet(rel ? root + rel : top);
    if (!st || msString(st) !== m || String(st.ino) !== i) return false;
  }
  for (const [rel, s, m, i] of fp.files) {
    const st = lstatQuiet(root + rel);
    if (!st || String(st.size) !== s || msString(st) !== m || String(st.ino) !== i) return false;
  }
  return true;
}


function msString(st: { mtimeMs: number }): string {
  return st.mtimeMs.toString();
}

/** Input files of a module with their digests (links by target text). */
export function moduleInputFiles(
  dir: string,
  knownOutputs: ReadonlySet<string>,
  statCache: StatCache,
): { files: Record<string, string>; fingerprint: InputFingerprint | null } {
  const files: Record<string, string> = {};
  const root = path.resolve(dir);
  const listed = listModuleInputs(root, knownOutputs);
  for (const f of listed.files) {
    const abs = path.join(root, f.rel);
    files[f.rel] = f.kind === 'link' ? `link:${fs.readlinkSync(abs)}` : statCache.digest(abs, f.stat);
  }
  return { files, fingerprint: makeFingerprint(root, listed) };
}

export function recordDigest(m: EvaluatedModule, ctx: Pick<KeyContext, 'osvBase' | 'buildPath'>): string {
  return digestValue(mapStrings({ requires: m.requires, usrFiles: m.usrFiles, bootfsFiles: m.bootfsFiles }, placeholders(ctx)));
}

export function moduleKeyInputs(
  m: EvaluatedModule,
  ctx: KeyContext,
  vars: Record<string, string>,
  knownOutputs: ReadonlySet<string>,
  depKeys: Record<string, string>,
  record: string,
): { inputs: ModuleKeyInputs; fingerprint: InputFingerprint | null } {
  const { files, fingerprint } = moduleInputFiles(m.dir, knownOutputs, ctx.statCache);
  return {
    inputs: {
      engine: ctx.engine,
      name: m.name,
      dir: placeholders(ctx)(m.dir),
      files,
      vars,
      record,
      deps: depKeys,
      ...(PATH_SENSITIVE_MARKER in files ? { absolute: path.resolve(m.dir) } : {}),
    },
    fingerprint,
  };
}

export function moduleKey(inputs: ModuleKeyInputs): Digest {
  return digestValue(inputs);
}

export interface KeyDifference {
  kind: 'first' | 'engine' | 'file-added' | 'file-removed' | 'file-changed' | 'var' | 'record' | 'dependency' | 'dir';
  text: string;
}

/** Why a module's key differs from the one recorded at its last build. */
export function diffKeyInputs(prev: ModuleKeyInputs | undefined, cur: ModuleKeyInputs): KeyDifference[] {
  if (!prev) return [{ kind: 'first', text: 'no earlier build of this module is recorded' }];
  const out: KeyDifference[] = [];
  if (prev.engine !== cur.engine) out.push({ kind: 'engine', text: `osv-build changed (${prev.engine} → ${cur.engine})` });
  if (prev.dir !== cur.dir) out.push({ kind: 'dir', text: `module directory changed (${prev.dir} → ${cur.dir})` });
  if (prev.absolute !== cur.absolute) out.push({ kind: 'dir', text: `path-sensitive module (${PATH_SENSITIVE_MARKER}) at ${cur.absolute ?? '(no longer path-sensitive)'}` });
  for (const f of Object.keys(cur.files).sort()) {
    if (!(f in prev.files)) out.push({ kind: 'file-added', text: `input file added: ${f}` });
    else if (prev.files[f] !== cur.files[f]) out.push({ kind: 'file-changed', text: `input file changed: ${f}` });
  }
  for (const f of Object.keys(prev.files).sort()) if (!(f in cur.files)) out.push({ kind: 'file-removed', text: `input file removed: ${f}` });
  const vars = new Set([...Object.keys(prev.vars), ...Object.keys(cur.vars)]);
  for (const v of [...vars].sort()) {
    if (prev.vars[v] !== cur.vars[v]) out.push({ kind: 'var', text: `variable ${v} changed: ${prev.vars[v] ?? '(unset)'} → ${cur.vars[v] ?? '(unset)'}` });
  }
  if (prev.record !== cur.record) out.push({ kind: 'record', text: 'its evaluated module.py record changed (requires or FileMaps)' });
  const deps = new Set([...Object.keys(prev.deps), ...Object.keys(cur.deps)]);
  for (const d of [...deps].sort()) {
    if (!(d in prev.deps)) out.push({ kind: 'dependency', text: `now requires ${d}` });
    else if (!(d in cur.deps)) out.push({ kind: 'dependency', text: `no longer requires ${d}` });
    else if (prev.deps[d] !== cur.deps[d]) out.push({ kind: 'dependency', text: `required module ${d} changed` });
  }
  return out;
}

export function canonicalSame(a: unknown, b: unknown): boolean {
  return canonicalJson(a) === canonicalJson(b);
}
