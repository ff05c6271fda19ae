export { build, resolveBuild, evaluateImage, type BuildOptions, type BuildResult, type ResolvedBuild, type CompatMode } from './build.js';
export { parseBuildWords, type BuildWords, type FsType } from './words.js';
export { buildEnvironment, findLibgccSDir, hostArch } from './environment.js';
export { expandGeneratedManifest } from './manifest.js';
