/**
 * One manifest entry (after `-D` defines and `/**`, `/&/` expansion) → what it puts into the
 * guest, resolved as OSv's `scripts/gen-rofs-img.py` resolves it (spec §8.1): `unsymlink`, `->T`
 * links, `*-stripped.so` hosts skipped, `.so` stripping *before* the symlink test, a host
 * symlink → a link with the link's text, a host directory → a directory, anything else → a file.
 * The ROFS tree and the layers both resolve entries here, so they give the same answer, and the
 * same error text, for the same manifest line.
 *
 * Costs matter (the ROFS tree resolves tens of thousands of entries): a non-link host costs one
 * lstat, which the file case needs anyway (unsymlink's readlink would fail for every plain file),
 * and an entry a directory listing already typed as a regular file costs nothing.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { OsvbError } from '../errors/index.js';
import { errorValue, pyJoin, statKind } from '../fsutil/index.js';
import { unsymlink } from '../manifest/index.js';
import { KERNEL_BUILD_FILES } from '../image/kernelFiles.js';
import { contentPathFor, shouldStrip, stripIdentity, type StripContext } from '../image/strip.js';

/**
 * Told what resolving learnt from the file system (kinds as in image/rofs/treeReads.ts: `L`
 * lstat, `R` readlink, `E` exists, `P` strip program, `Q` build directory's real path; `C` by
 * way of `stripped`). The ROFS tree's read recorder is one.
 */
export interface EntryReadObserver {
  saw(kind: 'L' | 'R' | 'E' | 'P' | 'Q', path: string, value: string): void;
  /** Before the `.so` at `p` is digested to find its stripped copy: its signature (or ''). */
  beforeStripping(p: string): string;
  /** The `.so` at `p` had content `digest` when it was stripped. */
  stripped(p: string, signature: string, digest: string): void;
  /** Something the result depends on that reads cannot vouch for. */
  unrecordable(reason: string): void;
}

export interface EntryResolveOptions {
  /** The build directory (absolute): relative hosts resolve against it (OSv runs its tools there). */
  cwd: string;
  /** `.so` stripping (spec §6.8); undefined: none (the image stores originals). */
  strip?: StripContext | undefined;
  reads?: EntryReadObserver | undefined;
}

/** Where an entry comes from, for messages. */
export interface EntryOrigin {
  file: string;
  line: number;
}

export type ResolvedEntry =
  /** A `*-stripped.so` host: not part of the image. */
  | { kind: 'skip' }
  | { kind: 'link'; target: string }
  /** `st`: the directory's lstat. */
  | { kind: 'dir'; st: fs.Stats }
  | ResolvedFile;

export interface ResolvedFile {
  kind: 'file';
  /** The host string (after resolution), for messages. */
  host: string;
  /** The file whose bytes the guest gets: the host (joined to cwd, not normalised) or its stripped copy. */
  source: string;
  /** `source` is a stripped copy of the host. */
  stripped: boolean;
  /** `source`'s lstat; undefined for an entry resolved by its directory entry alone, or when it failed. */
  st?: fs.Stats;
  /** Why the host cannot be imaged ('does not exist', …); see hostFileError. */
  problem?: string;
}

const SKIP: ResolvedEntry = { kind: 'skip' };

/** The path the OS resolves for `p`: joined to cwd, never normalised (`link/..` goes where the kernel goes). */
function onDisk(cwd: string, p: string): string {
  return p === '' || p.startsWith('/') ? p : pyJoin(cwd, p);
}

/** What a failed stat or read of a host file means, as the end of "host file X …". */
export function errnoText(e: unknown): string {
  const code = (e as NodeJS.ErrnoException).code;
  if (code === 'ENOENT' || code === 'ENOTDIR') return 'does not exist';
  if (code === 'EACCES' || code === 'EPERM') return 'cannot be read (permission denied)';
  return `cannot be read (${code ?? String(e)})`;
}

interface Probe {
  st?: fs.Stats;
  problem?: string;
}

/** lstat without exceptions for the common "missing" case (exceptions cost more than the syscall). */
function lstatOrProblem(p: string, reads: EntryReadObserver | undefined): Probe {
  try {
    const st = fs.lstatSync(p, { throwIfNoEntry: false });
    reads?.saw('L', p, statKind(st));
    return st ? { st } : { problem: 'does not exist' };
  } catch (err) {
    reads?.saw('L', p, errorValue(err));
    return { problem: errnoText(err) };
  }
}

/** What to do about a host file that does not exist: a kernel build's file is not made by a module. */
function missingHint(host: string): string {
  const rel = host.replace(/^\.\//, '');
  if (KERNEL_BUILD_FILES.includes(rel)) {
    return `${rel} is made by OSv's kernel build, not by a module: build in an OSv source tree (osvb builds its kernel), or pass --kernel DIR with a kernel build's outputs (loader.img, libenviron.so, …)`;
  }
  return 'build the module that produces it, or fix the manifest line';
}

/** The error for a host file that cannot go into the guest (`problem` from a ResolvedFile), at its manifest line. */
export function hostFileError(host: string, guest: string, problem: string, origin: EntryOrigin | undefined): OsvbError {
  return new OsvbError('OSVB_IMAGE_INPUT', `host file "${host}" for guest path "${guest}" ${problem}`, {
    ...(origin ? { location: { file: origin.file, line: origin.line } } : {}),
    ...(problem === 'does not exist' ? { hint: missingHint(host) } : {}),
  });
}

/** Resolves the entries of one manifest (one build directory, one strip context, one observer). */
export class EntryResolver {
  private readonly cwd: string;
  private readonly strip: StripContext | undefined;
  private readonly reads: EntryReadObserver | undefined;

  constructor(opts: EntryResolveOptions) {
    this.cwd = opts.cwd;
    this.strip = opts.strip;
    this.reads = opts.reads;
    // The strip rule compares hosts with the build directory's real path.
    if (this.reads && this.strip) {
      let real: string;
      try {
        real = fs.realpathSync(this.cwd);
      } catch (e) {
        real = errorValue(e);
      }
      this.reads.saw('Q', this.cwd, real);
    }
  }

  /**
   * The guest content of the expanded entry with host `host`. `regular`: a directory listing
   * typed the host as a regular file (not a link, not a directory, there), so unsymlink and the
   * link and directory tests cannot apply to it; it is not stat'ed unless it is to be stripped.
   * Throws OsvbError only where resolving itself fails (a link loop, a stripped copy that cannot
   * be kept); a host that cannot be imaged is a ResolvedFile with a `problem`.
   */
  resolve(host: string, origin: EntryOrigin, regular = false): ResolvedEntry {
    const { cwd, strip, reads } = this;
    if (regular && !host.endsWith('-stripped.so') && !(strip && shouldStrip(host, cwd))) {
      return { kind: 'file', host, source: onDisk(cwd, host), stripped: false };
    }
    // unsymlink only changes hosts that are links (or start with ! or ->): lstat first, which
    // the file case needs anyway, instead of a readlink that fails for every plain file.
    let probe: Probe | undefined;
    if (host.startsWith('!') || host.startsWith('->')) {
      host = unsymlink(host, cwd, origin, reads);
    } else {
      probe = lstatOrProblem(onDisk(cwd, host), reads);
      if (probe.st?.isSymbolicLink()) {
        host = unsymlink(host, cwd, origin, reads);
        probe = undefined;
      }
    }
    if (host.startsWith('->')) return { kind: 'link', target: host.slice(2) };
    if (host.endsWith('-stripped.so')) return SKIP;
    const plain = onDisk(cwd, host);
    const source = strip && shouldStrip(host, cwd) ? this.stripped(host, strip, origin) : plain;
    if (probe === undefined || source !== plain) probe = lstatOrProblem(source, reads);
    const { st } = probe;
    if (st?.isSymbolicLink()) {
      const target = fs.readlinkSync(source);
      reads?.saw('R', source, `l:${target}`);
      return { kind: 'link', target };
    }
    if (st?.isDirectory()) return { kind: 'dir', st };
    const file: ResolvedFile = { kind: 'file', host, source, stripped: source !== plain };
    if (st) file.st = st;
    const problem = st && !st.isFile() ? 'is not a regular file (a device, socket or FIFO)' : probe.problem;
    if (problem) file.problem = problem;
    return file;
  }

  /** The stripped copy of `host` (or `host` itself when strip fails: OSv uses the original then). */
  private stripped(host: string, ctx: StripContext, origin: EntryOrigin): string {
    const reads = this.reads;
    const abs = path.resolve(ctx.cwd, host);
    const signature = reads?.beforeStripping(abs);
    if (reads) reads.saw('P', ctx.strip, stripIdentity(ctx.strip));
    try {
      return contentPathFor(
        host,
        ctx,
        reads && ((digest) => reads.stripped(abs, signature ?? '', digest)),
        // Which copy wins depends on two timestamps at this moment: no memo of this tree.
        reads && ((copy) => reads.unrecordable(`${copy} was used as it is (--compat=osv)`)),
      );
    } catch (e) {
      throw new OsvbError('OSVB_IO', `cannot keep a stripped copy of "${host}" in ${ctx.cacheDir}: ${(e as Error).message}`, {
        location: { file: origin.file, line: origin.line },
        cause: e,
      });
    }
  }
}
