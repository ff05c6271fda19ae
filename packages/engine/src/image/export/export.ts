/**
 * Export (spec §11): materialise a manifest as a directory tree, with OSv's
 * `scripts/export_manifest.py` semantics, made incremental.
 *
 * Planning follows export_manifest.py step by step on a model of the tree (parse → `/**` and
 * `/&/` → `-D` defines, applied AFTER expansion → unsymlink; then per entry in order: `->` links
 * at once; host symlinks remembered and created after everything else; regular files copied
 * (content and permission bits, `.so` stripped) after their parent directories were created,
 * `*-stripped.so` hosts skipped after that; host directories created empty; anything else
 * reported as `[ERR] unable to export HOST` and skipped). The model is then reconciled with
 * the disk using a record of the previous export (a dot-file beside the export directory, so
 * the exported tree itself stays exactly the manifest's): unchanged files are not touched
 * (their mtime is kept), changed ones are replaced atomically (temp file + rename), entries
 * that disappeared from the manifest are deleted, links and directories are reconciled.
 *
 * Deliberate differences from export_manifest.py (all cases where it crashes or writes
 * outside the export directory):
 * - a guest starting with `//` (os.path.join makes it absolute) or with a `..` component is an
 *   error (OSVB_EXPORT_PATH): nothing is ever written outside the export directory;
 * - a second link at a path already exported, a path below a file, and anything that would
 *   be written through a symlink the export itself created are errors (OSVB_EXPORT_CONFLICT)
 *   with the manifest line; OSv crashes with FileExistsError, or follows the link;
 * - errors are found before anything is written; OSv leaves a partial export;
 * - OSv's front end `rm -rf`s the directory first; osvb keeps it and reconciles. Files in it
 *   that osvb did not export (no record) are left alone.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { OsvbError } from '../../errors/index.js';
import { digestFile } from '../../hash/index.js';
import { pyBasename, pyJoin, tempNameFor, writeFileAtomic, type WalkOrder } from '../../fsutil/index.js';
import { applyDefines, expandEntry, parseManifest, unsymlink } from '../../manifest/index.js';
import { contentPathFor, type StripContext } from '../strip.js';

export interface ExportOptions {
  /** BUILD: relative hosts and a relative export directory resolve against it. */
  cwd: string;
  /** `-D` defines, applied after `/**` expansion, as export_manifest.py does. */
  defines?: Readonly<Record<string, string>>;
  walkOrder: WalkOrder;
  strip: Omit<StripContext, 'cwd'> & { cwd?: string };
  /** OSv-style progress lines (`[INFO] …`, `[ERR] …`), for the actions actually taken. */
  log?: (line: string) => void;
  /** Where the record of the export is kept; default `<parent>/.<name>.osvb-export.json`. */
  recordFile?: string;
}

export type ExportNode =
  | { rel: string; kind: 'dir'; line: number }
  | { rel: string; kind: 'file'; source: string; host: string; mode: number; line: number }
  | { rel: string; kind: 'link'; target: string; line: number };

export interface ExportPlan {
  /** Desired tree, parents before children (`rel` '' is the export directory itself). */
  nodes: ExportNode[];
  /** `[ERR] unable to export HOST` lines. */
  warnings: string[];
}

export interface ExportResult extends ExportPlan {
  exportDir: string;
  recordFile: string;
  /** Paths (relative to exportDir) written, created or replaced by this run. */
  written: string[];
  /** Paths removed because they are no longer exported. */
  removed: string[];
  unchanged: number;
}

function onDisk(cwd: string, p: string): string {
  return p === '' || p.startsWith('/') ? p : pyJoin(cwd, p);
}

/** Guest path → path relative to the export directory (normalised), or an error. */
export function exportRelPath(guest: string, where: { file: string; line: number }): string {
  const g = guest.startsWith('/') ? guest.slice(1) : guest;
  if (g.startsWith('/')) {
    throw new OsvbError('OSVB_EXPORT_PATH', `guest path "${guest}" starts with "//" and would be exported outside the export directory`, {
      location: where,
      hint: 'export_manifest.py joins it as an absolute path; write the guest path with a single leading /',
    });
  }
  const parts = g.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.includes('..')) {
    throw new OsvbError('OSVB_EXPORT_PATH', `guest path "${guest}" contains a ".." component and could be exported outside the export directory`, {
      location: where,
    });
  }
  return parts.join('/');
}

function parentOf(rel: string): string {
  const i = rel.lastIndexOf('/');
  return i < 0 ? '' : rel.slice(0, i);
}

function joinRel(a: string, b: string): string {
  return a === '' ? b : `${a}/${b}`;
}

/** The desired tree, computed the way export_manifest.py builds it. Reads hosts; writes nothing but stripped copies in the cache. */
export function planExport(manifestText: string, file: string, opts: Omit<ExportOptions, 'log' | 'recordFile'>): ExportPlan {
  const defines = opts.defines ?? {};
  const ctx: StripContext = { ...opts.strip, cwd: opts.strip.cwd ?? opts.cwd };
  const nodes = new Map<string, ExportNode>();
  const warnings: string[] = [];
  const deferred: Array<{ rel: string; target: string; line: number }> = [];

  const kindAt = (rel: string): ExportNode['kind'] | undefined => (rel === '' ? 'dir' : nodes.get(rel)?.kind);
  const describe = (rel: string): string => {
    const n = nodes.get(rel);
    return n ? `${n.kind === 'dir' ? 'a directory' : n.kind === 'file' ? 'a file' : 'a symbolic link'} (line ${n.line})` : 'nothing';
  };
  const makedirs = (rel: string, line: number): void => {
    if (rel === '') return;
    const parts = rel.split('/');
    for (let i = 1; i <= parts.length; i++) {
      const prefix = parts.slice(0, i).join('/');
      const k = kindAt(prefix);
      if (k === 'dir') continue;
      if (k === undefined) {
        nodes.set(prefix, { rel: prefix, kind: 'dir', line });
        continue;
      }
      throw new OsvbError(
        'OSVB_EXPORT_CONFLICT',
        k === 'file'
          ? `cannot create directory "/${rel}": "/${prefix}" is already exported as ${describe(prefix)}`
          : `cannot create "/${rel}": "/${prefix}" is exported as ${describe(prefix)}, and osvb never writes through links`,
        { location: { file, line } },
      );
    }
  };
  const addLink = (rel: string, target: string, line: number): void => {
    if (target === '') {
      // A symbolic link cannot have an empty target (export_manifest.py crashes on it).
      throw new OsvbError('OSVB_EXPORT_LINK', `cannot export "/${rel}" as a symbolic link with an empty target ("->" names no target)`, { location: { file, line } });
    }
    makedirs(parentOf(rel), line);
    if (kindAt(rel) !== undefined) {
      throw new OsvbError('OSVB_EXPORT_CONFLICT', `cannot create link "/${rel}" -> ${target}: the path is already exported as ${rel === '' ? 'the export directory' : describe(rel)}`, {
        location: { file, line },
        hint: 'export_manifest.py crashes here (FileExistsError)',
      });
    }
    nodes.set(rel, { rel, kind: 'link', target, line });
  };

  for (const raw of parseManifest(manifestText, file)) {
    const where = { file, line: raw.line };
    for (const e of expandEntry(raw, opts.cwd, opts.walkOrder)) {
      const host = unsymlink(applyDefines(e.host, defines, where), opts.cwd, where);
      const rel = exportRelPath(e.guest, where);
      if (host.startsWith('->')) {
        addLink(rel, host.slice(2), raw.line);
        continue;
      }
      const p = onDisk(opts.cwd, host);
      let lst: fs.Stats | undefined;
      try {
        lst = fs.lstatSync(p);
      } catch {
        lst = undefined;
      }
      if (lst?.isSymbolicLink()) {
        deferred.push({ rel, target: fs.readlinkSync(p), line: raw.line });
        continue;
      }
      let st: fs.Stats | undefined;
      try {
        st = fs.statSync(p);
      } catch {
        st = undefined;
      }
      if (st?.isFile()) {
        makedirs(parentOf(rel), raw.line);
        if (host.endsWith('-stripped.so')) continue;
        const source = contentPathFor(host, ctx);
        const stripped = source !== path.resolve(opts.cwd, host);
        let dest = rel;
        if (kindAt(rel) === 'dir') {
          // shutil.copy into an existing directory: the file lands inside it, under its (stripped) name.
          dest = joinRel(rel, pyBasename(stripped ? host.slice(0, -3) + '-stripped.so' : host));
        }
        const k = kindAt(dest);
        if (k === 'dir' || k === 'link') {
          throw new OsvbError('OSVB_EXPORT_CONFLICT', `cannot export file "${host}" to "/${dest}": the path is already exported as ${describe(dest)}`, {
            location: where,
          });
        }
        nodes.set(dest, { rel: dest, kind: 'file', source, host, mode: st.mode & 0o7777, line: raw.line });
      } else if (st?.isDirectory()) {
        if (kindAt(rel) === undefined) makedirs(rel, raw.line);
      } else {
        warnings.push(`[ERR] unable to export ${host}`);
      }
    }
  }
  for (const d of deferred) addLink(d.rel, d.target, d.line);
  return { nodes: [...nodes.values()], warnings };
}

// ---------------------------------------------------------------------------------------------
// Reconciliation with the disk.

const RECORD_VERSION = 1;
/** A source modified this recently is not trusted by its stat signature (same tick, same size). */
const RACY_NS = 2_000_000_000n;

type RecordEntry =
  | { kind: 'dir' }
  | { kind: 'file'; digest: string; mode: number; src: string; srcSig: string; dstSig: string }
  | { kind: 'link'; target: string };

interface ExportRecord {
  v: number;
  dir: string;
  entries: Record<string, RecordEntry>;
}

export function defaultExportRecordFile(exportDir: string): string {
  return path.join(path.dirname(exportDir), `.${path.basename(exportDir)}.osvb-export.json`);
}

function safeRel(rel: string): boolean {
  return !rel.startsWith('/') && !rel.split('/').some((p) => p === '..' || p === '.');
}

function loadRecord(file: string, dir: string): Map<string, RecordEntry> {
  try {
    const data = JSON.parse(fs.readFileSync(file, 'utf8')) as ExportRecord;
    if (data.v !== RECORD_VERSION || data.dir !== dir) return new Map();
    return new Map(Object.entries(data.entries).filter(([rel]) => rel !== '' && safeRel(rel)));
  } catch {
    return new Map();
  }
}

function lstatOrUndefined(p: string): fs.BigIntStats | undefined {
  try {
    return fs.lstatSync(p, { bigint: true });
  } catch {
    return undefined;
  }
}

function sigOf(st: fs.BigIntStats): string {
  return `${st.size}:${st.mtimeNs}:${st.ctimeNs}:${st.ino}:${st.dev}`;
}

/** Export a manifest into `exportDir`, writing only what changed since the last export there. */
export function exportManifest(manifestText: string, file: string, exportDir: string, opts: ExportOptions): ExportResult {
  const dir = path.resolve(opts.cwd, exportDir);
  if (path.dirname(dir) === dir) {
    throw new OsvbError('OSVB_EXPORT_PATH', `refusing to export into the file system root "${dir}"`);
  }
  const plan = planExport(manifestText, file, opts);
  const log = opts.log ?? ((): void => {});
  const recordFile = opts.recordFile ?? defaultExportRecordFile(dir);
  const previous = loadRecord(recordFile, dir);
  const next: Record<string, RecordEntry> = {};
  const written: string[] = [];
  const removed: string[] = [];
  let unchanged = 0;
  const abs = (rel: string): string => (rel === '' ? dir : path.join(dir, rel));

  log(`[INFO] exporting into directory ${dir}`);
  fs.mkdirSync(dir, { recursive: true });

  // Directories verified to be real directories (not links) inside the export directory.
  const realDirs = new Set<string>(['']);
  const parentIsReal = (rel: string): boolean => {
    const parts = rel.split('/');
    for (let i = 1; i < parts.length; i++) {
      const prefix = parts.slice(0, i).join('/');
      if (realDirs.has(prefix)) continue;
      if (!lstatOrUndefined(abs(prefix))?.isDirectory()) return false;
      realDirs.add(prefix);
    }
    return true;
  };

  // 1. Entries exported last time and not wanted now: deepest first.
  const wanted = new Set(plan.nodes.map((n) => n.rel));
  const stale = [...previous.entries()].filter(([rel]) => !wanted.has(rel));
  stale.sort((a, b) => b[0].split('/').length - a[0].split('/').length || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  for (const [rel, entry] of stale) {
    if (!parentIsReal(rel)) continue;
    const st = lstatOrUndefined(abs(rel));
    if (!st) continue;
    try {
      if (entry.kind === 'dir' && st.isDirectory()) fs.rmdirSync(abs(rel));
      else if (entry.kind === 'file' && st.isFile()) fs.unlinkSync(abs(rel));
      else if (entry.kind === 'link' && st.isSymbolicLink()) fs.unlinkSync(abs(rel));
      else continue;
    } catch {
      continue; // e.g. a directory that still holds files osvb did not export
    }
    removed.push(rel);
    log(`[INFO] removed ${abs(rel)}`);
  }

  // 2. The desired tree, parents first.
  const now = BigInt(Date.now()) * 1_000_000n;
  for (const node of plan.nodes) {
    const target = abs(node.rel);
    if (!parentIsReal(node.rel)) {
      // Only possible if the disk changed under us; never write through it.
      throw new OsvbError('OSVB_EXPORT_CONFLICT', `a parent of ${target} is not a directory`, { location: { file, line: node.line } });
    }
    const st = node.rel === '' ? undefined : lstatOrUndefined(target);
    if (node.kind === 'dir') {
      if (node.rel === '' || st?.isDirectory()) {
        unchanged++;
      } else {
        if (st) fs.rmSync(target, { force: true });
        fs.mkdirSync(target);
        written.push(node.rel);
        log(`[INFO] created dir ${target}`);
      }
      realDirs.add(node.rel);
      next[node.rel] = { kind: 'dir' };
    } else if (node.kind === 'link') {
      if (st?.isSymbolicLink() && fs.readlinkSync(target) === node.target) {
        unchanged++;
      } else {
        const tmp = tempNameFor(target);
        fs.symlinkSync(node.target, tmp);
        try {
          if (st?.isDirectory()) fs.rmSync(target, { recursive: true, force: true });
          fs.renameSync(tmp, target);
        } catch (e) {
          fs.rmSync(tmp, { force: true });
          throw e;
        }
        written.push(node.rel);
        log(`[INFO] added link ${target} -> ${node.target}`);
      }
      next[node.rel] = { kind: 'link', target: node.target };
    } else {
      const prev = previous.get(node.rel);
      const srcSt = fs.statSync(node.source, { bigint: true });
      const srcSig = sigOf(srcSt);
      const digest =
        prev?.kind === 'file' && prev.src === node.source && prev.srcSig !== '' && prev.srcSig === srcSig ? prev.digest : digestFile(node.source);
      const intact =
        prev?.kind === 'file' &&
        st?.isFile() === true &&
        sigOf(st) === prev.dstSig &&
        Number(st.mode & 0o7777n) === prev.mode &&
        prev.digest === digest &&
        prev.mode === node.mode;
      let dstSt = st;
      if (intact) {
        unchanged++;
      } else {
        const tmp = tempNameFor(target);
        try {
          fs.copyFileSync(node.source, tmp);
          fs.chmodSync(tmp, node.mode);
          if (st?.isDirectory()) fs.rmSync(target, { recursive: true, force: true });
          fs.renameSync(tmp, target);
        } catch (e) {
          fs.rmSync(tmp, { force: true });
          throw e;
        }
        dstSt = fs.lstatSync(target, { bigint: true });
        written.push(node.rel);
        log(`[INFO] exported ${target}`);
      }
      const racy = srcSt.mtimeNs + RACY_NS > now || srcSt.ctimeNs + RACY_NS > now;
      next[node.rel] = {
        kind: 'file',
        digest,
        mode: node.mode,
        src: node.source,
        srcSig: racy ? '' : srcSig,
        dstSig: sigOf(dstSt as fs.BigIntStats),
      };
    }
  }
  for (const w of plan.warnings) log(w);

  writeFileAtomic(recordFile, JSON.stringify({ v: RECORD_VERSION, dir, entries: next } satisfies ExportRecord) + '\n');
  return { ...plan, exportDir: dir, recordFile, written, removed, unchanged };
}
