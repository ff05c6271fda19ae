/**
 * Stage B expansion (spec §6.4–6.6): `-D` defines (`%(NAME)s`), `/**` tree copies, `/&/`
 * shared suffixes and host symlink resolution (`unsymlink`). Relative hosts are relative to
 * the build path (OSv's image tools run there); strings are never normalised.
 */
import * as fs from 'node:fs';
import { OsvbError } from '../errors/index.js';
import { errorValue, pyDirname, pyJoin, pyWalk, type WalkOrder } from '../fsutil/index.js';
import type { ManifestEntry } from './parse.js';

export interface ExpandOptions {
  /** Directory relative hosts are resolved against (BUILD). */
  cwd: string;
  walkOrder: WalkOrder;
  defines: Readonly<Record<string, string>>;
  /** Manifest file name for error messages. */
  file: string;
}

export type EntryKind = 'file' | 'dir' | 'link' | 'missing';

export interface ExpandedEntry {
  guest: string;
  /** Host path after expansion and resolution, or `->TARGET` for a guest symlink. */
  host: string;
  kind: EntryKind;
  /** Link target for kind 'link'. */
  target?: string;
  line: number;
}

/** Python's `host % defines` for the forms manifests use: `%(NAME)s`, `%%`, `%s`. */
export function applyDefines(host: string, defines: Readonly<Record<string, string>>, where: { file: string; line: number }): string {
  if (!host.includes('%')) return host;
  return host.replace(/%(\(([^)]*)\))?(.?)/gs, (whole, named: string | undefined, name: string | undefined, conv: string) => {
    if (!named && conv === '%') return '%';
    if (conv !== 's' && conv !== 'r') {
      throw new OsvbError('OSVB_MANIFEST_DEFINE', `unsupported format "${whole}" in host path "${host}"`, {
        location: where,
        hint: 'host paths may use %(NAME)s for a -D NAME=VALUE define and %% for a literal %',
      });
    }
    if (!named) {
      const repr = '{' + Object.entries(defines).map(([k, v]) => `'${k}': '${v}'`).join(', ') + '}';
      return repr;
    }
    const value = Object.hasOwn(defines, name as string) ? defines[name as string] : undefined;
    if (value === undefined) {
      throw new OsvbError('OSVB_MANIFEST_DEFINE', `undefined define %(${name})s in host path "${host}"`, {
        location: where,
        hint: `pass -D ${name}=VALUE`,
      });
    }
    return value;
  });
}

/** Joined, not normalised: `link/..` must go where the kernel (and OSv's tools, run in cwd) go. */
function resolveFs(cwd: string, p: string): string {
  return p === '' || p.startsWith('/') ? p : pyJoin(cwd, p);
}

/**
 * Told what unsymlink learnt from the file system: `R` what readlink gave for a path (`l:TARGET`,
 * or `-`/`!CODE` when it is no link), `E` whether a path exists (`1`/`0`). The ROFS writer keeps
 * these to know later, without resolving again, that the resolution would be the same.
 */
export interface LinkReadObserver {
  saw(kind: 'R' | 'E', path: string, value: string): void;
}

function exists(cwd: string, p: string, observe: LinkReadObserver | undefined): boolean {
  const at = resolveFs(cwd, p);
  const yes = fs.existsSync(at);
  observe?.saw('E', at, yes ? '1' : '0');
  return yes;
}

/** OSv's `unsymlink`, with its endless sysroot search and symlink loops turned into errors. */
export function unsymlink(host: string, cwd: string, where: { file: string; line: number }, observe?: LinkReadObserver): string {
  return unsymlinkAt(host, cwd, where, 0, observe);
}

function unsymlinkAt(host: string, cwd: string, where: { file: string; line: number }, depth: number, observe: LinkReadObserver | undefined): string {
  if (host.startsWith('!')) return host.slice(1);
  if (host.startsWith('->')) return host;
  let link: string;
  const at = resolveFs(cwd, host);
  try {
    link = fs.readlinkSync(at);
  } catch (e) {
    observe?.saw('R', at, errorValue(e));
    return host;
  }
  observe?.saw('R', at, `l:${link}`);
  if (depth > 64) {
    throw new OsvbError('OSVB_SYMLINK', `symbolic link loop while resolving host path ${host}`, { location: where });
  }
  let base: string;
  if (link.startsWith('/')) {
    base = pyDirname(host);
    while (!exists(cwd, base + link, observe)) {
      if (base === '/') return host;
      const up = pyDirname(base);
      if (up === base) {
        throw new OsvbError('OSVB_SYMLINK', `cannot resolve ${host} -> ${link}: ${link} exists under no parent directory of ${host}`, {
          location: where,
          hint: 'OSv\'s image tools hang on such a link; make the host path absolute, or the link target reachable',
        });
      }
      base = up;
    }
  } else {
    base = pyDirname(host) + '/';
  }
  return unsymlinkAt(base + link, cwd, where, depth + 1, observe);
}

/** `/**` and `/&/` expansion of one entry (first matching rule only). */
export function* expandEntry(e: ManifestEntry, cwd: string, walkOrder: WalkOrder): Generator<ManifestEntry> {
  const { guest, host } = e;
  if (guest.endsWith('/**') && host.endsWith('/**')) {
    const g = guest.slice(0, -2);
    const h = host.slice(0, -2);
    for (const step of pyWalk(h, walkOrder, cwd)) {
      let rel = step.dirpath.slice(h.length);
      if (rel !== '') rel += '/';
      for (const f of step.filenames) yield { guest: g + rel + f, host: h + rel + f, line: e.line };
    }
  } else if (guest.includes('/&/') && host.endsWith('/&')) {
    const i = guest.indexOf('/&/');
    const prefix = guest.slice(0, i);
    const suffix = guest.slice(i + 3);
    yield { guest: prefix + '/' + suffix, host: host.slice(0, -1) + suffix, line: e.line };
  } else {
    yield e;
  }
}

export function classifyHost(host: string, cwd: string, where?: { file: string; line: number }): { kind: EntryKind; target?: string } {
  if (host.startsWith('->')) return { kind: 'link', target: host.slice(2) };
  const p = resolveFs(cwd, host);
  let st: fs.Stats;
  try {
    st = fs.lstatSync(p);
  } catch {
    return { kind: 'missing' };
  }
  if (st.isSymbolicLink()) {
    try {
      return { kind: 'link', target: fs.readlinkSync(p) };
    } catch (e) {
      // e.g. /proc/1/cwd for another user: a link we may see but not read.
      throw new OsvbError('OSVB_IMAGE_INPUT', `host path ${host} is a symbolic link that cannot be read (${(e as NodeJS.ErrnoException).code ?? String(e)})`, {
        ...(where ? { location: where } : {}),
      });
    }
  }
  if (st.isDirectory()) return { kind: 'dir' };
  return { kind: 'file' };
}

/** The full stage B list: defines, expansion, resolution, classification. */
export function expandManifestEntries(entries: readonly ManifestEntry[], opts: ExpandOptions): ExpandedEntry[] {
  const out: ExpandedEntry[] = [];
  for (const raw of entries) {
    const where = { file: opts.file, line: raw.line };
    const defined = { ...raw, host: applyDefines(raw.host, opts.defines, where) };
    for (const e of expandEntry(defined, opts.cwd, opts.walkOrder)) {
      const host = unsymlink(e.host, opts.cwd, where);
      const c = classifyHost(host, opts.cwd, where);
      out.push({ guest: e.guest, host, kind: c.kind, ...(c.target !== undefined ? { target: c.target } : {}), line: e.line });
    }
  }
  return out;
}
