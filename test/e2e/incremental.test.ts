/**
 * The incremental engine, end to end: which modules rebuild after each kind of change
 * (counted as real `make` invocations through a logging wrapper), restores, shared caches,
 * concurrent builds, kill -9 and corrupt entries.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OSVB, copyTree, listFiles, makeWrapper, osvb, readMakeLog, tempDir, writeTree } from '../helpers/cli.js';

const API = 'from osv.modules import api\n';
const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

/** base (a C library), app (requires base; data pulled in with /**), other (independent). */
function makeTree(root: string): void {
  writeTree(root, {
    'config.json': JSON.stringify({ modules: { repositories: ['${OSV_BASE}/modules'] } }),
    'usr.manifest.skel': '[manifest]\n',
    'bootfs.manifest.skel': '[manifest]\n',
    'images/img.py': API + "api.require_running('app')\napi.require_running('other')\nrun = []\n",
    'modules/base/Makefile': 'module: libbase.so\nlibbase.so: base.c\n\t$(CC) -fPIC -shared -o $@ base.c\n',
    'modules/base/base.c': 'int base(void) { return 1; }\n',
    'modules/base/.gitignore': '*.so\n',
    'modules/base/usr.manifest': '/usr/lib/libbase.so: ${MODULE_DIR}/libbase.so\n',
    'modules/app/module.py': API + "api.require('base')\nimport os\ndefault = api.run('/app.so ' + os.environ.get('APP_FLAVOUR', 'plain'))\n",
    'modules/app/Makefile': 'module: app.so\napp.so: app.c\n\t$(CC) -fPIC -shared -o $@ app.c\n',
    'modules/app/app.c': 'int app(void) { return 2; }\n',
    'modules/app/.gitignore': 'app.so\n',
    'modules/app/usr.manifest': '/app.so: ${MODULE_DIR}/app.so\n/data/**: ${MODULE_DIR}/data/**\n',
    'modules/app/data/a.txt': 'alpha\n',
    'modules/app/data/sub/b.txt': 'beta\n',
    'modules/other/Makefile': 'module: other.so\nother.so: other.c\n\t$(CC) -fPIC -shared -o $@ other.c\n',
    'modules/other/other.c': 'int other(void) { return 3; }\n',
    'modules/other/module.py': API + "default = api.run('/other.so')\n",
  });
}

describe('only changed modules and their dependents rebuild', () => {
  const root = tempDir();
  dirs.push(root);
  const base = path.join(root, 'osv');
  makeTree(base);
  const log = path.join(root, 'make.log');
  const wrapper = makeWrapper(root, log);
  const pylog = path.join(root, 'python.log');
  const pywrap = path.join(root, 'python-wrapper');
  fs.writeFileSync(pywrap, `#!/bin/sh\necho started >> '${pylog}'\nexec python3 "$@"\n`, { mode: 0o755 });

  const built = async (...extra: string[]): Promise<string[]> => {
    fs.rmSync(log, { force: true });
    const res = await osvb(['build', 'image=img', '--osv-base', base, ...extra], { path: wrapper, env: { OSVB_PYTHON: pywrap } });
    expect(res.stderr).not.toContain('error');
    expect(res.exitCode).toBe(0);
    // `make module` runs; make's up-to-date question (make -pq, early cutoff) is not a build.
    return readMakeLog(log)
      .filter((c) => !c.args.startsWith('-pq'))
      .map((c) => path.basename(c.cwd))
      .sort();
  };
  const pythonStarts = (): number => (fs.existsSync(pylog) ? fs.readFileSync(pylog, 'utf8').split('\n').filter(Boolean).length : 0);
  const edit = (rel: string, text: string): void => fs.appendFileSync(path.join(base, rel), text);

  it('cold: every module with a Makefile', async () => {
    expect(await built()).toEqual(['app', 'base', 'other']);
    expect(pythonStarts()).toBe(1);
  });

  it('no change: no make, and python3 is not started', async () => {
    expect(await built()).toEqual([]);
    expect(pythonStarts()).toBe(1);
  });

  it('a touched file whose content is unchanged: nothing', async () => {
    const f = path.join(base, 'modules/app/app.c');
    const t = new Date(Date.now() + 5000);
    fs.utimesSync(f, t, t);
    expect(await built()).toEqual([]);
  });

  it('a source file: that module only', async () => {
    edit('modules/app/app.c', '// changed\n');
    expect(await built()).toEqual(['app']);
  });

  it("a required module's source: it; its dependent only when its make would remake something (early cutoff)", async () => {
    edit('modules/base/base.c', '// changed\n');
    // app's Makefile names nothing of base: make -q says up to date.
    expect(await built()).toEqual(['base']);
  });

  it('a Makefile: that module', async () => {
    edit('modules/other/Makefile', '# comment\n');
    expect(await built()).toEqual(['other']);
  });

  it('a manifest its Makefile does not name: no make module (early cutoff), here or in its dependents', async () => {
    edit('modules/base/usr.manifest', '# a comment\n');
    expect(await built()).toEqual([]);
  });

  it('data under /**: that module; the manifest lists the new file', async () => {
    fs.writeFileSync(path.join(base, 'modules/app/data/sub/c.txt'), 'gamma\n');
    expect(await built()).toEqual(['app']);
    const res = await osvb(['manifest', 'image=img', '--osv-base', base]);
    expect(res.stdout).toContain(`/data/sub/c.txt: ${base}/modules/app/data/sub/c.txt`);
  });

  it('module.py: re-evaluated; its make, which does not read it, is not run (early cutoff)', async () => {
    const before = pythonStarts();
    edit('modules/other/module.py', '# changed\n');
    expect(await built()).toEqual([]);
    expect(pythonStarts()).toBe(before + 1);
  });

  it('an environment variable module.py reads: re-evaluated, cmdline updated, no make', async () => {
    const before = pythonStarts();
    fs.rmSync(log, { force: true });
    const res = await osvb(['build', 'image=img', '--osv-base', base], { path: wrapper, env: { OSVB_PYTHON: pywrap, APP_FLAVOUR: 'spicy' } });
    expect(res.exitCode).toBe(0);
    expect(pythonStarts()).toBe(before + 1);
    expect(readMakeLog(log)).toEqual([]);
    expect(fs.readFileSync(path.join(base, 'build/release/cmdline'), 'utf8')).toBe('/app.so spicy&/other.so');
    // Back to the default: the earlier evaluation is not reused blindly either.
    await built();
    expect(fs.readFileSync(path.join(base, 'build/release/cmdline'), 'utf8')).toBe('/app.so plain&/other.so');
  });

  it('an unrelated environment variable: nothing', async () => {
    fs.rmSync(log, { force: true });
    const before = pythonStarts();
    const res = await osvb(['build', 'image=img', '--osv-base', base], { path: wrapper, env: { OSVB_PYTHON: pywrap, SOMETHING_ELSE: 'x' } });
    expect(res.exitCode).toBe(0);
    expect(readMakeLog(log)).toEqual([]);
    expect(pythonStarts()).toBe(before);
  });

  it('a NAME=value word: every module (it is exported to every make)', async () => {
    expect(await built('OPT=1')).toEqual(['app', 'base', 'other']);
    expect(await built('OPT=1')).toEqual([]);
  });

  it('deleted outputs are restored from the cache without make', async () => {
    const so = path.join(base, 'modules/app/app.so');
    const bytes = fs.readFileSync(so);
    fs.rmSync(so);
    expect(await built()).toEqual([]);
    expect(fs.readFileSync(so)).toEqual(bytes);
  });

  it('osvb explain names the changed input', async () => {
    edit('modules/app/app.c', '// again\n');
    const res = await osvb(['explain', 'app', 'image=img', '--osv-base', base]);
    expect(res.exitCode).toBe(0);
    expect(res.stdout).toContain('app: will be rebuilt');
    expect(res.stdout).toContain('input file changed: app.c');
    const b = await osvb(['explain', 'base', 'image=img', '--osv-base', base]);
    expect(b.stdout).toContain('base: will be restored from the cache');
    expect(b.stdout).toContain('modules that require it (rebuilt with it when it changes, unless early cutoff shows their make has nothing to do): app');
  });

  it('osvb explain without words explains the last build (its words, said), not a build without them', async () => {
    await built('OPT=2');
    const res = await osvb(['explain', 'base', '--osv-base', base]);
    expect(res.exitCode, res.stderr).toBe(0);
    expect(res.stderr).toContain('explaining with the words of the last build: image=img OPT=2');
    expect(res.stdout).toContain('no input changed since the last build');
    expect(res.stdout).not.toContain('OPT');
  });
});

describe('a shared cache', () => {
  let root: string;
  let cacheDir: string;
  beforeAll(() => {
    root = tempDir();
    dirs.push(root);
    cacheDir = path.join(root, 'cache');
  });

  it('a second checkout at another path restores everything: no make, identical outputs', async () => {
    const a = path.join(root, 'a');
    const b = path.join(root, 'elsewhere/b');
    makeTree(a);
    copyTree(a, b);
    const log = path.join(root, 'make.log');
    const wrapper = makeWrapper(root, log);
    const ra = await osvb(['build', 'image=img', '--osv-base', a, '--cache-dir', cacheDir], { path: wrapper });
    expect(ra.exitCode).toBe(0);
    expect(readMakeLog(log)).toHaveLength(3);
    fs.rmSync(log);
    const rb = await osvb(['build', 'image=img', '--osv-base', b, '--cache-dir', cacheDir], { path: wrapper });
    expect(rb.exitCode).toBe(0);
    expect(rb.stderr).toContain('3 restored, 0 built');
    expect(readMakeLog(log)).toEqual([]);
    for (const so of ['modules/base/libbase.so', 'modules/app/app.so', 'modules/other/other.so']) {
      expect(fs.readFileSync(path.join(b, so))).toEqual(fs.readFileSync(path.join(a, so)));
    }
    for (const out of ['usr.manifest', 'bootfs.manifest', 'cmdline']) {
      const ta = fs.readFileSync(path.join(a, 'build/release', out), 'utf8').split(a).join('@BASE@');
      const tb = fs.readFileSync(path.join(b, 'build/release', out), 'utf8').split(b).join('@BASE@');
      expect(tb).toBe(ta);
    }
  });

  it('a corrupt blob is detected, dropped and rebuilt with a warning', async () => {
    const c = path.join(root, 'c');
    makeTree(c);
    const cache = path.join(root, 'cache-c');
    expect((await osvb(['build', 'image=img', '--osv-base', c, '--cache-dir', cache])).exitCode).toBe(0);
    // Corrupt every stored blob, then force restores by deleting the outputs.
    for (const f of listFiles(path.join(cache, 'cas'))) {
      const p = path.join(cache, 'cas', f);
      fs.chmodSync(p, 0o644);
      fs.writeFileSync(p, 'garbage');
    }
    for (const so of ['modules/base/libbase.so', 'modules/app/app.so', 'modules/other/other.so']) fs.rmSync(path.join(c, so));
    const res = await osvb(['build', 'image=img', '--osv-base', c, '--cache-dir', cache]);
    expect(res.exitCode).toBe(0);
    expect(res.stderr).toMatch(/warning: .*corrupt/);
    expect(res.stderr).toContain('0 restored, 3 built');
    expect(fs.readFileSync(path.join(c, 'modules/app/app.so')).subarray(0, 4).toString('latin1')).toBe('\x7fELF');
    const verify = await osvb(['cache', 'verify', '--cache-dir', cache]);
    expect(verify.stdout).toContain('0 corrupt');
    expect(verify.exitCode).toBe(0);
  });
});

describe('concurrency and crashes', () => {
  it('two builds of one tree on one cache at once both succeed with correct outputs', async () => {
    const root = tempDir();
    dirs.push(root);
    const base = path.join(root, 'osv');
    makeTree(base);
    const [r1, r2] = await Promise.all([osvb(['build', 'image=img', '--osv-base', base]), osvb(['build', 'image=img', '--osv-base', base])]);
    expect(r1.exitCode).toBe(0);
    expect(r2.exitCode).toBe(0);
    const usr = fs.readFileSync(path.join(base, 'build/release/usr.manifest'), 'utf8');
    expect(usr).toContain(`/app.so: ${base}/modules/app/app.so`);
    // A module whose outputs are not .gitignored (`other`) can see the other build's fresh
    // output among its inputs and run make once more (make finds it up to date); the modules
    // with ignored outputs are restored.
    const again = await osvb(['build', 'image=img', '--osv-base', base]);
    expect(again.exitCode).toBe(0);
    expect(again.stderr).not.toMatch(/built base|built app/);
    expect(again.stderr).toMatch(/3 modules: (\d up to date, )?\d restored, [01] built/);
  });

  it('kill -9 in the middle of a build, then a rebuild: correct outputs, no corrupt entry', async () => {
    const root = tempDir();
    dirs.push(root);
    const base = path.join(root, 'osv');
    makeTree(base);
    // A slow module so the kill lands while make runs.
    writeTree(base, { 'modules/other/Makefile': 'module: other.so\nother.so: other.c\n\ttouch started\n\tsleep 2\n\t$(CC) -fPIC -shared -o $@ other.c\n' });
    const child = spawn(process.execPath, [OSVB, 'build', 'image=img', '--osv-base', base], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, CI: 'true' } });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    // Kill it once make for the slow module has started.
    for (let i = 0; i < 200 && !fs.existsSync(path.join(base, 'modules/other/started')); i++) await new Promise((r) => setTimeout(r, 50));
    expect(fs.existsSync(path.join(base, 'modules/other/started')), stderr).toBe(true);
    child.kill('SIGKILL');
    await exited;
    const res = await osvb(['build', 'image=img', '--osv-base', base]);
    expect(res.exitCode).toBe(0);
    expect(fs.readFileSync(path.join(base, 'modules/other/other.so')).subarray(0, 4).toString('latin1')).toBe('\x7fELF');
    const verify = await osvb(['cache', 'verify', '--osv-base', base]);
    expect(verify.exitCode).toBe(0);
    expect(verify.stdout).toContain('0 corrupt');
    const again = await osvb(['build', 'image=img', '--osv-base', base]);
    // Nothing changed since the build before: up to date, not "restored" (issue 15, item 7).
    expect(again.stderr).toContain('3 up to date, 0 restored, 0 built');
    expect(again.stderr).not.toMatch(/^restored /m);
  });

  it('SIGTERM stops the makes it started, exits 130 and leaves the cache consistent', async () => {
    const root = tempDir();
    dirs.push(root);
    const base = path.join(root, 'osv');
    makeTree(base);
    writeTree(base, {
      'modules/other/Makefile': 'module: other.so\nother.so: other.c\n\tsleep 60 & echo $$! > sleep.pid; touch started; wait\n\t$(CC) -fPIC -shared -o $@ other.c\n',
    });
    const child = spawn(process.execPath, [OSVB, 'build', 'image=img', '--osv-base', base], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, CI: 'true' } });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    const started = path.join(base, 'modules/other/started');
    for (let i = 0; i < 200 && !fs.existsSync(started); i++) await new Promise((r) => setTimeout(r, 50));
    expect(fs.existsSync(started), stderr).toBe(true);
    const sleepPid = Number(fs.readFileSync(path.join(base, 'modules/other/sleep.pid'), 'utf8'));
    child.kill('SIGTERM');
    expect(await exited, stderr).toBe(130);
    expect(stderr).toContain('OSVB_INTERRUPTED');
    // The recipe's own child is gone too (killed with make's process group); a zombie
    // waiting for the container's init to reap it counts as gone.
    const running = (): boolean => {
      try {
        const stat = fs.readFileSync(`/proc/${sleepPid}/stat`, 'utf8');
        return !/^\d+ \([^)]*\) Z/.test(stat);
      } catch {
        return false;
      }
    };
    for (let i = 0; i < 40 && running(); i++) await new Promise((r) => setTimeout(r, 50));
    expect(running()).toBe(false);
    const verify = await osvb(['cache', 'verify', '--osv-base', base]);
    expect(verify.stdout).toContain('0 corrupt');
    // Nothing was recorded for the interrupted module: the next build runs its make.
    writeTree(base, { 'modules/other/Makefile': 'module: other.so\nother.so: other.c\n\t$(CC) -fPIC -shared -o $@ other.c\n' });
    const res = await osvb(['build', 'image=img', '--osv-base', base]);
    expect(res.exitCode).toBe(0);
    expect(res.stderr).toMatch(/built other/);
  });

  it('--keep-going builds what does not depend on a failure', async () => {
    const root = tempDir();
    dirs.push(root);
    const base = path.join(root, 'osv');
    makeTree(base);
    writeTree(base, { 'modules/base/base.c': 'this is not C\n' });
    const res = await osvb(['build', 'image=img', '--osv-base', base, '--keep-going', '-j1']);
    expect(res.exitCode).toBe(1);
    expect(res.stderr).toContain('make failed for base');
    expect(res.stderr).toContain('skipped app: base did not build');
    expect(fs.existsSync(path.join(base, 'modules/other/other.so'))).toBe(true);
  });
});
