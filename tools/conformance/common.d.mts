// Types for common.mjs (used from test/conformance/conformance.test.ts).

export interface ConformanceCase {
  description: string;
  spec: string;
  args: string[];
  modes: Array<'osv' | 'default'>;
  mkdirs: string[];
  realMake: boolean;
  expectedByHand: boolean;
  divergence?: string;
}

export interface MakeInvocation {
  cwd: string;
  args: string[];
  env: Record<string, string>;
}

export interface PlaceholderPaths {
  base: string;
  libgccDir: string;
}

export const REPO_ROOT: string;
export const FIXTURES_DIR: string;
export const BASE_PLACEHOLDER: string;
export const LIBGCC_PLACEHOLDER: string;
export const OUTPUT_FILE_RE: RegExp;
export const BUILD_SUBDIR: string;
export const MAKE_ENV_KEYS: string[];

export function listFixtures(): string[];
export function readCase(fixtureDir: string): ConformanceCase;
export function exportedWords(args: string[]): Array<[string, string]>;
export function makeEnvKeys(args: string[]): string[];
export function detectLibgccDir(): string;
export function prepareTree(fixtureDir: string, kase: ConformanceCase, prefix: string): { work: string; base: string };
export function whichOnPath(name: string, pathVar: string | undefined, skipDir?: string): string | null;
export function writeMakeStub(
  binDir: string,
  options: { logFile: string; envKeys: string[]; realMake?: string | null },
): string;
export function readMakeLog(logFile: string): MakeInvocation[];
export function placeholderize(text: string, paths: PlaceholderPaths): string;
export function placeholderizeDeep<T>(value: T, paths: PlaceholderPaths): T;
export function listOutputFiles(buildDir: string): string[];
export function formatMakeJson(invocations: MakeInvocation[]): string;
