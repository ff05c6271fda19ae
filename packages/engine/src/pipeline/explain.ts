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
import { cutoffEligibility, evidenceChange, makefileImpurity } from './cutoff.js';
import { explainKernel, isOsvSourceTree, type KernelExplanation } from '../kernel/index.js';

export interface Explanation {
  module: string;
  key: string;
  hasMakefile: boolean;
  /** 'restore': the key is in the cache; 'rebuild': it is not; 'nothing': no Makefile. */
  verdict: 'restore' | 'rebuild' | 'nothing';
  last: ModuleState | undefined;
  reasons: KeyDifference[];
  /** Modules in the image that require this one (they follow it when it changes, unless cut off). */
  dependents: string[];
  /** For 'rebuild': whether early cutoff may skip make, and on what evidence. */
  cutoff?: string;
}

/** What early cutoff will do for a module about to be rebuilt (no process is started). */
function prospectiveCutoff(dir: string, last: ModuleState, inputs: Parameters<typeof cutoffEligibility>[1], statCache: Parameters<typeof evidenceChange>[2]): string | undefined {
  const el = cutoffEligibility(last.inputs, inputs);
  if (!el.ok) return undefined;
  let text = '';
  try {
    text = fs.readFileSync(path.join(dir, 'Makefile'), 'utf8');
  } catch {
    return undefined;
  }
  const impure = makefileImpurity(text);
  if (impure) return `not skipped by early cutoff: its Makefile ${impure}, so make is not asked`;
  const ev = last.makeEvidence;
  const change = ev ? evidenceChange(ev, inputs.vars, statCache) : 'no answer of make is kept';
  if (!change) return `will be skipped by early cutoff: only ${el.changes.join(', ')}, and make's up-to-date answer (make -q, ${ev?.at}) still holds`;
  return `only ${el.changes.join(', ')}: make will be asked first (make -q; ${change}); if it would remake nothing, make module does not run (early cutoff)`;
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
  const cutoff = hasMakefile && !cached && last && last.key !== key ? prospectiveCutoff(m.dir, last, plan.keyInputs.get(name)!, plan.statCache) : undefined;
  return {
    ...(cutoff ? { cutoff } : {}),
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
