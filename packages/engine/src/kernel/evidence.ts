/**
 * What a kernel make read, from its own records: the `.d` files the compilers wrote with
 * `-MD` (every source and header of every compile, system headers included), the `.d` files
 * `scripts/mkbootfs.py -d` wrote (every host file a bootfs blob holds), and the makefiles make
 * read (`MAKEFILE_LIST`, written at the end of parsing by a makefile osvb adds after the tree's).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

/** One dependency file: its targets and prerequisites as written (unescaped). */
export interface DepFile {
  targets: string[];
  prereqs: string[];
}

/** Split make dependency text into rules (targets: prerequisites), unescaping `\ `, `\#` and `$$`. */
export function parseDepText(text: string): DepFile {
  const targets: string[] = [];
  const prereqs: string[] = [];
  const joined = text.replace(/\\\r?\n/g, ' ');
  for (const line of joined.split('\n')) {
    const tokens = tokenize(line);
    const colon = tokens.findIndex((t) => t.sep);
    if (colon < 0) continue;
    for (const t of tokens.slice(0, colon)) targets.push(t.text);
    for (const t of tokens.slice(colon + 1)) if (!t.sep) prereqs.push(t.text);
  }
  return { targets, prereqs };
}

function tokenize(line: string): Array<{ text: string; sep: boolean }> {
  const out: Array<{ text: string; sep: boolean }> = [];
  let cur = '';
  let seenSep = false;
  const flush = (): void => {
    if (cur) out.push({ text: cur, sep: false });
    cur = '';
  };
  for (let i = 0; i < line.length; i++) {
    const c = line[i] as string;
    if (c === '\\' && i + 1 < line.length && (line[i + 1] === ' ' || line[i + 1] === '#' || line[i + 1] === '\\' || line[i + 1] === ':')) {
      cur += line[i + 1];
      i++;
    } else if (c === '$' && line[i + 1] === '$') {
      cur += '$';
      i++;
    } else if (c === ' ' || c === '\t') {
      flush();
    } else if (c === ':' && !seenSep && (line[i + 1] === undefined || line[i + 1] === ' ' || line[i + 1] === '\t')) {
      flush();
      out.push({ text: ':', sep: true });
      seenSep = true;
    } else if (c === '#' && cur === '') {
      break;
    } else cur += c;
  }
  flush();
  return out;
}

/** The `.d` files under `dir` (relative, sorted), as `find $(out) -name '*.d'` lists them. */
export function listDepFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (abs: string, rel: string): void => {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(abs, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) walk(path.join(abs, e.name), r);
      else if (e.name.endsWith('.d') && (e.isFile() || e.isSymbolicLink())) out.push(r);
    }
  };
  walk(dir, '');
  return out.sort();
}

/** A bootfs dependency file (`mkbootfs.py -d`): its paths are relative to the build directory. */
export function isBootfsDepFile(rel: string): boolean {
  return /(^|\/)[^/]*bootfs[^/]*\.bin\.d$/.test(rel);
}

export interface MakeEvidence {
  /** Prerequisites of compiles (paths as make saw them: relative to the base, or absolute). */
  compiled: Set<string>;
  /** Bootfs blob (relative to the out dir) → the host files it holds (absolute). */
  bootfs: Map<string, string[]>;
  /** Targets named by the dependency files (relative to the base, or absolute). */
  targets: Set<string>;
}

/**
 * Read the given dependency files (relative to `outDir`). Compile prerequisites are kept as
 * written (relative to the base); bootfs entries are resolved against the out dir, where
 * mkbootfs.py ran, and `X-stripped.so` (mkbootfs's own stripped copy) becomes `X.so`.
 */
export function readEvidence(outDir: string, depFiles: readonly string[]): MakeEvidence {
  const compiled = new Set<string>();
  const bootfs = new Map<string, string[]>();
  const targets = new Set<string>();
  for (const rel of depFiles) {
    let text: string;
    try {
      text = fs.readFileSync(path.join(outDir, rel), 'utf8');
    } catch {
      continue;
    }
    const dep = parseDepText(text);
    if (isBootfsDepFile(rel)) {
      const files: string[] = [];
      for (const p of dep.prereqs) {
        if (p.startsWith('->')) continue;
        let abs = path.resolve(outDir, p);
        if (abs.endsWith('-stripped.so')) {
          const orig = abs.slice(0, -'-stripped.so'.length) + '.so';
          if (fs.existsSync(orig)) abs = orig;
        }
        files.push(abs);
      }
      bootfs.set(rel.slice(0, -2), files);
      continue;
    }
    for (const t of dep.targets) targets.add(t);
    for (const p of dep.prereqs) compiled.add(p);
  }
  return { compiled, bootfs, targets };
}

/** A makefile osvb adds after the tree's: at the end of parsing it writes MAKEFILE_LIST to `listFile`. */
export function makefileListRecorder(listFile: string): string {
  const quoted = listFile.replace(/\$/g, '$$$$');
  return `# osv-build: record the makefiles this make read (MAKEFILE_LIST), for the kernel's key.\n$(file >${quoted},$(MAKEFILE_LIST))\n`;
}

/** The makefiles a make read, from the recorder's file (minus the recorder); undefined when none was written. */
export function readMakefileList(listFile: string, recorder: string): string[] | undefined {
  let text: string;
  try {
    text = fs.readFileSync(listFile, 'utf8');
  } catch {
    return undefined;
  }
  return text.split(/\s+/).filter((p) => p && p !== recorder);
}
