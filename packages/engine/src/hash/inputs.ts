/**
 * A module's input files: every file in its directory that no `.gitignore` in it ignores and
 * that its own build did not produce. Walked in sorted order; symlinks are inputs by their
 * target text, not followed.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import ignore, { type Ignore } from 'ignore';

export interface InputFile {
  /** Path relative to the module directory, `/`-separated. */
  rel: string;
  kind: 'file' | 'link';
  stat: fs.BigIntStats;
}

interface Scope {
  base: string;
  ig: Ignore;
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

export interface ListedInputs {
  files: InputFile[];
  /** Directories listed (relative, '' for the module directory) with their stats. */
  dirs: Array<{ rel: string; stat: fs.BigIntStats }>;
}

export function listModuleInputs(dir: string, exclude: ReadonlySet<string>): ListedInputs {
  const out: InputFile[] = [];
  const dirs: ListedInputs['dirs'] = [];
  const walk = (abs: string, rel: string, scopes: Scope[]): void => {
    try {
      dirs.push({ rel, stat: fs.lstatSync(abs, { bigint: true }) });
    } catch {
      return;
    }
    let names: string[];
    try {
      names = fs.readdirSync(abs);
    } catch {
      return;
    }
    names.sort(compare);
    let here = scopes;
    if (names.includes('.gitignore')) {
      try {
        const ig = ignore().add(fs.readFileSync(path.join(abs, '.gitignore'), 'utf8'));
        here = [...scopes, { base: rel, ig }];
      } catch {
        /* unreadable .gitignore: ignore nothing more */
      }
    }
    for (const name of names) {
      if (name === '.git' || name === '.osvb') continue;
      const childRel = rel ? `${rel}/${name}` : name;
      const childAbs = path.join(abs, name);
      let st: fs.BigIntStats;
      try {
        st = fs.lstatSync(childAbs, { bigint: true });
      } catch {
        continue;
      }
      const isDir = st.isDirectory();
      const ignored = here.some((s) => {
        const r = s.base ? childRel.slice(s.base.length + 1) : childRel;
        return s.ig.ignores(isDir ? `${r}/` : r);
      });
      if (ignored) continue;
      if (isDir) walk(childAbs, childRel, here);
      else if (!exclude.has(childRel) && (st.isFile() || st.isSymbolicLink())) out.push({ rel: childRel, kind: st.isSymbolicLink() ? 'link' : 'file', stat: st });
    }
  };
  walk(dir, '', []);
  return { files: out, dirs };
}
