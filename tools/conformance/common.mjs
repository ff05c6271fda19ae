// Helpers shared by the conformance oracle (tools/conformance/oracle.mjs) and the
// conformance suite (test/conformance/conformance.test.ts). Plain Node ESM, no deps.
//
// A fixture is a directory test/conformance/fixtures/<NN-name>/ holding
//   case.json  {description, spec, args, modes, mkdirs?, realMake?, expectedByHand?, divergence?}
//   tree/      a small OSv base (config.json, images/, skeletons, modules/…)
//   expected/  exit, output files of the module stage, make.json, stderr.txt (failures)

import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const FIXTURES_DIR = path.join(REPO_ROOT, 'test', 'conformance', 'fixtures');

/** Placeholders written into expected files in place of machine-specific paths. */
export const BASE_PLACEHOLDER = '@OSV_BASE@';
export const LIBGCC_PLACEHOLDER = '@LIBGCC_S_DIR@';

/** Files the module stage writes into BUILD (module.py's outputs), by name. */
export const OUTPUT_FILE_RE = /^(usr\.manifest|bootfs\.manifest|cmdline|javamains|30-auto-\d+)$/;

/** Build path relative to the OSv base, as scripts/build gives it for mode=release (minus the arch). */
export const BUILD_SUBDIR = path.join('build', 'release');

/** `scripts/build` words that are consumed there and never exported to the module environment. */
const NOT_EXPORTED = new Set(['image', 'modules', 'fs', 'usrskel']);

/** Environment variables every logged `make` invocation records (when set). */
export const MAKE_ENV_KEYS = ['OSV_BASE', 'OSV_BUILD_PATH', 'fs_type', 'mode', 'ARCH', 'libgcc_s_dir'];

export function listFixtures() {
  if (!fs.existsSync(FIXTURES_DIR)) return [];
  return fs
    .readdirSync(FIXTURES_DIR, { withFileTypes: true })
    .filter((d) => d.isDirectory() && fs.existsSync(path.join(FIXTURES_DIR, d.name, 'case.json')))
    .map((d) => d.name)
    .sort();
}

export function readCase(fixtureDir) {
  const file = path.join(fixtureDir, 'case.json');
  const c = JSON.parse(fs.readFileSync(file, 'utf8'));
  for (const key of ['description', 'spec', 'args', 'modes']) {
    if (!(key in c)) throw new Error(`${file}: missing "${key}"`);
  }
  if (!Array.isArray(c.args) || !c.args.every((a) => typeof a === 'string')) {
    throw new Error(`${file}: "args" must be a list of strings`);
  }
  if (!Array.isArray(c.modes) || c.modes.length === 0 || !c.modes.every((m) => m === 'osv' || m === 'default')) {
    throw new Error(`${file}: "modes" must be a non-empty subset of ["osv", "default"]`);
  }
  if (c.expectedByHand && !c.divergence) throw new Error(`${file}: "expectedByHand" needs a "divergence" text`);
  return { mkdirs: [], realMake: false, expectedByHand: false, ...c };
}

/**
 * The NAME=value words of a scripts/build command line that end up exported to module.py and
 * `make module` (all but image=/modules=/fs=/usrskel=), as [name, value] pairs in word order.
 */
export function exportedWords(args) {
  const out = [];
  for (const word of args) {
    const eq = word.indexOf('=');
    if (eq <= 0 || word.startsWith('-')) continue;
    const name = word.slice(0, eq);
    if (NOT_EXPORTED.has(name)) continue;
    out.push([name, word.slice(eq + 1)]);
  }
  return out;
}

/** Names of environment variables the make stub records for a case: the fixed set plus user vars. */
export function makeEnvKeys(args) {
  const keys = [...MAKE_ENV_KEYS];
  for (const [name] of exportedWords(args)) if (!keys.includes(name)) keys.push(name);
  return keys;
}

/** dirname(realpath(`gcc -print-file-name=libgcc_s.so.1`)), as scripts/build computes it. */
export function detectLibgccDir() {
  let p = 'libgcc_s.so.1';
  try {
    p = execFileSync('gcc', ['-print-file-name=libgcc_s.so.1'], { encoding: 'utf8' }).trim();
  } catch {
    // no gcc: fall through, like scripts/build's fallback the result will not exist
  }
  try {
    return path.dirname(fs.realpathSync(p));
  } catch {
    return path.dirname(path.resolve(p));
  }
}

/** A fresh work dir W (realpath) with the fixture tree copied to W/base; returns {work, base}. */
export function prepareTree(fixtureDir, kase, prefix) {
  const work = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), prefix)));
  const base = path.join(work, 'base');
  fs.cpSync(path.join(fixtureDir, 'tree'), base, { recursive: true, verbatimSymlinks: true });
  for (const d of kase.mkdirs) fs.mkdirSync(path.join(base, d), { recursive: true });
  return { work, base };
}

/** Finds an executable on PATH (skipping `skipDir`), or null. */
export function whichOnPath(name, pathVar, skipDir) {
  for (const dir of (pathVar ?? '').split(path.delimiter)) {
    if (!dir || dir === skipDir) continue;
    const candidate = path.join(dir, name);
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      if (fs.statSync(candidate).isFile()) return candidate;
    } catch {
      // not here
    }
  }
  return null;
}

/**
 * Writes a logging `make` into binDir. Each invocation appends one JSON line
 * {cwd, args, env:{…envKeys that are set}} to logFile, then exits 0, or, with realMake (the
 * path of the real make), runs the real make with the same arguments and exits with its status.
 */
export function writeMakeStub(binDir, { logFile, envKeys, realMake = null }) {
  fs.mkdirSync(binDir, { recursive: true });
  const impl = path.join(binDir, 'make-stub.cjs');
  fs.writeFileSync(
    impl,
    `'use strict';
const fs = require('fs');
const { spawnSync } = require('child_process');
const config = ${JSON.stringify({ logFile, envKeys, realMake })};
const args = process.argv.slice(2);
const env = {};
for (const k of config.envKeys) if (process.env[k] !== undefined) env[k] = process.env[k];
fs.appendFileSync(config.logFile, JSON.stringify({ cwd: process.cwd(), args, env }) + '\\n');
if (config.realMake) {
  const r = spawnSync(config.realMake, args, { stdio: 'inherit' });
  process.exit(r.status === null ? 1 : r.status);
}
process.exit(0);
`,
  );
  const shim = path.join(binDir, 'make');
  fs.writeFileSync(shim, `#!/bin/sh\nexec '${process.execPath}' '${impl}' "$@"\n`);
  fs.chmodSync(shim, 0o755);
  return shim;
}

/** Reads the stub's log: a list of {cwd, args, env}. */
export function readMakeLog(logFile) {
  if (!fs.existsSync(logFile)) return [];
  return fs
    .readFileSync(logFile, 'utf8')
    .split('\n')
    .filter((l) => l.length > 0)
    .map((l) => JSON.parse(l));
}

/** Replaces every occurrence of the given absolute paths by their placeholders (longest first). */
export function placeholderize(text, { base, libgccDir }) {
  const pairs = [
    [base, BASE_PLACEHOLDER],
    [libgccDir, LIBGCC_PLACEHOLDER],
  ]
    .filter(([from]) => from && from.length > 1)
    .sort((x, y) => y[0].length - x[0].length);
  let out = text;
  for (const [from, to] of pairs) out = out.split(from).join(to);
  return out;
}

/** Applies placeholderize to every string inside a JSON-like value. */
export function placeholderizeDeep(value, paths) {
  if (typeof value === 'string') return placeholderize(value, paths);
  if (Array.isArray(value)) return value.map((v) => placeholderizeDeep(v, paths));
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, placeholderizeDeep(v, paths)]));
  }
  return value;
}

/** Names of the module-stage output files present in a build directory, sorted. */
export function listOutputFiles(buildDir) {
  if (!fs.existsSync(buildDir)) return [];
  return fs
    .readdirSync(buildDir, { withFileTypes: true })
    .filter((d) => d.isFile() && OUTPUT_FILE_RE.test(d.name))
    .map((d) => d.name)
    .sort();
}

/** Serialises make invocations the way expected/make.json stores them. */
export function formatMakeJson(invocations) {
  if (invocations.length === 0) return '[]\n';
  return `[\n${invocations.map((i) => `  ${JSON.stringify(i)}`).join(',\n')}\n]\n`;
}
