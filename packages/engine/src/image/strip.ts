/**
 * `.so` stripping for the image tools (spec §6.8). Which files: a host ending in exactly `.so`
 * whose absolute path starts (as a string) with the build directory, or with OSV_BASE/modules
 * or OSV_BASE/apps (OSV_BASE being the build directory's `../..`). The image gets the
 * `$STRIP -o` output's content.
 *
 * Difference from OSv, on purpose: OSv writes `<name>-stripped.so` next to the original (into
 * module directories, where it would look like a new input). osvb strips into its cache,
 * keyed by the original's digest and the strip program, so the image bytes are the same and
 * the tree is left alone.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { childProcess } from '../fsutil/index.js';
import { digestFile, digestString } from '../hash/index.js';

export interface StripContext {
  /** Directory the image tool runs in (BUILD); relative hosts resolve against it. */
  cwd: string;
  /** `$STRIP`, default `strip`. */
  strip: string;
  /** Where stripped copies are kept. */
  cacheDir: string;
  warn: (text: string) => void;
  /**
   * A host file's content digest (default: read it). `osvb build` passes its stat cache, so a
   * `.so` that did not change is not read again to find its stripped copy.
   */
  digest?: (file: string) => string;
  /**
   * `--compat=osv`: an existing `<x>-stripped.so` next to `<x>.so` that is not older than it is
   * used as it is, as gen-rofs-img.py does (spec §6.8). Default: always stripped afresh.
   */
  reuseExisting?: boolean;
}

function realCwd(cwd: string): string {
  try {
    return fs.realpathSync(cwd);
  } catch {
    return path.resolve(cwd);
  }
}

/** Python's os.path.abspath relative to a (real) cwd: joined and normalised, links not followed. */
function abspath(cwd: string, p: string): string {
  return path.posix.normalize(p.startsWith('/') ? p : `${cwd}/${p}`).replace(/(.)\/+$/, '$1');
}

export function shouldStrip(host: string, cwd: string): boolean {
  if (!host.endsWith('.so') || host.startsWith('->')) return false;
  const real = realCwd(cwd);
  const abs = abspath(real, host);
  const osvdir = abspath(real, '../..');
  return abs.startsWith(real) || abs.startsWith(osvdir + '/modules') || abs.startsWith(osvdir + '/apps');
}

let identities: Map<string, string> | undefined;

/** What `$STRIP --version` says first (the program name when it says nothing): part of a stripped copy's key. */
export function stripIdentity(strip: string): string {
  identities ??= new Map();
  let id = identities.get(strip);
  if (id === undefined) {
    try {
      id = childProcess().execFileSync(strip, ['--version'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).split('\n')[0] ?? strip;
    } catch {
      id = strip;
    }
    identities.set(strip, id);
  }
  return id;
}

/**
 * The file whose content the image stores for `host`: a stripped copy when the rules say so
 * and strip succeeds, else `host` itself (resolved against cwd). `onDigest` is told the
 * content digest the copy was looked up by.
 */
export function contentPathFor(host: string, ctx: StripContext, onDigest?: (digest: string) => void, onReuse?: (copy: string) => void): string {
  const abs = path.resolve(ctx.cwd, host);
  if (!shouldStrip(host, ctx.cwd)) return abs;
  if (ctx.reuseExisting) {
    const copy = `${abs.slice(0, -'.so'.length)}-stripped.so`;
    const st = fs.statSync(copy, { throwIfNoEntry: false });
    const orig = fs.statSync(abs, { throwIfNoEntry: false });
    if (st?.isFile() && orig && st.mtimeMs >= orig.mtimeMs) {
      onReuse?.(copy);
      return copy;
    }
  }
  let digest: string;
  try {
    digest = (ctx.digest ?? digestFile)(abs);
  } catch {
    return abs; // missing or unreadable: the caller reports it
  }
  onDigest?.(digest);
  const key = digestString(`${digest}\0${stripIdentity(ctx.strip)}`);
  const out = path.join(ctx.cacheDir, 'stripped', key.slice(0, 2), `${key}.so`);
  const failed = `${out}.failed`;
  if (fs.existsSync(out)) return out;
  if (fs.existsSync(failed)) {
    ctx.warn(`Failed stripping ${host}. Using original.`);
    return abs;
  }
  fs.mkdirSync(path.dirname(out), { recursive: true });
  const tmp = `${out}.${process.pid}.tmp`;
  try {
    childProcess().execFileSync(ctx.strip, ['-o', tmp, abs], { stdio: ['ignore', 'ignore', 'pipe'] });
    fs.renameSync(tmp, out);
    return out;
  } catch {
    fs.rmSync(tmp, { force: true });
    fs.writeFileSync(failed, '');
    ctx.warn(`Failed stripping ${host}. Using original.`);
    return abs;
  }
}
