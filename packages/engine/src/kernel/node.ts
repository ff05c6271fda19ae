/**
 * The OSv kernel as one cached node of the build graph.
 *
 * In an OSv source tree the kernel is built the way scripts/build builds it (spec §4.7), in the
 * base: `make <words> -f conf/Makefile -j1 config`, `make <words> stage1`, then `make <words>`
 * with `fs=<fs>` and `bootfs_manifest=<file>` in its environment. Its outputs land in
 * `build/<mode>.<arch>`, which the Makefile links as `build/<mode>` and `build/last`; the
 * engine's default build path `<base>/build/<mode>` is that link, so loader.img is
 * `<build path>/loader.img` (a build path elsewhere gets copies of the files later steps read).
 *
 * The node is keyed (key.ts) and its outputs (loader.img, loader.elf, loader-stripped.elf, the
 * `.so` files the skeletons and bootfs map, the generated headers modules compile against, …)
 * are kept in the local cache and the remote one: an unchanged kernel costs a few thousand
 * `stat`s, a kernel built anywhere with the same key is restored (digest-verified, atomically)
 * instead of compiled. make's own incremental build is used only where it is sound; otherwise the
 * kernel is rebuilt with `make -B`, so nothing cached comes from stale objects.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CorruptEntryError, INLINE_BLOB_MAX, withLock, type LocalCache, type RemoteCache } from '../cache/index.js';
import { OsvbError, isOsvbError } from '../errors/index.js';
import { tempNameFor, uniqueSuffix, writeFileAtomic } from '../fsutil/index.js';
import { canonicalJson, digestString, digestValue, initHashing, StatCache, type Digest } from '../hash/index.js';
import type { Reporter } from '../report/index.js';
import { ENGINE_VERSION } from '../version.js';
import { copyKernelFiles, KERNEL_BUILD_FILES } from './prebuilt.js';
import { defaultMakefile, hostKernelArch, kernelMakeWords, parseKernelWords, type KernelWords } from './detect.js';
import { isBootfsDepFile, listDepFiles, makefileListRecorder, parseDepText, readEvidence, readMakefileList } from './evidence.js';
import {
  diffKernelInputs,
  fingerprintHolds,
  fullKeyOf,
  gitStateFiles,
  k1Of,
  keyEnv,
  keyEnvNames,
  makeFingerprint,
  makefileTokens,
  KERNEL_KEY_SCHEMA,
  PATH_SENSITIVE_MARKER,
  treeVersion,
  valueFiles,
  type Extras,
  type KernelKeyInputs,
} from './key.js';
import { runKernelMake, type KernelMakeResult, type KernelProgress, type KernelStage } from './make.js';
import { KernelStateStore, outputSigsOf, outputsHold, snapshotDir, type KernelOutput, type KernelState, type ObjectsState } from './state.js';
import { probeToolchainCached, toolchainIdentity } from './toolchain.js';
import { isMakefileLike, mentions, relInside, treeDigest, walkKernelTree, type TreeWalk } from './tree.js';

/** Action-cache namespaces: the kernel's result under its full key; the recorded input sets under k1. */
export const KERNEL_NAMESPACE = 'kernel';
export const KERNEL_K1_NAMESPACE = 'kernel-k1';

export interface KernelNodeInput {
  osvBase: string;
  /** The engine's build path (default `<base>/build/<mode>`, the Makefile's own link to the out dir). */
  buildPath?: string;
  /** scripts/build's words: the ones it passes to make are used (kernelMakeWords: no image=, fs=, …). */
  makeWords: readonly string[];
  /** scripts/build's `fs=` (zfs, rofs, ramfs, …): `fs=` in the link make's environment. */
  fs: string;
  /** The bootfs manifest, relative to the base as scripts/build passes it (`bootfs_empty.manifest.skel`, `build/release.x64/usr.manifest`). */
  bootfsManifest: string;
  /**
   * ramfs: the generated manifest's text. It is written to `bootfsManifest` when that file
   * differs; its content is part of the key either way.
   */
  bootfsManifestText?: string;
  /** The environment make runs with (scripts/build's own; `fs` and `bootfs_manifest` are added for the link). */
  env: Readonly<Record<string, string>>;
  /** The image graph's module directories: left out of the static input set (tree.ts). */
  moduleDirs?: readonly string[];
  cache: LocalCache;
  /** Default: one on `<cache>/stat-cache.json`, saved when the node finishes. */
  statCache?: StatCache;
  remote?: RemoteCache;
  reporter: Reporter;
  signal?: AbortSignal;
  /** Parallel jobs for stage1 and the link when the words carry no -j: `N` or `-jN` (e.g. the number of cores). */
  jobs?: string;
  /** Structured progress (stage, elapsed time, lines): for a progress display. */
  onProgress?: (p: KernelProgress) => void;
  /** How often a running stage reports (default 30 s). */
  heartbeatMs?: number;
  /** Stream make's lines as `make-output` events (name `kernel`); replay the stored log on a restore. */
  streamMakeOutput?: boolean;
}

export type KernelBuildKind = 'fresh' | 'incremental' | 'full';

export interface KernelNodeResult {
  status: 'up-to-date' | 'restored' | 'built';
  /** The full key (k1 plus the recorded inputs outside the tree). */
  key: string;
  k1: string;
  /** `<base>/build/<mode>.<arch>`. */
  outDir: string;
  /** Stored outputs, relative to the out dir. */
  outputs: string[];
  /** loader.img in the build path. */
  loaderImg: string;
  durationMs: number;
  fromRemote?: boolean;
  /** For built: fresh (nothing there), incremental (make's own), full (`make -B`), and why. */
  build?: { kind: KernelBuildKind; reason: string; stages: Array<{ stage: KernelStage; durationMs: number; args: string[] }> };
  /** False when a built result was not stored (an input changed while make ran). */
  cached: boolean;
  /** Uploads to the remote cache started by this node (await before exiting; never rejects). */
  uploads: Promise<void>;
}

export interface KernelExplanation {
  verdict: 'up-to-date' | 'restore' | 'rebuild';
  key: string;
  k1: string;
  reasons: string[];
  /** What a rebuild would run: make's incremental build or `make -B`, and why. */
  build?: { kind: KernelBuildKind; reason: string };
}

/** Deliverables scripts/build's image steps and OSv's skeletons read, besides everything top-level. */
const ENGINE_FILES = new Set(['usr.manifest', 'bootfs.manifest', 'cmdline', 'javamains', 'fstab', 'append.manifest', 'append_cmdline', 'usr.img', 'usr.raw', 'disk.img', 'rofs.img', 'zfs_disk.img', 'bare.raw', 'disk.ext', 'build.out']);

/** What of the out dir is stored: every kernel product at the top, generated headers and config, every `.so`. */
export function isDeliverable(rel: string): boolean {
  if (/\.(o|d|a|tmp)$/.test(rel) || rel.startsWith('kbuild/') || rel.includes('.osvb-')) return false;
  if (!rel.includes('/')) return !ENGINE_FILES.has(rel) && !/^30-auto-/.test(rel);
  return rel.startsWith('gen/') || rel.endsWith('.so');
}

interface Ctx {
  input: KernelNodeInput;
  /** The make words (scripts/build's filter applied). */
  makeWords: string[];
  base: string;
  given: string;
  words: KernelWords;
  mode: string;
  arch: string;
  outRel: string;
  outDir: string;
  buildPath: string;
  env: Record<string, string>;
  statCache: StatCache;
  ownStatCache: boolean;
  store: KernelStateStore;
  prev: KernelState | undefined;
  ph: (s: string) => string;
  unph: (s: string) => string;
  bootfsRel: string;
  reporter: Reporter;
}

interface KeyPlan {
  inputs: KernelKeyInputs;
  k1: string;
  envNames: string[];
  walk: TreeWalk | undefined;
  /** Absolute files (links followed) the key also depends on. */
  follow: string[];
  /** True when the state's fingerprint held: nothing was hashed. */
  fast: boolean;
  /** The state's recorded inputs outside the tree, with their current digests. */
  extrasLocal: Extras | undefined;
}

function realOr(p: string): string {
  try {
    return fs.realpathSync(p);
  } catch {
    return path.resolve(p);
  }
}

function secs(ms: number): string {
  const s = ms / 1000;
  return s >= 60 ? `${Math.floor(s / 60)}m${String(Math.round(s % 60)).padStart(2, '0')}s` : `${s.toFixed(1)}s`;
}

function resolveCtx(input: KernelNodeInput): Ctx {
  const given = path.resolve(input.osvBase);
  const base = realOr(given);
  const makeWords = kernelMakeWords(input.makeWords);
  const words = parseKernelWords(makeWords);
  const env: Record<string, string> = { ...input.env };
  const envArch = env['ARCH'];
  const cross = env['CROSS_PREFIX'] ?? words.vars['CROSS_PREFIX'];
  const arch = words.arch ?? envArch ?? (cross ? (cross.startsWith('aarch64') ? 'aarch64' : cross.startsWith('x86_64') ? 'x64' : hostKernelArch()) : hostKernelArch());
  const outRel = `build/${words.mode}.${arch}`;
  const outDir = path.join(base, outRel);
  const buildPath = path.resolve(input.buildPath ?? path.join(given, 'build', words.mode));
  const rel = input.bootfsManifest;
  if (!rel || path.isAbsolute(rel) || rel.split('/').includes('..')) {
    throw new OsvbError('OSVB_USAGE', `bootfs manifest "${rel}": expected a path relative to the OSv base, inside it (as scripts/build passes it)`);
  }
  const ownStatCache = !input.statCache;
  const statCache = input.statCache ?? new StatCache(path.join(input.cache.root, 'stat-cache.json'));
  const store = new KernelStateStore(input.cache.root, outDir);
  const roots = [...new Set([given, base])].sort((a, b) => b.length - a.length);
  const ph = (s: string): string => {
    for (const r of roots) if (s === r || s.startsWith(r + '/')) return '${OSV_BASE}' + s.slice(r.length);
    return s;
  };
  const unph = (s: string): string => (s.startsWith('${OSV_BASE}') ? base + s.slice('${OSV_BASE}'.length) : s);
  return { input, makeWords, base, given, words, mode: words.mode, arch, outRel, outDir, buildPath, env, statCache, ownStatCache, store, prev: store.read(), ph, unph, bootfsRel: rel, reporter: input.reporter };
}

function digestOrMissing(ctx: Ctx, abs: string): string {
  try {
    const st = fs.statSync(abs, { bigint: true });
    if (!st.isFile()) return st.isDirectory() ? 'directory' : 'other';
    return ctx.statCache.digest(abs, st);
  } catch {
    return 'missing';
  }
}

function currentExtras(ctx: Ctx, extras: Extras): Extras {
  const out: Extras = {};
  for (const p of Object.keys(extras).sort()) out[p] = digestOrMissing(ctx, ctx.unph(p));
  return out;
}

/** The parts of the key that are not the tree's files (cheap: stats, a cached toolchain probe). */
function configParts(ctx: Ctx, inStatic: (rel: string) => boolean, envNames: readonly string[]): {
  parts: Omit<KernelKeyInputs, 'files' | 'version'>;
  follow: string[];
} {
  const probe = probeToolchainCached(ctx.env, ctx.env['CROSS_PREFIX'] ?? ctx.words.vars['CROSS_PREFIX'] ?? '', path.join(ctx.input.cache.root, 'kernel', 'toolchain.json'));
  const tc = toolchainIdentity(probe, ctx.statCache);
  const bootfsAbs = path.join(ctx.base, ctx.bootfsRel);
  const bootfsDigest = ctx.input.bootfsManifestText !== undefined ? digestString(ctx.input.bootfsManifestText) : digestOrMissing(ctx, bootfsAbs);
  const env = keyEnv(envNames, ctx.env, ctx.ph);
  const values = [...Object.values(ctx.words.vars), ...Object.values(env)];
  const vf = valueFiles(ctx.base, values, inStatic, ctx.statCache, ctx.ph);
  const configFile = path.join(ctx.outDir, '.config');
  let userConfig: string | null = null;
  if (fs.existsSync(configFile)) {
    const d = digestOrMissing(ctx, configFile);
    const ours = ctx.prev?.outputs.find((o) => o.path === '.config');
    if (!ours || !('digest' in ours) || ours.digest !== d) userConfig = d;
  }
  return {
    parts: {
      schema: KERNEL_KEY_SCHEMA,
      engine: ENGINE_VERSION,
      words: ctx.words.keyWords,
      fs: ctx.input.fs,
      bootfs: { manifest: ctx.bootfsRel, digest: bootfsDigest },
      env,
      toolchain: tc.identity,
      valueFiles: vf.files,
      userConfig,
      ...(fs.existsSync(path.join(ctx.base, PATH_SENSITIVE_MARKER)) ? { absolute: ctx.base } : {}),
    },
    follow: [...tc.files, bootfsAbs, configFile, ...vf.paths],
  };
}

function walkTree(ctx: Ctx): TreeWalk {
  const outputs = [ctx.input.cache.root, ctx.buildPath];
  return walkKernelTree(ctx.base, { moduleDirs: ctx.input.moduleDirs ?? [], outputs });
}

/** What the static set's exclusions were computed from (relative to the base): the fingerprint holds only for the same. */
function walkKeyOf(ctx: Ctx): string {
  const rel = (p: string): string => relInside(ctx.base, realOr(p)) ?? '(outside)';
  return canonicalJson({ modules: (ctx.input.moduleDirs ?? []).map(rel).sort(), outputs: [ctx.input.cache.root, ctx.buildPath].map(rel).sort() });
}

/** Compute the key inputs and k1: from the state when its fingerprint holds, else by walking and hashing (stat cache). */
function planKey(ctx: Ctx): KeyPlan {
  const prev = ctx.prev;
  const hasVersion = fs.existsSync(path.join(ctx.base, 'scripts', 'osv-version.sh'));
  if (prev?.fingerprint && prev.inputs.schema === KERNEL_KEY_SCHEMA && prev.walkKey === walkKeyOf(ctx) && fingerprintHolds(ctx.base, prev.fingerprint)) {
    const files = prev.inputs.files;
    const { parts, follow } = configParts(ctx, (r) => r in files, prev.envNames);
    const inputs: KernelKeyInputs = { ...parts, version: prev.inputs.version, files };
    if (canonicalJson(inputs) === canonicalJson(prev.inputs)) {
      return { inputs, k1: prev.k1, envNames: prev.envNames, walk: undefined, follow, fast: true, extrasLocal: prev.extras };
    }
  }
  const walk = walkTree(ctx);
  const files: Record<string, string> = {};
  const texts: string[] = [];
  for (const f of walk.files) {
    files[f.rel] = treeDigest(ctx.base, f, ctx.statCache);
    if (isMakefileLike(f.rel)) {
      try {
        texts.push(fs.readFileSync(path.join(ctx.base, f.rel), 'utf8'));
      } catch {
        /* unreadable */
      }
    }
  }
  // Makefiles make read from outside the tree at the last build count too.
  for (const m of prev?.objects?.makefiles ?? []) {
    try {
      texts.push(fs.readFileSync(ctx.unph(m), 'utf8'));
    } catch {
      /* gone */
    }
  }
  const envNames = keyEnvNames(makefileTokens(texts), ctx.env);
  const { parts, follow } = configParts(ctx, (r) => r in files, envNames);
  const inputs: KernelKeyInputs = { ...parts, version: hasVersion ? treeVersion(ctx.base) : null, files };
  if (hasVersion) follow.push(...gitStateFiles(ctx.base));
  const extrasLocal = prev?.extras ? currentExtras(ctx, prev.extras) : undefined;
  return { inputs, k1: k1Of(inputs), envNames, walk, follow, fast: false, extrasLocal };
}

interface KernelRecord {
  engine: string;
  k1: string;
  extras: Extras;
  outputs: KernelOutput[];
  log: Digest | null;
  durationMs: number;
}

interface K1Record {
  candidates: Array<{ key: string; extras: Extras }>;
}

function safeRel(p: unknown): boolean {
  if (typeof p !== 'string' || p === '' || path.isAbsolute(p) || p.includes('\0')) return false;
  return p.split('/').every((s) => s !== '..' && s !== '' && s !== '.');
}

function validRecord(rec: KernelRecord | undefined, key: string): rec is KernelRecord {
  if (!rec || typeof rec !== 'object' || !Array.isArray(rec.outputs) || typeof rec.k1 !== 'string' || !rec.extras || typeof rec.extras !== 'object') return false;
  if (fullKeyOf(rec.k1, rec.extras) !== key) return false;
  if (!rec.outputs.some((o) => o.path === 'loader.img')) return false;
  return rec.outputs.every((o) => o && safeRel(o.path) && ('link' in o ? typeof o.link === 'string' : typeof o.digest === 'string' && /^[0-9a-f]{16}$/.test(o.digest)));
}

function localGet<T>(ctx: Ctx, ns: string, key: string): T | undefined {
  try {
    return ctx.input.cache.getAction<T>(ns, key);
  } catch (e) {
    if (e instanceof CorruptEntryError) {
      ctx.reporter({ type: 'warning', text: `kernel: cache record ${ns}/${key} was corrupt; it was removed` });
      return undefined;
    }
    throw e;
  }
}

/** Candidates under k1 whose recorded inputs all hold here (local record first, then the remote's). */
async function matchCandidates(ctx: Ctx, k1: string, remote: RemoteCache | undefined): Promise<Array<{ key: string; extras: Extras; remote: boolean }>> {
  const out: Array<{ key: string; extras: Extras; remote: boolean }> = [];
  const check = (c: { key: string; extras: Extras }): boolean => {
    if (!c || typeof c.key !== 'string' || !c.extras || typeof c.extras !== 'object') return false;
    if (fullKeyOf(k1, c.extras) !== c.key) return false;
    return canonicalJson(currentExtras(ctx, c.extras)) === canonicalJson(c.extras);
  };
  const local = localGet<K1Record>(ctx, KERNEL_K1_NAMESPACE, k1);
  for (const c of local?.candidates ?? []) if (check(c)) out.push({ ...c, remote: false });
  if (remote?.canRead) {
    const got = await remote.getAction<K1Record>(KERNEL_K1_NAMESPACE, k1);
    for (const c of got?.value?.candidates ?? []) if (!out.some((o) => o.key === c.key) && check(c)) out.push({ ...c, remote: true });
  }
  return out;
}

/** A record for `key` in the local cache, fetched (verified) from the remote when only it has one. */
async function recordFor(ctx: Ctx, key: string, remote: RemoteCache | undefined): Promise<{ rec: KernelRecord; fromRemote: boolean } | undefined> {
  const local = localGet<KernelRecord>(ctx, KERNEL_NAMESPACE, key);
  if (validRecord(local, key) && local.outputs.every((o) => 'link' in o || ctx.input.cache.hasBlob(o.digest as Digest))) return { rec: local, fromRemote: false };
  if (!remote?.canRead) return undefined;
  const got = await remote.getAction<KernelRecord>(KERNEL_NAMESPACE, key);
  const rec = got?.value;
  if (!got || !validRecord(rec, key)) return undefined;
  for (const o of rec.outputs) {
    if ('link' in o || ctx.input.cache.hasBlob(o.digest as Digest)) continue;
    const body = got.inline.get(o.digest) ?? (await remote.getBlob(o.digest as Digest));
    if (!body || ctx.input.cache.putBlobBytes(body) !== o.digest) return undefined;
  }
  if (rec.log && !ctx.input.cache.hasBlob(rec.log)) {
    const body = got.inline.get(rec.log) ?? (await remote.getBlob(rec.log));
    if (body) ctx.input.cache.putBlobBytes(body);
  }
  ctx.input.cache.putAction(KERNEL_NAMESPACE, key, rec);
  return { rec, fromRemote: true };
}

/** Make the Makefile's links: `build/<mode>` and `build/last` → `<mode>.<arch>`; a real `build/<mode>` directory (the engine's build path made early) is merged into the out dir first. */
function ensureLinks(ctx: Ctx): void {
  const buildDir = path.join(ctx.base, 'build');
  fs.mkdirSync(ctx.outDir, { recursive: true });
  const target = path.basename(ctx.outDir);
  for (const name of [ctx.mode, 'last']) {
    const link = path.join(buildDir, name);
    if (link === ctx.outDir) continue;
    const st = fs.lstatSync(link, { throwIfNoEntry: false });
    if (st?.isSymbolicLink() && fs.readlinkSync(link) === target) continue;
    if (st?.isDirectory()) {
      mergeInto(link, ctx.outDir);
      fs.rmSync(link, { recursive: true, force: true });
      ctx.reporter({ type: 'log', text: `kernel: build/${name} was a directory; its files were moved into ${ctx.outRel}, which build/${name} now links to (as OSv's Makefile has it)` });
    }
    const tmp = path.join(buildDir, `.${name}.osvb-${uniqueSuffix()}`);
    fs.symlinkSync(target, tmp);
    fs.renameSync(tmp, link);
  }
}

function mergeInto(from: string, to: string): void {
  fs.mkdirSync(to, { recursive: true });
  for (const name of fs.readdirSync(from)) {
    const src = path.join(from, name);
    const dest = path.join(to, name);
    const s = fs.lstatSync(src);
    const d = fs.lstatSync(dest, { throwIfNoEntry: false });
    if (s.isDirectory() && d?.isDirectory()) {
      mergeInto(src, dest);
      continue;
    }
    if (d) fs.rmSync(dest, { recursive: true, force: true });
    fs.renameSync(src, dest);
  }
}

/** Copy what later steps read into a build path that is not the out dir (as --kernel does). */
function placeInBuildPath(ctx: Ctx): string {
  if (realOr(ctx.buildPath) === realOr(ctx.outDir)) return path.join(ctx.buildPath, 'loader.img');
  const sources = new Map(KERNEL_BUILD_FILES.map((rel): [string, string] => [rel, path.join(ctx.outDir, rel)]).filter(([, from]) => fs.existsSync(from)));
  for (const rel of copyKernelFiles(sources, ctx.buildPath, (f) => digestOrMissing(ctx, f))) ctx.statCache.forget(path.join(ctx.buildPath, rel));
  return path.join(ctx.buildPath, 'loader.img');
}

/**
 * Write a record's outputs into the out dir: every blob copied to a temp name and verified
 * first, then all renamed into place. False (nothing changed) when a blob is missing or corrupt.
 */
function restoreOutputs(ctx: Ctx, rec: KernelRecord): boolean {
  const staged: Array<{ tmp: string; dest: string }> = [];
  const cache = ctx.input.cache;
  try {
    for (const o of rec.outputs) {
      const dest = path.join(ctx.outDir, o.path);
      if ('link' in o) continue;
      const st = fs.statSync(dest, { bigint: true, throwIfNoEntry: false });
      if (st?.isFile() && (Number(st.mode) & 0o777) === (o.mode & 0o777) && ctx.statCache.digest(dest, st) === o.digest) continue;
      const tmp = tempNameFor(dest);
      fs.mkdirSync(path.dirname(dest), { recursive: true });
      staged.push({ tmp, dest });
      if (!cache.restoreBlob(o.digest as Digest, tmp, o.mode)) {
        for (const s of staged) fs.rmSync(s.tmp, { force: true });
        return false;
      }
    }
  } catch (e) {
    for (const s of staged) fs.rmSync(s.tmp, { force: true });
    if (e instanceof CorruptEntryError) {
      ctx.reporter({ type: 'warning', text: `kernel: a cached output was corrupt (its content does not match its digest); it was removed and the kernel is built` });
      return false;
    }
    throw e;
  }
  for (const s of staged) {
    fs.renameSync(s.tmp, s.dest);
    ctx.statCache.forget(s.dest);
  }
  for (const o of rec.outputs) {
    if (!('link' in o)) continue;
    const dest = path.join(ctx.outDir, o.path);
    try {
      if (fs.readlinkSync(dest) === o.link) continue;
    } catch {
      /* not there */
    }
    fs.mkdirSync(path.dirname(dest), { recursive: true });
    const tmp = tempNameFor(dest);
    fs.symlinkSync(o.link, tmp);
    fs.renameSync(tmp, dest);
  }
  return true;
}

function replayLog(ctx: Ctx, rec: KernelRecord): void {
  if (!rec.log || !ctx.input.streamMakeOutput) return;
  try {
    const text = ctx.input.cache.readBlob(rec.log)?.toString('utf8') ?? '';
    for (const line of text.split('\n')) if (line) ctx.reporter({ type: 'make-output', name: 'kernel', line });
  } catch {
    /* the replay only */
  }
}

function productsSnapshot(outDir: string, rels: Iterable<string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const r of rels) {
    const st = fs.lstatSync(path.join(outDir, r), { throwIfNoEntry: false });
    if (st) out[r] = `${st.size}:${st.mtimeMs}:${st.ino}`;
  }
  return out;
}

function configPartsOf(inputs: KernelKeyInputs): NonNullable<ObjectsState['configParts']> {
  return { schema: inputs.schema, engine: inputs.engine, words: inputs.words, env: inputs.env, toolchain: inputs.toolchain, valueFiles: inputs.valueFiles };
}

function compileConfig(inputs: KernelKeyInputs): string {
  return digestValue(configPartsOf(inputs));
}

const SCRIPT_EXT = /\.(py|sh|bash|pl|awk|sed|rb|tcl)$/;
const TOOL_DATA_EXT = /\.(ld|lds|symbols|version|skel|manifest|in|map)$/;
const HEADER_EXT = /\.(h|hh|hpp|hxx|h\+\+|inc|def|ipp|tcc|inl)$/;

/**
 * Whether make's incremental build from the objects in the out dir gives what a clean build of
 * the current inputs gives. Sound cases only: the same words, environment and toolchain; every
 * changed file either a compile prerequisite (in a `.d` file) changed after that make finished,
 * or a file nothing refers to (not a makefile, script, linker script or manifest, not named in
 * one of them); no header added (it could shadow another), no compiled file removed. Changed
 * bootfs contents (make does not know a bootfs blob's host files): make is told the bootfs
 * manifest is new (`-W`), so it remakes the blob and relinks. Outputs restored over the objects
 * are put back as that make left them first (from the cache).
 */
interface BuildDecision {
  kind: KernelBuildKind;
  reason: string;
  /** Out-dir files to remove before make (outputs restored into a directory without objects). */
  remove: string[];
  /** Files make is to take as just modified (`-W`): the bootfs manifest when a bootfs input changed. */
  whatIf: string[];
  /** Outputs to put back as the last make left them (restored over its objects). */
  putBack: KernelOutput[];
}

function decideBuild(ctx: Ctx, plan: KeyPlan, extrasNow: Extras | undefined): BuildDecision {
  const prev = ctx.prev;
  const depFilesNow = fs.existsSync(ctx.outDir) ? listDepFiles(ctx.outDir) : [];
  const remove: string[] = [];
  const whatIf: string[] = [];
  const putBack: KernelOutput[] = [];
  const full = (reason: string): BuildDecision => ({ kind: 'full', reason: `${reason}: building with make -B`, remove: [], whatIf: [], putBack: [] });
  if (!prev?.objects) {
    if (depFilesNow.length > 0) return full(`${ctx.outRel} holds objects osvb did not build (or whose record is gone)`);
    // Outputs restored into an empty directory: make builds all, and must not take them as up to date.
    for (const o of prev?.outputs ?? []) remove.push(o.path);
    return { kind: 'fresh', reason: 'no objects in the build directory', remove, whatIf, putBack };
  }
  const objects = prev.objects;
  if (depFilesNow.length === 0) {
    for (const o of prev.outputs) remove.push(o.path);
    return { kind: 'fresh', reason: 'no objects in the build directory', remove, whatIf, putBack };
  }
  // Products of earlier kernel makes that changed since: something else built there.
  for (const [rel, sig] of Object.entries(prev.products)) {
    const st = fs.lstatSync(path.join(ctx.outDir, rel), { throwIfNoEntry: false });
    if (st && `${st.size}:${st.mtimeMs}:${st.ino}` !== sig) return full(`${ctx.outRel}/${rel} changed outside osvb since the last kernel make`);
  }
  if (compileConfig(plan.inputs) !== objects.config) {
    const was = objects.configParts;
    const why = was ? diffKernelInputs({ ...plan.inputs, ...was }, plan.inputs).filter((r) => !r.startsWith('input file')) : [];
    return full(`make cannot see this change (${why[0] ?? 'make words, environment or toolchain changed'})`);
  }
  const tracked = new Set(objects.tracked);
  // make remakes a target when a prerequisite is newer than it: a changed prerequisite must be
  // newer than every target its .d files name (a file restored with an old mtime is not).
  let targetsOf: Map<string, string[]> | undefined;
  const mtimeNewer = (abs: string): boolean => {
    const m = fs.statSync(abs, { throwIfNoEntry: false })?.mtimeMs;
    if (m === undefined) return false;
    targetsOf ??= dependents(ctx, depFilesNow);
    const ts = targetsOf.get(abs);
    if (!ts || ts.length === 0) return m > objects.endedAt;
    return ts.every((t) => {
      const tm = fs.statSync(t, { throwIfNoEntry: false })?.mtimeMs;
      return tm === undefined || m > tm;
    });
  };
  let walk = plan.walk;
  let buildLogicTexts: string[] | undefined;
  const isBuildLogic = (rel: string): boolean => {
    walk ??= walkTree(ctx);
    const f = walk.files.find((x) => x.rel === rel);
    if (isMakefileLike(rel) || SCRIPT_EXT.test(rel) || TOOL_DATA_EXT.test(rel) || rel.startsWith('conf/') || rel.split('/').includes('scripts')) return true;
    if (f && f.kind === 'file' && (f.mode & 0o111) !== 0) return true;
    if (!buildLogicTexts) {
      buildLogicTexts = [];
      for (const x of walk.files) {
        if (!(isMakefileLike(x.rel) || SCRIPT_EXT.test(x.rel) || x.rel.split('/').includes('scripts') || (x.kind === 'file' && (x.mode & 0o111) !== 0 && x.size < 1 << 20))) continue;
        try {
          buildLogicTexts.push(fs.readFileSync(path.join(ctx.base, x.rel), 'utf8'));
        } catch {
          /* unreadable */
        }
      }
    }
    return buildLogicTexts.some((t) => mentions(t, rel));
  };
  const cur = plan.inputs.files;
  const names = new Set([...Object.keys(objects.files), ...Object.keys(cur)]);
  for (const rel of [...names].sort()) {
    const was = objects.files[rel];
    const now = cur[rel];
    if (was === now) continue;
    // Only the exclusions moved (a module joined or left the image): the file is as it was.
    if (now === undefined && digestOrMissing(ctx, path.join(ctx.base, rel)) === was) continue;
    if (
      was === undefined &&
      objects.excluded.some((d) => rel.startsWith(`${d}/`)) &&
      (fs.lstatSync(path.join(ctx.base, rel), { throwIfNoEntry: false })?.mtimeMs ?? Infinity) < objects.startedAt
    ) {
      continue;
    }
    const trackedKey = relInside(ctx.base, realOr(path.join(ctx.base, rel))) ?? realOr(path.join(ctx.base, rel));
    if (was === undefined) {
      const ext = path.extname(rel);
      if (HEADER_EXT.test(rel) || ext === '') return full(`${rel} was added (a header can shadow another one make does not know about)`);
      if (isBuildLogic(rel)) return full(`${rel} was added and the build refers to it`);
      continue;
    }
    if (now === undefined) {
      if (tracked.has(rel) || tracked.has(trackedKey) || isBuildLogic(rel)) return full(`${rel} was removed`);
      continue;
    }
    if (tracked.has(rel) || tracked.has(trackedKey)) {
      if (!mtimeNewer(realOr(path.join(ctx.base, rel)))) return full(`${rel} changed but is not newer than what make built from it (make would miss it)`);
      continue;
    }
    if (isBuildLogic(rel)) return full(`${rel} changed and make does not track it (a makefile, script, or a file they name)`);
  }
  // Inputs outside the tree.
  const makefiles = new Set(objects.makefiles);
  const bootfsOf = new Map<string, string[]>();
  for (const [bin, deps] of Object.entries(objects.bootfsDeps)) for (const d of deps) bootfsOf.set(d, [...(bootfsOf.get(d) ?? []), bin]);
  const now = extrasNow ?? currentExtras(ctx, objects.extras);
  for (const p of Object.keys(objects.extras).sort()) {
    if (objects.extras[p] === now[p]) continue;
    const abs = ctx.unph(p);
    if (makefiles.has(p)) return full(`makefile ${p} changed`);
    if (bootfsOf.has(abs)) {
      whatIf.push(ctx.bootfsRel);
      continue;
    }
    const asWritten = relInside(ctx.base, abs) ?? abs;
    if (tracked.has(asWritten) || tracked.has(abs)) {
      if (!mtimeNewer(realOr(abs))) return full(`${p} changed but is not newer than what make built from it (make would miss it)`);
      continue;
    }
    return full(`${p} changed`);
  }
  if (objects.fs !== plan.inputs.fs || objects.bootfs.manifest !== plan.inputs.bootfs.manifest || objects.bootfs.digest !== plan.inputs.bootfs.digest) {
    whatIf.push(ctx.bootfsRel);
  }
  if (prev.restoredOver) {
    const now = new Map(prev.outputs.map((o) => [o.path, o]));
    for (const o of objects.outputs) {
      const r = now.get(o.path);
      if (!r || canonicalJson(r) !== canonicalJson(o)) putBack.push(o);
    }
    for (const o of prev.outputs) if (!objects.outputs.some((x) => x.path === o.path)) remove.push(o.path);
    if (putBack.some((o) => 'digest' in o && !ctx.input.cache.hasBlob(o.digest as Digest))) return full('outputs restored over the objects cannot be put back as make left them (not in the cache)');
  }
  const notes = [whatIf.length ? 'the bootfs is remade' : '', putBack.length ? `${putBack.length} restored outputs put back as make left them` : ''].filter(Boolean);
  return { kind: 'incremental', reason: `make's incremental build${notes.length ? ` (${notes.join('; ')})` : ''}`, remove, whatIf: [...new Set(whatIf)], putBack };
}

/** Prerequisite (absolute, links resolved) → the targets (absolute) whose .d files name it. */
function dependents(ctx: Ctx, depFiles: readonly string[]): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const rel of depFiles) {
    if (isBootfsDepFile(rel)) continue;
    let text: string;
    try {
      text = fs.readFileSync(path.join(ctx.outDir, rel), 'utf8');
    } catch {
      continue;
    }
    const dep = parseDepText(text);
    // -MP adds an empty rule per header: those "targets" are prerequisites, not outputs.
    const prereqs = new Set(dep.prereqs);
    const targets = dep.targets.filter((t) => !prereqs.has(t)).map((t) => path.resolve(ctx.base, t));
    for (const p of prereqs) {
      const abs = realOr(path.resolve(ctx.base, p));
      const list = out.get(abs);
      if (list) list.push(...targets);
      else out.set(abs, [...targets]);
    }
  }
  return out;
}

function report(ctx: Ctx, text: string): void {
  ctx.reporter({ type: 'log', text: `kernel: ${text}` });
}

/** make's arguments without osvb's MAKEFILE_LIST recorder (`-f …/.osvb-mfl-…`). */
function shownArgs(args: readonly string[]): string[] {
  return args.filter((a, i) => !a.includes('.osvb-mfl-') && !(a === '-f' && args[i + 1]?.includes('.osvb-mfl-')));
}

/** Run config, stage1 and the link (or config and one `make -B`), with progress events. */
async function runMakes(ctx: Ctx, kind: KernelBuildKind, recorders: { stage1: string; link: string }, whatIf: readonly string[], skipConfig = false): Promise<KernelMakeResult[]> {
  const makefile = defaultMakefile(ctx.base) ?? 'Makefile';
  const words = [...ctx.makeWords];
  const j = ctx.input.jobs;
  const jobs = ctx.words.jobWords.length === 0 && j ? [j.startsWith('-j') ? j : `-j${j}`] : [];
  const linkEnv = { ...ctx.env, fs: ctx.input.fs, bootfs_manifest: ctx.bootfsRel };
  const steps: Array<{ stage: KernelStage; args: string[]; env: Record<string, string> }> = [];
  if (!skipConfig) steps.push({ stage: 'config', args: [...words, '-f', 'conf/Makefile', '-j1', 'config'], env: ctx.env });
  if (kind === 'full') steps.push({ stage: 'full', args: [...words, ...jobs, '-B', '-f', makefile, '-f', recorders.link], env: linkEnv });
  else {
    steps.push({ stage: 'stage1', args: [...words, ...jobs, '-f', makefile, '-f', recorders.stage1, 'stage1'], env: ctx.env });
    steps.push({ stage: 'link', args: [...words, ...jobs, ...whatIf.flatMap((f) => ['-W', f]), '-f', makefile, '-f', recorders.link], env: linkEnv });
  }
  const results: KernelMakeResult[] = [];
  const heartbeatMs = ctx.input.heartbeatMs ?? 30_000;
  for (const s of steps) {
    report(ctx, `${s.stage}: make ${shownArgs(s.args).join(' ')}`);
    const r = await runKernelMake({
      stage: s.stage,
      args: s.args,
      env: s.env,
      cwd: ctx.base,
      heartbeatMs,
      ...(ctx.input.signal ? { signal: ctx.input.signal } : {}),
      ...(ctx.input.streamMakeOutput ? { onLine: (line: string) => ctx.reporter({ type: 'make-output', name: 'kernel', line }) } : {}),
      onProgress: (p) => {
        ctx.input.onProgress?.(p);
        if (p.state === 'running') report(ctx, `${p.stage} running for ${secs(p.elapsedMs)} (${p.compiles} compile and link steps so far)`);
        if (p.state === 'done') report(ctx, `${p.stage} done in ${secs(p.elapsedMs)} (${p.compiles} compile and link steps)`);
      },
    });
    results.push(r);
  }
  return results;
}

export async function runKernelNode(input: KernelNodeInput): Promise<KernelNodeResult> {
  const started = performance.now();
  await initHashing();
  const ctx = resolveCtx(input);
  const none = Promise.resolve();
  try {
    if (input.bootfsManifestText !== undefined) {
      const abs = path.join(ctx.base, ctx.bootfsRel);
      let same = false;
      try {
        same = fs.readFileSync(abs, 'utf8') === input.bootfsManifestText;
      } catch {
        /* missing */
      }
      if (!same) {
        fs.mkdirSync(path.dirname(abs), { recursive: true });
        writeFileAtomic(abs, input.bootfsManifestText);
        ctx.statCache.forget(abs);
      }
    }
    return await withLock(path.join(input.cache.root, 'locks', `kernel-${digestString(ctx.outDir)}.lock`), () => runLocked(ctx, started, none), input.signal);
  } finally {
    if (ctx.ownStatCache) ctx.statCache.save();
  }
}

async function runLocked(ctx: Ctx, started: number, none: Promise<void>): Promise<KernelNodeResult> {
  const input = ctx.input;
  // Re-read: another build may have written the state while we waited for the lock.
  ctx.prev = ctx.store.read();
  const plan = planKey(ctx);
  const prev = ctx.prev;
  const localKey = plan.extrasLocal ? fullKeyOf(plan.k1, plan.extrasLocal) : undefined;
  const done = (status: KernelNodeResult['status'], key: string, outputs: KernelOutput[], extra: Partial<KernelNodeResult> = {}): KernelNodeResult => ({
    status,
    key,
    k1: plan.k1,
    outDir: ctx.outDir,
    outputs: outputs.map((o) => o.path),
    loaderImg: placeInBuildPath(ctx),
    durationMs: performance.now() - started,
    cached: true,
    uploads: none,
    ...extra,
  });

  // Up to date: the same key as what is there, and its outputs untouched.
  if (prev && localKey && prev.key === localKey && outputsHold(ctx.outDir, prev.outputs, prev.outputSigs, (f) => digestOrMissing(ctx, f))) {
    ensureLinks(ctx);
    if (!plan.fast) {
      ctx.store.write({ ...prev, inputs: plan.inputs, envNames: plan.envNames, walkKey: walkKeyOf(ctx), fingerprint: plan.walk ? makeFingerprint(ctx.base, plan.walk, followOf(ctx, plan, prev.extras)) : prev.fingerprint });
    }
    input.reporter({ type: 'module-restored', name: 'kernel', durationMs: performance.now() - started, upToDate: true });
    return done('up-to-date', localKey, prev.outputs);
  }

  // Restore: the state's recorded inputs first, then every recorded set under k1 (local, remote).
  const tried = new Set<string>();
  const candidates: Array<{ key: string; extras: Extras; remote: boolean }> = [];
  if (localKey && plan.extrasLocal) candidates.push({ key: localKey, extras: plan.extrasLocal, remote: false });
  candidates.push(...(await matchCandidates(ctx, plan.k1, input.remote)));
  for (const c of candidates) {
    if (tried.has(c.key)) continue;
    tried.add(c.key);
    const found = await recordFor(ctx, c.key, input.remote);
    if (!found) continue;
    ensureLinks(ctx);
    if (!restoreOutputs(ctx, found.rec)) continue;
    replayLog(ctx, found.rec);
    const state: KernelState = {
      v: 1,
      key: c.key,
      k1: plan.k1,
      status: 'restored',
      at: new Date().toISOString(),
      inputs: plan.inputs,
      extras: c.extras,
      envNames: plan.envNames,
      walkKey: walkKeyOf(ctx),
      fingerprint: makeFingerprint(ctx.base, plan.walk ?? walkTree(ctx), followOf(ctx, plan, c.extras)),
      outputs: found.rec.outputs,
      outputSigs: outputSigsOf(ctx.outDir, found.rec.outputs),
      objects: prev?.objects ?? null,
      depFiles: prev?.depFiles ?? [],
      products: { ...(prev?.products ?? {}), ...productsSnapshot(ctx.outDir, found.rec.outputs.map((o) => o.path)) },
      restoredOver: !!prev?.objects,
    };
    ctx.store.write(state);
    let uploads = none;
    if (!found.fromRemote && input.remote?.canWrite) {
      const remote = input.remote;
      uploads = remote.hasAction(KERNEL_NAMESPACE, c.key).then((has) => (has ? undefined : publish(ctx, remote, plan.k1, c.key, found.rec)));
    }
    input.reporter({ type: 'module-restored', name: 'kernel', durationMs: performance.now() - started, upToDate: false, ...(found.fromRemote ? { from: 'remote' as const } : {}) });
    report(ctx, `restored ${found.rec.outputs.length} files from the ${found.fromRemote ? 'remote ' : ''}cache (key ${c.key}) in ${secs(performance.now() - started)}`);
    return done('restored', c.key, found.rec.outputs, { ...(found.fromRemote ? { fromRemote: true } : {}), uploads });
  }

  return await buildKernel(ctx, plan, started, done);
}

function followOf(ctx: Ctx, plan: KeyPlan, extras: Extras): string[] {
  return [...plan.follow, ...Object.keys(extras).map((p) => ctx.unph(p))];
}

async function buildKernel(
  ctx: Ctx,
  plan: KeyPlan,
  started: number,
  done: (status: KernelNodeResult['status'], key: string, outputs: KernelOutput[], extra?: Partial<KernelNodeResult>) => KernelNodeResult,
): Promise<KernelNodeResult> {
  const input = ctx.input;
  const prev = ctx.prev;
  input.reporter({ type: 'module-start', name: 'kernel' });
  try {
    ensureLinks(ctx);
    let decision = decideBuild(ctx, plan, plan.extrasLocal && prev?.objects ? currentExtras(ctx, prev.objects.extras) : undefined);
    for (const rel of decision.remove) {
      fs.rmSync(path.join(ctx.outDir, rel), { force: true });
      ctx.statCache.forget(path.join(ctx.outDir, rel));
    }
    if (decision.putBack.length > 0 && !restoreOutputs(ctx, { engine: ENGINE_VERSION, k1: '', extras: {}, outputs: decision.putBack, log: null, durationMs: 0 })) {
      decision = { kind: 'full', reason: 'outputs restored over the objects could not be put back: building with make -B', remove: [], whatIf: [], putBack: [] };
    }
    report(ctx, `building (${decision.kind}: ${decision.reason})`);
    const before = snapshotDir(ctx.outDir);
    const tmpDir = path.join(input.cache.root, 'kernel', 'tmp');
    fs.mkdirSync(tmpDir, { recursive: true });
    const id = uniqueSuffix();
    const recorders = { stage1: path.join(tmpDir, `.osvb-mfl-${id}-stage1.mk`), link: path.join(tmpDir, `.osvb-mfl-${id}-link.mk`) };
    const lists = { stage1: `${recorders.stage1}.list`, link: `${recorders.link}.list` };
    fs.writeFileSync(recorders.stage1, makefileListRecorder(lists.stage1));
    fs.writeFileSync(recorders.link, makefileListRecorder(lists.link));
    let results: KernelMakeResult[];
    const makeStartedAt = Date.now();
    let makefileList: string[] = [];
    try {
      results = await runMakes(ctx, decision.kind, recorders, decision.whatIf);
      if (decision.whatIf.length > 0 && prev?.objects) {
        // make was told the bootfs manifest is new: the bootfs blobs must have been remade.
        const remade = Object.keys(prev.objects.bootfsDeps).some((bin) => {
          const st = fs.lstatSync(path.join(ctx.outDir, bin), { throwIfNoEntry: false });
          return st !== undefined && before.get(bin) !== `${st.size}:${st.mtimeMs}:${st.ino}`;
        });
        if (!remade) {
          report(ctx, 'the bootfs was not remade by make -W; building with make -B');
          decision = { kind: 'full', reason: 'a bootfs input changed and make did not remake the bootfs: building with make -B', remove: [], whatIf: [], putBack: [] };
          results.push(...(await runMakes(ctx, 'full', recorders, [], true)));
        }
      }
      for (const l of [lists.stage1, lists.link]) makefileList.push(...(readMakefileList(l, l.slice(0, -'.list'.length)) ?? []));
    } finally {
      for (const f of [...Object.values(recorders), ...Object.values(lists)]) fs.rmSync(f, { force: true });
    }
    const endedAt = Date.now();
    // scripts/build: OUT=build/$(readlink build/last), and loader.img must be there.
    const last = path.join(ctx.base, 'build', 'last');
    let lastTarget: string | undefined;
    try {
      lastTarget = fs.readlinkSync(last);
    } catch {
      /* missing */
    }
    if (lastTarget !== path.basename(ctx.outDir)) {
      throw new OsvbError('OSVB_MAKE_FAILED', `the kernel make did not leave build/last → ${path.basename(ctx.outDir)} (it is ${lastTarget ?? 'missing'})`, {
        hint: 'pass mode= and arch= as words so osvb knows the kernel build directory',
      });
    }
    if (!fs.statSync(path.join(ctx.outDir, 'loader.img'), { throwIfNoEntry: false })?.isFile()) {
      throw new OsvbError('OSVB_MAKE_FAILED', `the kernel make did not leave expected results: ${ctx.outRel}/loader.img is missing`);
    }
    const after = snapshotDir(ctx.outDir);
    const changed: string[] = [];
    for (const [rel, sig] of after) if (before.get(rel) !== sig) changed.push(rel);

    // What the make read: the kernel's dependency files (written now, or by earlier kernel makes).
    const depFiles = [...new Set([...changed.filter((r) => r.endsWith('.d')), ...(decision.kind === 'full' || !prev?.objects ? [] : prev.depFiles)])].filter((r) => after.has(r)).sort();
    const evidence = readEvidence(ctx.outDir, depFiles);
    const products = new Set<string>([...changed, ...Object.keys(prev?.products ?? {}).filter((r) => after.has(r))]);
    // Inside the out dir, what a compile or make read was made by the kernel's makes (generated
    // headers, kernel_conf.mk, .d files); only a bootfs can hold files others put there.
    const inOut = (abs: string): boolean => relInside(ctx.outDir, abs) !== undefined;
    const isProduct = (abs: string): boolean => {
      const r = relInside(ctx.outDir, abs);
      return r !== undefined && (products.has(r) || r.endsWith('.d'));
    };
    const staticFiles = plan.inputs.files;
    const extras: Extras = {};
    const trackedList: string[] = [];
    const makefiles: string[] = [];
    const classify = (abs: string, bootfs = false): string | undefined => {
      if (bootfs ? isProduct(abs) : inOut(abs)) return undefined;
      const real = realOr(abs);
      if (bootfs ? isProduct(real) : inOut(real)) return undefined;
      const rel = relInside(ctx.base, real);
      if (rel !== undefined && rel in staticFiles) return undefined;
      const p = ctx.ph(real);
      extras[p] = digestOrMissing(ctx, real);
      return p;
    };
    for (const p of evidence.compiled) {
      const abs = path.resolve(ctx.base, p);
      const rel = relInside(ctx.base, realOr(abs));
      trackedList.push(rel ?? realOr(abs));
      classify(abs);
    }
    const bootfsDeps: Record<string, string[]> = {};
    for (const [bin, files] of evidence.bootfs) {
      bootfsDeps[bin] = [];
      for (const f of files) {
        const p = classify(f, true);
        if (p) bootfsDeps[bin].push(realOr(f));
      }
    }
    for (const m of makefileList) {
      const abs = path.resolve(ctx.base, m);
      if (abs.endsWith('.d') && relInside(ctx.outDir, abs) !== undefined) continue;
      const p = classify(abs);
      if (p) makefiles.push(p);
    }
    const sortedExtras: Extras = {};
    for (const k of Object.keys(extras).sort()) sortedExtras[k] = extras[k] as string;

    // Inputs edited while make ran: the result may not match the key; it is not cached.
    const post = walkTree(ctx);
    const changedInputs: string[] = [];
    for (const f of post.files) {
      if (staticFiles[f.rel] !== treeDigest(ctx.base, f, ctx.statCache)) changedInputs.push(f.rel);
    }
    const postRels = new Set(post.files.map((f) => f.rel));
    for (const rel of Object.keys(staticFiles)) if (!postRels.has(rel)) changedInputs.push(`${rel} (removed)`);

    const key = fullKeyOf(plan.k1, sortedExtras);
    // Outputs: deliverables among the kernel make's products (and .config, which config may leave as it was).
    const outputs: KernelOutput[] = [];
    // Config's outputs (gen/, .config) always; everything else the kernel's makes produced.
    const outRels = [...after.keys()].filter((r) => isDeliverable(r) && (r.startsWith('gen/') || r === '.config' || products.has(r))).sort();
    const cache = input.cache;
    const log = cache.putBlobBytes(Buffer.from(results.map((r) => r.output).join(''), 'utf8'));
    for (const rel of outRels) {
      const abs = path.join(ctx.outDir, rel);
      const st = fs.lstatSync(abs, { bigint: true });
      if (st.isSymbolicLink()) {
        outputs.push({ path: rel, link: fs.readlinkSync(abs) });
        continue;
      }
      if (!st.isFile()) continue;
      const digest = ctx.statCache.digest(abs, st);
      if (changedInputs.length === 0) cache.putBlobFromFile(digest, abs);
      outputs.push({ path: rel, digest, mode: Number(st.mode) & 0o777, size: Number(st.size) });
    }
    const rec: KernelRecord = { engine: ENGINE_VERSION, k1: plan.k1, extras: sortedExtras, outputs, log, durationMs: Math.round(performance.now() - started) };
    const cached = changedInputs.length === 0;
    let uploads = Promise.resolve();
    if (cached) {
      cache.putAction(KERNEL_NAMESPACE, key, rec);
      addCandidate(ctx, plan.k1, key, sortedExtras);
      if (input.remote?.canWrite) uploads = publish(ctx, input.remote, plan.k1, key, rec);
    } else {
      input.reporter({
        type: 'warning',
        text: `kernel: ${changedInputs.slice(0, 5).join(', ')}${changedInputs.length > 5 ? ` and ${changedInputs.length - 5} more` : ''} changed while make ran; this kernel is not cached and the next build runs make again`,
      });
    }
    const objects: ObjectsState = {
      config: compileConfig(plan.inputs),
      configParts: configPartsOf(plan.inputs),
      files: staticFiles,
      extras: sortedExtras,
      fs: plan.inputs.fs,
      bootfs: plan.inputs.bootfs,
      startedAt: makeStartedAt,
      endedAt,
      excluded: post.excluded,
      tracked: [...new Set(trackedList)].sort(),
      bootfsDeps,
      makefiles: makefiles.sort(),
      outputs,
    };
    const state: KernelState = {
      v: 1,
      key: cached ? key : '',
      k1: plan.k1,
      status: 'built',
      at: new Date().toISOString(),
      inputs: plan.inputs,
      extras: sortedExtras,
      envNames: plan.envNames,
      walkKey: walkKeyOf(ctx),
      fingerprint: cached ? makeFingerprint(ctx.base, post, followOf(ctx, plan, sortedExtras)) : null,
      outputs,
      outputSigs: outputSigsOf(ctx.outDir, outputs),
      objects,
      depFiles,
      products: productsSnapshot(ctx.outDir, [...products].filter((r) => after.has(r))),
      restoredOver: false,
    };
    ctx.store.write(state);
    const stages = results.map((r) => ({ stage: r.stage, durationMs: r.durationMs, args: shownArgs(r.args) }));
    input.reporter({ type: 'module-built', name: 'kernel', durationMs: performance.now() - started });
    report(ctx, `built in ${secs(performance.now() - started)} (${decision.kind}); key ${key}${cached ? '' : ' (not cached)'}`);
    return done('built', key, outputs, { build: { kind: decision.kind, reason: decision.reason, stages }, cached, uploads });
  } catch (e) {
    const err = isOsvbError(e) ? e : new OsvbError('OSVB_INTERNAL', e instanceof Error ? e.message : String(e), { cause: e });
    input.reporter({ type: 'module-failed', name: 'kernel', error: err });
    throw err;
  }
}

function addCandidate(ctx: Ctx, k1: string, key: string, extras: Extras): void {
  const cur = localGet<K1Record>(ctx, KERNEL_K1_NAMESPACE, k1);
  const list = (cur?.candidates ?? []).filter((c) => c.key !== key);
  list.unshift({ key, extras });
  ctx.input.cache.putAction(KERNEL_K1_NAMESPACE, k1, { candidates: list.slice(0, 16) } satisfies K1Record);
}

/** Upload blobs (HEAD first), then the record (small blobs inside it), then the k1 record (merged with the remote's). */
function publish(ctx: Ctx, remote: RemoteCache, k1: string, key: string, rec: KernelRecord): Promise<void> {
  const cache = ctx.input.cache;
  const inline = new Map<string, Buffer>();
  const after: Array<Promise<void>> = [];
  const blobs = [...rec.outputs.filter((o): o is Extract<KernelOutput, { digest: string }> => 'digest' in o).map((o) => ({ d: o.digest, size: o.size })), ...(rec.log ? [{ d: rec.log as string, size: -1 }] : [])];
  for (const { d, size } of blobs) {
    if (size >= 0 && size <= INLINE_BLOB_MAX) {
      try {
        const data = cache.readBlob(d as Digest);
        if (data) {
          inline.set(d, data);
          continue;
        }
      } catch {
        /* corrupt: uploaded from the file below if at all */
      }
    }
    after.push(remote.uploadBlob(d as Digest, () => {
      try {
        return cache.readBlob(d as Digest);
      } catch {
        return undefined;
      }
    }));
  }
  const recordUp = remote.uploadAction(KERNEL_NAMESPACE, key, rec, after, inline);
  const k1Up = recordUp.then(async () => {
    const got = remote.canRead ? await remote.getAction<K1Record>(KERNEL_K1_NAMESPACE, k1) : undefined;
    const list = (got?.value?.candidates ?? []).filter((c) => c && c.key !== key);
    list.unshift({ key, extras: rec.extras });
    await remote.uploadAction(KERNEL_K1_NAMESPACE, k1, { candidates: list.slice(0, 16) } satisfies K1Record);
  });
  return k1Up.catch(() => undefined);
}

export type ExplainKernelInput = Omit<KernelNodeInput, 'reporter' | 'signal' | 'onProgress' | 'heartbeatMs' | 'streamMakeOutput' | 'jobs'> & { reporter?: Reporter };

/** What runKernelNode would do, and why: runs no make and writes nothing but the stat cache. */
export async function explainKernel(input: ExplainKernelInput): Promise<KernelExplanation> {
  await initHashing();
  const ctx = resolveCtx({ ...input, reporter: input.reporter ?? (() => {}) });
  try {
    const plan = planKey(ctx);
    const prev = ctx.prev;
    const localKey = plan.extrasLocal ? fullKeyOf(plan.k1, plan.extrasLocal) : undefined;
    if (prev && localKey && prev.key === localKey && outputsHold(ctx.outDir, prev.outputs, prev.outputSigs, (f) => digestOrMissing(ctx, f))) {
      return { verdict: 'up-to-date', key: localKey, k1: plan.k1, reasons: [] };
    }
    const reasons = diffKernelInputs(prev?.inputs, plan.inputs, prev?.extras, plan.extrasLocal);
    if (prev && localKey && prev.key === localKey) reasons.push('outputs in the build directory changed or are missing');
    if (prev && !prev.key) reasons.push('the last build was not cached (an input changed while make ran)');
    const candidates: Array<{ key: string }> = [];
    if (localKey) candidates.push({ key: localKey });
    candidates.push(...(await matchCandidates(ctx, plan.k1, input.remote)));
    for (const c of candidates) {
      const local = localGet<KernelRecord>(ctx, KERNEL_NAMESPACE, c.key);
      if (validRecord(local, c.key)) return { verdict: 'restore', key: c.key, k1: plan.k1, reasons: [...reasons, `key ${c.key} is in the local cache`] };
      if (input.remote?.canRead && (await input.remote.hasAction(KERNEL_NAMESPACE, c.key))) {
        return { verdict: 'restore', key: c.key, k1: plan.k1, reasons: [...reasons, `key ${c.key} is in the remote cache`] };
      }
    }
    const key = localKey ?? plan.k1;
    const d = decideBuild(ctx, plan, undefined);
    return { verdict: 'rebuild', key, k1: plan.k1, reasons: [...reasons, `no kernel with these inputs is in the cache (k1 ${plan.k1})`], build: { kind: d.kind, reason: d.reason } };
  } finally {
    if (ctx.ownStatCache) ctx.statCache.save();
  }
}
