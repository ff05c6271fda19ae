/**
 * The ROFS tree, built from a stage B manifest exactly as OSv's `scripts/gen-rofs-img.py` builds
 * its nested dict (spec §8.1): read → `-D` defines → `/**` and `/&/` expansion → each entry
 * resolved by layers' EntryResolver (`unsymlink`, `->T` links, `*-stripped.so` hosts skipped,
 * `.so` stripping *before* the symlink test, host symlink → link with the link's text, host
 * directory → directories, anything else → a file; the layers resolve entries the same way).
 * Maps are get-or-insert and ordered: an existing key keeps its position, a file
 * or link assignment replaces the value in place, a directory mapping onto a file leaves it.
 * Guest paths without a leading `/` land outside the root and are dropped, as in OSv.
 *
 * Where gen-rofs-img crashes (and leaves a partial image behind) this module throws an OsvbError
 * with the manifest file and line instead, before anything is written: a missing or unreadable
 * host file, `/x` as a file and then `/x/y`, no absolute guest path at all, guest `/` mapped to a
 * file or link, and names or link targets that gen-rofs-img would serialise wrongly (not ASCII:
 * it writes the character count as the length; longer than 65535; containing NUL). A host that
 * is a device, socket or FIFO is refused too (gen-rofs-img would read it, possibly forever).
 *
 * Files found by a `/**` walk whose directory entry says "regular file" are not stat'ed here
 * (unsymlink, the link test and the directory test cannot apply to them); their size is left
 * for the writer, which learns it while copying, or stats them for an incremental write.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { OsvbError, type SourceLocation } from '../../errors/index.js';
import { pyJoin, walkDirents, type WalkObserver, type WalkOrder } from '../../fsutil/index.js';
import { applyDefines, expandEntry, parseManifest, decodeManifestText } from '../../manifest/index.js';
import { initHashing } from '../../hash/index.js';
import { EntryResolver, errnoText, hostFileError, type EntryReadObserver } from '../../layers/index.js';
import type { StripContext } from '../strip.js';
import { sourceSignature, type RofsSourceSignature } from './statBatch.js';

export interface RofsOrigin {
  file: string;
  line: number;
}

export interface RofsFile {
  kind: 'file';
  /** The file whose bytes the image stores (absolute, or relative to the process cwd). */
  source: string;
  /**
   * Size in bytes; the writer checks that the source still has it. Undefined for a regular
   * file found by a `/**` walk, which is not stat'ed: a full write takes whatever it reads,
   * an incremental one stats it first.
   */
  size?: number;
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
  /** A host file's content digest (default: read it); see StripContext.digest. */
  digest?: (file: string) => string;
  /** `--compat=osv`: use an existing `<x>-stripped.so` that is not older than `<x>.so` (StripContext.reuseExisting). */
  reuseExisting?: boolean;
}

/** What a tree build tells of its reads, the walk's and the entries' (treeReads.ts's TreeReadRecorder is one). */
export type RofsTreeReadObserver = WalkObserver & EntryReadObserver;

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
  /** Told everything the build learns from the file system. */
  reads?: RofsTreeReadObserver;
}

/** Longest name or link target whose length fits the format's u16. */
export const ROFS_MAX_NAME = 0xffff;

export function rofsDir(origin?: RofsOrigin): RofsDir {
  return origin ? { kind: 'dir', entries: new Map(), origin } : { kind: 'dir', entries: new Map() };
}

/** A file node for `source`, sized (and signed) from the file system now. */
export function rofsFileFrom(source: string, origin?: RofsOrigin): RofsFile {
  const st = fs.statSync(source);
  return {
    kind: 'file',
    source,
    size: st.size,
    signature: sourceSignature(st),
    ...(origin ? { origin } : {}),
  };
}

/**
 * Why a name or link target cannot go into a ROFS image, or undefined when it can.
 * gen-rofs-img writes `len(str)` (code points) as the length and the UTF-8 bytes after it, so any
 * non-ASCII text gives an unreadable image; undecodable file names come to Node as U+FFFD.
 */
const NOT_PLAIN_ASCII = /[\0\u0080-\uffff]/;

export function rofsTextProblem(text: string, what: 'name' | 'link target'): string | undefined {
  if (text.length <= ROFS_MAX_NAME && !NOT_PLAIN_ASCII.test(text)) return undefined;
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

  /**
   * The directory the last leaf went into: a walk puts thousands of leaves into the same few
   * directories one after another, and finding the directory again by its path is most of the
   * cost of building a large tree. Forgotten whenever a directory node is replaced.
   */
  private lastParent: { path: string; dir: RofsDir } | undefined;

  /** `populate_with_directory_path` + assignment of the leaf. */
  setLeaf(guest: string, value: RofsFile | RofsLink, origin: RofsOrigin): void {
    const cut = guest.lastIndexOf('/');
    const last = this.lastParent;
    if (last !== undefined && cut === last.path.length && cut < guest.length - 1 && guest.startsWith(last.path)) {
      this.setChild(last.dir, guest.slice(cut + 1), value);
      return;
    }
    const tokens = guest.replace(/\/+$/, '').split('/');
    if (tokens.length === 1 && tokens[0] === '') {
      throw new OsvbError('OSVB_IMAGE_INPUT', `guest path "${guest}" is the image root and cannot be ${describe(value)}`, {
        ...loc(origin),
        hint: 'map "/" only to a directory (which adds nothing); gen-rofs-img crashes with AttributeError here',
      });
    }
    let dir = this.top;
    for (let i = 0; i < tokens.length - 1; i++) dir = this.descend(dir, tokens, i, guest, origin);
    const name = tokens[tokens.length - 1] as string;
    // Remembered only where the guest path is the parent's path plus the name (no trailing or doubled slashes).
    if (cut >= 0 && cut === guest.length - name.length - 1) this.lastParent = { path: guest.slice(0, cut), dir };
    this.setChild(dir, name, value);
  }

  /** The directory `guestDir` (ending in `/`) as a leaf's parent: every token becomes (or stays) a directory. */
  dirAt(guestDir: string, origin: RofsOrigin): RofsDir {
    const tokens = guestDir.replace(/\/+$/, '').split('/');
    let dir = this.top;
    for (let i = 0; i < tokens.length; i++) dir = this.descend(dir, tokens, i, guestDir, origin);
    return dir;
  }

  /** setLeaf for a leaf whose parent directory is already known; replacing a directory forgets lastParent (it may be inside). */
  setChild(dir: RofsDir, name: string, value: RofsFile | RofsLink): void {
    if (dir.entries.get(name)?.kind === 'dir') this.lastParent = undefined;
    dir.entries.set(name, value);
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

interface Walked {
  guest: string;
  host: string;
  /** The directory entry says regular file: not a link, not a directory, exists. */
  regular: boolean;
}

/** Where a walk puts a plain file (a regular file by its directory entry, not a `.so`): straight into the tree. */
interface PlainFileSink {
  /** The guest directory (ending in `/`) the files of one host directory go into. */
  dir(guestDir: string): RofsDir;
  add(dir: RofsDir, name: string, file: RofsFile): void;
  origin: RofsOrigin;
  reads: RofsTreeReadObserver | undefined;
}

/**
 * The `/**` tree copy of OSv's `expand` (spec §6.5 rule 1) over fsutil's walk, as expandEntry
 * does it, but with each entry's type from its directory listing, so that regular files need no
 * further stat (on a tree of 20k files that is most of the tree's cost). Plain
 * files go straight to `sink` (no per-file guest path to split, no intermediate object: with
 * tens of thousands of files, allocation and path handling are what the tree costs); every
 * other entry is yielded, in its place in the walk order.
 */
function* walkTreeCopy(guest: string, host: string, cwd: string, order: WalkOrder, sink: PlainFileSink): Generator<Walked> {
  const g = guest.slice(0, -2);
  const h = host.slice(0, -2);
  for (const step of walkDirents(h, order, cwd, sink.reads)) {
    let rel = step.dirpath.slice(h.length);
    if (rel !== '') rel += '/';
    const hostDir = h + rel;
    const sourceDir = onDisk(cwd, hostDir);
    let into: RofsDir | undefined;
    for (const e of step.files) {
      if (e.isFile() && !e.name.endsWith('.so')) {
        into ??= sink.dir(g + rel);
        sink.add(into, e.name, { kind: 'file', source: sourceDir + e.name, host: hostDir + e.name, origin: sink.origin });
      } else yield { guest: g + rel + e.name, host: hostDir + e.name, regular: e.isFile() };
    }
  }
}

function onDisk(cwd: string, p: string): string {
  return p === '' || p.startsWith('/') ? p : pyJoin(cwd, p);
}

/** Build the tree from manifest text. Throws OsvbError (with file and line) on every input gen-rofs-img cannot handle. */
export async function buildRofsTree(text: string, opts: RofsTreeOptions): Promise<RofsTree> {
  if (opts.strip) await initHashing(); // the strip cache is keyed by content digests
  const cwd = path.resolve(opts.cwd);
  const walkOrder = opts.walkOrder ?? 'sorted';
  const defines = opts.defines ?? {};
  const stripCtx: StripContext | undefined = opts.strip
    ? {
        cwd,
        strip: opts.strip.program,
        cacheDir: opts.strip.cacheDir,
        warn: opts.strip.warn,
        ...(opts.strip.digest ? { digest: opts.strip.digest } : {}),
        ...(opts.strip.reuseExisting ? { reuseExisting: true } : {}),
      }
    : undefined;
  const b = new TreeBuilder();
  const reads = opts.reads;
  const resolver = new EntryResolver({ cwd, strip: stripCtx, reads });

  for (const raw of parseManifest(text, opts.file)) {
    const origin: RofsOrigin = { file: opts.file, line: raw.line };
    const defined = { ...raw, host: applyDefines(raw.host, defines, origin) };
    const sink: PlainFileSink = {
      dir: (guestDir) => b.dirAt(guestDir, origin),
      add: (dir, name, file) => b.setChild(dir, name, file),
      origin,
      reads,
    };
    const expanded: Iterable<Walked | { guest: string; host: string; regular?: undefined }> =
      defined.guest.endsWith('/**') && defined.host.endsWith('/**')
        ? walkTreeCopy(defined.guest, defined.host, cwd, walkOrder, sink)
        : expandEntry(defined, cwd, walkOrder);
    for (const e of expanded) {
      const r = resolver.resolve(e.host, origin, e.regular);
      if (r.kind === 'file') {
        // A file resolved by its directory entry has no size yet: it is found when the file is
        // read (or stat'ed by an incremental write).
        const file: RofsFile = r.st || r.problem ? { kind: 'file', source: r.source, size: r.st ? r.st.size : 0, host: r.host, origin } : { kind: 'file', source: r.source, host: r.host, origin };
        if (r.st && !r.problem) file.signature = sourceSignature(r.st);
        b.setLeaf(e.guest, file, origin);
        if (r.problem) b.problems.set(file, r.problem);
      } else if (r.kind === 'link') {
        b.setLeaf(e.guest, { kind: 'link', target: r.target, origin }, origin);
      } else if (r.kind === 'dir') {
        b.makeDirs(e.guest, origin);
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

/** Read a manifest file (UTF-8); `file` names it in errors. */
export function readRofsManifest(manifestPath: string, file = manifestPath): string {
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(manifestPath);
  } catch (e) {
    throw new OsvbError('OSVB_IMAGE_INPUT', `cannot read the manifest: ${errnoText(e)}`, { location: { file }, cause: e });
  }
  return decodeManifestText(file, bytes);
}

/** Read a manifest file (UTF-8) and build its tree. */
export async function readRofsTree(manifestPath: string, opts: Omit<RofsTreeOptions, 'file'> & { file?: string }): Promise<RofsTree> {
  const file = opts.file ?? manifestPath;
  return buildRofsTree(readRofsManifest(manifestPath, file), { ...opts, file });
}

/**
 * Check every name, link target and file of the image part of a tree (what gen-rofs-img would
 * serialise), iteratively. `problems` carries host files that could not be stat'ed.
 */
export function checkRofsTree(tree: RofsTree, problems?: ReadonlyMap<RofsFile, string>): void {
  let first: OsvbError | undefined;
  let firstLine = Infinity;
  const report = (node: RofsNode, error: string | OsvbError): void => {
    const line = node.origin?.line ?? Infinity;
    if (first && line >= firstLine) return;
    first = typeof error === 'string' ? new OsvbError('OSVB_IMAGE_INPUT', error, node.origin ? loc(node.origin) : {}) : error;
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
        if (p) report(node, hostFileError(node.host ?? node.source, guest, p, node.origin));
      }
    }
  }
  if (first) throw first;
}
