/**
 * The "nothing to do" memo for image builds (`fs=rofs`): a no-op is answered from the memo, and
 * every kind of input the image depends on — a file under a `/**` walk, a new file there, a
 * file mapped line by line, a skeleton, BUILD/fstab's source, the image itself, the words, the
 * environment — falls through to a real build that changes the image. A build with a kernel
 * never writes a memo (the kernel's inputs are not in it).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listRofs, readRofsFile } from '../../packages/engine/src/index.js';
import { osvb, tempDir, writeTree } from '../helpers/cli.js';

const API = 'from osv.modules import api\n';
let root: string;
let base: string;
let image: string;

/** Past the time within which a changed file's stat signature is not trusted (RACY_MS, 2 s). */
const settleTime = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 2100));

async function build(words: string[] = [], env: Record<string, string> = {}): Promise<string> {
  const res = await osvb(['build', 'image=app', 'fs=rofs', ...words, '--osv-base', base], { env });
  expect(res.exitCode, res.stderr).toBe(0);
  return res.stderr;
}

const memoized = (stderr: string): boolean => stderr.includes('(nothing changed)');

/**
 * Build until the memo answers: a file changed moments ago is not trusted by its signature
 * (ctime cannot be moved back), so the build after the edit writes no memo; one made once the
 * edit is old enough does.
 */
async function settle(words: string[] = []): Promise<void> {
  await build(words);
  await settleTime();
  await build(words);
  expect(memoized(await build(words)), 'the memo is in place again').toBe(true);
}

const guest = (p: string): string => readRofsFile(image, p).toString('utf8');

beforeAll(() => {
  root = tempDir();
  base = path.join(root, 'osv');
  image = path.join(base, 'build/release/rofs.img');
  writeTree(base, {
    'config.json': JSON.stringify({ modules: { repositories: ['${OSV_BASE}/modules'] } }),
    'usr.manifest.skel': '[manifest]\n',
    'usr_rofs.manifest.skel': '[manifest]\n/etc/skel.txt: ../../static/skel.txt\n',
    'bootfs.manifest.skel': '[manifest]\n',
    'static/skel.txt': 'skeleton 1\n',
    'static/etc/fstab_rofs': '/dev/vblk0.1 / rofs defaults 0 0\n',
    'modules/app/module.py': API + "import os\ndefault = api.run('/app.txt ' + os.environ.get('FLAVOUR', 'plain'))\n",
    'modules/app/usr.manifest': '/app.txt: ${MODULE_DIR}/app.txt\n/data/**: ${MODULE_DIR}/data/**\n',
    'modules/app/app.txt': 'app 1\n',
    'modules/app/data/a.txt': 'a\n',
  });
});
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

describe('nothing to do, with rofs.img', () => {
  it('an unchanged tree is answered from the memo', async () => {
    await settle();
    expect(guest('/data/a.txt')).toBe('a\n');
  });

  it('a file under a /** walk changed: the image has its new content', async () => {
    fs.writeFileSync(path.join(base, 'modules/app/data/a.txt'), 'a, edited\n');
    expect(memoized(await build())).toBe(false);
    expect(guest('/data/a.txt')).toBe('a, edited\n');
    await settle();
  });

  it('a new file under a /** directory: the image lists it', async () => {
    fs.writeFileSync(path.join(base, 'modules/app/data/b.txt'), 'b\n');
    expect(memoized(await build())).toBe(false);
    expect(guest('/data/b.txt')).toBe('b\n');
    await settle();
  });

  it('a file mapped line by line changed', async () => {
    fs.writeFileSync(path.join(base, 'modules/app/app.txt'), 'app 2, longer\n');
    expect(memoized(await build())).toBe(false);
    expect(guest('/app.txt')).toBe('app 2, longer\n');
    await settle();
  });

  it('a file a skeleton maps changed, and the skeleton itself', async () => {
    fs.writeFileSync(path.join(base, 'static/skel.txt'), 'skeleton 2\n');
    expect(memoized(await build())).toBe(false);
    expect(guest('/etc/skel.txt')).toBe('skeleton 2\n');
    await settle();
    fs.appendFileSync(path.join(base, 'usr_rofs.manifest.skel'), '/etc/more.txt: ../../static/skel.txt\n');
    expect(memoized(await build())).toBe(false);
    expect(guest('/etc/more.txt')).toBe('skeleton 2\n');
    await settle();
  });

  it("BUILD/fstab's source changed", async () => {
    fs.writeFileSync(path.join(base, 'static/etc/fstab_rofs'), '/dev/vblk0.1 / rofs ro 0 0\n');
    expect(memoized(await build())).toBe(false);
    expect(fs.readFileSync(path.join(base, 'build/release/fstab'), 'utf8')).toBe('/dev/vblk0.1 / rofs ro 0 0\n');
    await settle();
  });

  it('rofs.img changed or removed by something else: written again', async () => {
    const good = fs.readFileSync(image);
    const fd = fs.openSync(image, 'r+');
    fs.writeSync(fd, Buffer.from('garbage'), 0, 7, 4096);
    fs.closeSync(fd);
    expect(memoized(await build())).toBe(false);
    expect(fs.readFileSync(image).equals(good)).toBe(true);
    await settle();
    fs.rmSync(image);
    expect(memoized(await build())).toBe(false);
    expect(fs.readFileSync(image).equals(good)).toBe(true);
    await settle();
  });

  it('other words, or another environment, are not answered from the memo', async () => {
    expect(memoized(await build(['X=1']))).toBe(false);
    expect(memoized(await build([], { FLAVOUR: 'spicy' }))).toBe(false);
    expect(fs.readFileSync(path.join(base, 'build/release/cmdline'), 'utf8')).toBe('/app.txt spicy');
    expect(listRofs(image).some((e) => e.path === '/data/b.txt')).toBe(true);
  });

  it('a build with a kernel writes no memo', async () => {
    // A prebuilt kernel: a loader.img that passes the boot-sector check is enough for fs=rofs.
    const kernelDir = path.join(root, 'kernel');
    fs.mkdirSync(kernelDir, { recursive: true });
    const kernelBytes = 100_000;
    const loader = Buffer.alloc(64 * 1024 + kernelBytes, 7);
    loader.writeUInt16LE(Math.ceil(kernelBytes / 32768), 0x10);
    loader[510] = 0x55;
    loader[511] = 0xaa;
    fs.writeFileSync(path.join(kernelDir, 'loader.img'), loader);
    await settleTime();
    const words = ['--kernel', path.join(kernelDir, 'loader.img')];
    const results: boolean[] = [];
    for (let i = 0; i < 3; i++) {
      const res = await osvb(['build', 'image=app', 'fs=rofs', ...words, '--osv-base', base]);
      expect(res.exitCode, res.stderr).toBe(0);
      results.push(memoized(res.stderr));
    }
    expect(results).toEqual([false, false, false]);
  });
});
