/**
 * Where a build's kernel comes from: a prebuilt one (`--kernel DIR|FILE`, placed in the build
 * path before the image stage), the kernel node of an OSv source tree (kernel/: built or
 * restored as scripts/build makes it — before the modules, or for ramfs after OSv's outputs,
 * since it links the generated usr.manifest), or none (osvb then stops at rofs.img, as
 * module.py does).
 */
import * as path from 'node:path';
import type { LocalCache, RemoteCache } from '../cache/index.js';
import { OsvbError } from '../errors/index.js';
import type { StatCache } from '../hash/index.js';
import { isOsvSourceTree, placePrebuiltKernel, runKernelNode, type KernelNodeResult } from '../kernel/index.js';
import type { Reporter } from '../report/index.js';
import type { BuildWords } from './words.js';

type KernelSource = { kind: 'prebuilt'; path: string } | { kind: 'source' } | undefined;

/** Which kernel this build has: `--kernel`, else the base's own sources, else none. */
function kernelSource(kernel: string | undefined, osvBase: string): KernelSource {
  if (kernel !== undefined) return { kind: 'prebuilt', path: kernel };
  return isOsvSourceTree(osvBase) ? { kind: 'source' } : undefined;
}

/** A prebuilt kernel's files in the build path; its loader.img. */
function placeKernel(source: { kind: 'prebuilt'; path: string }, buildPath: string, statCache: StatCache, reporter: Reporter): string {
  const placed = placePrebuiltKernel(source.path, buildPath, (f) => statCache.digest(f));
  reporter({
    type: 'log',
    text: `kernel: prebuilt ${source.path} (${placed.copied.length ? `copied ${placed.copied.join(', ')}` : `${placed.files.join(', ')} already in place`})`,
  });
  return placed.loaderImg;
}

export interface KernelStageInput {
  /** `--kernel DIR|FILE`. */
  kernel: string | undefined;
  osvBase: string;
  buildPath: string;
  /** The build's words as given (the node keeps those scripts/build passes to make). */
  words: readonly string[];
  parsed: BuildWords;
  env: Readonly<Record<string, string>>;
  moduleDirs: readonly string[];
  cache: LocalCache;
  statCache: StatCache;
  remote: RemoteCache | undefined;
  reporter: Reporter;
  signal: AbortSignal | undefined;
  jobs: number;
  streamMakeOutput: boolean;
}

export interface KernelStage {
  source: NonNullable<KernelSource>;
  /** Before the modules: an OSv source tree's kernel, as scripts/build makes it before module.py (OSv's modules compile against its gen/include); not for ramfs. */
  beforeModules(): Promise<string | undefined>;
  /** After OSv's outputs are written: a prebuilt kernel placed, or ramfs's kernel built with the generated usr.manifest as its bootfs. */
  afterOutputs(usrManifest: string): Promise<string | undefined>;
}

/** The kernel part of a build, or undefined when there is no kernel (osvb then stops at rofs.img). */
export function kernelStage(input: KernelStageInput): KernelStage | undefined {
  const source = kernelSource(input.kernel, input.osvBase);
  if (!source) return undefined;
  const ramfs = input.parsed.fs === 'ramfs';
  if (source.kind === 'prebuilt' && (ramfs || input.parsed.fs === 'virtiofs')) {
    // Before any module is built: the words alone make this build impossible.
    throw new OsvbError('OSVB_USAGE', `fs=${input.parsed.fs} links the generated bootfs into the kernel: a prebuilt --kernel cannot be used`, {
      hint: 'build in an OSv source tree (the kernel is built with the image), or use fs=rofs with --kernel',
    });
  }
  if (input.parsed.fsSizeWarning) input.reporter({ type: 'warning', text: input.parsed.fsSizeWarning });
  return {
    source,
    beforeModules: async () => (source.kind === 'source' && !ramfs ? (await buildKernel(input, '')).loaderImg : undefined),
    afterOutputs: async (usrManifest) => {
      if (source.kind === 'prebuilt') return placeKernel(source, input.buildPath, input.statCache, input.reporter);
      return ramfs ? (await buildKernel(input, usrManifest)).loaderImg : undefined;
    },
  };
}

/** The kernel of an OSv source tree, through its node: up to date, restored, or built. */
async function buildKernel(input: KernelStageInput, usrManifest: string): Promise<KernelNodeResult> {
  const { parsed } = input;
  // scripts/build names ramfs's bootfs build/<mode>.<arch>/usr.manifest, relative to the base.
  const ramfs = parsed.fs === 'ramfs';
  const bootfsManifest = ramfs ? path.relative(input.osvBase, path.join(input.buildPath, 'usr.manifest')) : parsed.kernelBootfsManifest;
  const res = await runKernelNode({
    osvBase: input.osvBase,
    buildPath: input.buildPath,
    makeWords: input.words,
    fs: parsed.fs,
    bootfsManifest,
    ...(ramfs ? { bootfsManifestText: usrManifest } : {}),
    env: input.env,
    moduleDirs: input.moduleDirs,
    cache: input.cache,
    statCache: input.statCache,
    ...(input.remote ? { remote: input.remote } : {}),
    // Its end is told once, by the kernel-done event below (with why it was built).
    reporter: (e) => {
      if ((e.type === 'module-start' || e.type === 'module-built' || e.type === 'module-restored') && e.name === 'kernel') return;
      input.reporter(e);
    },
    ...(input.signal ? { signal: input.signal } : {}),
    jobs: `-j${input.jobs}`,
    streamMakeOutput: input.streamMakeOutput,
    onProgress: (p) => input.reporter({ type: 'kernel-progress', ...p }),
  });
  input.reporter({ type: 'kernel-done', status: res.status, key: res.key, durationMs: res.durationMs, ...(res.fromRemote ? { fromRemote: true } : {}), ...(res.build ? { build: res.build.kind, reason: res.build.reason } : {}) });
  await res.uploads;
  return res;
}
