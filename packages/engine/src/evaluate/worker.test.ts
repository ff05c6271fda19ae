import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OsvbError } from '../errors/index.js';
import { PythonWorker } from './worker.js';
import type { EvaluationSpec } from './types.js';

let root: string;

function write(rel: string, text: string): void {
  const p = path.join(root, rel);
  fs.mkdirSync(path.dirname(p), { recursive: true });
  fs.writeFileSync(p, text);
}

const api = 'from osv.modules import api\n';

beforeAll(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'osvb-worker-'));
  write('modules/a/module.py', api + "api.require('c')\ndefault = api.run('/a')\nfg = api.run(['/a', '--fg'])\n");
  write('modules/b/module.py', api + "api.require('c')\napi.require('d1')\ndefault = api.run_on_init('/b-init &!')\n");
  write('modules/c/module.py', api + "print('hello from c')\nimport subprocess\nsubprocess.call(['echo', 'child output'])\ndefault = api.run('/c')\n");
  write('modules/d1/.keep', '');
  write('modules/cond/module.py', api + "api.require_if_other_module_present('w3', 'trig')\napi.require_if_other_module_present('w1', 'trig')\napi.require_if_other_module_present('w2', 'trig')\n");
  for (const w of ['trig', 'w1', 'w2', 'w3']) write(`modules/${w}/.keep`, '');
  write('modules/java/module.py', api + "api.require('java-base')\n");
  write('modules/java-base/.keep', '');
  write('modules/nonisol/module.py', api + "jb = api.require('java-base')\njb.non_isolated_jvm = True\n");
  write('modules/japp/module.py', api + "default = api.run_java(args=['-jar', '/x.jar'], jvm_args=('-Xmx1g', '-Dy=z'))\n");
  write('modules/bad/module.py', api + "\n\nraise ValueError('broken on purpose')\n");
  write('modules/quits/module.py', 'exit(3)\n');
  write('modules/outer/module.py', api + "api.require('bad')\n");
  write('modules/fm/module.py', "from osv.modules.filemap import FileMap\nusr_files = FileMap()\nusr_files.add('${OSV_BASE}/modules/fm').to('/fm').include('**')\nusr_files.link('/l').to('/fm/x')\n");
});

afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

async function evaluate(spec: EvaluationSpec, worker?: PythonWorker) {
  const w = worker ?? (await PythonWorker.start());
  const output: string[] = [];
  try {
    return await w.evaluate(
      { osvBase: root, buildPath: path.join(root, 'build'), env: { ...process.env, OSV_BASE: root, OSV_BUILD_PATH: path.join(root, 'build') } as Record<string, string>, spec },
      {
        locate: async (name) => {
          const dir = path.join(root, 'modules', name);
          if (!fs.existsSync(dir)) throw new OsvbError('OSVB_MODULE_NOT_FOUND', `Module not found: ${name}`);
          return { dir, type: 'direct-dir' };
        },
      },
    );
  } finally {
    void output;
    if (!worker) await w.close();
  }
}

const items = (...names: string[]) => ({ kind: 'modules' as const, items: names.map((n) => ({ name: n.split('.')[0] as string, config: n.includes('.') ? n.slice(n.indexOf('.') + 1) : null })) });

describe('python evaluation worker', () => {
  it('returns modules in post-order with run entries, require edges and apps', async () => {
    const r = await evaluate(items('d1', 'a', 'b'));
    expect(r.modules.map((m) => [m.name, m.run])).toEqual([
      ['d1', '*'],
      ['c', null],
      ['a', '*'],
      ['b', '*'],
    ]);
    expect(r.modules.find((m) => m.name === 'b')?.requires).toEqual(['c', 'd1']);
    expect(r.apps).toEqual([
      { kind: 'run', launcher: '/a' },
      { kind: 'init', sequence: 0, cmdline: '/b-init &!' },
    ]);
  });

  it('keeps module.py output (print and child processes) off the protocol stream', async () => {
    const lines: string[] = [];
    const w = await PythonWorker.start({ onOutput: (l) => lines.push(l) });
    try {
      const r = await evaluate(items('c'), w);
      expect(r.apps).toEqual([{ kind: 'run', launcher: '/c' }]);
    } finally {
      await w.close();
    }
    expect(lines).toContain('hello from c');
    expect(lines).toContain('child output');
  });

  it('applies conditional requires in sorted order', async () => {
    const r = await evaluate(items('cond', 'trig'));
    expect(r.modules.map((m) => m.name)).toEqual(['cond', 'trig', 'w1', 'w2', 'w3']);
  });

  it('accepts a tuple jvm_args with the non-isolated JVM (OSv raises TypeError)', async () => {
    const r = await evaluate(items('nonisol', 'japp'));
    expect(r.apps).toEqual([{ kind: 'run', launcher: 'java.so -Xmx1g -Dy=z -jar /x.jar' }]);
  });

  it('builds the isolated JVM launcher and javamains', async () => {
    const r = await evaluate(items('japp'));
    expect(r.apps).toEqual([
      { kind: 'jvm', launcher: 'java.so -Xmx1g -Dy=z io.osv.isolated.MultiJarLoader -mains /etc/javamains', javamains: '-jar /x.jar\n' },
    ]);
  });

  it('reports an exception in module.py with its file and line and the loading chain', async () => {
    const err = await evaluate(items('outer')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OsvbError);
    const e = err as OsvbError;
    expect(e.code).toBe('OSVB_MODULE_PY');
    expect(e.message).toBe('ValueError: broken on purpose');
    expect(e.location).toEqual({ file: path.join(root, 'modules/bad/module.py'), line: 4 });
    expect(e.details.join('\n')).toContain('outer -> bad');
  });

  it('turns exit() in module.py into OSVB_MODULE_EXIT', async () => {
    const err = (await evaluate(items('quits')).catch((e: unknown) => e)) as OsvbError;
    expect(err.code).toBe('OSVB_MODULE_EXIT');
    expect(err.exitCode).toBe(1);
  });

  it('passes locate errors through with their code', async () => {
    const err = (await evaluate(items('nope')).catch((e: unknown) => e)) as OsvbError;
    expect(err.code).toBe('OSVB_MODULE_NOT_FOUND');
    expect(err.message).toBe('Module not found: nope');
  });

  it('serialises FileMaps with their module.py call sites', async () => {
    const r = await evaluate(items('fm'));
    const fm = r.modules[0]?.usrFiles;
    expect(fm?.mappings).toEqual([
      { host: path.join(root, 'modules/fm'), guest: '/fm', filters: [{ pattern: '**', exclude: false }], allowSymlink: false, site: { file: path.join(root, 'modules/fm/module.py'), line: 3 } },
    ]);
    expect(fm?.links).toEqual([{ guest: '/l', target: '/fm/x', site: { file: path.join(root, 'modules/fm/module.py'), line: 4 } }]);
  });

  it('resets its state between evaluations in one worker', async () => {
    const w = await PythonWorker.start();
    try {
      const first = await evaluate(items('b'), w);
      const second = await evaluate(items('b'), w);
      expect(second).toEqual(first);
    } finally {
      await w.close();
    }
  });

  it('says how to install python3 when it is missing', async () => {
    const err = (await PythonWorker.start({ python: '/nonexistent/python3' }).catch((e: unknown) => e)) as OsvbError;
    expect(err.code).toBe('OSVB_PYTHON_MISSING');
    expect(err.hint).toMatch(/apt-get install -y python3/);
  });
});
