import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { OsvbError } from '../../errors/index.js';
import { initHashing } from '../../hash/index.js';
import { defaultExportRecordFile, exportManifest, type ExportOptions } from './index.js';
import { useTempDirs, strippableElf } from '../../testing/index.js';

/**
 * testdata/CASE.json: a host tree and a manifest; CASE.expected.json: the tree OSv's
 * scripts/export_manifest.py exported for it and the `[ERR]` lines it printed
 * (testdata/generate.py, run by hand against an OSv checkout).
 */
const TESTDATA = path.join(path.dirname(fileURLToPath(import.meta.url)), 'testdata');

interface NodeSpec {
  text?: string;
  repeat?: number;
  mode?: number;
  link?: string;
  dir?: boolean;
}
interface Case {
  cwd: string;
  tree: Record<string, NodeSpec>;
  defines: Record<string, string>;
  manifest: string;
}
interface Described {
  path: string;
  kind: 'file' | 'dir' | 'link';
  mode?: number;
  sha256?: string;
  target?: string;
}

function materialise(root: string, tree: Record<string, NodeSpec>): void {
  for (const [rel, spec] of Object.entries(tree)) {
    const p = path.join(root, rel);
    fs.mkdirSync(path.dirname(p), { recursive: true });
    if (spec.dir) fs.mkdirSync(p, { recursive: true });
    else if (spec.link !== undefined) fs.symlinkSync(spec.link, p);
    else {
      fs.writeFileSync(p, (spec.text ?? '').repeat(spec.repeat ?? 1));
      fs.chmodSync(p, spec.mode ?? 0o644);
    }
  }
}

/** Every path under `top` (links not followed): kind, file mode and SHA-256, link target. */
function describeTree(top: string): Described[] {
  const out: Described[] = [];
  const walk = (dir: string): void => {
    for (const name of fs.readdirSync(dir)) {
      const p = path.join(dir, name);
      const rel = path.relative(top, p);
      const st = fs.lstatSync(p);
      if (st.isSymbolicLink()) out.push({ path: rel, kind: 'link', target: fs.readlinkSync(p) });
      else if (st.isDirectory()) {
        out.push({ path: rel, kind: 'dir' });
        walk(p);
      } else {
        out.push({ path: rel, kind: 'file', mode: st.mode & 0o7777, sha256: createHash('sha256').update(fs.readFileSync(p)).digest('hex') });
      }
    }
  };
  walk(top);
  return out.sort((a, b) => Buffer.compare(Buffer.from(a.path), Buffer.from(b.path)));
}

const tempDir = useTempDirs('osvb-export-');
beforeAll(async () => {
  await initHashing();
});

function options(root: string, cwd: string, extra: Partial<ExportOptions> = {}): ExportOptions & { lines: string[] } {
  const lines: string[] = [];
  return {
    cwd,
    defines: {},
    walkOrder: 'sorted',
    strip: { strip: process.env['STRIP'] ?? 'strip', cacheDir: path.join(root, '.cache'), warn: (t) => lines.push(t) },
    log: (l) => lines.push(l),
    lines,
    ...extra,
  };
}

const cases = fs
  .readdirSync(TESTDATA)
  .filter((f) => f.endsWith('.json') && !f.endsWith('.expected.json'))
  .map((f) => f.slice(0, -5));

describe('export: same tree as export_manifest.py', () => {
  it.each(cases)('%s', (name) => {
    const c = JSON.parse(fs.readFileSync(path.join(TESTDATA, `${name}.json`), 'utf8')) as Case;
    const want = JSON.parse(fs.readFileSync(path.join(TESTDATA, `${name}.expected.json`), 'utf8')) as { tree: Described[]; errors: string[] };
    const root = tempDir();
    materialise(root, c.tree);
    const cwd = path.join(root, c.cwd);
    const opts = options(root, cwd, { defines: c.defines });
    const res = exportManifest(c.manifest, '../manifest', '../export', opts);
    expect(res.exportDir).toBe(path.join(root, 'export'));
    expect(describeTree(path.join(root, 'export'))).toEqual(want.tree);
    expect(res.warnings).toEqual(want.errors);
    expect(opts.lines).toContain(`[INFO] exporting into directory ${path.join(root, 'export')}`);
    for (const e of want.errors) expect(opts.lines).toContain(e);
    // The record lives beside the export directory, not in it.
    expect(fs.existsSync(path.join(root, '.export.osvb-export.json'))).toBe(true);
    // A second export of the same inputs changes nothing.
    const again = exportManifest(c.manifest, '../manifest', '../export', options(root, cwd, { defines: c.defines }));
    expect(again.written).toEqual([]);
    expect(again.removed).toEqual([]);
    expect(describeTree(path.join(root, 'export'))).toEqual(want.tree);
  });
});

function inodeAndMtime(p: string): string {
  const st = fs.lstatSync(p, { bigint: true });
  return `${st.ino}:${st.mtimeNs}`;
}

describe('export: incremental', () => {
  function setup(): { root: string; h: string; out: string } {
    const root = tempDir();
    const h = path.join(root, 'h');
    fs.mkdirSync(path.join(h, 'tree', 'sub'), { recursive: true });
    fs.writeFileSync(path.join(h, 'a'), 'a\n');
    fs.writeFileSync(path.join(h, 'b'), 'b\n');
    fs.writeFileSync(path.join(h, 'c'), 'c\n');
    fs.writeFileSync(path.join(h, 'tree', 'one'), '1\n');
    fs.writeFileSync(path.join(h, 'tree', 'sub', 'two'), '2\n');
    fs.mkdirSync(path.join(h, 'emptydir'));
    return { root, h, out: path.join(root, 'out') };
  }
  const manifest1 = '/a: h/a\n/b: h/b\n/deep/dir/c: h/c\n/t/**: h/tree/**\n/l: ->/proc/mounts\n/e: h/emptydir\n';

  it('keeps unchanged files (inode and mtime), rewrites changed ones, deletes removed ones', () => {
    const { root, h, out } = setup();
    const first = exportManifest(manifest1, 'm', out, options(root, root));
    expect(first.written.sort()).toEqual(['a', 'b', 'deep', 'deep/dir', 'deep/dir/c', 'e', 'l', 't', 't/one', 't/sub', 't/sub/two']);
    const before = Object.fromEntries(['a', 'b', 't/one', 't/sub/two'].map((p) => [p, inodeAndMtime(path.join(out, p))]));

    fs.writeFileSync(path.join(h, 'b'), 'b changed\n');
    fs.rmSync(path.join(h, 'tree', 'sub'), { recursive: true });
    const manifest2 = '/a: h/a\n/b: h/b\n/t/**: h/tree/**\n/l: ->/proc/self/mounts\n/e: h/emptydir\n';
    const opts = options(root, root);
    const second = exportManifest(manifest2, 'm', out, opts);
    expect(second.written.sort()).toEqual(['b', 'l']);
    expect(second.removed).toEqual(['deep/dir/c', 't/sub/two', 'deep/dir', 't/sub', 'deep']);
    expect(inodeAndMtime(path.join(out, 'a'))).toBe(before['a']);
    expect(inodeAndMtime(path.join(out, 't/one'))).toBe(before['t/one']);
    expect(inodeAndMtime(path.join(out, 'b'))).not.toBe(before['b']);
    expect(fs.readFileSync(path.join(out, 'b'), 'utf8')).toBe('b changed\n');
    expect(fs.readlinkSync(path.join(out, 'l'))).toBe('/proc/self/mounts');
    expect(fs.existsSync(path.join(out, 'deep'))).toBe(false);
    expect(fs.existsSync(path.join(out, 't/sub'))).toBe(false);
    expect(opts.lines).toContain(`[INFO] exported ${path.join(out, 'b')}`);
    expect(opts.lines).toContain(`[INFO] removed ${path.join(out, 'deep')}`);
  });

  it('a touched source with the same content, and an unchanged rebuild, write nothing', () => {
    const { root, h, out } = setup();
    exportManifest(manifest1, 'm', out, options(root, root));
    const before = inodeAndMtime(path.join(out, 'a'));
    const later = new Date(Date.now() + 5000);
    fs.utimesSync(path.join(h, 'a'), later, later);
    const res = exportManifest(manifest1, 'm', out, options(root, root));
    expect(res.written).toEqual([]);
    expect(inodeAndMtime(path.join(out, 'a'))).toBe(before);
  });

  it('repairs what was changed in the export directory and follows mode changes', () => {
    const { root, h, out } = setup();
    exportManifest(manifest1, 'm', out, options(root, root));
    fs.writeFileSync(path.join(out, 'a'), 'tampered\n');
    fs.rmSync(path.join(out, 'l'));
    fs.symlinkSync('elsewhere', path.join(out, 'l'));
    fs.chmodSync(path.join(h, 'c'), 0o755);
    const res = exportManifest(manifest1, 'm', out, options(root, root));
    expect(res.written.sort()).toEqual(['a', 'deep/dir/c', 'l']);
    expect(fs.readFileSync(path.join(out, 'a'), 'utf8')).toBe('a\n');
    expect(fs.readlinkSync(path.join(out, 'l'))).toBe('/proc/mounts');
    expect(fs.statSync(path.join(out, 'deep/dir/c')).mode & 0o777).toBe(0o755);
  });

  it('replaces kinds: a file that becomes a link, a link that becomes a directory', () => {
    const { root, out } = setup();
    exportManifest('/x: h/a\n/y: ->t\n', 'm', out, options(root, root));
    const res = exportManifest('/x: ->a\n/y: h/emptydir\n', 'm', out, options(root, root));
    expect(res.written.sort()).toEqual(['x', 'y']);
    expect(fs.readlinkSync(path.join(out, 'x'))).toBe('a');
    expect(fs.lstatSync(path.join(out, 'y')).isDirectory()).toBe(true);
  });

  it('leaves files it did not export alone', () => {
    const { root, out } = setup();
    fs.mkdirSync(path.join(out, 'deep'), { recursive: true });
    fs.writeFileSync(path.join(out, 'deep', 'mine'), 'user file');
    exportManifest(manifest1, 'm', out, options(root, root));
    const res = exportManifest('/a: h/a\n', 'm', out, options(root, root));
    expect(res.removed).toContain('deep/dir');
    expect(res.removed).not.toContain('deep'); // still holds the user's file
    expect(fs.readFileSync(path.join(out, 'deep', 'mine'), 'utf8')).toBe('user file');
  });
});

describe('export: never writes outside the export directory', () => {
  function expectError(fn: () => unknown, code: string, line: number | undefined, text: RegExp): void {
    let err: unknown;
    try {
      fn();
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(OsvbError);
    const e = err as OsvbError;
    expect(e.code).toBe(code);
    if (line !== undefined) expect(e.location?.line).toBe(line);
    expect(e.message).toMatch(text);
  }

  function setup(): { root: string; out: string; victim: string } {
    const root = tempDir();
    fs.writeFileSync(path.join(root, 'f'), 'payload\n');
    const victim = path.join(root, 'victim');
    fs.mkdirSync(victim);
    return { root, out: path.join(root, 'out'), victim };
  }

  it.each([
    ['//etc/passwd: f\n', /starts with "\/\/"/],
    ['/ok: f\n/../victim/x: f\n', /"\.\."/],
    ['/a/../../victim/x: f\n', /"\.\."/],
    ['../victim/x: f\n', /"\.\."/],
  ])('rejects %j', (manifest, text) => {
    const { root, out, victim } = setup();
    expectError(() => exportManifest(manifest, 'm', out, options(root, root)), 'OSVB_EXPORT_PATH', manifest.split('\n').length - 1, text);
    expect(fs.existsSync(out)).toBe(false);
    expect(fs.readdirSync(victim)).toEqual([]);
  });

  it('does not write through links: a file below a -> link, a file onto a -> link', () => {
    const { root, out, victim } = setup();
    expectError(() => exportManifest(`/lib: ->${victim}\n/lib/x: f\n`, 'm', out, options(root, root)), 'OSVB_EXPORT_CONFLICT', 2, /never writes through links/);
    expectError(() => exportManifest(`/etc/mnttab: ->${victim}/mounts\n/etc/mnttab: f\n`, 'm', out, options(root, root)), 'OSVB_EXPORT_CONFLICT', 2, /already exported as a symbolic link/);
    expect(fs.readdirSync(victim)).toEqual([]);
  });

  it('a second link at the same path is an error (OSv: FileExistsError)', () => {
    const { root, out } = setup();
    fs.symlinkSync('f', path.join(root, 'lnk'));
    expectError(() => exportManifest('/l: ->x\n/l: ->y\n', 'm', out, options(root, root)), 'OSVB_EXPORT_CONFLICT', 2, /already exported/);
    // Host links are created last, so the conflict is reported at the link's own line.
    expectError(() => exportManifest('/l: !lnk\n/l: ->y\n', 'm', out, options(root, root)), 'OSVB_EXPORT_CONFLICT', 1, /already exported/);
    expectError(() => exportManifest('/d/x: f\n/d/x/y: f\n', 'm', out, options(root, root)), 'OSVB_EXPORT_CONFLICT', 2, /is already exported as a file/);
  });

  it('replaces a symlink found in the export directory instead of following it', () => {
    const { root, out, victim } = setup();
    fs.mkdirSync(out);
    fs.symlinkSync(victim, path.join(out, 'usr'));
    exportManifest('/usr/x: f\n', 'm', out, options(root, root));
    expect(fs.lstatSync(path.join(out, 'usr')).isDirectory()).toBe(true);
    expect(fs.readFileSync(path.join(out, 'usr', 'x'), 'utf8')).toBe('payload\n');
    expect(fs.readdirSync(victim)).toEqual([]);
  });

  it('ignores record entries that point outside (a tampered record)', () => {
    const { root, out } = setup();
    exportManifest('/a: f\n', 'm', out, options(root, root));
    const rec = defaultExportRecordFile(out);
    const data = JSON.parse(fs.readFileSync(rec, 'utf8')) as { entries: Record<string, unknown> };
    data.entries['../f'] = { kind: 'file' };
    data.entries['/etc/hostname'] = { kind: 'file' };
    fs.writeFileSync(rec, JSON.stringify(data));
    const res = exportManifest('/b: f\n', 'm', out, options(root, root));
    expect(res.removed).toEqual(['a']);
    expect(fs.readFileSync(path.join(root, 'f'), 'utf8')).toBe('payload\n');
  });
});

const elf = strippableElf();
const canStrip = elf !== undefined;
if (!canStrip) console.log('export strip test skipped: needs `strip` and /bin/true');

describe('export: .so stripping', () => {
  it.skipIf(!canStrip)('stores the stripped content; a file mapped onto a directory lands under the stripped name', () => {
    const root = tempDir();
    fs.copyFileSync(elf as string, path.join(root, 'libx.so'));
    fs.chmodSync(path.join(root, 'libx.so'), 0o755);
    fs.writeFileSync(path.join(root, 'f'), 'f\n');
    execFileSync(process.env['STRIP'] ?? 'strip', ['-o', path.join(root, 'expected'), path.join(root, 'libx.so')]);
    const stripped = fs.readFileSync(path.join(root, 'expected'));
    fs.rmSync(path.join(root, 'expected'));
    const out = path.join(root, 'out');
    exportManifest('/lib/libx.so: libx.so\n/a/b: f\n/a: libx.so\n', 'm', out, options(root, root));
    expect(fs.readFileSync(path.join(out, 'lib/libx.so')).equals(stripped)).toBe(true);
    expect(fs.statSync(path.join(out, 'lib/libx.so')).mode & 0o777).toBe(0o755);
    // export_manifest.py: shutil.copy(<stripped copy>, existing dir) → a/libx-stripped.so.
    expect(fs.readdirSync(path.join(out, 'a')).sort()).toEqual(['b', 'libx-stripped.so']);
    expect(fs.existsSync(path.join(root, 'libx-stripped.so'))).toBe(false);
  });
});

describe('links', () => {
  it('a link with an empty target ("->") is a clear error naming the line, and nothing is written', () => {
    const root = tempDir();
    const out = path.join(root, 'out');
    let err: unknown;
    try {
      exportManifest('/a/b: ->\n', 'usr.manifest', out, options(root, root));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(OsvbError);
    expect((err as OsvbError).code).toBe('OSVB_EXPORT_LINK');
    expect((err as OsvbError).location).toEqual({ file: 'usr.manifest', line: 1 });
    expect(fs.existsSync(path.join(out, 'a'))).toBe(false);
  });
});
