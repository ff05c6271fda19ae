/**
 * Where a build's kernel comes from: a prebuilt one (`--kernel DIR|FILE`, placed in the build
 * path before the image stage), the kernel node of an OSv source tree (kernel/: built or
 * restored as scripts/build would make it, after the modules and OSv's outputs, since ramfs
 * links the generated usr.manifest into it), or none (osvb then stops at rofs.img, as
 * module.py does).
 */
import * as path from 'node:path';
import type { LocalCache, RemoteCache } from '../cache/index.js';
import { OsvbError } from '../errors/index.js';
import type { StatCache } from '../hash/index.js';
import { isOsvSourceTree, placePrebuiltKernel, runKernelNode, type KernelNodeResult } from '../kernel/index.js';
import type { Reporter } from '../report/index.js';
import type { BuildWords } from './words.js';

export type KernelSource = { kind: 'prebuilt'; path: string } | { kind: 'source' } | undefined;

/** Which kernel this build has: `--kernel`, else the base's own sources, else none. */
export function kernelSource(kernel: string | undefined, osvBase: string): KernelSource {
  if (kernel !== undefined) return { kind: 'prebuilt', path: kernel };
  return isOsvSourceTree(osvBase) ? { kind: 'source' } : undefined;
}

/** A prebuilt kernel's files in the build path; its loader.img. */
export function placeKernel(source: { kind: 'prebuilt'; path: string }, words: BuildWords, buildPath: string, statCache: StatCache, reporter: Reporter): string {
  if (words.fs === 'ramfs' || words.fs === 'virtiofs') {
    throw new OsvbError('OSVB_USAGE', `fs=${words.fs} links the generated bootfs into the kernel: a prebuilt --kernel cannot be used`, {
      hint: 'build in an OSv source tree (the kernel is built with the image), or use fs=rofs with --kernel',
    });
  }
  const placed = placePrebuiltKernel(source.path, buildPath, (f) => statCache.digest(f));
  reporter({
    type: 'log',
    text: `kernel: prebuilt ${source.path} (${placed.copied.length ? `copied ${placed.copied.join(', ')}` : `${placed.files.join(', ')} already in place`})`,
  });
  return placed.loaderImg;
}

export interface KernelNodeStageInput {
  osvBase: string;
  buildPath: string;
  /** The build's words as given (the node keeps those scripts/build passes to make). */
  words: readonly string[];
  parsed: BuildWords;
  /** ramfs: the generated usr.manifest (the kernel's bootfs). */
  usrManifest: string;
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

/** The kernel of an OSv source tree, through its node: up to date, restored, or built. */
export async function buildKernel(input: KernelNodeStageInput): Promise<KernelNodeResult> {
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
    ...(ramfs ? { bootfsManifestText: input.usrManifest } : {}),
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
