/**
 * End-to-end: the real osvb binary on real trees in temp dirs, with real make, gcc and python3.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { copyExample, listFiles, makeWrapper, OSVB, osvb, readMakeLog, tempDir, writeTree } from '../helpers/cli.js';

const dirs: string[] = [];
function scratch(): string {
  const d = tempDir();
  dirs.push(d);
  return d;
}
afterAll(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

const API = 'from osv.modules import api\n';
const SKELETONS = {
  'usr.manifest.skel': '[manifest]\n/etc/hosts: ../../static/etc/hosts\n',
  'usr_rofs.manifest.skel': '[manifest]\n',
  'bootfs.manifest.skel': '[manifest]\n',
  'static/etc/hosts': '127.0.0.1 localhost\n',
};

function smallTree(extra: Record<string, string>): string {
  const root = scratch();
  writeTree(root, {
    'config.json': JSON.stringify({ modules: { repositories: ['${OSV_BASE}/modules'] } }, null, 2),
    ...SKELETONS,
    ...extra,
  });
  return root;
}

describe('osvb build on examples/osv (real make + gcc)', () => {
  const root = scratch();
  const base = path.join(root, 'osv');
  copyExample(base);
  const log = path.join(root, 'make.log');
  const wrapper = makeWrapper(root, log);
  const build = path.join(base, 'build/release');

  it('builds the C modules and writes OSv outputs', async () => {
    const res = await osvb(['build', '--osv-base', base], { path: wrapper });
    expect(res.stderr).not.toMatch(/error/);
    expect(res.exitCode).toBe(0);
    // Both C modules were compiled by their Makefiles.
    for (const so of ['apps/hello/hello.so', 'modules/libgreet/libgreet.so']) {
      const bytes = fs.readFileSync(path.join(base, so));
      expect(bytes.subarray(0, 4).toString('latin1')).toBe('\x7fELF');
    }
    const calls = readMakeLog(log);
    expect(calls.map((c) => [path.relative(base, c.cwd), c.args])).toEqual([
      ['modules/libgreet', 'module'],
      ['apps/hello', 'module'],
    ]);
    expect(listFiles(build)).toEqual(['30-auto-00', 'bootfs.manifest', 'cmdline', 'javamains', 'usr.manifest']);
    const usr = fs.readFileSync(path.join(build, 'usr.manifest'), 'utf8');
    expect(usr.startsWith('[manifest]\n')).toBe(true);
    expect(usr).toContain(`/hello.so: ${base}/apps/hello/hello.so\n`);
    expect(usr).toContain(`/etc/motd: ${base}/extra/banner//motd\n`);
    expect(usr).toContain(`/init/30-auto-00: ${build}/30-auto-00\n`);
    expect(usr).toContain(`/etc/javamains: ${build}/javamains\n`);
    expect(usr).not.toContain('%(libgcc_s_dir)s');
    expect(fs.readFileSync(path.join(build, 'cmdline'), 'utf8')).toMatch(/^\/hello\.so&java\.so .*io\.osv\.isolated\.MultiJarLoader -mains \/etc\/javamains$/);
    expect(fs.readFileSync(path.join(build, '30-auto-00'), 'utf8')).toBe('/hello.so --motd /etc/motd');
    expect(res.stderr).toMatch(/8 modules: 0 restored, 2 built/);
  });

  it('prints the expanded manifest with osvb manifest', async () => {
    const res = await osvb(['manifest', '--osv-base', base]);
    expect(res.exitCode).toBe(0);
    const lines = res.stdout.trim().split('\n');
    expect(lines).toContain('/etc/hosts: ../../static/etc/hosts');
    expect(lines).toContain(`/usr/lib/libgreet.so: ${base}/modules/libgreet/libgreet.so`);
    expect(lines).toContain('/usr/lib/libgreet.so.1: ->libgreet.so');
    // `/**` expanded, in sorted order.
    const web = lines.filter((l) => l.startsWith('/usr/share/webdocs/'));
    expect(web.length).toBeGreaterThan(2);
    expect(lines.some((l) => l.includes('/**'))).toBe(false);
    const json = await osvb(['manifest', '--osv-base', base, '--json']);
    const last = JSON.parse(json.stdout.trim().split('\n').pop() as string) as { entries: Array<{ guest: string; kind: string }> };
    expect(last.entries.find((e) => e.guest === '/dev')?.kind).toBe('dir');
    expect(last.entries.find((e) => e.guest === '/etc/mnttab')?.kind).toBe('link');
  });

  it('emits JSON events with --json', async () => {
    const res = await osvb(['build', '--osv-base', base, '--json']);
    expect(res.exitCode).toBe(0);
    const events = res.stdout.trim().split('\n').map((l) => JSON.parse(l) as { type: string });
    expect(events[0]?.type).toBe('start');
    expect(events.at(-1)).toMatchObject({ type: 'done', ok: true, modules: 8 });
  });
});

describe('make module', () => {
  it('passes NAME=value words and OSv variables to make, dependencies first', async () => {
    const root = smallTree({
      'modules/lib/Makefile': 'module:\n\t@echo "FOO=$$FOO fs_type=$$fs_type mode=$$mode ARCH=$$ARCH base=$$OSV_BASE" > out.txt\n',
      'modules/app/module.py': API + "api.require('lib')\ndefault = api.run('/app')\n",
      'modules/app/Makefile': 'module:\n\ttest -f ../lib/out.txt\n',
    });
    const res = await osvb(['build', 'image=app', 'fs=rofs', 'FOO=bar baz', '-j2', '--osv-base', root]);
    expect(res.stderr).not.toMatch(/^error\[/m);
    expect(res.exitCode).toBe(0);
    expect(fs.readFileSync(path.join(root, 'modules/lib/out.txt'), 'utf8').trim()).toBe(`FOO=bar baz fs_type=rofs mode=release ARCH=x64 base=${root}`);
  });

  it('reports a failing make with the module, exit code and the last 20 lines; exit status 1', async () => {
    const lines = Array.from({ length: 30 }, (_, i) => `\t@echo line-${i + 1}`).join('\n');
    const root = smallTree({ 'modules/broken/Makefile': `module:\n${lines}\n\t@exit 3\n` });
    const res = await osvb(['build', 'image=broken', '--osv-base', root]);
    expect(res.exitCode).toBe(1);
    expect(res.stderr).toContain('OSVB_MAKE_FAILED');
    expect(res.stderr).toContain('make failed for broken (exit code 2)');
    expect(res.stderr).toContain(`${root}/modules/broken/Makefile`);
    expect(res.stderr).toContain('| line-30');
    expect(res.stderr).toContain('| line-12');
    expect(res.stderr).not.toContain('| line-11\n');
    expect(res.stderr).not.toMatch(/\n\s+at /); // no stack trace
    expect(fs.existsSync(path.join(root, 'build/release/usr.manifest'))).toBe(false);
  });
});

describe('bad input gives a clear error and exit status 2', () => {
  it('malformed config.json: file, line and column', async () => {
    const root = smallTree({});
    fs.writeFileSync(path.join(root, 'config.json'), '{\n  "modules": {\n    "a": { "type": "direct-dir" "path": "/x" }\n  }\n}\n');
    const res = await osvb(['build', 'image=a', '--osv-base', root]);
    expect(res.exitCode).toBe(2);
    expect(res.stderr).toContain(`error[OSVB_CONFIG_SYNTAX]: ${root}/config.json:3:33: invalid JSON: expected ','`);
  });

  it('a config.json of the wrong shape points at the key', async () => {
    const root = smallTree({});
    fs.writeFileSync(path.join(root, 'config.json'), '{\n  "modules": {\n    "repositories": "modules"\n  }\n}\n');
    const res = await osvb(['build', 'image=a', '--osv-base', root]);
    expect(res.exitCode).toBe(2);
    expect(res.stderr).toContain(`${root}/config.json:3:21: "modules.repositories" must be a list`);
  });

  it('unknown module: its name and the config path', async () => {
    const root = smallTree({});
    const res = await osvb(['build', 'image=zzz', '--osv-base', root]);
    expect(res.exitCode).toBe(2);
    expect(res.stderr).toContain(`Module not found: zzz. Please check configuration: ${root}/config.json`);
  });

  it('recursive require: the cycle', async () => {
    const root = smallTree({
      'modules/r1/module.py': API + "api.require('r2')\n",
      'modules/r2/module.py': API + "api.require('r3')\n",
      'modules/r3/module.py': API + "api.require('r1')\n",
    });
    const res = await osvb(['build', 'image=r1', '--osv-base', root]);
    expect(res.exitCode).toBe(2);
    expect(res.stderr).toContain(`${root}/modules/r3/module.py:2: Recursive loading of 'r1' module`);
    expect(res.stderr).toContain('require cycle: r1 -> r2 -> r3 -> r1');
  });

  it('conflicting run configurations', async () => {
    const root = smallTree({ 'modules/a/module.py': API + "default = api.run('/a')\nfg = api.run('/a --fg')\n" });
    const res = await osvb(['build', 'image=a.fg,a.default', '--osv-base', root]);
    expect(res.exitCode).toBe(2);
    expect(res.stderr).toContain('Desired to run a.default but .fg already selected');
  });

  it('undefined ${VAR} in a manifest: file and line; nothing written', async () => {
    const root = smallTree({ 'modules/m/usr.manifest': '[manifest]\n/ok: ${MODULE_DIR}/ok\n# uses ${HOME}\n' });
    const res = await osvb(['build', 'image=m', '--osv-base', root]);
    expect(res.exitCode).toBe(2);
    expect(res.stderr).toContain(`${root}/modules/m/usr.manifest:3: Undefined variable: HOME`);
    expect(listFiles(path.join(root, 'build/release'))).toEqual([]);
  });

  it('a module.py exception shows module.py:LINE, not a worker traceback', async () => {
    const root = smallTree({ 'modules/m/module.py': API + "\nx = {}['missing']\n" });
    const res = await osvb(['build', 'image=m', '--osv-base', root]);
    expect(res.exitCode).toBe(2);
    expect(res.stderr).toContain(`${root}/modules/m/module.py:3: KeyError: 'missing'`);
    expect(res.stderr).not.toContain('Traceback');
    expect(res.stderr).not.toContain('osvb_worker.py');
  });

  it('missing python3: says so and how to install it', async () => {
    const root = smallTree({ 'modules/m/.keep': '' });
    const res = await osvb(['build', 'image=m', '--osv-base', root], { env: { OSVB_PYTHON: '/nonexistent/python3' } });
    expect(res.exitCode).toBe(2);
    expect(res.stderr).toContain('OSVB_PYTHON_MISSING');
    expect(res.stderr).toContain('apt-get install -y python3');
  });

  it('unknown words and options are named', async () => {
    const root = smallTree({});
    const a = await osvb(['build', 'imag', '--osv-base', root]);
    expect(a.exitCode).toBe(2);
    expect(a.stderr).toContain('unknown word "imag"');
    const b = await osvb(['build', '--frobnicate', '--osv-base', root]);
    expect(b.exitCode).toBe(2);
    expect(b.stderr).toContain("Unknown option '--frobnicate'");
    const c = await osvb(['build', 'fs=btrfs', '--osv-base', root]);
    expect(c.exitCode).toBe(2);
    expect(c.stderr).toContain('Unknown filesystem "btrfs"');
  });

  it('a failed build leaves the previous outputs untouched and no temp files', async () => {
    const root = smallTree({
      'modules/m/module.py': API + "default = api.run('/m')\n",
      'modules/m/usr.manifest': '/m: ${MODULE_DIR}/m\n',
    });
    expect((await osvb(['build', 'image=m', '--osv-base', root])).exitCode).toBe(0);
    const build = path.join(root, 'build/release');
    const before = Object.fromEntries(listFiles(build).map((f) => [f, fs.readFileSync(path.join(build, f), 'utf8')]));
    fs.writeFileSync(path.join(root, 'modules/m/usr.manifest'), '/m: ${MODULE_DIR}/m\n/n ${MODULE_DIR}/n\n');
    fs.writeFileSync(path.join(root, 'modules/m/module.py'), API + "default = api.run('/changed')\n");
    const res = await osvb(['build', 'image=m', '--osv-base', root]);
    expect(res.exitCode).toBe(2);
    expect(res.stderr).toContain(`${root}/modules/m/usr.manifest:2: expected "GUEST: HOST"`);
    const after = Object.fromEntries(listFiles(build).map((f) => [f, fs.readFileSync(path.join(build, f), 'utf8')]));
    expect(after).toEqual(before);
  });
});

describe('fetched modules', () => {
  it('copies a dir module into BUILD/module/<name> with plain arguments (no shell)', async () => {
    const root = smallTree({
      'src/fetched/module.py': API + "default = api.run('/fetched')\n",
      'src/fetched/usr.manifest': '/f: ${MODULE_DIR}/f\n',
    });
    const evil = 'x;touch pwned';
    fs.writeFileSync(
      path.join(root, 'config.json'),
      JSON.stringify({ modules: { fm: { type: 'dir', path: '${OSV_BASE}/src/fetched', name: evil } } }),
    );
    const res = await osvb(['build', 'image=fm', '--osv-base', root], { cwd: root });
    expect(res.stderr).not.toContain('error');
    expect(res.exitCode).toBe(0);
    const moduleDir = path.join(root, 'build/release/module', evil);
    expect(fs.existsSync(path.join(moduleDir, 'module.py'))).toBe(true);
    expect(fs.existsSync(path.join(root, 'pwned'))).toBe(false);
    expect(fs.readFileSync(path.join(root, 'build/release/usr.manifest'), 'utf8')).toContain(`/f: ${moduleDir}/f`);
    expect(fs.readFileSync(path.join(root, 'build/release/cmdline'), 'utf8')).toBe('/fetched');
  });

  it('a failed fetch leaves no directory behind', async () => {
    const root = smallTree({});
    fs.writeFileSync(path.join(root, 'config.json'), JSON.stringify({ modules: { g: { type: 'dir', path: '/does/not/exist', name: 'g' } } }));
    const res = await osvb(['build', 'image=g', '--osv-base', root]);
    expect(res.exitCode).toBe(1);
    expect(res.stderr).toContain('Command failed with exit code: 1');
    expect(fs.readdirSync(path.join(root, 'build/release/module'))).toEqual([]);
  });
});

describe('progress and the closing lines', () => {
  it('ends with where the outputs are and what happened to them; --progress=none prints nothing on success; a bad mode is a usage error', async () => {
    const root = smallTree({
      'modules/app/module.py': API + "default = api.run('/app')\n",
      'modules/app/Makefile': 'module:\n\techo x > out.txt\n',
      'modules/app/usr.manifest': '[manifest]\n/app/out.txt: ${MODULE_DIR}/out.txt\n',
    });
    const first = await osvb(['build', 'image=app', 'fs=rofs', '--progress=plain'], { cwd: root });
    expect(first.exitCode, first.stderr).toBe(0);
    expect(first.stderr).toMatch(/1 module: 0 restored, 1 built in [\d.]+s\noutputs in build\/release:\n  usr\.manifest, bootfs\.manifest, cmdline \(written\)\n  rofs\.img +[\d.]+ KiB  written\n$/);
    const again = await osvb(['build', 'image=app', 'fs=rofs', '--progress', 'plain'], { cwd: root });
    expect(again.stderr).toMatch(/outputs in build\/release:\n  usr\.manifest, bootfs\.manifest, cmdline \(unchanged\)\n  rofs\.img +[\d.]+ KiB  unchanged\n$/);
    // From elsewhere: the build path in full.
    const away = await osvb(['build', 'image=app', 'fs=rofs', '--osv-base', root]);
    expect(away.stderr).toContain(`outputs in ${path.join(root, 'build/release')}:`);
    fs.appendFileSync(path.join(root, 'modules/app/Makefile'), '# edited\n');
    const quiet = await osvb(['build', 'image=app', 'fs=rofs', '--progress=none'], { cwd: root });
    expect(quiet.exitCode).toBe(0);
    expect(quiet.stderr).toBe('');
    const bad = await osvb(['build', '--progress=fancy'], { cwd: root });
    expect(bad.exitCode).toBe(2);
    expect(bad.stderr).toContain('error[OSVB_USAGE]: --progress=fancy: expected auto, tty, plain or none');
  });
});

describe('warnings a user can act on', () => {
  it('a missing host file is named at the module manifest line it came from; the warning is not repeated by the next build, unless -v or its cause changes', async () => {
    const root = smallTree({
      'modules/app/module.py': API + "default = api.run('/app')\n",
      'modules/app/usr.manifest': '[manifest]\n# data\n/app/present.txt: ${MODULE_DIR}/present.txt\n/app/gone.txt: ${MODULE_DIR}/gone.txt\n',
      'modules/app/present.txt': 'here\n',
    });
    const manifest = path.join(root, 'modules/app/usr.manifest');
    const first = await osvb(['build', 'image=app', 'fs=rofs'], { cwd: root });
    expect(first.exitCode, first.stderr).toBe(0);
    expect(first.stderr).toContain(`error[OSVB_IMAGE_INPUT]: ${manifest}:4: host file "${path.join(root, 'modules/app/gone.txt')}"`);
    expect(first.stderr).toMatch(/in module app's line, written to .*build\/release\/usr\.manifest:\d+/);
    const again = await osvb(['build', 'image=app', 'fs=rofs'], { cwd: root });
    expect(again.exitCode).toBe(0);
    expect(again.stderr).not.toContain('OSVB_IMAGE_INPUT');
    expect(again.stderr).toContain('(1 warning as in the last build not repeated; -v shows it)');
    const verbose = await osvb(['build', 'image=app', 'fs=rofs', '-v'], { cwd: root });
    expect(verbose.stderr).toContain('OSVB_IMAGE_INPUT');
    // Another cause: shown at once.
    fs.writeFileSync(manifest, '[manifest]\n/app/other.txt: ${MODULE_DIR}/other.txt\n');
    const changed = await osvb(['build', 'image=app', 'fs=rofs'], { cwd: root });
    expect(changed.stderr).toContain(`error[OSVB_IMAGE_INPUT]: ${manifest}:2: host file`);
    fs.writeFileSync(path.join(root, 'modules/app/other.txt'), 'now here\n');
    const fixed = await osvb(['build', 'image=app', 'fs=rofs'], { cwd: root });
    expect(fixed.stderr).not.toMatch(/warning/);
    expect(fixed.stderr).toMatch(/rofs\.img +[\d.]+ KiB  written/);
  });
});

describe('help', () => {
  it('osvb build --help lists the words', async () => {
    const res = await osvb(['build', '--help']);
    expect(res.exitCode).toBe(0);
    expect(res.stdout).toContain('image=SPEC');
    expect(res.stdout).toContain('--compat=osv');
  });
});

describe('environment', () => {
  it('an empty OSV_BUILD_PATH or OSV_BASE counts as unset (outputs never land in the current directory)', async () => {
    const root = scratch();
    const base = path.join(root, 'osv');
    copyExample(base);
    const cwd = path.join(root, 'elsewhere');
    fs.mkdirSync(cwd);
    const res = await osvb(['build', '--osv-base', base], { cwd, env: { OSV_BUILD_PATH: '', OSV_BASE: '' } });
    expect(res.exitCode, res.stderr).toBe(0);
    expect(fs.readdirSync(cwd)).toEqual([]);
    expect(fs.existsSync(path.join(base, 'build/release/usr.manifest'))).toBe(true);
  });

  it('the cache directory .osvb/ is ignored by git in an OSv checkout (a .gitignore of * inside it)', async () => {
    const root = scratch();
    const base = path.join(root, 'osv');
    copyExample(base);
    const git = (...args: string[]) => spawnSync('git', ['-c', 'user.name=t', '-c', 'user.email=t@example.invalid', ...args], { cwd: base, encoding: 'utf8' });
    git('init', '-q');
    git('add', '-A');
    const res = await osvb(['build', 'fs=rofs', '--osv-base', base]);
    expect(res.exitCode, res.stderr).toBe(0);
    expect(fs.readFileSync(path.join(base, '.osvb/.gitignore'), 'utf8')).toMatch(/^\*$/m);
    const status = git('status', '--porcelain', '--untracked-files=all').stdout;
    expect(status).toMatch(/^\?\? build\//m); // untracked files are listed (the example's tree does not ignore build/) …
    expect(status).not.toMatch(/^\?\? \.osvb/m); // … but not the cache
    expect(fs.existsSync(path.join(base, '.osvb/cache'))).toBe(true);
  });

  it('a typo in a word is named (and still passed to make, as scripts/build does); -j0 is a usage error', async () => {
    const root = scratch();
    const base = path.join(root, 'osv');
    copyExample(base);
    const typo = await osvb(['build', 'imgae=hello', 'fs=rofs', '--osv-base', base]);
    expect(typo.exitCode, typo.stderr).toBe(0);
    expect(typo.stderr).toContain('warning: "imgae=hello": did you mean image=?');
    const j0 = await osvb(['build', '-j0', '--osv-base', base]);
    expect(j0.exitCode).toBe(2);
    expect(j0.stderr).toContain('error[OSVB_USAGE]: "-j0": expected at least one job');
  });

  it('a SyntaxError in a module.py names that module.py, its line and column (not the file that required it)', async () => {
    const root = scratch();
    const base = path.join(root, 'osv');
    copyExample(base);
    const file = path.join(base, 'apps/hello/module.py');
    const lines = fs.readFileSync(file, 'utf8').split('\n').length;
    fs.appendFileSync(file, 'def broken(:\n');
    for (const words of [['fs=rofs'], ['image=hello']]) {
      const res = await osvb(['build', ...words, '--osv-base', base]);
      expect(res.exitCode, words.join(' ')).toBe(2);
      expect(res.stderr, words.join(' ')).toMatch(new RegExp(`error\\[OSVB_MODULE_PY\\]: ${file.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}:${lines}:\\d+: SyntaxError`));
    }
  });

  it('a cache it may not write is an I/O error naming the path, with a hint, exit 2 — not "internal error"', async () => {
    const root = scratch();
    const base = path.join(root, 'osv');
    copyExample(base);
    expect((await osvb(['build', 'fs=rofs', '--osv-base', base])).exitCode).toBe(0);
    // Root ignores permissions: run the no-op build as nobody (setpriv) on a tree nobody can read but not write.
    const asRoot = process.getuid?.() === 0;
    if (asRoot) spawnSync('chmod', ['-R', 'a+rX', root]);
    else spawnSync('chmod', ['-R', 'a-w', path.join(base, '.osvb')]);
    if (asRoot) spawnSync('chmod', ['a+rx', root, path.dirname(root)]);
    const argv = [process.execPath, OSVB, 'build', 'fs=rofs', '--osv-base', base];
    const res = asRoot
      ? spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', 'env', 'HOME=/tmp', 'CI=true', ...argv], { encoding: 'utf8' })
      : spawnSync(argv[0] as string, argv.slice(1), { encoding: 'utf8', env: { ...process.env, CI: 'true' } });
    if (!asRoot) spawnSync('chmod', ['-R', 'u+w', path.join(base, '.osvb')]);
    expect(res.status, res.stderr).toBe(2);
    expect(res.stderr).toMatch(/error\[OSVB_IO\]: cannot \S+ .*\.osvb\/cache.*: EACCES/);
    expect(res.stderr).toContain('hint: check the permissions');
    expect(res.stderr).not.toContain('internal');
  });

  it('a config.json module entry of an unknown type is named at its line in config.json, with the known types; the image line that asked is context', async () => {
    const root = scratch();
    const base = path.join(root, 'osv');
    copyExample(base);
    const config = path.join(base, 'config.json');
    fs.writeFileSync(config, fs.readFileSync(config, 'utf8').replace('"type": "direct-dir"', '"type": "direct-dri"'));
    const line = fs.readFileSync(config, 'utf8').split('\n').findIndex((l) => l.includes('direct-dri')) + 1;
    const res = await osvb(['build', 'fs=rofs', '--osv-base', base]);
    expect(res.exitCode).toBe(2);
    expect(res.stderr).toContain(`error[OSVB_CONFIG_SCHEMA]: ${config}:${line}:`);
    expect(res.stderr).toContain('module "banner": direct-dri is unknown type (known: direct-dir, dir, git, svn)');
    expect(res.stderr).toMatch(/asked for by .*images\/default\.py:\d+/);
  });
  it('a direct-dir module with a relative path is found under the OSv base, not the directory osvb runs in', async () => {
    const root = smallTree({
      'config.json': JSON.stringify({ modules: { rel: { type: 'direct-dir', path: 'extra/rel' }, repositories: ['${OSV_BASE}/modules'] } }, null, 2),
      'extra/rel/Makefile': 'module:\n\techo built > made.txt\n',
      'extra/rel/module.py': API + "api.require('lib')\ndefault = api.run('/rel')\n",
      'extra/rel/usr.manifest': '[manifest]\n/rel/made.txt: ${MODULE_DIR}/made.txt\n',
      'modules/lib/usr.manifest': '[manifest]\n/lib.txt: ${MODULE_DIR}/lib.txt\n',
      'modules/lib/lib.txt': 'lib\n',
    });
    const elsewhere = scratch();
    const first = await osvb(['build', 'image=rel', '--osv-base', root], { cwd: elsewhere });
    expect(first.stderr).not.toMatch(/^error\[/m);
    expect(first.exitCode).toBe(0);
    expect(fs.readFileSync(path.join(root, 'extra/rel/made.txt'), 'utf8')).toBe('built\n');
    expect(fs.existsSync(path.join(elsewhere, 'extra'))).toBe(false);
    const manifest = fs.readFileSync(path.join(root, 'build/release/usr.manifest'), 'utf8');
    // The text OSv substitutes for ${MODULE_DIR} stays as written (relative to OSV_BASE).
    expect(manifest).toContain('/rel/made.txt: extra/rel/made.txt\n');
    expect(fs.readFileSync(path.join(root, 'build/release/cmdline'), 'utf8')).toContain('/rel');
    // A second build from another directory is up to date: the same module, the same key.
    const again = await osvb(['build', 'image=rel', '--osv-base', root], { cwd: root });
    expect(again.exitCode).toBe(0);
    expect(again.stdout + again.stderr).not.toMatch(/built rel|make/i);
  });
});
