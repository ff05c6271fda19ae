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
