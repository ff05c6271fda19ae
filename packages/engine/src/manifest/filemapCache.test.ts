import * as fs from 'node:fs';
import * as path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { initHashing } from '../hash/index.js';
import type { FileMapRecord } from '../evaluate/types.js';
import { expandFileMapCached, type FileMapCacheEntry, type FileMapCacheStore } from './filemapCache.js';
import { useTempDirs } from '../testing/index.js';

const tempDir = useTempDirs('osvb-fmc-', 'all');

function memoryStore(): FileMapCacheStore & { puts: number; hits: number } {
  const m = new Map<string, FileMapCacheEntry>();
  const s = {
    puts: 0,
    hits: 0,
    get(k: string) {
      const e = m.get(k);
      if (e) s.hits++;
      return e;
    },
    put(k: string, e: FileMapCacheEntry) {
      s.puts++;
      m.set(k, e);
    },
  };
  return s;
}

/** Make every path under dir look old, so the cache trusts its mtimes. */
function age(dir: string): void {
  const t = new Date(Date.now() - 60_000);
  const walk = (p: string): void => {
    fs.utimesSync(p, t, t);
    if (fs.statSync(p).isDirectory()) for (const n of fs.readdirSync(p)) walk(path.join(p, n));
  };
  walk(dir);
}

describe('cached FileMap expansion', () => {
  let root: string;
  let fm: FileMapRecord;
  const opts = { walkOrder: 'sorted' as const, patternMode: 'default' as const, moduleName: 'm' };

  beforeAll(async () => {
    await initHashing();
    root = tempDir();
    fs.mkdirSync(path.join(root, 'lib/sub'), { recursive: true });
    fs.writeFileSync(path.join(root, 'lib/a.so'), 'a');
    fs.writeFileSync(path.join(root, 'lib/sub/b.so'), 'b');
    fs.writeFileSync(path.join(root, 'lib/readme'), 'r');
    age(root);
    fm = { mappings: [{ host: path.join(root, 'lib'), guest: '/usr/lib', filters: [{ pattern: '**/*.so', exclude: false }], allowSymlink: false, site: null }], links: [] };
  });

  it('reuses the expansion while nothing it walked changed', () => {
    const store = memoryStore();
    const first = expandFileMapCached(fm, opts, store, 'test');
    expect(first).toBe(`/usr/lib/a.so: ${root}/lib/a.so\n/usr/lib/sub/b.so: ${root}/lib/sub/b.so\n`);
    expect(store.puts).toBe(1);
    const second = expandFileMapCached(fm, opts, store, 'test');
    expect(second).toBe(first);
    expect(store.hits).toBe(1);
    expect(store.puts).toBe(1);
  });

  it('walks again when a walked directory gains a file', () => {
    const store = memoryStore();
    expandFileMapCached(fm, opts, store, 'test');
    fs.writeFileSync(path.join(root, 'lib/sub/c.so'), 'c');
    age(root);
    const after = expandFileMapCached(fm, opts, store, 'test');
    expect(after).toContain(`/usr/lib/sub/c.so: ${root}/lib/sub/c.so`);
    expect(store.puts).toBe(2);
  });

  it('does not store a result that depends on a directory changed moments ago', () => {
    const store = memoryStore();
    fs.writeFileSync(path.join(root, 'lib/d.so'), 'd');
    const text = expandFileMapCached(fm, opts, store, 'test');
    expect(text).toContain('/usr/lib/d.so');
    expect(store.puts).toBe(0);
  });
});
