/**
 * Early cutoff: a module whose key changed only because of things its make cannot act on is
 * not rebuilt. The rule never skips a `make module` that would have done something:
 *
 * 1. Eligible: the module's key differs from the one of its last build here only in the keys of
 *    the modules it requires (the same ones), in its evaluated module.py record, or in files
 *    only osv-build reads (its own usr.manifest, bootfs.manifest, module.py); every output of
 *    its last build is still there. Any other change (its sources, its Makefile, a variable,
 *    osv-build's version) rebuilds it as before.
 * 2. Evidence: make's own answer. `make -pq module` (no recipe runs) exits 0 when make would
 *    remake nothing; a file whose content is still what the module was last built with (a
 *    required module's output rebuilt byte-identical) is passed as `-o FILE`, make's "treat as
 *    old". The same run prints make's data base: every makefile read and every file make
 *    considered (targets and prerequisites). When the makefiles are pure — nothing read while
 *    parsing depends on the file system or the environment beyond the key's variables (no
 *    `$(shell)`, `$(wildcard)`, `$(file)`, `$(eval)`, `!=`, optional includes, vpath,
 *    recursive make, `+` recipes, MAKEFLAGS or locale tests) — make's answer is a function of
 *    the makefiles' text, the variables and those files alone; it is kept as **evidence**: the
 *    content of each makefile and considered file, and the listing of each directory holding
 *    one (a new file there could feed an implicit rule). While all of that is unchanged, the
 *    answer still holds and no process is started. A file that kept its content but not its
 *    mtime counts as unchanged, exactly as `-o` makes make treat it.
 *
 * A Makefile that is not pure is never asked (asking would run its `$(shell …)`): it is built;
 * so is one whose included makefiles turn out not to be pure, and one with a rule for a file
 * that was passed as `-o` (-o also means "do not remake it").
 * A make that reads a file it does not name (a header found through -I) is trusted as far as
 * make itself trusts it: when make would remake nothing, `make module` leaves every byte as it
 * is, and so does the cutoff.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { questionMake } from '../build/index.js';
import { digestString, digestValue, type StatCache } from '../hash/index.js';
import type { ModuleKeyInputs } from './moduleKeys.js';
import type { ModuleBuildRecord, OutputEntry } from './moduleAction.js';
import { BuildState } from './state.js';

/** Files of a module directory that only osv-build reads, unless its makefiles name them. */
export const OSVB_ONLY_FILES: ReadonlySet<string> = new Set(['usr.manifest', 'bootfs.manifest', 'module.py']);

/** make's up-to-date answer, with what it depended on. Paths are absolute (the state is per base). */
export interface MakeEvidence {
  at: string;
  /** Digest of the make variables of the key when make answered. */
  vars: string;
  /** Every makefile make read (MAKEFILE_LIST), and every existing file it considered: path → content signature. */
  files: Array<[string, string]>;
  /** Each directory holding one of them or a missing one: path → digest of its entry names ('-': no such directory). */
  dirs: Array<[string, string]>;
}

export type Eligibility = { ok: true; changes: string[]; changedDeps: string[] } | { ok: false; why: string };

/** Step 1: does the key differ only in what make cannot act on by itself? */
export function cutoffEligibility(prev: ModuleKeyInputs, cur: ModuleKeyInputs): Eligibility {
  if (prev.engine !== cur.engine) return { ok: false, why: 'osv-build changed' };
  if (prev.dir !== cur.dir || prev.absolute !== cur.absolute) return { ok: false, why: 'its directory changed' };
  if (!sameVars(prev.vars, cur.vars)) return { ok: false, why: 'a make variable changed' };
  const changes: string[] = [];
  for (const f of new Set([...Object.keys(prev.files), ...Object.keys(cur.files)])) {
    if (prev.files[f] === cur.files[f]) continue;
    if (!OSVB_ONLY_FILES.has(f)) return { ok: false, why: `input file ${f} changed` };
    changes.push(`${f} ${!(f in prev.files) ? 'added' : !(f in cur.files) ? 'removed' : 'changed'}`);
  }
  const depNames = Object.keys(cur.deps).sort();
  if (depNames.join('\0') !== Object.keys(prev.deps).sort().join('\0')) return { ok: false, why: 'it requires other modules' };
  const changedDeps = depNames.filter((d) => prev.deps[d] !== cur.deps[d]);
  for (const d of changedDeps) changes.push(`required module ${d} changed`);
  if (prev.record !== cur.record && !changes.some((c) => c.startsWith('module.py'))) changes.push('its module.py record changed');
  if (changes.length === 0) return { ok: false, why: 'nothing changed' };
  return { ok: true, changes, changedDeps };
}

function sameVars(a: Readonly<Record<string, string>>, b: Readonly<Record<string, string>>): boolean {
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  for (const k of ka) if (a[k] !== b[k]) return false;
  return true;
}

/** The digest of a variables record, once per record object (one object serves every module of a build). */
const varsDigests = new WeakMap<object, string>();
function varsDigest(vars: Record<string, string>): string {
  let d = varsDigests.get(vars);
  if (d === undefined) varsDigests.set(vars, (d = digestValue(vars)));
  return d;
}

const IMPURE: Array<[RegExp, string]> = [
  [/\$[({]\s*(shell|wildcard|file|realpath|guile|eval)\b/, 'calls $($1 …)'],
  [/\$[({]\s*MAKE\s*[)}]/, 'runs make recursively'],
  [/!=/, 'assigns a shell command\'s output (!=)'],
  [/^[ \t]*(-include|sinclude|-?load)\b/m, 'has optional includes or loads'],
  [/^[ \t]*vpath\b|\bVPATH\b|\bGPATH\b/m, 'searches directories (vpath)'],
  [/^\t[ \t@-]*\+/m, 'has recipes that run even when make is only asked (+)'],
  [/\b(MAKEFLAGS|MFLAGS|MAKE_RESTARTS|LC_[A-Z]+|LANG|LANGUAGE)\b/, 'reads make\'s own flags or the locale'],
];

/** Why a makefile's parse may depend on more than its text and the variables; undefined when pure. */
export function makefileImpurity(text: string): string | undefined {
  for (const [re, why] of IMPURE) {
    const m = re.exec(text);
    if (m) return why.replace('$1', m[1] ?? '');
  }
  return undefined;
}

const SAFE_NAME = /^[A-Za-z0-9_.\/+,@=~-]+$/;

/**
 * The makefiles and the files of make's data base (`make -p`): targets and prerequisites of the
 * "# Files" section. Undefined when anything there cannot be read with certainty (a name with
 * spaces, escapes, archive members, …): then no evidence is kept.
 */
export function parseMakeDatabase(db: string): { makefiles: string[]; files: string[]; targets: string[] } | undefined {
  const lines = db.split('\n');
  const list = lines.find((l) => /^MAKEFILE_LIST :?= /.test(l));
  if (list === undefined) return undefined;
  const makefiles = list.replace(/^MAKEFILE_LIST :?= /, '').split(/\s+/).filter(Boolean);
  const start = lines.indexOf('# Files');
  if (start < 0) return undefined;
  const targets = new Set<string>();
  const prerequisites = new Set<string>();
  /** Entries make only knows from its command line (`-o FILE`) or as a bare name: not targets, nothing needs them. */
  const loose = new Set<string>();
  let ended = false;
  for (let i = start + 1; i < lines.length; i++) {
    const l = lines[i] as string;
    if (l.startsWith('# files hash-table stats') || l.startsWith('# VPATH Search Paths')) {
      ended = true;
      break;
    }
    if (l === '' || l.startsWith('#') || l.startsWith('\t')) continue;
    const colon = l.indexOf(':');
    if (colon <= 0) return undefined;
    const name = l.slice(0, colon);
    if (!SAFE_NAME.test(name)) return undefined;
    if (lines[i - 1] === '# Not a target:') loose.add(name);
    else targets.add(name);
    const rest = l.slice(colon + 1).replace(/^:/, '');
    // A target-specific variable (`lib.so: CFLAGS = -O2`), not prerequisites.
    if (/^\s*[A-Za-z_][A-Za-z0-9_.-]*\s*(\+|\?|:|::|!)?=/.test(rest)) continue;
    for (const t of rest.split(/\s+/)) {
      if (!t || t === '|') continue;
      if (!SAFE_NAME.test(t)) return undefined;
      prerequisites.add(t);
    }
  }
  // A file no rule needs cannot change make's answer for `module` (the -o files land here).
  const files = new Set([...targets, ...prerequisites]);
  for (const n of loose) if (prerequisites.has(n)) files.add(n);
  if (!ended || makefiles.length === 0 || !makefiles.every((m) => SAFE_NAME.test(m))) return undefined;
  return { makefiles, files: [...files], targets: [...targets] };
}

/** What make sees of a path: missing, a link (and what it leads to), a directory's entries, a file's content. */
function contentSig(abs: string, statCache: StatCache, depth = 0): string {
  let st: fs.Stats | undefined;
  try {
    st = fs.lstatSync(abs, { throwIfNoEntry: false });
  } catch {
    return '?';
  }
  if (!st) return '-';
  if (st.isSymbolicLink()) {
    if (depth > 8) return '?';
    let target: string;
    try {
      target = fs.readlinkSync(abs);
    } catch {
      return '?';
    }
    return `l:${target}>${contentSig(path.resolve(path.dirname(abs), target), statCache, depth + 1)}`;
  }
  if (st.isDirectory()) return `d:${listingDigest(abs)}`;
  if (st.isFile()) {
    try {
      return `f:${statCache.digest(abs)}`;
    } catch {
      return '?';
    }
  }
  return `o:${st.mode}`;
}

function listingDigest(dir: string): string {
  try {
    return digestString(fs.readdirSync(dir).sort().join('\0'));
  } catch {
    return '-';
  }
}

/** Evidence from a `make -pq` answer of 0, or why none can be kept. */
export function takeEvidence(dir: string, db: string, vars: Record<string, string>, statCache: StatCache): MakeEvidence | { unusable: string; impure?: true } {
  const parsed = parseMakeDatabase(db);
  if (!parsed) return { unusable: 'make\'s data base could not be read with certainty' };
  const root = path.resolve(dir);
  for (const mf of parsed.makefiles) {
    let text: string;
    try {
      text = fs.readFileSync(path.resolve(root, mf), 'utf8');
    } catch {
      return { unusable: `makefile ${mf} could not be read` };
    }
    const why = makefileImpurity(text);
    if (why) return { unusable: `makefile ${mf} ${why}`, impure: true };
  }
  const paths = [...new Set([...parsed.makefiles, ...parsed.files].map((f) => path.resolve(root, f)))].sort();
  // A missing file is not listed: its directory's listing shows when it appears.
  const files: Array<[string, string]> = paths.map((p): [string, string] => [p, contentSig(p, statCache)]).filter(([, s]) => s !== '-');
  if (files.some(([, s]) => s === '?')) return { unusable: 'a file make considered could not be read' };
  const dirs: Array<[string, string]> = [...new Set(paths.map((p) => path.dirname(p)))].sort().map((d) => [d, listingDigest(d)]);
  return { at: new Date().toISOString(), vars: varsDigest(vars), files, dirs };
}

/** Undefined while the evidence holds; else the first thing that changed. */
export function evidenceChange(ev: MakeEvidence, vars: Record<string, string>, statCache: StatCache): string | undefined {
  if (ev.vars !== varsDigest(vars)) return 'a make variable changed';
  for (const [p, sig] of ev.files) if (contentSig(p, statCache) !== sig) return `${p} changed`;
  for (const [d, sig] of ev.dirs) if (listingDigest(d) !== sig) return `the entries of ${d} changed`;
  return undefined;
}

/** The record of a cut-off module: its outputs as they are (make would leave them so). Undefined when one is missing. */
export function currentOutputs(dir: string, outputs: readonly string[], statCache: StatCache): OutputEntry[] | undefined {
  const out: OutputEntry[] = [];
  for (const rel of outputs) {
    const abs = path.join(dir, rel);
    const st = fs.lstatSync(abs, { bigint: true, throwIfNoEntry: false });
    if (!st) return undefined;
    if (st.isSymbolicLink()) out.push({ path: rel, link: fs.readlinkSync(abs) });
    else if (st.isFile()) out.push({ path: rel, digest: statCache.digest(abs, st), mode: Number(st.mode) & 0o777, size: Number(st.size) });
    else return undefined;
  }
  return out;
}

export interface CutoffRequest {
  name: string;
  dir: string;
  prev: { inputs: ModuleKeyInputs; outputs: string[]; makeEvidence?: MakeEvidence | undefined };
  inputs: ModuleKeyInputs;
  env: Record<string, string>;
  statCache: StatCache;
  /** Directory of each module this one requires. */
  depDir: (name: string) => string | undefined;
  /** The build record stored under a key (the required module's result this module was built with). */
  recordOf: (key: string) => ModuleBuildRecord | undefined;
  /** Shared by the modules of one build: a required module's outputs compared once. */
  memo: Map<string, SameOutputs>;
  /** Runs `fn` holding the module directory's lock (make -q reads the directory). */
  locked: <T>(fn: () => Promise<T>) => Promise<T>;
  signal?: AbortSignal | undefined;
}

/** A required module's outputs now, against its record under the key a dependent was built with. */
export interface SameOutputs {
  /** Every output is byte-identical (and there is at least one). */
  all: boolean;
  /** Absolute paths of the byte-identical regular files. */
  files: string[];
}

function compareOutputs(ddir: string, before: ModuleBuildRecord | undefined, statCache: StatCache): SameOutputs {
  if (!before) return { all: false, files: [] };
  const now = currentOutputs(ddir, before.outputs.map((o) => o.path), statCache);
  if (!now) return { all: false, files: [] };
  const same = before.outputs.filter((o, i) => canonicalOutput(o) === canonicalOutput(now[i] as OutputEntry));
  return {
    all: same.length === before.outputs.length && same.length > 0,
    files: same.flatMap((o) => ('link' in o ? [] : [path.join(path.resolve(ddir), o.path)])),
  };
}

export interface CutoffResult {
  /** Why make was not run, for the event and `osvb explain`. */
  reason: string;
  evidence: MakeEvidence | undefined;
  outputs: OutputEntry[];
  /** Whether make was asked (a process ran) or the kept evidence answered. */
  asked: boolean;
}

/** Decide the early cutoff for a module whose key is not in the cache; undefined: build it. */
export async function earlyCutoff(req: CutoffRequest): Promise<CutoffResult | undefined> {
  const el = cutoffEligibility(req.prev.inputs, req.inputs);
  if (!el.ok) return undefined;
  const root = path.resolve(req.dir);
  let makefileText: string;
  try {
    makefileText = fs.readFileSync(path.join(root, 'Makefile'), 'utf8');
  } catch {
    return undefined;
  }
  if (makefileImpurity(makefileText)) return undefined;
  const outputs = currentOutputs(root, req.prev.outputs, req.statCache);
  if (!outputs) return undefined;
  const vars = req.inputs.vars;
  // Outputs of required modules that are byte-identical to those this module was last built with.
  const assumeOld: string[] = [];
  const sameOutputs: string[] = [];
  for (const d of el.changedDeps) {
    const ddir = req.depDir(d);
    const prevKey = req.prev.inputs.deps[d];
    if (!ddir || !prevKey) continue;
    const memoKey = `${d}\0${prevKey}`;
    let same = req.memo.get(memoKey);
    if (!same) req.memo.set(memoKey, (same = compareOutputs(ddir, req.recordOf(prevKey), req.statCache)));
    if (same.all) sameOutputs.push(d);
    for (const abs of same.files) assumeOld.push(abs, path.relative(root, abs));
  }
  const what = `only ${el.changes.join(', ')}${sameOutputs.length ? ` (the outputs of ${sameOutputs.join(', ')} are byte-identical to those it was built with)` : ''}`;
  const ev = req.prev.makeEvidence;
  if (ev && evidenceChange(ev, vars, req.statCache) === undefined) {
    return {
      reason: `${what}; make would remake nothing: its up-to-date answer (make -q, ${ev.at}) still holds, none of the ${ev.files.length} files its makefiles name changed`,
      evidence: ev,
      outputs,
      asked: false,
    };
  }
  const answer = await req.locked(() => questionMake({ moduleName: req.name, dir: root, env: req.env, assumeOld, ...(req.signal ? { signal: req.signal } : {}) }));
  if (answer.code !== 0) return undefined;
  if (assumeOld.length) {
    // -o also means "do not remake": an answer about a file this Makefile has a rule for is not taken.
    const targets = parseMakeDatabase(answer.database)?.targets.map((t) => path.resolve(root, t));
    if (!targets || assumeOld.some((f) => targets.includes(path.resolve(root, f)))) return undefined;
  }
  const evidence = takeEvidence(root, answer.database, vars, req.statCache);
  // An included makefile that is not pure: its parse may differ next time; make module runs.
  if ('impure' in evidence) return undefined;
  return {
    reason: `${what}; make would remake nothing: make -q answered "up to date"${assumeOld.length ? ' with the unchanged files treated as old (-o)' : ''}`,
    evidence: 'unusable' in evidence ? undefined : evidence,
    outputs,
    asked: true,
  };
}

function canonicalOutput(o: OutputEntry): string {
  return 'link' in o ? `l:${o.link}` : `f:${o.digest}:${o.mode & 0o777}`;
}

export interface WarmRequest {
  /** The build whose modules to ask about (its keys are what the state must still hold). */
  modules: ReadonlyArray<{ name: string; dir: string }>;
  keys: ReadonlyMap<string, string>;
  keyInputs: ReadonlyMap<string, ModuleKeyInputs>;
  cacheDir: string;
  osvBase: string;
  env: Record<string, string>;
  statCache: StatCache;
  /** Lock of a module directory, as builds take it. */
  locked: <T>(dir: string, fn: () => Promise<T>) => Promise<T>;
  signal: AbortSignal;
}

/**
 * Ask make ahead of time (`osvb watch`, while nothing else runs): for each module with a pure
 * Makefile, up to date with the last build and without evidence that still holds, run
 * `make -pq module` once and keep its answer as evidence, so that the first edit that could be
 * cut off needs no process. One make at a time; stops as soon as `signal` aborts. Entries are
 * written only where the state still has the key seen (another build may have changed it).
 * Returns how many modules were asked.
 */
export async function warmCutoffEvidence(req: WarmRequest): Promise<number> {
  const state = new BuildState(req.cacheDir, req.osvBase);
  const found = new Map<string, { key: string; evidence: MakeEvidence }>();
  let asked = 0;
  for (const m of req.modules) {
    if (req.signal.aborted) break;
    const key = req.keys.get(m.name);
    const inputs = req.keyInputs.get(m.name);
    const st = state.get(m.name);
    if (!key || !inputs || !st || st.key !== key) continue;
    if (st.makeEvidence && evidenceChange(st.makeEvidence, inputs.vars, req.statCache) === undefined) continue;
    let text: string;
    try {
      text = fs.readFileSync(path.join(m.dir, 'Makefile'), 'utf8');
    } catch {
      continue;
    }
    if (makefileImpurity(text)) continue;
    let answer: Awaited<ReturnType<typeof questionMake>>;
    try {
      answer = await req.locked(m.dir, () => questionMake({ moduleName: m.name, dir: path.resolve(m.dir), env: req.env, assumeOld: [], signal: req.signal }));
    } catch {
      break; // stopped (a change arrived) or the lock was not had
    }
    asked++;
    if (answer.code !== 0) continue;
    const ev = takeEvidence(m.dir, answer.database, inputs.vars, req.statCache);
    if (!('unusable' in ev)) found.set(m.name, { key, evidence: ev });
  }
  if (found.size > 0) {
    const fresh = new BuildState(req.cacheDir, req.osvBase);
    for (const [name, f] of found) {
      const cur = fresh.get(name);
      if (cur && cur.key === f.key) fresh.set(name, { ...cur, makeEvidence: f.evidence });
    }
    fresh.save();
  }
  return asked;
}
