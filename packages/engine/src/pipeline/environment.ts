/**
 * The environment scripts/build gives module.py and every `make module` (spec §5.2):
 * the caller's environment, the NAME=value words, then fs_type, mode, OSV_BUILD_PATH and
 * libgcc_s_dir (a word of the same name wins), then ARCH and OSV_BASE (always ours).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { BuildWords } from './words.js';
import { childProcess, findOnPath, writeFileAtomic } from '../fsutil/index.js';

export function hostArch(): string {
  return process.arch === 'arm64' ? 'aarch64' : 'x64';
}


/**
 * findLibgccSDir, remembered in `cacheFile` per compiler binary (path, size, mtime): running
 * gcc costs more than the rest of a no-op build.
 */
export function findLibgccSDirCached(arch: string, cacheFile: string): { dir: string; warning?: string; compiler?: string } {
  const cc = compilerFor(arch);
  const bin = findOnPath(cc, process.env['PATH']);
  const st = bin ? fs.statSync(bin, { throwIfNoEntry: false }) : undefined;
  const id = bin && st ? `${bin}:${st.size}:${st.mtimeMs}:${arch}` : undefined;
  if (id) {
    try {
      const c = JSON.parse(fs.readFileSync(cacheFile, 'utf8')) as { id: string; dir: string };
      if (c.id === id && fs.existsSync(path.join(c.dir, 'libgcc_s.so.1'))) return { dir: c.dir, ...(bin ? { compiler: bin } : {}) };
    } catch {
      /* not cached yet */
    }
  }
  const found = findLibgccSDir(arch);
  if (id && !found.warning) {
    try {
      fs.mkdirSync(path.dirname(cacheFile), { recursive: true });
      writeFileAtomic(cacheFile, JSON.stringify({ id, dir: found.dir }));
    } catch {
      /* read-only cache: just not remembered */
    }
  }
  return bin ? { ...found, compiler: bin } : found;
}

function compilerFor(arch: string): string {
  return hostArch() === 'x64' && arch === 'aarch64' ? `${process.env['CROSS_PREFIX'] ?? 'aarch64-linux-gnu-'}gcc` : 'gcc';
}

/** scripts/build's `dirname $(readlink -f $(gcc -print-file-name=libgcc_s.so.1))`. */
export function findLibgccSDir(arch: string): { dir: string; warning?: string } {
  const cc = compilerFor(arch);
  let printed: string;
  try {
    printed = childProcess().execFileSync(cc, ['-print-file-name=libgcc_s.so.1'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return { dir: '', warning: `could not run ${cc} to find libgcc_s.so.1; %(libgcc_s_dir)s stays unexpanded (pass libgcc_s_dir=DIR)` };
  }
  if (printed === 'libgcc_s.so.1' || !path.isAbsolute(printed)) {
    return { dir: '', warning: `${cc} does not know libgcc_s.so.1; %(libgcc_s_dir)s stays unexpanded (pass libgcc_s_dir=DIR)` };
  }
  let real = printed;
  try {
    real = fs.realpathSync(printed);
  } catch {
    /* keep the printed path, as readlink -f does for a missing file */
  }
  return { dir: path.dirname(real) };
}

export interface EnvironmentInput {
  base: Readonly<Record<string, string | undefined>>;
  words: BuildWords;
  osvBase: string;
  buildPath: string;
  arch: string;
  libgccSDir: string;
}

export function buildEnvironment(input: EnvironmentInput): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(input.base)) if (v !== undefined) env[k] = v;
  const fromWords = new Map(input.words.exported);
  const computed: Array<[string, string]> = [
    ['fs_type', input.words.fs],
    ['mode', input.words.mode],
    ['OSV_BUILD_PATH', input.buildPath],
    ['libgcc_s_dir', input.libgccSDir],
  ];
  for (const [k, v] of input.words.exported) env[k] = v;
  for (const [k, v] of computed) env[k] = fromWords.get(k) ?? v;
  env['ARCH'] = input.arch;
  env['OSV_BASE'] = input.osvBase;
  return env;
}
