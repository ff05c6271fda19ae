/**
 * `osvb watch` end to end: the real CLI with real chokidar, make, gcc and python3 on a temp tree;
 * events read from --json.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { OSVB, osvb, tempDir, writeTree } from '../helpers/cli.js';

const API = 'from osv.modules import api\n';
const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

interface WatchEvent {
  type: string;
  index?: number;
  ok?: boolean;
  trigger?: string[];
  built?: string[];
  restored?: string[];
  error?: { code: string; message: string };
  [k: string]: unknown;
}

/** An `osvb watch --json` child and the events it printed. */
class Watch {
  readonly events: WatchEvent[] = [];
  stderr = '';
  private readonly child: ChildProcess;
  readonly exited: Promise<number | null>;
  private waiters: Array<() => void> = [];

  constructor(base: string, words: string[] = []) {
    this.child = spawn(process.execPath, [OSVB, 'watch', '--json', '--debounce', '40', '--osv-base', base, ...words], {
      env: { ...process.env, OSV_BASE: undefined, OSV_BUILD_PATH: undefined, CI: 'true' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let buf = '';
    this.child.stdout?.on('data', (d: Buffer) => {
      buf += d.toString();
      let i: number;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        if (line.trim()) this.events.push(JSON.parse(line) as WatchEvent);
      }
      for (const w of this.waiters) w();
    });
    this.child.stderr?.on('data', (d: Buffer) => (this.stderr += d.toString()));
    this.exited = new Promise((resolve) => this.child.on('exit', (code) => resolve(code)));
  }

  builds(): WatchEvent[] {
    return this.events.filter((e) => e.type === 'watch-build');
  }

  /** Resolves when `pred` holds for the events so far (checked on every new line). */
  async waitFor(what: string, pred: (w: Watch) => boolean, timeoutMs = 30_000): Promise<void> {
    if (pred(this)) return;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}; events: ${JSON.stringify(this.events.filter((e) => e.type !== 'make-output'))}\nstderr: ${this.stderr}`)), timeoutMs);
      const check = (): void => {
        if (pred(this)) {
          clearTimeout(timer);
          this.waiters = this.waiters.filter((w) => w !== check);
          resolve();
        }
      };
      this.waiters.push(check);
    });
  }

  /** Wait for the n-th build (0-based) and the watcher to be ready after it. */
  async build(n: number): Promise<WatchEvent> {
    await this.waitFor(`build ${n}`, (w) => {
      const i = w.events.findIndex((e) => e.type === 'watch-build' && e.index === n);
      return i >= 0 && w.events.slice(i + 1).some((e) => e.type === 'watching');
    });
    return this.builds().find((b) => b.index === n) as WatchEvent;
  }

  async stop(): Promise<number | null> {
    this.child.kill('SIGINT');
    return this.exited;
  }
}

const running: Watch[] = [];
afterEach(async () => {
  for (const w of running.splice(0)) await Promise.race([w.stop(), new Promise((r) => setTimeout(r, 5000))]);
});

function start(base: string, words: string[] = []): Watch {
  const w = new Watch(base, words);
  running.push(w);
  return w;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** lib (a C library), app (requires lib, a data file), slow (make takes a second). */
function tree(): string {
  const root = tempDir('osvb-watch-');
  dirs.push(root);
  writeTree(root, {
    'config.json': JSON.stringify({ modules: { repositories: ['${OSV_BASE}/modules'] } }),
    'usr.manifest.skel': '[manifest]\n',
    'usr_rofs.manifest.skel': '[manifest]\n',
    'bootfs.manifest.skel': '[manifest]\n',
    'images/default.py': API + "api.require('app')\napi.require('slow')\n",
    'modules/lib/module.py': API,
    'modules/lib/lib.c': 'int lib_answer(void) { return 42; }\n',
    'modules/lib/Makefile': 'module: lib.so\nlib.so: lib.c\n\tgcc -shared -fPIC -o $@ lib.c\n',
    'modules/lib/.gitignore': '*.so\n',
    'modules/lib/usr.manifest': '/lib.so: ${MODULE_DIR}/lib.so\n',
    'modules/app/module.py': API + "api.require('lib')\n",
    'modules/app/data.txt': 'one\n',
    'modules/app/usr.manifest': '/app/data.txt: ${MODULE_DIR}/data.txt\n',
    'modules/slow/module.py': API,
    'modules/slow/src.txt': 'v1\n',
    'modules/slow/Makefile': 'module: out.txt\nout.txt: src.txt\n\ttouch started\n\tsleep 1\n\tcp src.txt out.txt\n',
    'modules/slow/.gitignore': 'out.txt\nstarted\n',
    'modules/slow/usr.manifest': '/slow.txt: ${MODULE_DIR}/out.txt\n',
    'modules/extra/module.py': API,
    'modules/extra/extra.txt': 'extra\n',
    'modules/extra/usr.manifest': '/extra.txt: ${MODULE_DIR}/extra.txt\n',
  });
  return root;
}

function usrManifest(base: string): string {
  return fs.readFileSync(path.join(base, 'build/release/usr.manifest'), 'utf8');
}

describe('osvb watch', () => {
  it('builds, then rebuilds the edited module (not the others) and updates the image; its own outputs never retrigger', async () => {
    const base = tree();
    const w = start(base, ['fs=rofs']);
    const first = await w.build(0);
    expect(first.ok).toBe(true);
    expect(first.built?.sort()).toEqual(['lib', 'slow']);

    fs.writeFileSync(path.join(base, 'modules/lib/lib.c'), 'int lib_answer(void) { return 43; }\n');
    const second = await w.build(1);
    expect(second.ok).toBe(true);
    expect(second.built).toEqual(['lib']);
    expect(second.trigger).toEqual([path.join(base, 'modules/lib/lib.c')]);
    expect((second['images'] as { rofs?: { filesWritten: number } }).rofs?.filesWritten).toBeGreaterThan(0);

    // A manifest-only change: no make, the image follows.
    fs.writeFileSync(path.join(base, 'modules/app/data.txt'), 'two\n');
    const third = await w.build(2);
    expect(third.built).toEqual([]);
    const listing = await osvb(['rofs', 'cat', path.join(base, 'build/release/rofs.img'), '/app/data.txt']);
    expect(listing.stdout).toBe('two\n');

    // Quiet: lib.so, rofs.img, the manifests and the cache were all written — none of it counts.
    await sleep(1500);
    expect(w.builds()).toHaveLength(3);
    expect(await w.stop()).toBe(0);
    expect(w.events.at(-1)?.type).toBe('watch-stopped');
  });

  it('a usr.manifest line appended in a Makefile module with dependents: no make anywhere, manifest and rofs.img updated; a C edit there makes that module only', async () => {
    const base = tree();
    writeTree(base, {
      'images/default.py': API + "api.require('app')\napi.require('user')\n",
      'modules/user/module.py': API + "api.require('lib')\n",
      'modules/user/user.c': 'int user(void) { return 1; }\n',
      'modules/user/Makefile': 'module: user.so\nuser.so: user.c\n\tgcc -shared -fPIC -o $@ user.c\n',
      'modules/user/.gitignore': '*.so\n',
      'modules/user/usr.manifest': '/user.so: ${MODULE_DIR}/user.so\n',
    });
    const w = start(base, ['fs=rofs']);
    expect((await w.build(0)).built?.sort()).toEqual(['lib', 'user']);
    // While idle, watch asks make ahead of time (make -pq) for lib and user.
    await w.waitFor('make asked ahead of time', (x) => x.events.some((e) => e.type === 'log' && String(e['text']).startsWith('early cutoff: make asked about 2 modules ahead of time')));
    fs.appendFileSync(path.join(base, 'modules/lib/usr.manifest'), '/lib-source.c: ${MODULE_DIR}/lib.c\n');
    const edited = await w.build(1);
    expect(edited.ok).toBe(true);
    expect(edited.built).toEqual([]);
    const cut = w.events.filter((e) => e.type === 'module-restored' && typeof e['cutoff'] === 'string');
    expect(cut.map((e) => e['name']).sort()).toEqual(['lib', 'user']);
    // Both answered from the kept answers: no make process at all.
    for (const e of cut) expect(e['cutoff']).toContain('still holds');
    expect(usrManifest(base)).toContain(`/lib-source.c: ${base}/modules/lib/lib.c`);
    const cat = await osvb(['rofs', 'cat', path.join(base, 'build/release/rofs.img'), '/lib-source.c']);
    expect(cat.stdout).toBe('int lib_answer(void) { return 42; }\n');
    fs.writeFileSync(path.join(base, 'modules/lib/lib.c'), 'int lib_answer(void) { return 45; }\n');
    const cEdit = await w.build(2);
    expect(cEdit.built).toEqual(['lib']);
    const again = await osvb(['rofs', 'cat', path.join(base, 'build/release/rofs.img'), '/lib-source.c']);
    expect(again.stdout).toBe('int lib_answer(void) { return 45; }\n');
    expect(await w.stop()).toBe(0);
  });

  it('changes made during a build are taken by exactly one follow-up build', async () => {
    const base = tree();
    const w = start(base);
    await w.build(0);
    const started = path.join(base, 'modules/slow/started');
    fs.rmSync(started);
    fs.writeFileSync(path.join(base, 'modules/slow/src.txt'), 'v2\n');
    // make is running (it sleeps a second): change three things meanwhile.
    for (let i = 0; i < 100 && !fs.existsSync(started); i++) await sleep(50);
    expect(fs.existsSync(started)).toBe(true);
    fs.writeFileSync(path.join(base, 'modules/app/data.txt'), 'during\n');
    await sleep(100);
    fs.writeFileSync(path.join(base, 'modules/slow/src.txt'), 'v3\n');
    fs.writeFileSync(path.join(base, 'modules/lib/lib.c'), 'int lib_answer(void) { return 44; }\n');
    const followUp = await w.build(2);
    expect(w.builds()[1]?.built).toEqual(["slow"]);
    expect(followUp.built?.sort()).toEqual(['lib', 'slow']);
    expect(followUp.trigger?.map((t) => path.relative(base, t)).sort()).toEqual(['modules/app/data.txt', 'modules/lib/lib.c', 'modules/slow/src.txt']);
    await sleep(1200);
    expect(w.builds()).toHaveLength(3);
    expect(fs.readFileSync(path.join(base, 'modules/slow/out.txt'), 'utf8')).toBe('v3\n');
    expect(usrManifest(base)).toContain('/app/data.txt');
  });

  it('a broken module.py is reported and watching goes on; the fix builds again', async () => {
    const base = tree();
    const w = start(base);
    await w.build(0);
    fs.writeFileSync(path.join(base, 'modules/app/module.py'), API + "api.require('lib'\n");
    const broken = await w.build(1);
    expect(broken.ok).toBe(false);
    expect(broken.error?.code).toMatch(/^OSVB_MODULE_PY/);
    fs.writeFileSync(path.join(base, 'modules/app/module.py'), API + "api.require('lib')\n");
    const fixed = await w.build(2);
    expect(fixed.ok).toBe(true);
  });

  it('a module added to the image config is built, included and watched; removing it drops it', async () => {
    const base = tree();
    const w = start(base);
    await w.build(0);
    expect(usrManifest(base)).not.toContain('/extra.txt');
    fs.appendFileSync(path.join(base, 'images/default.py'), "api.require('extra')\n");
    await w.build(1);
    expect(usrManifest(base)).toContain('/extra.txt');
    fs.writeFileSync(path.join(base, 'modules/extra/extra.txt'), 'changed\n');
    const edited = await w.build(2);
    expect(edited.trigger).toEqual([path.join(base, 'modules/extra/extra.txt')]);
    fs.writeFileSync(path.join(base, 'images/default.py'), API + "api.require('app')\napi.require('slow')\n");
    await w.build(3);
    expect(usrManifest(base)).not.toContain('/extra.txt');
  });

  it('Ctrl-C during a make stops it and exits cleanly; the next build is sound', async () => {
    const base = tree();
    const w = start(base);
    await w.build(0);
    const started = path.join(base, 'modules/slow/started');
    fs.rmSync(started);
    fs.writeFileSync(path.join(base, 'modules/slow/src.txt'), 'interrupted\n');
    for (let i = 0; i < 100 && !fs.existsSync(started); i++) await sleep(50);
    const t0 = Date.now();
    expect(await w.stop()).toBe(0);
    expect(Date.now() - t0).toBeLessThan(5000);
    const after = await osvb(['build', '--osv-base', base]);
    expect(after.exitCode, after.stderr).toBe(0);
    expect(fs.readFileSync(path.join(base, 'modules/slow/out.txt'), 'utf8')).toBe('interrupted\n');
    const verify = await osvb(['cache', 'verify', '--osv-base', base]);
    expect(verify.exitCode, verify.stdout + verify.stderr).toBe(0);
  });
});
