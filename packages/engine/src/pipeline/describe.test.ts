/** describeBase: the module set, requires and image selections, and when it runs python3 again. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { useTempDirs } from '../testing/index.js';
import { describeBase } from './describe.js';

const tempDir = useTempDirs('osvb-describe-');

function write(root: string, files: Record<string, string>): void {
  for (const [rel, text] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(root, rel)), { recursive: true });
    fs.writeFileSync(path.join(root, rel), text);
  }
}

const API = 'from osv.modules import api\n';

/** A base with repositories, an explicit entry, a plain directory and a module without module.py. */
function base(): { root: string; env: Record<string, string>; pythonLog: string } {
  const root = tempDir();
  const osv = path.join(root, 'osv');
  write(osv, {
    'config.json': JSON.stringify({
      modules: { repositories: ['${OSV_BASE}/modules', '${OSV_BASE}/apps'], extra: { type: 'direct-dir', path: '${OSV_BASE}/elsewhere/extra' } },
    }),
    'modules/lib/module.py': API,
    'modules/lib/Makefile': 'module:\n',
    'modules/lib2/module.py': API + "api.require('lib')\n",
    'modules/data/usr.manifest': '/x: x\n',
    'modules/notamodule/README': 'no markers\n',
    'modules/.hidden/module.py': API,
    'apps/app/module.py': API + "api.require('lib2')\nimport os\nif os.path.exists(os.path.join(os.environ['OSV_BASE'], 'flag')):\n    api.require('data')\n",
    'elsewhere/extra/module.py': API + "api.require('lib')\n",
    'images/default.py': API + "api.require('app')\n",
  });
  // A python3 that logs each start, to count processes.
  const pythonLog = path.join(root, 'python.log');
  const wrapper = path.join(root, 'python3-logged');
  fs.writeFileSync(wrapper, `#!/bin/sh\necho start >> '${pythonLog}'\nexec python3 "$@"\n`, { mode: 0o755 });
  const env: Record<string, string> = { ...(process.env as Record<string, string>), OSVB_PYTHON: wrapper };
  delete env['OSV_BASE'];
  delete env['OSV_BUILD_PATH'];
  delete env['OSVB_CACHE_DIR'];
  return { root: osv, env, pythonLog };
}

function starts(log: string): number {
  return fs.existsSync(log) ? fs.readFileSync(log, 'utf8').split('\n').filter(Boolean).length : 0;
}

describe('describeBase', () => {
  it('lists every local module with its requires, and what each image selects', async () => {
    const { root, env } = base();
    const d = await describeBase({ osvBase: root, env, images: [{ name: 'image', words: [] }, { name: 'two', words: ['image=lib2,data'] }] });
    expect(d.modules.map((m) => [m.name, path.relative(root, m.dir), m.requires, m.hasModulePy, m.hasMakefile])).toEqual([
      ['app', 'apps/app', ['lib2'], true, false],
      ['data', 'modules/data', [], false, false],
      ['extra', 'elsewhere/extra', ['lib'], true, false],
      ['lib', 'modules/lib', [], true, true],
      ['lib2', 'modules/lib2', ['lib'], true, false],
    ]);
    expect(d.images.map((i) => [i.name, i.modules, i.imageConfig && path.relative(root, i.imageConfig)])).toEqual([
      ['image', ['lib', 'lib2', 'app'], 'images/default.py'],
      ['two', ['lib', 'lib2', 'data'], undefined],
    ]);
  });

  it('runs no python3 while nothing changed, and evaluates only what a change touched', async () => {
    const { root, env, pythonLog } = base();
    const images = [{ name: 'image', words: [] }];
    const cold = await describeBase({ osvBase: root, env, images });
    expect(cold.evaluated).toBe(4);
    const coldStarts = starts(pythonLog);
    expect(coldStarts).toBe(2); // one process for all modules, one for the image

    const warm = await describeBase({ osvBase: root, env, images });
    expect(warm.evaluated).toBe(0);
    expect(starts(pythonLog)).toBe(coldStarts);
    expect(warm.modules).toEqual(cold.modules);

    // One module.py changes: that module (and every module whose evaluation ran it) again.
    fs.writeFileSync(path.join(root, 'modules/lib/module.py'), API + '# edited\n');
    const edited = await describeBase({ osvBase: root, env, images });
    expect(edited.evaluated).toBe(4); // lib is required by lib2, app and extra: their evaluations read it
    fs.writeFileSync(path.join(root, 'apps/app/module.py'), API + "api.require('lib')\n");
    const appOnly = await describeBase({ osvBase: root, env, images });
    expect(appOnly.evaluated).toBe(1);
    expect(appOnly.modules.find((m) => m.name === 'app')?.requires).toEqual(['lib']);
    expect(appOnly.images[0]?.modules).toEqual(['lib', 'app']);
  });

  it('sees a path module.py tested, a new module directory and a removed one', async () => {
    const { root, env } = base();
    await describeBase({ osvBase: root, env });
    fs.writeFileSync(path.join(root, 'flag'), '');
    const flagged = await describeBase({ osvBase: root, env });
    expect(flagged.modules.find((m) => m.name === 'app')?.requires).toEqual(['lib2', 'data']);

    write(root, { 'apps/newapp/module.py': API + "api.require('data')\n" });
    fs.rmSync(path.join(root, 'modules/lib2'), { recursive: true });
    const changed = await describeBase({ osvBase: root, env });
    expect(changed.modules.map((m) => m.name)).toEqual(['app', 'data', 'extra', 'lib', 'newapp']);
    expect(changed.modules.find((m) => m.name === 'newapp')?.requires).toEqual(['data']);
    expect(changed.modules.find((m) => m.name === 'app')?.error).toMatch(/lib2/);
  });

  it('a module.py that fails is reported on that module only, and not evaluated again until it changes', async () => {
    const { root, env, pythonLog } = base();
    fs.writeFileSync(path.join(root, 'modules/lib2/module.py'), API + 'raise ValueError("broken on purpose")\n');
    const d = await describeBase({ osvBase: root, env });
    expect(d.modules.find((m) => m.name === 'lib2')?.error).toMatch(/broken on purpose/);
    expect(d.modules.find((m) => m.name === 'lib')?.error).toBeUndefined();
    const n = starts(pythonLog);
    const again = await describeBase({ osvBase: root, env });
    expect(again.evaluated).toBe(0);
    expect(starts(pythonLog)).toBe(n);
  });

  it('rejects a base without config.json, and reports a broken one with its line', async () => {
    const root = tempDir();
    await expect(describeBase({ osvBase: root })).rejects.toMatchObject({ code: 'OSVB_CONFIG_MISSING' });
    fs.writeFileSync(path.join(root, 'config.json'), '{\n  "modules": {\n    "repositories": [,]\n  }\n}\n');
    await expect(describeBase({ osvBase: root })).rejects.toMatchObject({ code: 'OSVB_CONFIG_SYNTAX', location: { line: 3 } });
  });
});
