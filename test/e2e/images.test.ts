/**
 * The image stage of `osvb build` on examples/osv: rofs.img (and its in-place update), export,
 * the OCI layout, and trees that cannot be imaged without OSv's kernel build.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { copyExample, listFiles, osvb, tempDir, writeTree } from '../helpers/cli.js';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

describe('images from osvb build', () => {
  const root = tempDir();
  dirs.push(root);
  const base = path.join(root, 'osv');
  copyExample(base);
  const build = path.join(base, 'build/release');
  const img = path.join(build, 'rofs.img');

  it('fs=rofs writes rofs.img and BUILD/fstab; the reader sees the guest tree', async () => {
    const res = await osvb(['build', 'fs=rofs', '--osv-base', base, '-v']);
    expect(res.exitCode, res.stderr).toBe(0);
    expect(res.stderr).toMatch(/rofs\.img written/);
    expect(fs.readFileSync(path.join(build, 'fstab'), 'utf8')).toBe(fs.readFileSync(path.join(base, 'static/etc/fstab_rofs'), 'utf8'));
    const ls = await osvb(['rofs', 'ls', img]);
    expect(ls.exitCode).toBe(0);
    expect(ls.stdout).toMatch(/\/hello\.so/);
    expect(ls.stdout).toMatch(/\/usr\/lib\/libgreet\.so\.1 -> libgreet\.so/);
    const cat = await osvb(['rofs', 'cat', img, '/etc/hosts']);
    expect(cat.stdout).toBe(fs.readFileSync(path.join(base, 'static/etc/hosts'), 'utf8'));
  });

  it('a changed module updates rofs.img in place, byte-identical to a fresh write', async () => {
    fs.appendFileSync(path.join(base, 'apps/hello/hello.c'), '\nint osvb_test_extra(void) { return 42; }\n');
    const res = await osvb(['build', 'fs=rofs', '--osv-base', base, '-v']);
    expect(res.exitCode, res.stderr).toBe(0);
    expect(res.stderr).toMatch(/rofs\.img updated in place: .* reused/);
    const updated = fs.readFileSync(img);
    fs.rmSync(img);
    fs.rmSync(`${img}.osvb-layout.json`, { force: true });
    expect((await osvb(['build', 'fs=rofs', '--osv-base', base])).exitCode).toBe(0);
    expect(fs.readFileSync(img).equals(updated)).toBe(true);
    // Nothing changed since: the tree is known from what it read last time, and not built again.
    const again = await osvb(['build', 'fs=rofs', '--osv-base', base, '-v']);
    expect(again.stderr).toMatch(/rofs\.img updated in place \(same tree\): 0 files written/);
    expect(fs.readFileSync(img).equals(updated)).toBe(true);
  });

  it('export=all writes the guest tree and leaves unchanged files alone', async () => {
    const out = path.join(root, 'export');
    const res = await osvb(['build', 'export=all', `export_dir=${out}`, '--osv-base', base]);
    expect(res.exitCode, res.stderr).toBe(0);
    expect(fs.readFileSync(path.join(out, 'etc/hosts'), 'utf8')).toBe(fs.readFileSync(path.join(base, 'static/etc/hosts'), 'utf8'));
    expect(fs.readlinkSync(path.join(out, 'usr/lib/libgreet.so.1'))).toBe('libgreet.so');
    const hostsStat = fs.statSync(path.join(out, 'etc/hosts'));
    await new Promise((r) => setTimeout(r, 20));
    expect((await osvb(['build', 'export=all', `export_dir=${out}`, '--osv-base', base])).exitCode).toBe(0);
    expect(fs.statSync(path.join(out, 'etc/hosts')).mtimeMs).toBe(hostsStat.mtimeMs);
  });

  it('oci=DIR writes one layer per module; a rebuild writes no layer blob', async () => {
    const oci = path.join(root, 'oci');
    const res = await osvb(['build', `oci=${oci}`, '--osv-base', base, '-v']);
    expect(res.exitCode, res.stderr).toBe(0);
    const index = JSON.parse(fs.readFileSync(path.join(oci, 'index.json'), 'utf8')) as { manifests: Array<{ digest: string }> };
    const manifestDigest = index.manifests[0]?.digest.split(':')[1] as string;
    const manifest = JSON.parse(fs.readFileSync(path.join(oci, 'blobs/sha256', manifestDigest), 'utf8')) as { layers: Array<{ annotations: Record<string, string> }> };
    const names = manifest.layers.map((l) => l.annotations['org.osv.module']);
    expect(names).toEqual(expect.arrayContaining(['skeleton', 'hello', 'libgreet', 'webdocs', 'generated']));
    const blobs = listFiles(path.join(oci, 'blobs'));
    const again = await osvb(['build', `oci=${oci}`, '--osv-base', base, '-v']);
    expect(again.stderr).toMatch(/0 written/);
    expect(listFiles(path.join(oci, 'blobs'))).toEqual(blobs);
  });
});

describe('a tree osvb cannot image alone', () => {
  it('warns by default (module.py succeeds there) and fails with --require-image', async () => {
    const root = tempDir();
    dirs.push(root);
    writeTree(root, {
      'config.json': JSON.stringify({ modules: { repositories: ['${OSV_BASE}/modules'] } }),
      'usr_rofs.manifest.skel': '[manifest]\n/libenviron.so: libenviron.so\n',
      'bootfs.manifest.skel': '[manifest]\n',
      'modules/m/module.py': "from osv.modules import api\ndefault = api.run('/m')\n",
    });
    const res = await osvb(['build', 'image=m', 'fs=rofs', '--osv-base', root]);
    expect(res.exitCode).toBe(0);
    expect(res.stderr).toMatch(/warning: rofs\.img was not written/);
    expect(res.stderr).toContain('libenviron.so');
    // No module makes it: the hint says who does (issue 15, item 4).
    expect(res.stderr).toContain("libenviron.so is made by OSv's kernel build, not by a module");
    expect(res.stderr).toContain('--kernel DIR');
    const strict = await osvb(['build', 'image=m', 'fs=rofs', '--require-image', '--osv-base', root]);
    expect(strict.exitCode).toBe(2);
    expect(strict.stderr).toContain(`${root}/build/release/usr.manifest:2`);
  });
});
