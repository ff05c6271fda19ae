/**
 * The "nothing to do" memo. After a successful build whose every input could be trusted, the
 * engine writes a memo: the exact command (words, working directory, environment) and the stat
 * signature of every path the build depended on — evaluation reads, module inputs, module
 * outputs, manifests, FileMap directories and the outputs it wrote. The CLI checks it before
 * loading anything else: if all signatures still hold, the same build would do nothing, so it
 * says so and exits. Anything different falls through to a normal build.
 *
 * This file imports only node:fs, node:path and fsutil/stat.ts, so checking costs a few
 * milliseconds.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

export { ENGINE_VERSION } from '../version.js';
import { statSignature } from '../fsutil/stat.js';
export { statSignature };

export interface NoopMemo {
  v: 1;
  engine: string;
  argv: string[];
  cwd: string;
  env: Record<string, string>;
  /** [path, signature] pairs; 'S:' = followed stat, 'L:' = lstat. */
  deps: Array<[string, string]>;
  lines: string[];
  modules: number;
}

/** Variables a shell changes between otherwise identical commands. */
const VOLATILE_ENV = new Set(['_', 'OLDPWD', 'SHLVL', 'TERM_SESSION_ID', 'WINDOWID', 'OSVB_NO_MEMO']);

export function memoEnv(env: Readonly<Record<string, string | undefined>>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k of Object.keys(env).sort()) {
    const v = env[k];
    if (v !== undefined && !VOLATILE_ENV.has(k)) out[k] = v;
  }
  return out;
}


function fnv1a(s: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h.toString(16).padStart(8, '0');
}

export function noopMemoFile(cacheDir: string, osvBase: string): string {
  return path.join(cacheDir, 'noop', `${fnv1a(path.resolve(osvBase))}.json`);
}

function sameStrings(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

function sameEnv(a: Record<string, string>, b: Record<string, string>): boolean {
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  for (const k of ka) if (a[k] !== b[k]) return false;
  return true;
}

/** The memo when it still holds for this exact command, else undefined. */
export function checkNoopMemo(file: string, engine: string, argv: readonly string[], cwd: string, env: Readonly<Record<string, string | undefined>>): NoopMemo | undefined {
  let memo: NoopMemo;
  try {
    memo = JSON.parse(fs.readFileSync(file, 'utf8')) as NoopMemo;
  } catch {
    return undefined;
  }
  if (memo.v !== 1 || memo.engine !== engine || memo.cwd !== cwd || !sameStrings(memo.argv, argv)) return undefined;
  if (!sameEnv(memo.env, memoEnv(env))) return undefined;
  for (const [key, sig] of memo.deps) {
    if (statSignature(key.slice(2), key.startsWith('S:')) !== sig) return undefined;
  }
  return memo;
}

/** Where a memo is looked for, from the CLI's own words (no engine loaded yet). */
export function noopMemoFileForArgs(argv: readonly string[], cwd: string, env: Readonly<Record<string, string | undefined>>): string | undefined {
  let base: string | undefined;
  let cacheDir: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (a === '--osv-base') base = argv[++i];
    else if (a.startsWith('--osv-base=')) base = a.slice('--osv-base='.length);
    else if (a === '--cache-dir') cacheDir = argv[++i];
    else if (a.startsWith('--cache-dir=')) cacheDir = a.slice('--cache-dir='.length);
  }
  const osvBase = path.resolve(cwd, base ?? (env['OSV_BASE'] || undefined) ?? cwd);
  const dir = path.resolve(cwd, cacheDir ?? env['OSVB_CACHE_DIR'] ?? path.join(osvBase, '.osvb', 'cache'));
  return noopMemoFile(dir, osvBase);
}
