/**
 * Expanding a module's FileMap (`usr_files` / `bootfs_files`) into manifest lines, after
 * `make module`, with OSv's rules (spec §3.9): mappings in add() order into one ordered
 * guest → host map, directories walked with os.walk semantics and filtered, then links.
 */
import * as fs from 'node:fs';
import { OsvbError, type SourceLocation } from '../errors/index.js';
import { isLink, isRegularFile, lexists, pyJoin, pyRelpath, pyWalk, type WalkOrder } from '../fsutil/index.js';
import type { CallSite, FileMapRecord } from '../evaluate/types.js';
import { compilePattern, matchesPattern, type PatternMode } from './pattern.js';

export interface FileMapOptions {
  walkOrder: WalkOrder;
  patternMode: PatternMode;
  moduleName: string;
  /** Told about every path the expansion depends on: roots it tested, directories it listed. */
  observe?: (path: string, what: 'root' | 'dir') => void;
}

function siteLocation(site: CallSite | null): { location?: SourceLocation } {
  return site ? { location: { file: site.file, line: site.line } } : {};
}




/** Manifest text (`guest: host\n` lines, then `guest: ->target\n` links). */
export function expandFileMap(fm: FileMapRecord, opts: FileMapOptions): string {
  const guestToHost = new Map<string, string>();
  const add = (guest: string, host: string, allowSymlink: boolean, site: CallSite | null): void => {
    const old = guestToHost.get(guest);
    if (old !== undefined && old !== host) {
      throw new OsvbError('OSVB_FILEMAP', `Guest path '${guest}' already mapped to '${old}', tried to remap to '${host}'`, {
        ...siteLocation(site),
        hint: `in the FileMap of module ${opts.moduleName}`,
      });
    }
    if (allowSymlink && isLink(host)) host = '!' + host;
    guestToHost.set(guest, host);
  };

  for (const m of fm.mappings) {
    let root = m.host;
    const where = siteLocation(m.site);
    opts.observe?.(root, 'root');
    if (!root.startsWith('/')) throw new OsvbError('OSVB_FILEMAP', `Relative paths not allowed: ${root}`, where);
    if (!m.guest) {
      throw new OsvbError('OSVB_FILEMAP', `Unfinished mapping for ${root}. Did you forget to call .to()?`, where);
    }
    if (!lexists(root)) {
      throw new OsvbError('OSVB_FILEMAP', `Path does not exist: ${root}`, {
        ...where,
        hint: `module ${opts.moduleName} maps it in a FileMap; FileMaps are expanded after "make module", so its build must create it`,
      });
    }
    if (isRegularFile(root) || (isLink(root) && m.allowSymlink)) {
      if (m.filters.length > 0) throw new OsvbError('OSVB_FILEMAP', 'Filters only allowed when adding directory', where);
      if (m.allowSymlink) root = '!' + root;
      add(m.guest, root, m.allowSymlink, m.site);
      continue;
    }
    const filters = m.filters.map((f) => ({ re: compilePattern(f.pattern, opts.patternMode), exclude: f.exclude }));
    const hasInclude = filters.some((f) => !f.exclude);
    for (const step of pyWalk(root, opts.walkOrder, undefined, opts.observe ? (d) => opts.observe?.(d, 'dir') : undefined)) {
      for (const filename of step.filenames) {
        const hostPath = pyJoin(step.dirpath, filename);
        const rel = pyRelpath(hostPath, root);
        let include = !hasInclude;
        for (const f of filters) if (matchesPattern(f.re, rel)) include = !f.exclude;
        if (include) add(pyJoin(m.guest, rel), hostPath, m.allowSymlink, m.site);
      }
    }
  }

  let out = '';
  for (const [guest, host] of guestToHost) out += `${guest}: ${host}\n`;
  for (const link of fm.links) {
    if (link.target === null || link.target === '') {
      throw new OsvbError('OSVB_FILEMAP', `Unfinished symlink mapping for ${link.guest}. Did you forget to call .to()?`, siteLocation(link.site));
    }
    out += `${link.guest}: ->${link.target}\n`;
  }
  return out;
}
