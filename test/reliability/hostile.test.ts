/**
 * Hostile paths and names: guest paths with "..", symlinks out of a walked tree and symlink
 * loops, ROFS images whose entries try to escape on extract, and module names and fetch URLs
 * that would run commands if they ever reached a shell. Each must be refused with a clear error
 * (or handled harmlessly), and nothing may be written outside the places osvb writes to.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { listFiles, osvb, tempDir, writeTree } from '../helpers/cli.js';
import { recordFigures } from './summary.js';

const root = tempDir('osvb-hostile-');
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

let n = 0;
function base(files: Record<string, string>, config: unknown = { modules: { repositories: ['${OSV_BASE}/modules'] } }): string {
  const dir = path.join(root, `t${n++}`, 'osv');
  writeTree(dir, {
    'config.json': JSON.stringify(config),
    'usr.manifest.skel': '[manifest]\n',
    'usr_rofs.manifest.skel': '[manifest]\n',
    'bootfs.manifest.skel': '[manifest]\n',
    ...files,
  });
  return dir;
}

/** Files under the test's root that are not in the base's build path or cache. */
function strays(dir: string, before: readonly string[]): string[] {
  const top = path.dirname(dir);
  return listFiles(top).filter((f) => !before.includes(f) && !f.startsWith('osv/build/') && !f.startsWith('osv/.osvb/'));
}

const API = 'from osv.modules import api\n';
let cases = 0;
let failures = 0;
function tally(ok: boolean): void {
  cases++;
  if (!ok) failures++;
}

describe('hostile paths and names', () => {
  it('a guest path with ".." is refused by export= and by the ROFS reader; nothing lands outside', async () => {
    const dir = base({ 'modules/evil/module.py': API, 'modules/evil/x.txt': 'x\n', 'modules/evil/usr.manifest': '/../../escaped.txt: ${MODULE_DIR}/x.txt\n' });
    const before = listFiles(path.dirname(dir));
    const res = await osvb(['build', 'image=evil', 'export=all', `export_dir=${path.join(path.dirname(dir), 'out', 'export')}`, '--osv-base', dir]);
    expect(res.exitCode).toBe(2);
    expect(res.stderr).toMatch(/error\[OSVB_EXPORT_PATH\]: .*usr\.manifest:\d+: guest path "\/\.\.\/\.\.\/escaped\.txt" contains a "\.\." component/);
    const stray = strays(dir, before);
    tally(res.exitCode === 2 && stray.length === 0);
    expect(stray).toEqual([]);

    // The same manifest as a ROFS image: the writer keeps the name, extract refuses it.
    const img = await osvb(['build', 'image=evil', 'fs=rofs', '--require-image', '--osv-base', dir]);
    if (img.exitCode === 0) {
      const out = path.join(path.dirname(dir), 'extracted');
      const ex = await osvb(['rofs', 'extract', path.join(dir, 'build/release/rofs.img'), out]);
      tally(ex.exitCode === 2 && !fs.existsSync(path.join(path.dirname(dir), 'escaped.txt')));
      expect(ex.exitCode).toBe(2);
      expect(ex.stderr).toMatch(/OSVB_ROFS_UNSAFE/);
    } else {
      tally(/error\[OSVB_[A-Z_]+\]/.test(img.stderr));
      expect(img.stderr).toMatch(/error\[OSVB_[A-Z_]+\]/);
    }
  });

  it('a walked tree with a symlink to / and a symlink loop: no hang, nothing from outside in the image', async () => {
    const dir = base({ 'modules/evil/module.py': API, 'modules/evil/data/a.txt': 'a\n', 'modules/evil/usr.manifest': '/evil/**: ${MODULE_DIR}/data/**\n' });
    fs.symlinkSync('/', path.join(dir, 'modules/evil/data/root'));
    fs.symlinkSync('.', path.join(dir, 'modules/evil/data/loop'));
    fs.mkdirSync(path.join(dir, 'modules/evil/data/sub'));
    fs.symlinkSync('../sub', path.join(dir, 'modules/evil/data/sub/up'));
    const started = Date.now();
    const res = await osvb(['build', 'image=evil', 'fs=rofs', '--osv-base', dir]);
    expect(Date.now() - started).toBeLessThan(30_000);
    expect(res.exitCode, res.stderr).toBe(0);
    const ls = await osvb(['rofs', 'ls', path.join(dir, 'build/release/rofs.img')]);
    expect(ls.exitCode).toBe(0);
    // The links are links in the image (as OSv's walk leaves them); nothing from / was copied in.
    const leaked = /\/evil\/root\/(etc|usr|bin)/.test(ls.stdout);
    tally(res.exitCode === 0 && !leaked);
    expect(ls.stdout).toMatch(/\/evil\/a\.txt/);
    expect(leaked).toBe(false);
  });

  it('a symlinked host path that loops is an error naming the manifest line', async () => {
    const dir = base({ 'modules/evil/module.py': API, 'modules/evil/usr.manifest': '/x: ${MODULE_DIR}/a\n' });
    fs.symlinkSync('b', path.join(dir, 'modules/evil/a'));
    fs.symlinkSync('a', path.join(dir, 'modules/evil/b'));
    // `osvb manifest` expands the manifest as the image writers do (stage B).
    const res = await osvb(['manifest', 'image=evil', '--osv-base', dir]);
    tally(res.exitCode === 2 && /OSVB_SYMLINK/.test(res.stderr));
    expect(res.exitCode).toBe(2);
    expect(res.stderr).toMatch(/error\[OSVB_SYMLINK\]: .*usr\.manifest:\d+: symbolic link loop/);
  });

  it('module names and fetch URLs with shell syntax never reach a shell', async () => {
    const marker = path.join(root, 'PWNED');
    const dir = base(
      { 'modules/ok/module.py': API },
      {
        modules: {
          repositories: ['${OSV_BASE}/modules'],
          viagit: { type: 'git', path: `https://example.invalid/x.git;touch ${marker}`, name: 'viagit' },
          viadir: { type: 'dir', path: `$(touch ${marker})`, name: 'viadir' },
          viasvn: { type: 'svn', path: `svn://example.invalid/x|touch ${marker}`, name: 'viasvn' },
        },
      },
    );
    const attempts = [['image=viagit'], ['image=viadir'], ['image=viasvn'], [`image=ok;touch ${marker}`], [`image=$(touch ${marker})`], [`NAME=$(touch ${marker})`, 'image=ok']];
    for (const words of attempts) {
      const res = await osvb(['build', ...words, '--osv-base', dir]);
      const ok = !fs.existsSync(marker) && (res.exitCode === 0 || /error\[OSVB_[A-Z_]+\]/.test(res.stderr));
      tally(ok);
      expect(fs.existsSync(marker), `${words.join(' ')}: ${res.stderr}`).toBe(false);
      expect(res.exitCode === 0 || /error\[OSVB_[A-Z_]+\]/.test(res.stderr), res.stderr).toBe(true);
    }
  });

  afterAll(() => recordFigures({ scenario: 'hostile paths, links, names, URLs', runs: cases, failures }));
});
