/**
 * Layers: what each part of the image contributes to the guest — the skeleton, every module
 * (its manifest and FileMap lines), and what the build generated — as an ordered list of
 * entries (guest path, kind, content file or link target, mode), resolved the way OSv's image
 * tools resolve manifests (defines, `/**`, `/&/`, host links, `.so` stripping, §6–§8).
 * A layer's digest covers its entries and their contents, so an unchanged module keeps its
 * layer digest and writers can skip it.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { WalkOrder } from '../fsutil/index.js';
import { digestValue, type Digest, type StatCache } from '../hash/index.js';
import { applyDefines, expandEntry, parseManifest } from '../manifest/index.js';
import type { StripContext } from '../image/strip.js';
import { EntryResolver, hostFileError } from './resolve.js';

export { EntryResolver, hostFileError, errnoText, type EntryReadObserver, type EntryResolveOptions, type EntryOrigin, type ResolvedEntry, type ResolvedFile } from './resolve.js';

export interface ImageEntry {
  guest: string;
  kind: 'file' | 'dir' | 'link';
  /** Content file for kind 'file' (a stripped copy for stripped `.so` files). */
  source?: string;
  /** Link target for kind 'link'. */
  target?: string;
  /** Permission bits of the host file or directory. */
  mode?: number;
}

export interface Layer {
  name: string;
  kind: 'skeleton' | 'module' | 'generated';
  entries: ImageEntry[];
  digest: Digest;
}

export interface LayerOptions {
  /** BUILD: relative hosts resolve against it. */
  cwd: string;
  defines: Readonly<Record<string, string>>;
  walkOrder: WalkOrder;
  strip: StripContext;
  statCache: StatCache;
  /** Manifest file named in errors (the generated usr.manifest). */
  file: string;
}


/**
 * Entries of one manifest section, resolved as the ROFS tree resolves them (resolve.ts: strip
 * before the link test, §6.7); a host file that cannot be imaged is an error at its line, with
 * the ROFS tree's text. A file or directory keeps its host permission bits (the original's, for
 * a stripped `.so`).
 */
export function layerEntries(text: string, opts: LayerOptions): ImageEntry[] {
  const out: ImageEntry[] = [];
  const cwd = path.resolve(opts.cwd);
  const resolver = new EntryResolver({ cwd, strip: opts.strip });
  for (const raw of parseManifest(text, opts.file)) {
    const where = { file: opts.file, line: raw.line };
    const defined = { ...raw, host: applyDefines(raw.host, opts.defines, where) };
    for (const e of expandEntry(defined, cwd, opts.walkOrder)) {
      const r = resolver.resolve(e.host, where);
      if (r.kind === 'link') out.push({ guest: e.guest, kind: 'link', target: r.target });
      else if (r.kind === 'dir') out.push({ guest: e.guest, kind: 'dir', mode: r.st.mode & 0o777 });
      else if (r.kind === 'file') {
        if (r.problem || !r.st) throw hostFileError(r.host, e.guest, r.problem ?? 'does not exist', where);
        const mode = r.stripped ? fs.statSync(path.resolve(cwd, r.host)).mode : r.st.mode;
        out.push({ guest: e.guest, kind: 'file', source: r.source, mode: mode & 0o777 });
      }
    }
  }
  return out;
}

/** The digest of a layer: its entries with the digests (not paths) of their contents. */
export function layerDigest(name: string, entries: readonly ImageEntry[], statCache: StatCache): Digest {
  return digestValue({
    name,
    entries: entries.map((e) =>
      e.kind === 'file' ? { g: e.guest, k: 'f', d: statCache.digest(e.source as string), m: e.mode } : e.kind === 'link' ? { g: e.guest, k: 'l', t: e.target } : { g: e.guest, k: 'd', m: e.mode },
    ),
  });
}

export function computeLayers(sections: ReadonlyArray<{ name: string; kind: Layer['kind']; text: string }>, opts: LayerOptions): Layer[] {
  return sections.map((s) => {
    const entries = layerEntries(s.text, opts);
    return { name: s.name, kind: s.kind, entries, digest: layerDigest(s.name, entries, opts.statCache) };
  });
}
