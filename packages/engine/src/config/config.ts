/**
 * config.json: module entries, `include` files merged over them, `repositories` searched in
 * order, and the `default` module list. Lookup follows OSv (spec §2.5) exactly.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { OsvbError } from '../errors/index.js';
import { expandVars, pyJoin } from '../fsutil/index.js';
import { locationOf, readJsonDocument, type JsonDocument } from './json.js';
import { checkConfigDocument, checkIncludeDocument, checkModuleEntry } from './schema.js';

export type ModuleEntryType = 'direct-dir' | 'git' | 'svn' | 'dir' | string;

export interface ModuleEntry {
  type: ModuleEntryType;
  path: string;
  name?: string;
  branch?: string;
}

/** Where a module lives, as `require()` resolves it. */
export interface LocatedModule {
  name: string;
  /** MODULE_DIR exactly as OSv computes it (no normalisation; a trailing `/` is kept). */
  dir: string;
  /**
   * Where the module is on this machine: `dir`, joined to the OSv base when relative, because
   * scripts/build runs module.py (and so every `require` and `make module`) with cwd = OSV_BASE.
   */
  hostDir: string;
  type: ModuleEntryType;
  /** For fetched modules: the entry, so the caller can fetch when `dir` is missing. */
  entry?: ModuleEntry;
  /** Where the module's entry was declared (config.json or an include file). */
  declaredIn: string;
}

interface RawEntry {
  value: unknown;
  doc: JsonDocument;
}

export interface OsvConfig {
  file: string;
  /** Names of the `${VAR}`s the config files refer to (their values shape every lookup). */
  variables: string[];
  /** The `default` list, if present. */
  defaults: string[] | undefined;
  /** All files read (config.json first, then includes), for hashing and watching. */
  files: string[];
  /** Names with an explicit entry (config.json and includes), in file order. */
  entryNames: string[];
  /** The repository directories, `${VAR}`s expanded, as configured (searched in this order). */
  repositories: string[];
  /** Look a name up (explicit entry, then repositories). Undefined when not found. */
  find(name: string): LocatedModule | undefined;
  /** Like `find` but throws OSv's "Module not found" error. */
  locate(name: string): LocatedModule;
}

export interface LoadConfigOptions {
  osvBase: string;
  buildPath: string;
  /** Environment used for `${VAR}` expansion (OSv expands with the process environment). */
  env: Readonly<Record<string, string | undefined>>;
  /** Told about every existence test a lookup makes (for cached evaluation). */
  onProbe?: (path: string, exists: boolean) => void;
}

const RESERVED = new Set(['repositories', 'include']);

export function loadOsvConfig(opts: LoadConfigOptions): OsvConfig {
  const file = path.join(opts.osvBase, 'config.json');
  const doc = readJsonDocument(file, 'OSVB_CONFIG_MISSING', 'OSv configuration');
  checkConfigDocument(doc);
  const top = doc.value as { modules: Record<string, unknown>; default?: string[] };
  const entries = new Map<string, RawEntry>();
  for (const [k, v] of Object.entries(top.modules)) entries.set(k, { value: v, doc });
  const files = [file];

  let repositories = (top.modules['repositories'] as string[] | undefined) ?? undefined;
  const includes = (top.modules['include'] as string[] | undefined) ?? [];
  includes.forEach((inc, index) => {
    const expanded = expandVars(inc, opts.env);
    const incFile = path.resolve(opts.osvBase, expanded);
    let incDoc: JsonDocument;
    try {
      incDoc = readJsonDocument(incFile, 'OSVB_CONFIG_MISSING', 'include file');
    } catch (e) {
      if (e instanceof OsvbError && e.code === 'OSVB_CONFIG_MISSING') {
        throw new OsvbError('OSVB_CONFIG_MISSING', `include file not found: ${expanded}`, {
          location: locationOf(doc, ['modules', 'include', index]),
        });
      }
      throw e;
    }
    checkIncludeDocument(incDoc);
    files.push(incFile);
    for (const [k, v] of Object.entries(incDoc.value as Record<string, unknown>)) {
      entries.set(k, { value: v, doc: incDoc });
      if (k === 'repositories') repositories = v as string[];
    }
  });

  const repoDirs = (repositories ?? []).map((r) => expandVars(r, opts.env));

  const onHost = (p: string): string => (path.isAbsolute(p) ? p : pyJoin(opts.osvBase, p));
  const find = (name: string): LocatedModule | undefined => {
    const raw = entries.get(name);
    if (raw !== undefined) {
      if (RESERVED.has(name)) {
        throw new OsvbError('OSVB_MODULE_NOT_FOUND', `"${name}" is a reserved key of the "modules" map in ${file}, not a module name`, {
          location: { file },
        });
      }
      checkModuleEntry(name, raw.value, raw.doc, ['modules', name].slice(raw.doc === doc ? 0 : 1));
      const entry = raw.value as ModuleEntry;
      const expandedPath = expandVars(entry.path, opts.env);
      if (entry.type === 'direct-dir') {
        return { name, dir: expandedPath, hostDir: onHost(expandedPath), type: entry.type, declaredIn: raw.doc.file };
      }
      const fetchedDir = pyJoin(opts.buildPath, 'module', entry.name as string);
      return {
        name,
        dir: fetchedDir,
        hostDir: onHost(fetchedDir),
        type: entry.type,
        entry: { ...entry, path: expandedPath },
        declaredIn: raw.doc.file,
      };
    }
    for (const repo of repoDirs) {
      const candidate = pyJoin(repo, name);
      const exists = fs.existsSync(onHost(candidate));
      opts.onProbe?.(onHost(candidate), exists);
      if (exists) return { name, dir: candidate, hostDir: onHost(candidate), type: 'direct-dir', declaredIn: file };
    }
    return undefined;
  };

  const variables = new Set<string>();
  for (const f of files) {
    for (const m of fs.readFileSync(f, 'utf8').matchAll(/\$(\w+|\{[^}]*\})/g)) {
      const ref = m[1] as string;
      variables.add(ref.startsWith('{') ? ref.slice(1, -1) : ref);
    }
  }

  return {
    file,
    variables: [...variables].sort(),
    defaults: top.default,
    files,
    entryNames: [...entries.keys()].filter((k) => !RESERVED.has(k)),
    repositories: repoDirs,
    find,
    locate(name: string): LocatedModule {
      const found = find(name);
      if (!found) {
        throw new OsvbError('OSVB_MODULE_NOT_FOUND', `Module not found: ${name}. Please check configuration: ${file}`, {
          hint: repoDirs.length
            ? `looked for an entry "${name}" in config.json and for ${repoDirs.map((r) => pyJoin(r, name)).join(', ')}`
            : `looked for an entry "${name}" in config.json (no "repositories" are configured)`,
        });
      }
      return found;
    },
  };
}
