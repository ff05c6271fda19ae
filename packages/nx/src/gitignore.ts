/**
 * A module's build outputs as Nx output globs. OSv modules build in place (`make module` writes
 * next to the sources), so the outputs Nx should cache are the files the module's own
 * .gitignore describes — stable before the first build, unlike a list learnt from one —, plus
 * any file the engine saw its last build write that .gitignore does not cover.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import ignore from 'ignore';

export interface ModuleOutputs {
  /** Output globs relative to the module directory (Nx's `{projectRoot}/…`). */
  outputs: string[];
  /** Produced files that are not ignored: also left out of the inputs. */
  unignored: string[];
}

/** Translate the module directory's top-level .gitignore into globs (negations are not translated). */
export function gitignoreGlobs(text: string): string[] {
  const out: string[] = [];
  for (let line of text.split(/\r?\n/)) {
    if (line.trim() === '' || line.startsWith('#') || line.startsWith('!')) continue;
    line = line.replace(/(?<!\\)\s+$/, '');
    const dirOnly = line.endsWith('/');
    if (dirOnly) line = line.slice(0, -1);
    const anchored = line.includes('/');
    if (line.startsWith('/')) line = line.slice(1);
    if (line === '' || line.includes('..')) continue;
    out.push(anchored ? line : `**/${line}`);
  }
  return [...new Set(out)];
}

export function moduleOutputs(dir: string, produced: readonly string[]): ModuleOutputs {
  let text = '';
  try {
    text = fs.readFileSync(path.join(dir, '.gitignore'), 'utf8');
  } catch {
    /* no .gitignore */
  }
  const globs = gitignoreGlobs(text);
  // Most produced files are named literally in .gitignore: tell those without building a matcher.
  const literal = new Set(globs.filter((g) => !/[*?[\\]/.test(g.replace(/^\*\*\//, ''))));
  const plainlyIgnored = (p: string): boolean => literal.has(p) || literal.has(`**/${p.slice(p.lastIndexOf('/') + 1)}`);
  let ig: ReturnType<typeof ignore> | undefined;
  const unignored = produced.filter((p) => !plainlyIgnored(p) && !(ig ??= ignore().add(text)).ignores(p)).sort();
  return { outputs: [...globs, ...unignored], unignored };
}
