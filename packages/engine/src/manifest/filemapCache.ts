/**
 * Cached FileMap expansion: the result is reused while the FileMap record is the same and
 * every path it depended on is unchanged — each root's type and identity, and each listed
 * directory's mtime and inode (a directory's mtime changes whenever an entry is added,
 * removed, renamed or replaced). Unchanged → no walk.
 */
import type { FileMapRecord } from '../evaluate/types.js';
import { digestValue } from '../hash/index.js';
import { lstatQuiet, statSignature } from '../fsutil/index.js';
import { expandFileMap, type FileMapOptions } from './filemap.js';

export interface FileMapCacheStore {
  get(key: string): FileMapCacheEntry | undefined;
  put(key: string, entry: FileMapCacheEntry): void;
}

export interface FileMapCacheEntry {
  text: string;
  /** [path, signature] where signature is `kind:ino:mtimeMs` of lstat and stat. */
  deps: Array<[string, string]>;
}

const RACY_MS = 2000;

function signature(p: string): string {
  return `${statSignature(p, false)}|${statSignature(p, true)}`;
}

function fresh(p: string, now: number): boolean {
  const st = lstatQuiet(p);
  return !!st && st.mtimeMs >= now - RACY_MS;
}

export function expandFileMapCached(fm: FileMapRecord, opts: FileMapOptions, store: FileMapCacheStore | undefined, engine: string): string {
  if (!store) return expandFileMap(fm, opts);
  const key = digestValue({ engine, fm, walkOrder: opts.walkOrder, patternMode: opts.patternMode, module: opts.moduleName });
  const hit = store.get(key);
  if (hit && hit.deps.every(([p, sig]) => signature(p) === sig)) {
    for (const [p] of hit.deps) opts.observe?.(p, 'dir');
    return hit.text;
  }
  const seen = new Set<string>();
  const text = expandFileMap(fm, {
    ...opts,
    observe: (p, what) => {
      seen.add(p);
      opts.observe?.(p, what);
    },
  });
  const now = Date.now();
  const deps: Array<[string, string]> = [];
  for (const p of seen) {
    // A directory changed in the last moments could change again within the same mtime tick.
    if (fresh(p, now)) return text;
    deps.push([p, signature(p)]);
  }
  store.put(key, { text, deps });
  return text;
}
