/**
 * What building a ROFS tree learnt from the file system, recorded so that the next incremental
 * write can tell, without building the tree again, that it would come out the same.
 *
 * A tree is a function of the manifest text, the options, and these reads (nothing else is
 * looked at; the walk, unsymlink and the entry resolution tree.ts uses report every one here):
 * - `D` a directory listed by a `/**` walk: its stat signature, taken before listing, and a
 *   digest of the names and entry types in the order the walk used. The signature alone
 *   vouches for the listing only when it was old enough to trust (a directory changed in the
 *   same timestamp tick after the listing would keep its mtime); else, or when it changed, the
 *   directory is listed again and the digests compared (a module rebuilt by `make` usually
 *   touches its directory without changing what is in it).
 * - `L`/`S` the kind of a path found by lstat/stat (file, directory, link, other, missing, error),
 * - `R` what readlink gave, `E` whether a path exists (unsymlink's search),
 * - `C` a `.so` that was stripped: the content digest its stripped copy was found by, and its
 *   stat signature (when old enough to vouch for that content; else, or when it changed, the
 *   file is digested again), `P` the strip program's identity, `Q` the real path of the build
 *   directory (the strip rule compares against it).
 * Sizes and contents of regular files are not reads: the writer's layout file has every file's
 * source, size and signature, and checks those itself.
 *
 * Every value is what the tree build actually used (taken from the call it made, never from a
 * second look), so a change after the build makes a read disagree next time, never agree wrongly.
 */
import * as fs from 'node:fs';
import { errorValue, listDir, statKind, statQuiet, type WalkOrder } from '../../fsutil/index.js';
import type { PathStat } from './statBatch.js';

export type TreeReadKind = 'D' | 'L' | 'S' | 'R' | 'E' | 'C' | 'P' | 'Q';

/** The reads of one tree build, as stored in the layout file: `kind:path` and what was seen. */
export interface TreeReads {
  reads: string[];
  seen: string[];
}

/** A source modified this recently is not trusted by its stat signature (same-tick rewrites). */
export const RACY_MS = 2000;

function direntType(e: fs.Dirent): string {
  return e.isFile() ? 'f' : e.isDirectory() ? 'd' : e.isSymbolicLink() ? 'l' : e.isFIFO() || e.isSocket() || e.isBlockDevice() || e.isCharacterDevice() ? 'o' : '?';
}

/** A listing's digest (names and entry types in order); `!` for a directory that could not be listed. */
function listingDigest(entries: readonly fs.Dirent[] | undefined, hash: (text: string) => string): string {
  if (!entries) return '!';
  let s = '';
  for (const e of entries) s += `${direntType(e)}${e.name}\0`;
  return hash(s);
}

/** What a stat gives, in Stats' plain numbers (fs.Stats and the batched stats both have them). */
type StatNumbers = PathStat;

/** The stat signature the reads compare (size, mtime, ctime, inode, device). */
function readSignature(st: StatNumbers): string {
  return `${st.size}:${st.mtimeMs}:${st.ctimeMs}:${st.ino}:${st.dev}`;
}

function trustedAt(st: StatNumbers, wallBefore: number): boolean {
  return st.mtimeMs < wallBefore && st.ctimeMs < wallBefore;
}

/**
 * Records the reads of one tree build: it is what the build's `reads` option takes (fsutil's
 * WalkObserver for `/**` walks, layers' EntryReadObserver for each entry), by its shape.
 */
export class TreeReadRecorder {
  private readonly reads = new Map<string, string>();
  private broken: string | undefined;

  /**
   * `wallBefore`: the wall clock (ms) minus RACY_MS, taken before the build read anything;
   * `hash`: a digest of a listing's text.
   */
  constructor(
    private readonly wallBefore: number,
    private readonly hash: (text: string) => string,
  ) {}

  /**
   * A read whose value is not the same every time it is made gives no memo at all (a path
   * looked at twice during one build with two answers: the file system changed under it).
   */
  saw(kind: TreeReadKind, p: string, value: string): void {
    const key = `${kind}:${p}`;
    const had = this.reads.get(key);
    if (had !== undefined && had !== value) this.broken ??= `${p} changed while the tree was built`;
    this.reads.set(key, value);
  }

  /** Before listing `dir`: its signature now (empty when too fresh to vouch for the listing). */
  beforeListing(dir: string): string {
    const st = statQuiet(dir);
    return st && st.isDirectory() && trustedAt(st, this.wallBefore) ? readSignature(st) : '';
  }

  listed(dir: string, signature: string, entries: readonly fs.Dirent[] | undefined): void {
    this.saw('D', dir, `${signature}|${listingDigest(entries, this.hash)}`);
  }

  /** Before the `.so` at `p` is digested to find its stripped copy: its signature (empty when too fresh to vouch for the content). */
  beforeStripping(p: string): string {
    const st = statQuiet(p);
    return st && trustedAt(st, this.wallBefore) ? readSignature(st) : '';
  }

  /** The `.so` at `p` had content `digest` when it was stripped (`signature` from beforeStripping). */
  stripped(p: string, signature: string, digest: string): void {
    this.saw('C', p, `${signature}|${digest}`);
  }

  /** Something the tree depends on that reads cannot vouch for: no memo. */
  unrecordable(reason: string): void {
    this.broken ??= reason;
  }

  /** The reads, or why they cannot stand for the tree. */
  result(): TreeReads | string {
    if (this.broken) return this.broken;
    const reads: string[] = [];
    const seen: string[] = [];
    for (const [k, v] of this.reads) {
      reads.push(k);
      seen.push(v);
    }
    return { reads, seen };
  }
}

/** What the reads see now, one at a time; `identity` answers `P` reads (the strip program's). */
export interface ReadCheckContext {
  walkOrder: WalkOrder;
  identity: (program: string) => string;
  hash: (text: string) => string;
  /** A file's content digest, as the strip cache keys copies (`C` reads). */
  digestFile: (p: string) => string;
  /**
   * The stats of the batched reads (BATCHED_READS: `D`, `L`, `S`), by read key, made in one
   * batch before any of them is checked (a listing must not be older than the signature that
   * vouches for it). A read without one counts as changed.
   */
  stats?: ReadonlyMap<string, StatNumbers | { code: string }>;
  /** The wall clock minus RACY_MS, taken before this check read anything. */
  wallBefore: number;
}

/** Reads that are few and checked one by one (a rebuilt `.so` fails the check here, before any batch of stats). */
export const FEW_READS: ReadonlySet<TreeReadKind> = new Set(['C', 'P', 'Q', 'R', 'E']);
/** Reads checked against stats made in one batch beforehand. */
export const BATCHED_READS: ReadonlySet<TreeReadKind> = new Set(['D', 'L', 'S']);

/**
 * Check recorded reads (of `kinds`, default all) against the file system now. Returns the
 * first read that differs (as a reason), or undefined when all agree; `seen` is updated in place where a directory's listing
 * still agrees but its signature moved on (so it need not be listed again next time).
 */
export function firstChangedRead(r: TreeReads, ctx: ReadCheckContext, kinds?: ReadonlySet<TreeReadKind>): string | undefined {
  for (let i = 0; i < r.reads.length; i++) {
    const key = r.reads[i] as string;
    const was = r.seen[i] as string;
    const kind = key[0] as TreeReadKind;
    if (kinds && !kinds.has(kind)) continue;
    const p = key.slice(2);
    let now: string;
    switch (kind) {
      case 'D': {
        const st = ctx.stats?.get(key);
        if (st === undefined) return `${p} was not looked at`;
        const dir = 'mode' in st && statKind(st) === 'd' ? st : undefined;
        const bar = was.indexOf('|');
        const sig = was.slice(0, bar);
        if (dir && sig !== '' && readSignature(dir) === sig) continue;
        const listing = listingDigest(listDir(p, ctx.walkOrder), ctx.hash);
        if (listing !== was.slice(bar + 1)) return `directory ${p} changed`;
        r.seen[i] = `${dir && trustedAt(dir, ctx.wallBefore) ? readSignature(dir) : ''}|${listing}`;
        continue;
      }
      case 'L':
      case 'S': {
        const st = ctx.stats?.get(key);
        if (st === undefined) return `${p} was not looked at`;
        now = 'mode' in st ? statKind(st) : errorValue(st);
        break;
      }
      case 'R':
        try {
          now = `l:${fs.readlinkSync(p)}`;
        } catch (e) {
          now = errorValue(e);
        }
        break;
      case 'E':
        now = fs.existsSync(p) ? '1' : '0';
        break;
      case 'C': {
        const bar = was.indexOf('|');
        const sig = was.slice(0, bar);
        const st = statQuiet(p);
        if (!st) return `${p} changed`;
        const sigNow = readSignature(st);
        if (sig !== '' && sigNow === sig) continue;
        let digest: string;
        try {
          digest = ctx.digestFile(p);
        } catch {
          return `${p} changed`;
        }
        if (digest !== was.slice(bar + 1)) return `${p} changed`;
        r.seen[i] = `${trustedAt(st, ctx.wallBefore) ? sigNow : ''}|${digest}`;
        continue;
      }
      case 'P':
        now = ctx.identity(p);
        break;
      case 'Q':
        try {
          now = fs.realpathSync(p);
        } catch (e) {
          now = errorValue(e);
        }
        break;
      default:
        return `unknown read ${key}`;
    }
    if (now !== was) return `${p} changed`;
  }
  return undefined;
}
