/**
 * End-to-end: the real nx of one version (tools/nxws NX_MATRIX; each test/e2e/nx*.test.ts file
 * runs this suite for one) in a temp workspace that installs the packed packages, on a copy of
 * examples/osv, with real make, gcc and python3; NX_DAEMON=false.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
// @ts-expect-error -- plain ESM helper shared with the benchmark
import { createNxWorkspace, git, nx, nxEnv, packPackages } from '../../tools/nxws/workspace.mjs';
import { copyExample, makeWrapper, readMakeLog, tempDir } from '../helpers/cli.js';
import { missingFor, SHARED_KERNEL } from '../helpers/tools.js';

interface NxRun {
  status: number;
  stdout: string;
  stderr: string;
  output: string;
}
type NxFn = (dir: string, args: string[], env?: Record<string, string | undefined>) => NxRun;
const runNx = nx as NxFn;

interface GraphFile {
  graph: {
    nodes: Record<string, { name: string; type: string; data: { root: string; targets: Record<string, { executor: string; inputs?: unknown[]; outputs?: string[] }> } }>;
    dependencies: Record<string, Array<{ source: string; target: string; type: string }>>;
  };
}

/**
 * For tests that run several Nx commands that build: a limit, not a time to meet (the four Nx
 * suites run side by side, and on a loaded 2-CPU machine one such test took over a minute).
 */
const SLOW = 240_000;

export interface NxVersions {
  nx: string;
  devkit: string;
}

/**
 * The plugin's end-to-end suite against one Nx version. `boot`: also boot the image under QEMU
 * (once is enough: it tests osvb run, not Nx).
 */
export function nxSuite(versions: NxVersions, options: { boot: boolean }): void {
  const root = tempDir('osvb-nx-e2e-');
  const ws = path.join(root, 'ws');
  const base = path.join(ws, 'osv');
  const makeLog = path.join(root, 'make.log');
  let wrapperPath = '';

  function run(args: string[], env: Record<string, string | undefined> = {}): NxRun {
    return runNx(ws, args, { PATH: `${wrapperPath}:${process.env['PATH'] ?? ''}`, ...env });
  }

  /** `make module` runs since the n-th logged make (make's up-to-date question, make -pq, is not one). */
  function makesSince(n: number): string[] {
    return readMakeLog(makeLog)
      .slice(n)
      .filter((c) => !c.args.startsWith('-pq'))
      .map((c) => path.relative(base, c.cwd));
  }

  beforeAll(() => {
    const packs = (packPackages as (d: string) => Record<string, string>)(path.join(root, 'packs'));
    (createNxWorkspace as (d: string, p: Record<string, string>, v: NxVersions) => void)(ws, packs, versions);
    const installed = (JSON.parse(fs.readFileSync(path.join(ws, 'node_modules/nx/package.json'), 'utf8')) as { version: string }).version;
    expect(installed).toBe(versions.nx);
    copyExample(base);
    wrapperPath = makeWrapper(root, makeLog);
    git(ws, ['init', '-q']);
    git(ws, ['add', '-A']);
    git(ws, ['commit', '-qm', 'workspace']);
  }, 300_000);

  afterAll(() => {
    fs.rmSync(root, { recursive: true, force: true });
  });

  describe(`@osv-build/nx in a real Nx ${versions.nx} workspace`, () => {
    it.runIf(process.platform === 'linux')('npm install built the native copier from its tarball (node-gyp, no download)', () => {
      expect(fs.existsSync(path.join(ws, 'node_modules/@osv-build/native/build/Release/osvb_native.node'))).toBe(true);
    });

    it('the init generator registers the plugin in nx.json, once', () => {
      const first = run(['g', '@osv-build/nx:init', '--bases=osv', '--words=fs=rofs']);
      expect(first.status, first.output).toBe(0);
      const again = run(['g', '@osv-build/nx:init', '--bases=osv']);
      expect(again.status, again.output).toBe(0);
      const nxJson = JSON.parse(fs.readFileSync(path.join(ws, 'nx.json'), 'utf8')) as { plugins: unknown[] };
      expect(nxJson.plugins).toEqual([{ plugin: '@osv-build/nx', options: { bases: ['osv'], images: { image: { words: ['fs=rofs'] } } } }]);
      git(ws, ['commit', '-qam', 'register @osv-build/nx']);
    });

    it('nx graph lists every module project, the image project and the require edges', () => {
      const res = run(['graph', '--file=graph.json']);
      expect(res.status, res.output).toBe(0);
      const { graph } = JSON.parse(fs.readFileSync(path.join(ws, 'graph.json'), 'utf8')) as GraphFile;
      fs.rmSync(path.join(ws, 'graph.json'));
      const modules = ['banner', 'greeter-java', 'hello', 'java', 'java-base', 'libgreet', 'toolbox', 'webdocs'];
      for (const m of modules) {
        expect(graph.nodes[m]?.data.targets['build']?.executor).toBe('@osv-build/nx:module');
      }
      expect(graph.nodes['libgreet']?.data.root).toBe('osv/modules/libgreet');
      expect(graph.nodes['image']?.data.root).toBe('osv');
      expect(graph.nodes['image']?.data.targets['build']?.executor).toBe('@osv-build/nx:image');
      const edges = (name: string): string[] => (graph.dependencies[name] ?? []).map((d) => d.target).sort();
      expect(edges('hello')).toEqual(['libgreet']);
      expect(edges('banner')).toEqual(['hello']);
      expect(edges('java')).toEqual(['java-base']);
      expect(edges('greeter-java')).toEqual(['java']);
      expect(edges('libgreet')).toEqual([]);
      expect(edges('image')).toEqual(modules);
      // require edges are file-based: they come from module.py.
      expect(graph.dependencies['hello']?.[0]?.type).toBe('static');
      // The module's outputs come from its .gitignore.
      expect(graph.nodes['libgreet']?.data.targets['build']?.outputs).toContain('{projectRoot}/**/libgreet.so');
    });

    it('nx run image:build builds the image; a second run is an Nx cache hit', () => {
      const before = readMakeLog(makeLog).length;
      const first = run(['run', 'image:build']);
      expect(first.status, first.output).toBe(0);
      expect(makesSince(before).sort()).toEqual(['apps/hello', 'modules/libgreet']);
      for (const f of ['usr.manifest', 'bootfs.manifest', 'cmdline', 'rofs.img']) expect(fs.existsSync(path.join(base, 'build/release', f)), f).toBe(true);
      const usr = fs.readFileSync(path.join(base, 'build/release/usr.manifest'), 'utf8');

      const second = run(['run', 'image:build']);
      expect(second.status, second.output).toBe(0);
      expect(second.output).toMatch(/read the output from the cache/);
      expect(second.output).toMatch(/\[local cache\]|existing outputs match the cache/);
      expect(makesSince(before).length).toBe(2);
      expect(fs.readFileSync(path.join(base, 'build/release/usr.manifest'), 'utf8')).toBe(usr);
    }, SLOW);

    it("after one module's source changes, image:build reruns and the engine rebuilds only that module", () => {
      fs.appendFileSync(path.join(base, 'apps/hello/hello.c'), '\n/* edited */\n');
      const before = readMakeLog(makeLog).length;
      const res = run(['run', 'image:build']);
      expect(res.status, res.output).toBe(0);
      expect(res.output).not.toMatch(/read the output from the cache/);
      expect(res.output).toMatch(/built hello/);
      expect(res.output).not.toMatch(/built libgreet/);
      expect(makesSince(before)).toEqual(['apps/hello']);
      git(ws, ['commit', '-qam', 'edit hello']);
    }, SLOW);

    it('a module target builds that module (after what it requires) and shares the engine cache with the image', () => {
      const before = readMakeLog(makeLog).length;
      const res = run(['run', 'hello:build']);
      expect(res.status, res.output).toBe(0);
      expect(res.output).toMatch(/libgreet:build/);
      // Same words reach make as in the image build (fs=rofs): nothing to rebuild.
      expect(makesSince(before)).toEqual([]);
    }, SLOW);

    it('nx affected selects the changed module, its dependents and the image', () => {
      const rev = git(ws, ['rev-parse', 'HEAD']).trim();
      fs.appendFileSync(path.join(base, 'modules/libgreet/greet.c'), '\n/* changed */\n');
      git(ws, ['commit', '-qam', 'change libgreet']);
      const res = run(['affected', '-t', 'build', `--base=${rev}`, '--graph=tasks.json']);
      expect(res.status, res.output).toBe(0);
      const tasks = JSON.parse(fs.readFileSync(path.join(ws, 'tasks.json'), 'utf8')) as { tasks: { tasks: Record<string, unknown> } };
      fs.rmSync(path.join(ws, 'tasks.json'));
      expect(Object.keys(tasks.tasks.tasks).sort()).toEqual(['banner:build', 'hello:build', 'image:build', 'libgreet:build']);

      const before = readMakeLog(makeLog).length;
      const built = run(['affected', '-t', 'build', `--base=${rev}`]);
      expect(built.status, built.output).toBe(0);
      // A comment in greet.c: libgreet.so comes out byte-identical, so hello (which links it) is
      // skipped by early cutoff: make -q, with the unchanged library treated as old, has nothing to do.
      expect(makesSince(before).sort()).toEqual(['modules/libgreet']);
    }, SLOW);

    it('nx run image:watch (continuous) rebuilds after an edit and stops on Ctrl-C', async () => {
      const env = (nxEnv as (e: Record<string, string | undefined>, dir: string) => NodeJS.ProcessEnv)({ PATH: `${wrapperPath}:${process.env['PATH'] ?? ''}` }, ws);
      const child = spawn(path.join(ws, 'node_modules/.bin/nx'), ['run', 'image:watch'], { cwd: ws, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr.on('data', (d: Buffer) => (out += d.toString()));
      const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
      const until = async (re: RegExp, what: string): Promise<void> => {
        for (let i = 0; i < 600 && !re.test(out); i++) await new Promise((r) => setTimeout(r, 50));
        if (!re.test(out)) throw new Error(`no ${what} in:\n${out}`);
      };
      try {
        await until(/watching \d+ paths/, 'first build');
        fs.appendFileSync(path.join(base, 'apps/hello/hello.c'), '\nint hello_watch_marker;\n');
        await until(/rebuilt hello/, 'rebuild');
        expect(out).not.toMatch(/rebuilt libgreet/);
      } finally {
        process.kill(-(child.pid as number), 'SIGINT');
        await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
        if (child.exitCode === null) process.kill(-(child.pid as number), 'SIGKILL');
      }
      git(ws, ['commit', '-qam', 'edit hello while watching']);
    });

    it('an executor option that is not in its schema is rejected by Nx', () => {
      const res = run(['run', 'image:build', '--wordz=fs=zfs']);
      expect(res.status).not.toBe(0);
      expect(res.output).toMatch(/'wordz' is not found in schema/);
    });

    it('a misspelt plugin option in nx.json is named in the error', () => {
      const file = path.join(ws, 'nx.json');
      const good = fs.readFileSync(file, 'utf8');
      try {
        const cfg = JSON.parse(good) as { plugins: Array<{ options: Record<string, unknown> }> };
        (cfg.plugins[0] as { options: Record<string, unknown> }).options['base'] = ['osv'];
        fs.writeFileSync(file, JSON.stringify(cfg, null, 2));
        const res = run(['show', 'projects']);
        expect(res.status).not.toBe(0);
        expect(res.output).toMatch(/unknown option "base" \(known: bases, /);
      } finally {
        fs.writeFileSync(file, good);
      }
    });

    it('a broken config.json fails the graph with the file and line', () => {
      const file = path.join(base, 'config.json');
      const good = fs.readFileSync(file, 'utf8');
      try {
        fs.writeFileSync(file, good.replace('"repositories"', '"repositories" "oops"'));
        const res = run(['show', 'projects']);
        expect(res.status).not.toBe(0);
        expect(res.output).toMatch(/config\.json:\d+/);
        expect(res.output).toMatch(/OSVB_CONFIG_SYNTAX/);
      } finally {
        fs.writeFileSync(file, good);
      }
    });

    const noBoot = missingFor('e2e/nx.test.ts (image:run)', ['kernel', 'qemu']);
    it.skipIf(!options.boot || noBoot !== undefined)('with images.image.kernel, image:build writes usr.img and image:run boots it', () => {
      const file = path.join(ws, 'nx.json');
      const good = fs.readFileSync(file, 'utf8');
      try {
        const cfg = JSON.parse(good) as { plugins: Array<{ options: { images: Record<string, unknown> } }> };
        (cfg.plugins[0] as { options: { images: Record<string, unknown> } }).options.images = { image: { words: ['fs=rofs', 'image=native'], kernel: SHARED_KERNEL } };
        fs.writeFileSync(file, JSON.stringify(cfg, null, 2));
        const shown = run(['show', 'project', 'image', '--json']);
        expect(shown.status, shown.output).toBe(0);
        const project = JSON.parse(shown.output.slice(shown.output.indexOf('{'))) as { targets: Record<string, { executor: string; outputs?: string[]; dependsOn?: string[] }> };
        expect(project.targets['run']).toMatchObject({ executor: '@osv-build/nx:run', dependsOn: ['build'] });
        expect(project.targets['build']?.outputs).toContain('{workspaceRoot}/osv/build/release/usr.img');
        const res = run(['run', 'image:run', '--cpus=1', '--memory=256M', '--timeout=90']);
        expect(res.status, res.output).toBe(0);
        // (Nx's task output may still break a line where the VM's output came in two pieces.)
        const console = res.output.replace(/\r?\n/g, '');
        expect(console).toContain('Hello, world!');
        expect(console).toContain('Welcome to the osv-build example image.');
        expect(fs.existsSync(path.join(base, 'build/release/usr.img'))).toBe(true);
      } finally {
        fs.writeFileSync(file, good);
      }
    }, 300_000);
    describe('moduleTasks: every module its own Nx task, the image task only assembles', () => {
      const nxJson = path.join(ws, 'nx.json');
      const release = path.join(base, 'build/release');
      let plain = '';
      /** What the default mode wrote for the same tree: the split build must write the same bytes. */
      const expected: Record<string, string> = {};
      const read = (): Record<string, string> => Object.fromEntries(['usr.manifest', 'cmdline', 'rofs.img'].map((f) => [f, fs.readFileSync(path.join(release, f)).toString('base64')]));
      /** A fresh clone's state: no engine cache, no module outputs, no build path (Nx's cache stays). */
      const cleanBase = (): void => void git(ws, ['clean', '-fdXq', 'osv']);
      const cachedTasks = (output: string): [number, number] => {
        const m = /from the cache instead of running the command for (\d+) out of (\d+) tasks/.exec(output);
        return m ? [Number(m[1]), Number(m[2])] : [0, -1];
      };

      beforeAll(() => {
        const res = run(['run', 'image:build']);
        expect(res.status, res.output).toBe(0);
        Object.assign(expected, read());
        plain = fs.readFileSync(nxJson, 'utf8');
        const cfg = JSON.parse(plain) as { plugins: Array<{ options: Record<string, unknown> }> };
        (cfg.plugins[0] as { options: Record<string, unknown> }).options['moduleTasks'] = true;
        fs.writeFileSync(nxJson, JSON.stringify(cfg, null, 2) + '\n');
        git(ws, ['commit', '-qam', 'moduleTasks']);
        cleanBase();
      }, SLOW);

      afterAll(() => {
        fs.writeFileSync(nxJson, plain);
        git(ws, ['commit', '-qam', 'moduleTasks off']);
      });

      it('the image build depends on the module build targets; each module is made once, in its own task', () => {
        const shown = run(['show', 'project', 'image', '--json']);
        expect(shown.status, shown.output).toBe(0);
        const project = JSON.parse(shown.output.slice(shown.output.indexOf('{'))) as { targets: Record<string, { dependsOn?: string[]; options?: Record<string, unknown> }> };
        expect(project.targets['build']).toMatchObject({ dependsOn: ['^build'], options: { moduleTasks: true } });

        const before = readMakeLog(makeLog).length;
        const res = run(['run', 'image:build']);
        expect(res.status, res.output).toBe(0);
        for (const t of ['libgreet:build', 'hello:build', 'banner:build', 'java:build', 'image:build']) expect(res.output).toContain(t);
        // Made by the module tasks, once each; the image task made nothing (it only assembled).
        expect(makesSince(before).sort()).toEqual(['apps/hello', 'modules/libgreet']);
        // The image task's own summary (Nx 24 does not show the dependencies' output).
        expect(res.output).toMatch(/8 modules: 2 up to date, 0 restored, 0 built/);
        expect(read()).toEqual(expected);
      }, SLOW);

      it('a second run is an Nx cache hit for every task', () => {
        const before = readMakeLog(makeLog).length;
        const res = run(['run', 'image:build']);
        expect(res.status, res.output).toBe(0);
        const [hits, tasks] = cachedTasks(res.output);
        expect(tasks).toBe(9); // 8 modules + the image
        expect(hits).toBe(tasks);
        expect(makesSince(before)).toEqual([]);
      }, SLOW);

      it("Nx replays the modules' outputs: with no engine cache and no module outputs, the image task assembles without make", () => {
        // What a machine gets when the module tasks ran elsewhere (Nx Agents): their outputs come
        // from Nx's cache, osv-build's cache here is empty. Only the image's own inputs changed.
        cleanBase();
        fs.writeFileSync(path.join(base, 'NOTES.txt'), 'an image-only input\n');
        git(ws, ['add', '-A']);
        git(ws, ['commit', '-qm', 'notes']);
        const before = readMakeLog(makeLog).length;
        const res = run(['run', 'image:build']);
        expect(res.status, res.output).toBe(0);
        expect(cachedTasks(res.output)).toEqual([8, 9]);
        expect(makesSince(before)).toEqual([]);
        expect(res.output).toMatch(/8 modules: 2 up to date, 0 restored, 0 built/);
        expect(fs.existsSync(path.join(base, 'modules/libgreet/libgreet.so'))).toBe(true);
        expect(fs.existsSync(path.join(base, 'apps/hello/hello.so'))).toBe(true);
        expect(read()).toEqual(expected);
      }, SLOW);

      it('one module changed: its task and the image task run, make runs for that module only (not for what it requires)', () => {
        cleanBase();
        fs.appendFileSync(path.join(base, 'apps/hello/hello.c'), '\n/* edited under moduleTasks */\n');
        git(ws, ['commit', '-qam', 'edit hello (moduleTasks)']);
        const before = readMakeLog(makeLog).length;
        const res = run(['run', 'image:build']);
        expect(res.status, res.output).toBe(0);
        // hello, banner (requires hello) and the image ran; the others came from Nx's cache.
        expect(cachedTasks(res.output)).toEqual([6, 9]);
        // libgreet is hello's requirement: its own (cached) task provided it, no engine cache did.
        expect(makesSince(before)).toEqual(['apps/hello']);
        expect(fs.readFileSync(path.join(release, 'usr.manifest'), 'utf8')).toBe(Buffer.from(expected['usr.manifest'] as string, 'base64').toString('utf8'));
      }, SLOW);
    });
  });
}
