/**
 * `osvb explain MODULE`: why a module will be rebuilt or restored, against the last build
 * recorded for it in this OSv base — which input file was added, removed or changed, which
 * variable, which required module.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { OsvbError } from '../errors/index.js';
import { planBuild, type BuildOptions } from './build.js';
import { BUILD_NAMESPACE, type ModuleBuildRecord } from './moduleAction.js';
import type { ModuleState } from './state.js';
import { diffKeyInputs, type KeyDifference } from './moduleKeys.js';
import { explainKernel, isOsvSourceTree, type KernelExplanation } from '../kernel/index.js';

export interface Explanation {
  module: string;
  key: string;
  hasMakefile: boolean;
  /** 'restore': the key is in the cache; 'rebuild': it is not; 'nothing': no Makefile. */
  verdict: 'restore' | 'rebuild' | 'nothing';
  last: ModuleState | undefined;
  reasons: KeyDifference[];
  /** Modules in the image that require this one (they follow it when it changes). */
  dependents: string[];
}

export async function explainModule(opts: BuildOptions, name: string): Promise<Explanation> {
  const plan = await planBuild(opts);
  const m = plan.modules.find((x) => x.name === name);
  if (!m) {
    throw new OsvbError('OSVB_MODULE_NOT_FOUND', `module ${name} is not part of this image`, {
      hint: `modules of ${plan.resolved.words.spec}: ${plan.modules.map((x) => x.name).join(', ') || 'none'}`,
    });
  }
  plan.statCache.save();
  const key = plan.keys.get(name) as string;
  const last = plan.state.get(name);
  const hasMakefile = fs.existsSync(path.join(m.dir, 'Makefile'));
  let cached = false;
  try {
    cached = plan.cache.getAction<ModuleBuildRecord>(BUILD_NAMESPACE, key) !== undefined;
  } catch {
    cached = false;
  }
  const reasons = last && last.key === key ? [] : diffKeyInputs(last?.inputs, plan.keyInputs.get(name)!);
  return {
    module: name,
    key,
    hasMakefile,
    verdict: !hasMakefile ? 'nothing' : cached ? 'restore' : 'rebuild',
    last,
    reasons,
    dependents: plan.graph.transitiveDependentsOf(name),
  };
}

/**
 * `osvb explain kernel`: what the kernel node of an OSv source tree would do (up to date,
 * restore, rebuild) and why, without running make.
 */
export async function explainKernelBuild(opts: BuildOptions): Promise<KernelExplanation> {
  const plan = await planBuild(opts);
  const { resolved } = plan;
  if (!isOsvSourceTree(resolved.osvBase)) {
    throw new OsvbError('OSVB_USAGE', `${resolved.osvBase} is not an OSv source tree: there is no kernel to build here`, {
      hint: 'a prebuilt kernel (--kernel DIR) is used as it is; "osvb explain MODULE" explains a module',
    });
  }
  const words = resolved.words;
  const ramfs = words.fs === 'ramfs';
  const usrManifest = path.join(resolved.buildPath, 'usr.manifest');
  let bootfsManifestText: string | undefined;
  if (ramfs) {
    try {
      bootfsManifestText = fs.readFileSync(usrManifest, 'utf8');
    } catch {
      bootfsManifestText = '';
    }
  }
  const ex = await explainKernel({
    osvBase: resolved.osvBase,
    buildPath: resolved.buildPath,
    makeWords: opts.words,
    fs: words.fs,
    bootfsManifest: ramfs ? path.relative(resolved.osvBase, usrManifest) : words.kernelBootfsManifest,
    ...(bootfsManifestText !== undefined ? { bootfsManifestText } : {}),
    env: resolved.env,
    moduleDirs: plan.modules.map((m) => m.dir),
    cache: plan.cache,
    statCache: plan.statCache,
  });
  plan.statCache.save();
  return ex;
}
