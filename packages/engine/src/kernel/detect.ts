/**
 * Recognising an OSv source tree, and the words scripts/build hands to the kernel make
 * (spec §4.7): every word except the ones scripts/build consumes itself.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { OsvbError } from '../errors/index.js';

function isFile(p: string): boolean {
  return fs.statSync(p, { throwIfNoEntry: false })?.isFile() ?? false;
}

function isDir(p: string): boolean {
  return fs.statSync(p, { throwIfNoEntry: false })?.isDirectory() ?? false;
}

/**
 * True when `osvBase` is an OSv source tree whose top-level make builds loader.img: a makefile
 * at the base, `conf/Makefile` (scripts/build's first make runs `-f conf/Makefile config`), the
 * kernel's `loader.cc` and an `arch/` directory. A base made only of config.json, apps and
 * modules (no kernel sources) is not one: it needs a prebuilt kernel.
 */
export function isOsvSourceTree(osvBase: string): boolean {
  const base = path.resolve(osvBase);
  const makefile = defaultMakefile(base);
  return makefile !== undefined && isFile(path.join(base, 'conf', 'Makefile')) && isFile(path.join(base, 'loader.cc')) && isDir(path.join(base, 'arch'));
}

/** The makefile a plain `make` reads in `dir` (GNU make's order), or undefined. */
export function defaultMakefile(dir: string): string | undefined {
  return ['GNUmakefile', 'makefile', 'Makefile'].find((n) => isFile(path.join(dir, n)));
}

/** Words scripts/build consumes: never passed to make. `oci=` is osvb's own. */
const CONSUMED_FLAGS = new Set(['check', '--append-manifest', '--create-disk', '--create-zfs-disk', '--use-openzfs']);
const CONSUMED_VARS = new Set(['image', 'modules', 'fs', 'usrskel', 'oci']);

/**
 * The words scripts/build passes to all three kernel makes, in order: everything but
 * `image=`, `modules=`, `fs=`, `usrskel=`, `check`, `--append-manifest`, `--create-disk`,
 * `--create-zfs-disk`, `--use-openzfs` (and osvb's `oci=`). `-j N` stays two words, as
 * scripts/build passes it. `clean` is not a build.
 */
export function kernelMakeWords(words: readonly string[]): string[] {
  const out: string[] = [];
  for (const w of words) {
    if (w === 'clean') throw new OsvbError('OSVB_USAGE', '"clean" is not a kernel build word', { hint: 'remove the kernel build directory (build/<mode>.<arch>) instead' });
    if (CONSUMED_FLAGS.has(w)) continue;
    const eq = w.indexOf('=');
    if (eq > 0 && !w.startsWith('-') && CONSUMED_VARS.has(w.slice(0, eq))) continue;
    out.push(w);
  }
  return out;
}

export interface KernelWords {
  /** `mode=` (last one wins), default release: the Makefile's `mode=release` yields to it. */
  mode: string;
  /** `arch=` or `ARCH=` word, if any. */
  arch: string | undefined;
  /** The `-j` words (`-j`, `-jN`, `-j N`): parallelism only, left out of the key. */
  jobWords: string[];
  /** Every other word, in order: part of the key. */
  keyWords: string[];
  /** NAME=value words (last one wins). */
  vars: Record<string, string>;
}

export function parseKernelWords(words: readonly string[]): KernelWords {
  const vars: Record<string, string> = {};
  const jobWords: string[] = [];
  const keyWords: string[] = [];
  for (let i = 0; i < words.length; i++) {
    const w = words[i] as string;
    if (w === '-j' || /^-j[0-9]*$/.test(w) || w === '--jobs' || /^--jobs=[0-9]+$/.test(w)) {
      jobWords.push(w);
      const next = words[i + 1];
      if ((w === '-j' || w === '--jobs') && next !== undefined && /^[0-9]+$/.test(next)) {
        jobWords.push(next);
        i++;
      }
      continue;
    }
    const eq = w.indexOf('=');
    if (eq > 0 && !w.startsWith('-')) vars[w.slice(0, eq)] = w.slice(eq + 1);
    keyWords.push(w);
  }
  return { mode: vars['mode'] ?? 'release', arch: vars['arch'] ?? vars['ARCH'], jobWords, keyWords, vars };
}

/** OSv's `$(host_arch)` as its Makefile names it. */
export function hostKernelArch(): string {
  return process.arch === 'arm64' ? 'aarch64' : 'x64';
}
