#!/usr/bin/env node
// Conformance oracle: regenerates test/conformance/fixtures/<name>/expected/ by running OSv's own
// scripts/module.py on the fixture tree, invoked the way OSv's scripts/build invokes it.
//
//   node tools/conformance/oracle.mjs [-v] [fixture…]     (default: every fixture)
//   OSV_REF=/path/to/osv   OSv checkout to use (default /work/ref/osv)
//
// Per fixture: copy tree/ to a temp base T, create case.json "mkdirs", translate the scripts/build
// words of case.json "args" into `python3 $OSV_REF/scripts/module.py [-jN] build -c SPEC
// [--usrskel X] [--no-required]`, run it with cwd = T and scripts/build's environment, `make`
// replaced by a logging stub, and os.walk made byte-wise sorted (see SITECUSTOMIZE). Then write
// expected/: exit, the output files (successful runs only), make.json, and stderr.txt (failed
// runs: OSv's exception message), with T and the libgcc_s directory replaced by placeholders.
// Fixtures with "expectedByHand": true are skipped.

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import {
  BUILD_SUBDIR,
  FIXTURES_DIR,
  detectLibgccDir,
  exportedWords,
  formatMakeJson,
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
} from './common.mjs';

export const OSV_REF = path.resolve(process.env.OSV_REF || '/work/ref/osv');

// Loaded through PYTHONPATH before module.py runs. Only changes orders OSv leaves to chance:
// - os.walk yields dirnames and filenames sorted byte-wise (FileMap directory walks), so the
//   expected files match osvb's reproducible default mode on any machine;
// - the set that resolve_required_modules_if_other_is_present() iterates (conditional requires,
//   hash order in OSv) iterates in sorted order.
const SITECUSTOMIZE = (refScripts) => `# Written by osv-build's tools/conformance/oracle.mjs.
import os
import sys

_orig_walk = os.walk

def _name_key(name):
    return os.fsencode(name) if isinstance(name, str) else name

def _sorted_walk(top, topdown=True, onerror=None, followlinks=False):
    for dirpath, dirnames, filenames in _orig_walk(top, topdown, onerror, followlinks):
        dirnames.sort(key=_name_key)
        filenames.sort(key=_name_key)
        yield dirpath, dirnames, filenames

os.walk = _sorted_walk

class _SortedIterationSet(set):
    def __iter__(self):
        return iter(sorted(set.__iter__(self), key=_name_key))

sys.path.insert(0, ${JSON.stringify(refScripts)})
try:
    from osv.modules import resolve as _resolve
    _resolve.set = _SortedIterationSet
finally:
    sys.path.pop(0)
`;

/** Writes the sitecustomize.py above into dir (to be put on PYTHONPATH). */
export function writeSiteCustomize(dir) {
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'sitecustomize.py'), SITECUSTOMIZE(path.join(OSV_REF, 'scripts')));
}

/**
 * The environment scripts/build gives module.py: `baseEnv`, then fs_type, mode, OSV_BUILD_PATH,
 * libgcc_s_dir, then the NAME=value words (which may override those four), then ARCH and OSV_BASE.
 */
export function moduleEnv({ baseEnv, base, build, fsType, words, libgccDir }) {
  const env = { ...baseEnv, fs_type: fsType, mode: 'release', OSV_BUILD_PATH: build, libgcc_s_dir: libgccDir };
  for (const [n, v] of exportedWords(words)) env[n] = v;
  env.ARCH = 'x64';
  env.OSV_BASE = base;
  return env;
}

/**
 * scripts/build's word handling up to its module.py call. Returns either
 * {error, exit} (scripts/build stops before module.py) or {moduleArgs, fsType}.
 */
export function translateWords(words) {
  if (words.includes('clean')) return { error: 'the oracle does not model "clean"', exit: 2 };
  const vars = new Map();
  let jArg = null;
  let checkNumber = false;
  for (const w of words) {
    if (checkNumber) {
      checkNumber = false;
      if (/^[0-9]/.test(w)) {
        jArg = `-j${w}`;
        continue;
      }
    }
    if (w.includes('=')) {
      const eq = w.indexOf('=');
      vars.set(w.slice(0, eq), w.slice(eq + 1));
    } else if (w === '-j') {
      jArg = '-j-';
      checkNumber = true;
    } else if (w.startsWith('-j')) {
      jArg = w;
    } else if (w === 'check') {
      vars.set('image', 'tests');
    } else if (w === '--append-manifest') {
      vars.set('append_manifest', 'true');
    }
  }

  const image = vars.has('image') ? vars.get('image') : 'default';
  let modules = vars.has('modules') ? vars.get('modules') : `!${image}`;
  const fsType = vars.has('fs') ? vars.get('fs') : 'zfs';
  let usrskelArg = [];
  switch (fsType) {
    case 'zfs':
      break;
    case 'ext':
      usrskelArg = ['--usrskel', 'usr_ext.manifest.skel'];
      break;
    case 'rofs':
    case 'rofs_with_zfs':
    case 'rofs_with_ext':
    case 'virtiofs':
      usrskelArg = ['--usrskel', 'usr_rofs.manifest.skel'];
      break;
    case 'ramfs':
      usrskelArg = ['--usrskel', 'usr_ramfs.manifest.skel'];
      break;
    default:
      return { error: `Unknown filesystem "${fsType}"`, exit: 2 };
  }
  const usrskel = vars.get('usrskel');
  if (usrskel) usrskelArg = ['--usrskel', ...usrskel.split(/\s+/).filter(Boolean)];
  const noRequired = (vars.get('export') ?? 'none') === 'selected' ? ['--no-required'] : [];
  if (vars.get('append_manifest') === 'true' && modules === '!default') modules = 'empty';
  if (fsType === 'ext' || fsType === 'rofs_with_ext') modules = `${modules},libext`;

  return {
    fsType,
    moduleArgs: [...(jArg ? [jArg] : []), 'build', '-c', modules, ...usrskelArg, ...noRequired],
  };
}

function runFixture(name, { verbose }) {
  const fixtureDir = path.join(FIXTURES_DIR, name);
  const kase = readCase(fixtureDir);
  if (kase.expectedByHand) return { name, skipped: 'expectedByHand' };

  const libgccDir = detectLibgccDir();
  const { work, base } = prepareTree(fixtureDir, kase, 'osvb-oracle-');
  const build = path.join(base, BUILD_SUBDIR);
  fs.mkdirSync(path.join(build, 'module'), { recursive: true });
  const binDir = path.join(work, 'bin');
  const logFile = path.join(work, 'make.log');
  const realMake = kase.realMake ? whichOnPath('make', process.env.PATH, binDir) : null;
  if (kase.realMake && !realMake) throw new Error(`${name}: "realMake" but no make on PATH`);
  writeMakeStub(binDir, { logFile, envKeys: makeEnvKeys(kase.args), realMake });
  const siteDir = path.join(work, 'site');
  writeSiteCustomize(siteDir);

  const t = translateWords(kase.args);
  let status;
  let stdout = '';
  let stderr = '';
  if (t.error) {
    status = t.exit;
    stderr = `${t.error}\n`;
  } else {
    const baseEnv = {
      PATH: `${binDir}${path.delimiter}${process.env.PATH ?? '/usr/bin:/bin'}`,
      HOME: process.env.HOME ?? work,
      LC_ALL: 'C.UTF-8',
      PYTHONPATH: siteDir,
      PYTHONHASHSEED: '0',
      PYTHONDONTWRITEBYTECODE: '1',
    };
    const env = moduleEnv({ baseEnv, base, build, fsType: t.fsType, words: kase.args, libgccDir });
    const r = spawnSync('python3', [path.join(OSV_REF, 'scripts', 'module.py'), ...t.moduleArgs], {
      cwd: base,
      env,
      encoding: 'utf8',
    });
    if (r.error) throw r.error;
    status = r.status ?? 128;
    stdout = r.stdout;
    stderr = r.stderr;
    if (verbose) {
      console.log(`--- ${name}: module.py ${t.moduleArgs.join(' ')}`);
      process.stdout.write(stdout);
      process.stdout.write(stderr);
    }
  }

  const paths = { base, libgccDir };
  const expectedDir = path.join(fixtureDir, 'expected');
  fs.rmSync(expectedDir, { recursive: true, force: true });
  fs.mkdirSync(expectedDir, { recursive: true });
  fs.writeFileSync(path.join(expectedDir, 'exit'), `${status}\n`);
  const outputs = status === 0 ? listOutputFiles(build) : [];
  for (const file of outputs) {
    const text = fs.readFileSync(path.join(build, file), 'utf8');
    fs.writeFileSync(path.join(expectedDir, file), placeholderize(text, paths));
  }
  const makes = placeholderizeDeep(readMakeLog(logFile), paths);
  fs.writeFileSync(path.join(expectedDir, 'make.json'), formatMakeJson(makes));
  let message = null;
  if (status !== 0) {
    const lines = stderr.split('\n').filter((l) => l.trim() !== '');
    message = placeholderize((lines.at(-1) ?? '').replace(/^Exception: /, ''), paths);
    fs.writeFileSync(path.join(expectedDir, 'stderr.txt'), `${message}\n`);
  }
  fs.rmSync(work, { recursive: true, force: true });
  return { name, status, outputs, makes: makes.length, message };
}

function main(argv) {
  const verbose = argv.includes('-v') || argv.includes('--verbose');
  const wanted = argv.filter((a) => !a.startsWith('-'));
  if (!fs.existsSync(path.join(OSV_REF, 'scripts', 'module.py'))) {
    console.error(`OSV_REF=${OSV_REF} has no scripts/module.py`);
    return 2;
  }
  const all = listFixtures();
  const names = [];
  for (const w of wanted) {
    const n = path.basename(w.replace(/\/+$/, ''));
    const hit = all.filter((f) => f === n || f.startsWith(`${n}-`));
    if (hit.length !== 1) {
      console.error(`no single fixture matches "${w}"`);
      return 2;
    }
    names.push(hit[0]);
  }
  for (const name of names.length ? names : all) {
    const r = runFixture(name, { verbose });
    if (r.skipped) {
      console.log(`${name}: skipped (${r.skipped})`);
    } else {
      const what = r.status === 0 ? r.outputs.join(' ') : r.message;
      console.log(`${name}: exit ${r.status}, make ${r.makes}; ${what}`);
    }
  }
  return 0;
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  process.exitCode = main(process.argv.slice(2));
}
