/**
 * The "nothing to do" memo: an identical build with nothing changed is answered from a memo of
 * stat signatures; any change to a file the build depended on falls through to a real build.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeWrapper, osvb, readMakeLog, tempDir, writeTree } from '../helpers/cli.js';

const API = 'from osv.modules import api\n';
let root: string;
let base: string;
let log: string;
let wrapper: string;

/** Move every mtime a minute back, so the memo may trust them (fresh files are never trusted). */
function age(dir: string): void {
  const t = new Date(Date.now() - 60_000);
  const walk = (p: string): void => {
    const st = fs.lstatSync(p);
    if (st.isSymbolicLink()) return;
    if (st.isDirectory()) for (const n of fs.readdirSync(p)) walk(path.join(p, n));
    fs.utimesSync(p, t, t);
  };
  walk(dir);
}

async function build(extraEnv: Record<string, string> = {}): Promise<{ stderr: string; makes: number }> {
  fs.rmSync(log, { force: true });
  const res = await osvb(['build', 'image=app', '--osv-base', base], { path: wrapper, env: extraEnv });
  expect(res.exitCode, res.stderr).toBe(0);
  return { stderr: res.stderr, makes: readMakeLog(log).length };
}

/** Build until the memo is in place (a build that wrote files cannot trust them yet). */
async function settle(): Promise<void> {
  await build();
  age(base);
  await build();
  age(base);
  await build();
  const r = await build();
  expect(r.stderr, 'the memo is in place again').toContain('(nothing changed)');
}

beforeAll(() => {
  root = tempDir();
  base = path.join(root, 'osv');
  log = path.join(root, 'make.log');
  wrapper = makeWrapper(root, log);
  writeTree(base, {
    'config.json': JSON.stringify({ modules: { repositories: ['${OSV_BASE}/modules'] } }),
    'usr.manifest.skel': '[manifest]\n',
    'bootfs.manifest.skel': '[manifest]\n',
    'modules/app/module.py': API + "import os\ndefault = api.run('/app.so ' + os.environ.get('FLAVOUR', 'plain'))\n",
    'modules/app/Makefile': 'module: app.so\napp.so: app.c\n\t$(CC) -fPIC -shared -o $@ app.c\n',
    'modules/app/app.c': 'int app(void) { return 1; }\n',
    'modules/app/.gitignore': 'app.so\n',
    'modules/app/usr.manifest': '/app.so: ${MODULE_DIR}/app.so\n/data/**: ${MODULE_DIR}/data/**\n',
    'modules/app/data/a.txt': 'a\n',
  });
});
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

describe('nothing to do', () => {
  it('an unchanged tree is answered from the memo', async () => {
    await settle();
    const r = await build();
    expect(r.stderr).toContain('(nothing changed)');
    expect(r.makes).toBe(0);
  });

  it('a different command (another word) is not answered from the memo', async () => {
    fs.rmSync(log, { force: true });
    const res = await osvb(['build', 'image=app', 'X=1', '--osv-base', base], { path: wrapper });
    expect(res.exitCode).toBe(0);
    expect(res.stderr).not.toContain('(nothing changed)');
    await settle();
  });

  it('a changed source falls through to a real build', async () => {
    fs.appendFileSync(path.join(base, 'modules/app/app.c'), '// edit\n');
    const r = await build();
    expect(r.stderr).not.toContain('(nothing changed)');
    expect(r.makes).toBe(1);
    await settle();
  });

  it('a deleted output falls through and is restored', async () => {
    fs.rmSync(path.join(base, 'modules/app/app.so'));
    const r = await build();
    expect(r.stderr).not.toContain('(nothing changed)');
    expect(fs.existsSync(path.join(base, 'modules/app/app.so'))).toBe(true);
    await settle();
  });

  it('an edited output file in the build path falls through and is rewritten', async () => {
    const usr = path.join(base, 'build/release/usr.manifest');
    const good = fs.readFileSync(usr, 'utf8');
    fs.writeFileSync(usr, 'garbage\n');
    const r = await build();
    expect(r.stderr).not.toContain('(nothing changed)');
    expect(fs.readFileSync(usr, 'utf8')).toBe(good);
    await settle();
  });

  it('a new file under a /** directory falls through', async () => {
    fs.writeFileSync(path.join(base, 'modules/app/data/b.txt'), 'b\n');
    const r = await build();
    expect(r.stderr).not.toContain('(nothing changed)');
    await settle();
  });

  it('a different environment falls through and is evaluated again', async () => {
    const r = await build({ FLAVOUR: 'spicy' });
    expect(r.stderr).not.toContain('(nothing changed)');
    expect(fs.readFileSync(path.join(base, 'build/release/cmdline'), 'utf8')).toBe('/app.so spicy');
  });
});
