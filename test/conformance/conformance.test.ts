// OSv conformance suite: runs `osvb build` on every fixture under test/conformance/fixtures and
// compares its module-stage outputs with expected/, which tools/conformance/oracle.mjs generated
// by running OSv's own scripts/module.py (or which were written by hand where osvb deliberately
// differs from OSv: case.json "expectedByHand" + "divergence").
//
// Per fixture and per mode in case.json "modes" ("osv" adds --compat=osv):
//   - copy tree/ to a temp base T, create "mkdirs", put a logging `make` first on PATH
//     (it runs the real make after logging when "realMake" is set);
//   - run `node packages/cli/bin/osvb.js build <args…> --osv-base T [--compat=osv]` with cwd = T,
//     without OSV_BASE / OSV_BUILD_PATH / libgcc_s_dir in the environment (osvb's defaults apply:
//     build path T/build/release, its own libgcc_s detection);
//   - compare, after replacing T and the libgcc_s directory by @OSV_BASE@ / @LIBGCC_S_DIR@:
//       exit status: zero vs non-zero as in expected/exit;
//       on success: the set of output files in BUILD (usr.manifest, bootfs.manifest, cmdline,
//         javamains, 30-auto-NN) equals expected/'s, each byte for byte;
//       make invocations (cwd, args, env) as an unordered multiset; make runs with cwd = T itself
//         (kernel-side make, which module.py never runs) are ignored. On failure they are
//         compared only when OSv ran no make at all (it failed before building);
//       expected/stderr.txt: every line must occur in osvb's stderr.
// OSVB_CONFORMANCE_KEEP=1 keeps the temp dirs (their paths are printed).

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'vitest';
import {
  BASE_PLACEHOLDER,
  BUILD_SUBDIR,
  FIXTURES_DIR,
  LIBGCC_PLACEHOLDER,
  OUTPUT_FILE_RE,
  REPO_ROOT,
  detectLibgccDir,
  listFixtures,
  listOutputFiles,
  makeEnvKeys,
  placeholderize,
  placeholderizeDeep,
  prepareTree,
  readCase,
  readMakeLog,
  whichOnPath,
  writeMakeStub,
  type MakeInvocation,
} from '../../tools/conformance/common.mjs';

// OSVB_CONFORMANCE_BIN runs the suite against another implementation of `osvb build`.
const OSVB = process.env.OSVB_CONFORMANCE_BIN
  ? path.resolve(process.env.OSVB_CONFORMANCE_BIN)
  : path.join(REPO_ROOT, 'packages', 'cli', 'bin', 'osvb.js');
const KEEP = Boolean(process.env.OSVB_CONFORMANCE_KEEP);
const fixtures = listFixtures();
const libgccDir = detectLibgccDir();

/** Variables scripts/build or a surrounding make would set; osvb must work them out itself. */
const SCRUBBED_ENV = ['OSV_BASE', 'OSV_BUILD_PATH', 'libgcc_s_dir', 'fs_type', 'mode', 'ARCH', 'MAKEFLAGS', 'MFLAGS', 'MAKELEVEL'];

interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function run(cmd: string, args: string[], options: { cwd: string; env: NodeJS.ProcessEnv }): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { ...options, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

function canonical(inv: MakeInvocation): string {
  const env = Object.fromEntries(Object.entries(inv.env).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  return JSON.stringify({ cwd: inv.cwd, args: inv.args, env });
}

function readExpected(fixtureDir: string) {
  const dir = path.join(fixtureDir, 'expected');
  const exit = Number.parseInt(fs.readFileSync(path.join(dir, 'exit'), 'utf8').trim(), 10);
  const outputs = fs.readdirSync(dir).filter((f) => OUTPUT_FILE_RE.test(f)).sort();
  const makes = JSON.parse(fs.readFileSync(path.join(dir, 'make.json'), 'utf8')) as MakeInvocation[];
  const stderrFile = path.join(dir, 'stderr.txt');
  const stderrLines = fs.existsSync(stderrFile)
    ? fs.readFileSync(stderrFile, 'utf8').split('\n').filter((l) => l.length > 0)
    : [];
  return { dir, exit, outputs, makes, stderrLines };
}

function walkFiles(dir: string): string[] {
  const out: string[] = [];
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...walkFiles(p));
    else out.push(p);
  }
  return out;
}

describe('conformance fixtures', () => {
  it('there are enough fixtures', ({ expect }) => {
    expect(fixtures.length).toBeGreaterThanOrEqual(40);
  });

  for (const name of fixtures) {
    it(`${name} is well-formed`, ({ expect }) => {
      const dir = path.join(FIXTURES_DIR, name);
      const kase = readCase(dir);
      expect(name).toMatch(/^\d{2,3}-[a-z0-9-]+$/);
      expect(fs.statSync(path.join(dir, 'tree')).isDirectory()).toBe(true);
      const exp = readExpected(dir);
      expect(Number.isInteger(exp.exit)).toBe(true);
      if (exp.exit === 0) {
        expect(exp.outputs).toContain('usr.manifest');
        expect(exp.outputs).toContain('cmdline');
      } else {
        expect(exp.outputs).toEqual([]);
        expect(exp.stderrLines.length).toBeGreaterThan(0);
      }
      for (const file of walkFiles(path.join(dir, 'tree'))) {
        if (fs.lstatSync(file).isSymbolicLink()) continue;
        const text = fs.readFileSync(file, 'utf8');
        expect(text.includes(BASE_PLACEHOLDER) || text.includes(LIBGCC_PLACEHOLDER), file).toBe(false);
      }
      for (const d of kase.mkdirs) expect(path.isAbsolute(d) || d.split('/').includes('..'), d).toBe(false);
    });
  }
});

const runs = fixtures.flatMap((name) => {
  const kase = readCase(path.join(FIXTURES_DIR, name));
  return kase.modes.map((mode) => ({ name, mode, kase }));
});

describe.concurrent('osvb build matches OSv', () => {
  for (const { name, mode, kase } of runs) {
    it(`${name} [${mode}]`, { timeout: 120_000 }, async ({ expect }) => {
      expect(fs.existsSync(OSVB), `${OSVB} does not exist (build the CLI first)`).toBe(true);
      const fixtureDir = path.join(FIXTURES_DIR, name);
      const exp = readExpected(fixtureDir);
      const { work, base } = prepareTree(fixtureDir, kase, 'osvb-conformance-');
      try {
        const binDir = path.join(work, 'bin');
        const logFile = path.join(work, 'make.log');
        const realMake = kase.realMake ? whichOnPath('make', process.env.PATH, binDir) : null;
        if (kase.realMake) expect(realMake, 'realMake fixture but no make on PATH').not.toBeNull();
        writeMakeStub(binDir, { logFile, envKeys: makeEnvKeys(kase.args), realMake });

        const env: NodeJS.ProcessEnv = { ...process.env };
        for (const k of SCRUBBED_ENV) delete env[k];
        env.PATH = `${binDir}${path.delimiter}${process.env.PATH ?? ''}`;
        env.OSVB_CACHE_DIR = path.join(work, 'cache');
        env.CI = 'true';
        env.NO_COLOR = '1';
        const cliArgs = ['build', ...kase.args, '--osv-base', base, ...(mode === 'osv' ? ['--compat=osv'] : [])];
        const r = await run(process.execPath, [OSVB, ...cliArgs], { cwd: base, env });

        const paths = { base, libgccDir };
        const stderr = placeholderize(r.stderr, paths);
        const context = `osvb ${cliArgs.join(' ')}\n--- exit ${r.code ?? r.signal}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;

        if (exp.exit === 0) expect(r.code, `expected success\n${context}`).toBe(0);
        else expect(r.code, `expected failure\n${context}`).not.toBe(0);

        if (exp.exit === 0) {
          const build = path.join(base, BUILD_SUBDIR);
          expect(listOutputFiles(build), `output files in ${build}\n${context}`).toEqual(exp.outputs);
          for (const file of exp.outputs) {
            const actual = placeholderize(fs.readFileSync(path.join(build, file), 'utf8'), paths);
            const expected = fs.readFileSync(path.join(exp.dir, file), 'utf8');
            expect(actual, `${file}\n${context}`).toBe(expected);
          }
        }

        if (exp.exit === 0 || exp.makes.length === 0) {
          const actual = placeholderizeDeep(readMakeLog(logFile), paths).filter((inv) => inv.cwd !== BASE_PLACEHOLDER);
          expect(actual.map(canonical).sort(), `make invocations\n${context}`).toEqual(exp.makes.map(canonical).sort());
        }

        for (const line of exp.stderrLines) expect(stderr, `stderr\n${context}`).toContain(line);
      } finally {
        if (KEEP) console.log(`${name} [${mode}]: kept ${work}`);
        else fs.rmSync(work, { recursive: true, force: true });
      }
    });
  }
});
