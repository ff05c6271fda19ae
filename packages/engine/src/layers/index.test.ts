/** Layers resolve manifest entries with the ROFS tree's resolution: same answers, same errors. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { OsvbError } from '../errors/index.js';
import { initHashing, StatCache } from '../hash/index.js';
import { buildRofsTree } from '../image/rofs/index.js';
import { useTempDirs } from '../testing/index.js';
import { layerEntries, type LayerOptions } from './index.js';

const tempDir = useTempDirs('osvb-layers-', 'all');

function setup(): { build: string; opts: LayerOptions } {
  const build = path.join(tempDir(), 'build');
  fs.mkdirSync(path.join(build, 'd', 'sub'), { recursive: true });
  fs.writeFileSync(path.join(build, 'd', 'a'), 'a');
  fs.chmodSync(path.join(build, 'd', 'a'), 0o640);
  fs.writeFileSync(path.join(build, 'd', 'sub', 'b'), 'b');
  fs.chmodSync(path.join(build, 'd', 'sub', 'b'), 0o750);
  fs.writeFileSync(path.join(build, 'd', 'x-stripped.so'), 'x');
  fs.symlinkSync('a', path.join(build, 'd', 'ln'));
  fs.symlinkSync('sub', path.join(build, 'd', 'dirln'));
  fs.mkdirSync(path.join(build, 'e'));
  fs.chmodSync(path.join(build, 'e'), 0o711);
  const opts: LayerOptions = {
    cwd: build,
    defines: {},
    walkOrder: 'sorted',
    strip: { cwd: build, strip: 'strip', cacheDir: path.join(build, '..', 'cache'), warn: () => {} },
    statCache: new StatCache(undefined),
    file: 'usr.manifest',
  };
  return { build, opts };
}

describe('layerEntries', () => {
  it('resolves links, directories, files (with modes) and skips *-stripped.so, as the ROFS tree does', async () => {
    const { build, opts } = setup();
    const text = '[manifest]\n/d/**: d/**\n/l: d/ln\n/t: ->/x\n/e: e\n/f: !d/ln\n';
    const entries = layerEntries(text, opts);
    expect(entries).toEqual([
      { guest: '/d/a', kind: 'file', source: path.join(build, 'd/a'), mode: 0o640 },
      // A host link is resolved (unsymlink); `!` keeps it a link.
      { guest: '/d/ln', kind: 'file', source: path.join(build, 'd/a'), mode: 0o640 },
      { guest: '/d/sub/b', kind: 'file', source: path.join(build, 'd/sub/b'), mode: 0o750 },
      { guest: '/l', kind: 'file', source: path.join(build, 'd/a'), mode: 0o640 },
      { guest: '/t', kind: 'link', target: '/x' },
      { guest: '/e', kind: 'dir', mode: 0o711 },
      { guest: '/f', kind: 'link', target: 'a' },
    ]);
    const tree = await buildRofsTree(text, { file: 'usr.manifest', cwd: build, strip: false });
    expect([...tree.root.entries.keys()]).toEqual(['d', 'l', 't', 'e', 'f']);
    const d = tree.root.entries.get('d');
    expect(d?.kind === 'dir' && [...d.entries.keys()]).toEqual(['a', 'ln', 'sub']);
    const ln = d?.kind === 'dir' ? d.entries.get('ln') : undefined;
    expect(ln?.kind === 'file' && ln.source).toBe(path.join(build, 'd/a'));
    expect(tree.root.entries.get('f')).toMatchObject({ kind: 'link', target: 'a' });
    expect(tree.root.entries.get('e')?.kind).toBe('dir');
  });

  it('names a missing host file at its line with the ROFS tree\'s text', async () => {
    await initHashing();
    const { build, opts } = setup();
    const text = '[manifest]\n/a: d/a\n/m: missing\n';
    let layers: unknown;
    try {
      layerEntries(text, opts);
    } catch (e) {
      layers = e;
    }
    let rofs: unknown;
    try {
      await buildRofsTree(text, { file: 'usr.manifest', cwd: build, strip: false });
    } catch (e) {
      rofs = e;
    }
    expect(layers).toBeInstanceOf(OsvbError);
    expect(rofs).toBeInstanceOf(OsvbError);
    const [l, r] = [layers as OsvbError, rofs as OsvbError];
    expect(l.message).toBe('host file "missing" for guest path "/m" does not exist');
    expect(l.message).toBe(r.message);
    expect(l.code).toBe(r.code);
    expect(l.location).toEqual({ file: 'usr.manifest', line: 3 });
    expect(l.location).toEqual(r.location);
    expect(l.format()).toBe(r.format());
  });
});
