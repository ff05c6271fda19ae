/**
 * The ROFS tree, built from a stage B manifest exactly as OSv's `scripts/gen-rofs-img.py` builds
 * its nested dict (spec §8.1): read → `-D` defines → `/**` and `/&/` expansion → `unsymlink`,
 * then per entry `->T` links, `*-stripped.so` hosts skipped, `.so` stripping *before* the
 * symlink test, host symlink → link with the link's text, host directory → directories, anything
 * else → a file. Maps are get-or-insert and ordered: an existing key keeps its position, a file
 * or link assignment replaces the value in place, a directory mapping onto a file leaves it.
 * Guest paths without a leading `/` land outside the root and are dropped, as in OSv.
 *
 * Where gen-rofs-img crashes (and leaves a partial image behind) this module throws an OsvbError
 * with the manifest file and line instead, before anything is written: a missing or unreadable
 * host file, `/x` as a file and then `/x/y`, no absolute guest path at all, guest `/` mapped to a
 * file or link, and names or link targets that gen-rofs-img would serialise wrongly (not ASCII:
 * it writes the character count as the length; longer than 65535; containing NUL).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { OsvbError, type SourceLocation } from '../../errors/index.js';
import { pyJoin, type WalkOrder } from '../../fsutil/index.js';
import { applyDefines, expandEntry, parseManifest, unsymlink, decodeManifestText } from '../../manifest/index.js';
import { initHashing } from '../../hash/index.js';
import { contentPathFor, shouldStrip, type StripContext } from '../strip.js';

export interface RofsOrigin {
  file: string;
  line: number;
}

/** Stat signature of a file's source, used by the incremental writer to skip re-reading it. */
export interface RofsSourceSignature {
  size: number;
  mtimeNs: bigint;
  ctimeNs: bigint;
  ino: number;
}

export interface RofsFile {
  kind: 'file';
  /** The file whose bytes the image stores (absolute, or relative to the process cwd). */
  source: string;
  /** Size in bytes; the writer checks that the source still has it. */
  size: number;
  /** The host string from the manifest (after expansion and resolution), for messages. */
  host?: string;
  origin?: RofsOrigin;
  signature?: RofsSourceSignature;
}

export interface RofsLink {
  kind: 'link';
  target: string;
  origin?: RofsOrigin;
}

export interface RofsDir {
  kind: 'dir';
  /** Children in insertion order; that order decides inode numbers and data placement. */
  entries: Map<string, RofsNode>;
  origin?: RofsOrigin;
}

export type RofsNode = RofsFile | RofsLink | RofsDir;

export interface RofsTree {
  root: RofsDir;
}

export interface RofsStripOptions {
  /** `$STRIP`, default `strip`. */
  program: string;
  /** Where stripped copies are cached. */
  cacheDir: string;
  warn: (text: string) => void;
}

export interface RofsTreeOptions {
  /** Manifest file name, for messages. */
  file: string;
  /** The build directory: relative hosts are resolved against it (OSv runs its tools there). */
  cwd: string;
  defines?: Readonly<Record<string, string>>;
  /** Order of `/**` directory walks: 'sorted' (reproducible, default) or 'os' (OSv's). */
  walkOrder?: WalkOrder;
  /** `.so` stripping (spec §6.8); `false` turns it off (the image then stores originals). */
  strip: RofsStripOptions | false;
}

/** Longest name or link target whose length fits the format's u16. */
export const ROFS_MAX_NAME = 0xffff;

export function rofsDir(origin?: RofsOrigin): RofsDir {
  return origin ? { kind: 'dir', entries: new Map(), origin } : { kind: 'dir', entries: new Map() };
}

/** A file node for `source`, sized (and signed) from the file system now. */
export function rofsFileFrom(source: string, origin?: RofsOrigin): RofsFile {
  const st = fs.statSync(source, { bigint: true });
  return {
    kind: 'file',
    source,
    size: Number(st.size),
    signature: { size: Number(st.size), mtimeNs: st.mtimeNs, ctimeNs: st.ctimeNs, ino: Number(st.ino) },
    ...(origin ? { origin } : {}),
  };
}

/**
 * Why a name or link target cannot go into a ROFS image, or undefined when it can.
 * gen-rofs-img writes `len(str)` (code points) as the length and the UTF-8 bytes after it, so any
 * non-ASCII text gives an unreadable image; undecodable file names come to Node as U+FFFD.
 */
export function rofsTextProblem(text: string, what: 'name' | 'link target'): string | undefined {
  if (text.length > ROFS_MAX_NAME) return `the ${what} is ${text.length} bytes long; ROFS stores lengths as 16 bits (at most ${ROFS_MAX_NAME})`;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0) return `the ${what} contains a NUL character, which OSv's reader cuts the ${what} at`;
    if (c > 0x7f) {
      if (c === 0xfffd) {
        return `the ${what} is not valid UTF-8 (gen-rofs-img fails on such names with UnicodeEncodeError)`;
      }
      return `the ${what} is not ASCII; gen-rofs-img writes its length in characters rather than bytes, so OSv could not read the image`;
    }
  }
  return undefined;
}

function describe(node: RofsNode): string {
  if (node.kind === 'dir') return 'a directory';
  if (node.kind === 'link') return `a link to "${node.target}"`;
  return `a file (${node.host ?? node.source})`;
}

function originText(o: RofsOrigin | undefined): string {
  return o ? ` by line ${o.line}` : '';
}

function loc(o: RofsOrigin): { location: SourceLocation } {
  return { location: { file: o.file, line: o.line } };
}

/** The Python dict of gen-rofs-img: top-level map, whose "" key is the image root. */
class TreeBuilder {
  readonly top: RofsDir = rofsDir();
  /** Files whose host could not be read as a regular file, and why (reported only if they end up in the image). */
  readonly problems = new Map<RofsFile, string>();

  /** `populate_with_directory_path` + assignment of the leaf. */
  setLeaf(guest: string, value: RofsFile | RofsLink, origin: RofsOrigin): void {
    const tokens = guest.replace(/\/+$/, '').split('/');
    if (tokens.length === 1 && tokens[0] === '') {
      throw new OsvbError('OSVB_IMAGE_INPUT', `guest path "${guest}" is the image root and cannot be ${describe(value)}`, {
        ...loc(origin),
        hint: 'map "/" only to a directory (which adds nothing); gen-rofs-img crashes with AttributeError here',
      });
    }
    let dir = this.top;
    for (let i = 0; i < tokens.length - 1; i++) dir = this.descend(dir, tokens, i, guest, origin);
    dir.entries.set(tokens[tokens.length - 1] as string, value);
  }

  /** The directory branch: every token becomes (or stays) a directory; a file at the last one is left alone. */
  makeDirs(guest: string, origin: RofsOrigin): void {
    const tokens = guest.replace(/\/+$/, '').split('/');
    let dir = this.top;
    for (let i = 0; i < tokens.length; i++) {
      const existing = dir.entries.get(tokens[i] as string);
      if (existing && existing.kind !== 'dir' && i === tokens.length - 1) return;
      dir = this.descend(dir, tokens, i, guest, origin);
    }
  }

  private descend(dir: RofsDir, tokens: string[], i: number, guest: string, origin: RofsOrigin): RofsDir {
    const name = tokens[i] as string;
    const existing = dir.entries.get(name);
    if (existing === undefined) {
      const created = rofsDir(origin);
      dir.entries.set(name, created);
      return created;
    }
    if (existing.kind === 'dir') return existing;
    const prefix = tokens.slice(0, i + 1).join('/') || '/';
    throw new OsvbError(
      'OSVB_IMAGE_INPUT',
      `guest path "${guest}" needs "${prefix}" to be a directory, but it was mapped to ${describe(existing)}${originText(existing.origin)}`,
      { ...loc(origin), hint: 'a guest path cannot be both a file and a directory; gen-rofs-img crashes here' },
    );
  }
}

function onDisk(cwd: string, p: string): string {
  return p.startsWith('/') ? p : pyJoin(cwd, p);
}

function errnoText(e: unknown): string {
  const code = (e as NodeJS.ErrnoException).code;
  if (code === 'ENOENT' || code === 'ENOTDIR') return 'does not exist';
  if (code === 'EACCES' || code === 'EPERM') return 'cannot be read (permission denied)';
  return `cannot be read (${code ?? String(e)})`;
}

function stripped(host: string, ctx: StripContext, origin: RofsOrigin): string {
  try {
    return contentPathFor(host, ctx);
  } catch (e) {
    throw new OsvbError('OSVB_IO', `cannot keep a stripped copy of "${host}" in ${ctx.cacheDir}: ${(e as Error).message}`, { ...loc(origin), cause: e });
  }
}

/** Build the tree from manifest text. Throws OsvbError (with file and line) on every input gen-rofs-img cannot handle. */
export async function buildRofsTree(text: string, opts: RofsTreeOptions): Promise<RofsTree> {
  if (opts.strip) await initHashing(); // the strip cache is keyed by content digests
  const cwd = path.resolve(opts.cwd);
  const walkOrder = opts.walkOrder ?? 'sorted';
  const defines = opts.defines ?? {};
  const stripCtx: StripContext | undefined = opts.strip
    ? { cwd, strip: opts.strip.program, cacheDir: opts.strip.cacheDir, warn: opts.strip.warn }
    : undefined;
  const b = new TreeBuilder();

  for (const raw of parseManifest(text, opts.file)) {
    const origin: RofsOrigin = { file: opts.file, line: raw.line };
    const defined = { ...raw, host: applyDefines(raw.host, defines, origin) };
    for (const e of expandEntry(defined, cwd, walkOrder)) {
      const host = unsymlink(e.host, cwd, origin);
      if (host.startsWith('->')) {
        b.setLeaf(e.guest, { kind: 'link', target: host.slice(2), origin }, origin);
        continue;
      }
      if (host.endsWith('-stripped.so')) continue;
      const source = stripCtx && shouldStrip(host, cwd) ? stripped(host, stripCtx, origin) : onDisk(cwd, host);
      let st: fs.BigIntStats | undefined;
      let problem: string | undefined;
      try {
        st = fs.lstatSync(source, { bigint: true });
      } catch (err) {
        problem = errnoText(err);
      }
      if (st?.isSymbolicLink()) {
        b.setLeaf(e.guest, { kind: 'link', target: fs.readlinkSync(source), origin }, origin);
      } else if (st?.isDirectory()) {
        b.makeDirs(e.guest, origin);
      } else {
        if (st && !st.isFile()) problem = 'is not a regular file (a device, socket or FIFO)';
        const size = st ? Number(st.size) : 0;
        const file: RofsFile = { kind: 'file', source, size, host, origin };
        if (st && !problem) file.signature = { size, mtimeNs: st.mtimeNs, ctimeNs: st.ctimeNs, ino: Number(st.ino) };
        b.setLeaf(e.guest, file, origin);
        if (problem) b.problems.set(file, problem);
      }
    }
  }

  const root = b.top.entries.get('');
  if (root === undefined) {
    throw new OsvbError('OSVB_IMAGE_INPUT', 'the manifest maps no absolute guest path, so the image would have no root directory', {
      location: { file: opts.file },
      hint: 'guest paths start with "/" (entries without it are not part of a ROFS image)',
    });
  }
  // setLeaf refuses "/" as a file or link, so the root is always a directory.
  const tree: RofsTree = { root: root as RofsDir };
  checkRofsTree(tree, b.problems);
  return tree;
}

/** Read a manifest file (UTF-8) and build its tree. */
export async function readRofsTree(manifestPath: string, opts: Omit<RofsTreeOptions, 'file'> & { file?: string }): Promise<RofsTree> {
  let bytes: Buffer;
  const file = opts.file ?? manifestPath;
  try {
    bytes = fs.readFileSync(manifestPath);
  } catch (e) {
    throw new OsvbError('OSVB_IMAGE_INPUT', `cannot read the manifest: ${errnoText(e)}`, { location: { file }, cause: e });
  }
  return buildRofsTree(decodeManifestText(file, bytes), { ...opts, file });
}

/**
 * Check every name, link target and file of the image part of a tree (what gen-rofs-img would
 * serialise), iteratively. `problems` carries host files that could not be stat'ed.
 */
export function checkRofsTree(tree: RofsTree, problems?: ReadonlyMap<RofsFile, string>): void {
  let first: OsvbError | undefined;
  let firstLine = Infinity;
  const report = (node: RofsNode, message: string, hint?: string): void => {
    const line = node.origin?.line ?? Infinity;
    if (first && line >= firstLine) return;
    first = new OsvbError('OSVB_IMAGE_INPUT', message, { ...(node.origin ? loc(node.origin) : {}), ...(hint ? { hint } : {}) });
    firstLine = line;
  };
  const stack: Array<{ dir: RofsDir; path: string }> = [{ dir: tree.root, path: '' }];
  while (stack.length > 0) {
    const { dir, path: dirPath } = stack.pop() as { dir: RofsDir; path: string };
    for (const [name, node] of dir.entries) {
      const guest = `${dirPath}/${name}`;
      if (name.includes('/')) report(node, `guest name "${name}" in "${dirPath || '/'}" contains "/"`);
      const nameProblem = rofsTextProblem(name, 'name');
      if (nameProblem) report(node, `guest path "${guest}": ${nameProblem}`);
      if (node.kind === 'dir') {
        stack.push({ dir: node, path: guest });
      } else if (node.kind === 'link') {
        const p = rofsTextProblem(node.target, 'link target');
        if (p) report(node, `guest link "${guest}" -> "${node.target}": ${p}`);
      } else {
        const p = problems?.get(node);
        if (p) {
          report(
            node,
            `host file "${node.host ?? node.source}" for guest path "${guest}" ${p}`,
            p === 'does not exist' ? 'build the module that produces it, or fix the manifest line' : undefined,
          );
        }
      }
    }
  }
  if (first) throw first;
}
