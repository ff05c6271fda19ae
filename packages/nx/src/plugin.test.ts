/** The plugin's pure parts and createNodes/createDependencies on a real base (no nx process: see test/e2e/nx.test.ts). */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createRequire } from 'node:module';
import { afterAll, describe, expect, it } from 'vitest';
import type { CreateDependenciesContext, CreateNodesContextV2, ProjectConfiguration } from '@nx/devkit';
import { gitignoreGlobs, moduleOutputs } from './gitignore.js';
import { normalizeOptions } from './options.js';
import { createDependenciesImpl, createNodesImpl } from './plugin.js';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});
function tempDir(): string {
  const d = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'osvb-nx-unit-')));
  dirs.push(d);
  return d;
}
function write(root: string, files: Record<string, string>): void {
  for (const [rel, text] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(root, rel)), { recursive: true });
    fs.writeFileSync(path.join(root, rel), text);
  }
}

describe('gitignore → output globs', () => {
  it('anchors patterns with a slash, matches the others at any depth, drops negations and comments', () => {
    expect(gitignoreGlobs('# built\n*.so\n/out/\nsub/gen.c\n!keep.so\n\nobj/\n')).toEqual(['**/*.so', 'out', 'sub/gen.c', '**/obj']);
  });

  it('produced files that .gitignore misses are outputs too (and reported to be left out of the inputs)', () => {
    const dir = tempDir();
    write(dir, { '.gitignore': '*.so\n' });
    expect(moduleOutputs(dir, ['lib.so', 'gen/table.c'])).toEqual({ outputs: ['**/*.so', 'gen/table.c'], unignored: ['gen/table.c'] });
  });
});

describe('plugin options', () => {
  it('defaults to one image project named "image"', () => {
    expect(normalizeOptions(undefined)).toEqual({ bases: undefined, projectPrefix: '', buildTargetName: 'build', images: [{ name: 'image', words: [] }], cacheDir: undefined, moduleTasks: false });
  });

  it('names an unknown or ill-typed option', () => {
    expect(() => normalizeOptions({ base: ['x'] })).toThrow(/unknown option "base" \(known: bases, projectPrefix/);
    expect(() => normalizeOptions({ images: { image: { word: [] } } })).toThrow(/unknown option "images.image.word"/);
    expect(() => normalizeOptions({ images: { image: { words: 'fs=rofs' } } })).toThrow(/"images.image.words" must be an array of strings/);
    expect(() => normalizeOptions({ bases: 'osv' })).toThrow(/"bases" must be an array of strings/);
  });
});

describe('createNodes and createDependencies', () => {
  const API = 'from osv.modules import api\n';
  function workspace(): string {
    const ws = tempDir();
    write(ws, {
      'osv/config.json': JSON.stringify({ modules: { repositories: ['${OSV_BASE}/modules'] } }),
      'osv/modules/lib/module.py': API,
      'osv/modules/lib/Makefile': 'module:\n',
      'osv/modules/lib/.gitignore': '*.so\n',
      'osv/modules/app/module.py': API + "api.require('lib')\n",
      'osv/images/default.py': API + "api.require('app')\n",
      'other/config.json': '{"name": "not an OSv base"}',
    });
    return ws;
  }

  it('makes a project per module and one image project; module targets get the words that reach make', async () => {
    const ws = workspace();
    const ctx = { workspaceRoot: ws, nxJsonConfiguration: {} } as CreateNodesContextV2;
    const results = await createNodesImpl(['osv/config.json', 'other/config.json'], { images: { image: { words: ['fs=rofs', 'image=default', 'export=all'] } }, projectPrefix: 'osv-' }, ctx);
    expect(results.map(([f]) => f)).toEqual(['osv/config.json']);
    const projects = results[0]?.[1].projects as Record<string, ProjectConfiguration>;
    expect(Object.keys(projects).sort()).toEqual(['osv', 'osv/modules/app', 'osv/modules/lib']);
    const lib = projects['osv/modules/lib'] as ProjectConfiguration;
    expect(lib.name).toBe('osv-lib');
    expect(lib.targets?.['build']).toMatchObject({
      executor: '@osv-build/nx:module',
      options: { osvBase: 'osv', module: 'lib', words: ['fs=rofs'] },
      cache: true,
      dependsOn: ['^build'],
      outputs: ['{projectRoot}/**/*.so'],
    });
    const image = projects['osv'] as ProjectConfiguration;
    expect(image.name).toBe('image');
    expect(image.targets?.['build']?.outputs).toEqual(
      expect.arrayContaining(['{workspaceRoot}/osv/build/release/usr.manifest', '{workspaceRoot}/osv/build/export']),
    );
    expect(image.targets?.['build']?.outputs).toContain('{workspaceRoot}/osv/build/release/rofs.img');

    const projectsByName: Record<string, ProjectConfiguration> = {};
    for (const p of Object.values(projects)) projectsByName[p.name as string] = p;
    const files = (list: string[]) => list.map((file) => ({ file, hash: '' }));
    const deps = await createDependenciesImpl(
      { projectPrefix: 'osv-', images: { image: { words: ['fs=rofs'] } } },
      {
        workspaceRoot: ws,
        projects: projectsByName,
        nxJsonConfiguration: {},
        externalNodes: {},
        fileMap: { nonProjectFiles: [], projectFileMap: { 'osv-app': files(['osv/modules/app/module.py']), image: files(['osv/config.json']) } },
        filesToProcess: { nonProjectFiles: [], projectFileMap: {} },
      } as unknown as CreateDependenciesContext,
    );
    expect(deps).toEqual([
      { source: 'osv-app', target: 'osv-lib', type: 'static', sourceFile: 'osv/modules/app/module.py' },
      // images/default.py is not in the file map given here: the edge is implicit.
      { source: 'image', target: 'osv-lib', type: 'implicit' },
      { source: 'image', target: 'osv-app', type: 'implicit' },
    ]);
  });
  it('moduleTasks: the image build depends on its modules\' build targets and only assembles', async () => {
    const ws = workspace();
    const ctx = { workspaceRoot: ws, nxJsonConfiguration: {} } as CreateNodesContextV2;
    const plain = (await createNodesImpl(['osv/config.json'], {}, ctx))[0]?.[1].projects as Record<string, ProjectConfiguration>;
    expect(plain['osv']?.targets?.['build']?.dependsOn).toBeUndefined();
    expect(plain['osv']?.targets?.['build']?.options).not.toHaveProperty('moduleTasks');
    const split = (await createNodesImpl(['osv/config.json'], { moduleTasks: true, buildTargetName: 'make' }, ctx))[0]?.[1].projects as Record<string, ProjectConfiguration>;
    expect(split['osv']?.targets?.['make']).toMatchObject({ executor: '@osv-build/nx:image', dependsOn: ['^make'], options: { osvBase: 'osv', moduleTasks: true }, cache: true });
    // The watch target still builds everything itself.
    expect(split['osv']?.targets?.['watch']?.dependsOn).toBeUndefined();
    expect(split['osv/modules/lib']?.targets?.['make']).toMatchObject({ executor: '@osv-build/nx:module', dependsOn: ['^make'] });
    expect(() => normalizeOptions({ moduleTasks: 'yes' })).toThrow(/"moduleTasks" must be true or false/);
  });
});

describe('supported Nx versions', () => {
  const { unsupportedNx, NX_RANGE } = createRequire(import.meta.url)('../nx-version.cjs') as { unsupportedNx: (v: string) => string | undefined; NX_RANGE: string };
  it('accepts Nx 21 to 24 and names the range for any other', () => {
    expect(NX_RANGE).toBe('>=21 <25');
    for (const v of ['21.0.0', '22.7.12', '23.3.2', '24.0.6', '24.1.0-beta.1']) expect(unsupportedNx(v)).toBeUndefined();
    expect(unsupportedNx('20.8.4')).toBe('@osv-build/nx works with Nx >=21 <25 (nx and @nx/devkit 21.x to 24.x); this workspace runs Nx 20.8.4: install a supported nx and @nx/devkit');
    expect(unsupportedNx('25.0.0')).toMatch(/works with Nx >=21 <25.*runs Nx 25\.0\.0/);
  });

  it('the package.json peer ranges say the same', () => {
    const pkg = JSON.parse(fs.readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { peerDependencies: Record<string, string> };
    expect(pkg.peerDependencies).toEqual({ nx: NX_RANGE, '@nx/devkit': NX_RANGE });
  });
});
