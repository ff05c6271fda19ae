export { build, planBuild, resolveBuild, lastBuildWords, type BuildOptions, type BuildResult, type BuildPlan, type ResolvedBuild, type CompatMode } from './build.js';
export { diffKeyInputs, moduleKey, keyVariables, placeholders, TOOLCHAIN_ENV, type ModuleKeyInputs, type KeyDifference } from './moduleKeys.js';
export { BUILD_NAMESPACE, type ModuleBuildRecord, type OutputEntry } from './moduleAction.js';
export { BuildState, type ModuleState } from './state.js';
export { parseBuildWords, type BuildWords, type FsType } from './words.js';
export { buildEnvironment, findLibgccSDir, hostArch } from './environment.js';
export { expandGeneratedManifest } from './manifest.js';
export { explainModule, explainKernelBuild, type Explanation } from './explain.js';
export { describeBase, type DescribeOptions, type BaseDescription, type ModuleDescription, type ImageDescription } from './describe.js';
