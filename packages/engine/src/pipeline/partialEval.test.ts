/**
 * Partial evaluation: after one module.py changes, only the module.py files whose reads changed
 * run again; the others are replayed from the last evaluation's records. Each case compares the
 * result with a full evaluation of the same tree (an empty cache), and counts what ran.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { LocalCache } from '../cache/index.js';
import { initHashing, StatCache } from '../hash/index.js';
import type { BuildEvent } from '../report/index.js';
import { useTempDirs } from '../testing/index.js';
import { evaluateCached, resolveBuild } from './build.js';

const tempDir = useTempDirs('osvb-partial-');
const API = 'from osv.modules import api\n';

function write(root: string, files: Record<string, string>): void {
  for (const [rel, text] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(root, rel)), { recursive: true });
    fs.writeFileSync(path.join(root, rel), text);
  }
}

interface Run {
  result: unknown;
  /** "N module.py files run, M replayed …" (undefined: answered from the cache). */
  log: string | undefined;
  ran: number;
  replayed: number;
}

async function evaluate(osv: string, cacheDir: string, words: string[], extraEnv: Record<string, string> = {}): Promise<Run> {
  await initHashing();
  const resolved = resolveBuild({ words, osvBase: osv, cacheDir, env: { ...process.env, ...extraEnv, OSVB_CACHE_DIR: cacheDir }, libgccSDir: '/lib' });
  const cache = new LocalCache(cacheDir);
  const statCache = new StatCache(path.join(cacheDir, 'stat-cache.json'));
  const logs: string[] = [];
  const ev = await evaluateCached(resolved, cache, statCache, (e: BuildEvent) => {
    if (e.type === 'log' && e.text.startsWith('evaluation:')) logs.push(e.text);
  });
  statCache.save();
  const log = logs[0];
  const m = log ? /(\d+) module\.py files? run, (\d+) replayed/.exec(log) : null;
  return { result: ev.evaluation, log, ran: m ? Number(m[1]) : 0, replayed: m ? Number(m[2]) : 0 };
}

/** A tree, a cache with its first evaluation; then `check` evaluates partially and in full. */
function setup(files: Record<string, string>, words: string[]) {
  const root = tempDir();
  const osv = path.join(root, 'osv');
  write(osv, { 'config.json': JSON.stringify({ modules: { repositories: ['${OSV_BASE}/modules'] } }), ...files });
  const cache = path.join(root, 'cache');
  let n = 0;
  return {
    osv,
    first: () => evaluate(osv, cache, words),
    /** Evaluate with the kept cache and with a fresh one: the results must be the same. */
    check: async (env: Record<string, string> = {}): Promise<Run> => {
      const partial = await evaluate(osv, cache, words, env);
      const full = await evaluate(osv, path.join(root, `fresh-${n++}`), words, env);
      expect(partial.result).toEqual(full.result);
      return partial;
    },
    edit: (rel: string, text: string) => fs.appendFileSync(path.join(osv, rel), text),
  };
}

describe('partial evaluation', () => {
  it('a new global in one module.py: only that file runs again', async () => {
    const t = setup(
      {
        'modules/lib/module.py': API + 'flavour = "mild"\n',
        'modules/mid/module.py': API + "api.require('lib')\n",
        'modules/app/module.py': API + "api.require('mid')\ndefault = api.run('/app.so')\nother = [api.run('/a'), api.run_on_init('/init')]\n",
        'images/img.py': API + "api.require_running('app')\n",
      },
      ['image=img'],
    );
    expect((await t.first()).ran).toBe(3);
    t.edit('modules/mid/module.py', '_bench_edit = 1\n');
    const r = await t.check();
    expect([r.ran, r.replayed]).toEqual([1, 2]);
  });

  it("an edit to an attribute read through require() re-evaluates its readers", async () => {
    const t = setup(
      {
        'modules/lib/module.py': API + 'flavour = "mild"\n',
        'modules/app/module.py': API + "lib = api.require('lib')\ndefault = api.run('/app.so --flavour=' + lib.flavour)\n",
        'modules/other/module.py': API + "api.require('lib')\n",
        'images/img.py': API + "api.require_running('app')\napi.require('other')\n",
      },
      ['image=img'],
    );
    await t.first();
    // Another global of lib: app's read of lib.flavour still holds; app and other are replayed.
    t.edit('modules/lib/module.py', 'unrelated = 1\n');
    let r = await t.check();
    expect([r.ran, r.replayed]).toEqual([1, 2]);
    // The attribute app reads: app runs again and sees the new value.
    t.edit('modules/lib/module.py', 'flavour = "hot"\n');
    r = await t.check();
    expect(JSON.stringify(r.result)).toContain('--flavour=hot');
    expect(r.log).toContain('abandoned');
  });

  it('a changed module reading a replayed module\'s non-data attribute gets a full evaluation', async () => {
    const t = setup(
      {
        'modules/lib/module.py': API + 'def files():\n    return "/lib.so"\n',
        'modules/app/module.py': API + "lib = api.require('lib')\ndefault = api.run(lib.files())\n",
        'images/img.py': API + "api.require_running('app')\n",
      },
      ['image=img'],
    );
    await t.first();
    t.edit('modules/app/module.py', '# edit\n');
    const r = await t.check();
    expect(r.log).toContain('abandoned');
    expect(JSON.stringify(r.result)).toContain('/lib.so');
  });

  it('a Python file a module.py imports stays a recorded read after an abandoned partial evaluation', async () => {
    const imp = "import os, sys\nsys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))\nimport helper_for_app\n";
    const t = setup(
      {
        'modules/lib/module.py': API + 'def files():\n    return "/lib.so"\n',
        'modules/app/module.py': API + imp + "lib = api.require('lib')\ndefault = api.run(lib.files() + ' ' + helper_for_app.word)\n",
        'modules/app/helper_for_app.py': "word = 'one'\n",
        'images/img.py': API + "api.require_running('app')\n",
      },
      ['image=img'],
    );
    await t.first();
    t.edit('modules/app/module.py', '# edit\n');
    let r = await t.check();
    expect(r.log).toContain('abandoned');
    t.edit('modules/app/helper_for_app.py', "word = 'two'\n");
    r = await t.check();
    expect(JSON.stringify(r.result)).toContain('/lib.so two');
  });

  it('conditional requires, run configurations and run_on_init numbering come out as in a full evaluation', async () => {
    const t = setup(
      {
        'modules/a/module.py': API + "api.require_if_other_module_present('c', 'b')\ndefault = api.run_on_init('/a')\n",
        'modules/b/module.py': API + "default = api.run_on_init('/b')\nfast = api.run('/b --fast')\n",
        'modules/c/module.py': API + "default = api.run('/c')\n",
        'modules/d/module.py': API + "default = api.run('/d')\n",
      },
      ['image=a,b.fast,d'],
    );
    await t.first();
    // d is evaluated last: replaying a, b and c in front of it.
    t.edit('modules/d/module.py', 'x = 2\n');
    let r = await t.check();
    expect(r.replayed).toBe(3);
    // b constructs one more run_on_init: a's number is the same, d's would move; c's run is re-added.
    t.edit('modules/b/module.py', "extra = api.run_on_init('/b2')\n");
    r = await t.check();
    // a run configuration selected by a module.py (require_running from within a module)
    t.edit('modules/d/module.py', "api.require_running('c')\n");
    r = await t.check();
    expect(JSON.stringify(r.result)).toContain('/c');
  });

  it('modules mode, a module.py that reads a file, and an environment change', async () => {
    const t = setup(
      {
        'modules/a/module.py': API + "import os\nwith open(os.path.join(os.path.dirname(__file__), 'cmd.txt')) as f:\n    default = api.run(f.read().strip())\n",
        'modules/a/cmd.txt': '/a.so\n',
        'modules/b/module.py': API + "import os\ndefault = api.run('/b ' + os.environ.get('B_FLAG', 'none'))\n",
      },
      ['image=a,b'],
    );
    await t.first();
    t.edit('modules/a/cmd.txt', '--verbose\n');
    let r = await t.check();
    expect([r.ran, r.replayed]).toEqual([1, 1]);
    r = await t.check({ B_FLAG: 'on' });
    expect([r.ran, r.replayed]).toEqual([1, 1]);
    expect(JSON.stringify(r.result)).toContain('/b on');
  });
});
