/**
 * The Nx side of osv-build: OSv bases become Nx projects (one per module, one per configured
 * image), `require`s become dependencies. Everything is asked of the engine's `describeBase`,
 * which answers from its on-disk record while nothing it depends on changed — a warm graph
 * computation starts no python3.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type {
  CreateDependenciesContext,
  CreateNodesContextV2,
  CreateNodesResult,
  DependencyType,
  ProjectConfiguration,
  RawProjectGraphDependency,
  TargetConfiguration,
} from '@nx/devkit';
import { describeBase, isOsvbError, KERNEL_BUILD_FILES, parseBuildWords, TOOLCHAIN_ENV, type BaseDescription } from '@osv-build/engine';
import { moduleOutputs } from './gitignore.js';
import { normalizeOptions, type NormalizedOptions } from './options.js';

export const PLUGIN_NAME = '@osv-build/nx';
/** Files that make a directory an OSv base. */
export const CONFIG_GLOB = '**/config.json';

/**
 * A dependency: `static` with the file that declares it when Nx knows that file, else `implicit`.
 * (Type-only import of Nx's enum: loading @nx/devkit at run time would slow every graph computation.)
 */
function edge(source: string, target: string, file: string | undefined, fileKnown: boolean): RawProjectGraphDependency {
  if (file && fileKnown) return { source, target, type: 'static' as unknown as DependencyType.static, sourceFile: file };
  return { source, target, type: 'implicit' as unknown as DependencyType.implicit };
}

/** Bases described by createNodes, kept for the createDependencies call of the same graph computation. */
const described = new Map<string, BaseDescription>();

function toPosix(p: string): string {
  return p.split(path.sep).join('/');
}

/** Workspace-relative POSIX path, or undefined when `abs` is outside the workspace. */
function relative(workspaceRoot: string, abs: string): string | undefined {
  // The common case without path.relative (it resolves both sides: hundreds of calls per graph).
  if (abs.startsWith(workspaceRoot + path.sep) && !abs.includes(`${path.sep}.`) && !abs.endsWith(path.sep)) return toPosix(abs.slice(workspaceRoot.length + 1));
  const rel = path.relative(workspaceRoot, abs);
  if (rel.startsWith('..') || path.isAbsolute(rel)) return undefined;
  return toPosix(rel) || '.';
}

function isOsvConfig(file: string): boolean {
  try {
    const v = JSON.parse(fs.readFileSync(file, 'utf8')) as unknown;
    return typeof v === 'object' && v !== null && typeof (v as { modules?: unknown }).modules === 'object';
  } catch {
    return false;
  }
}

function selectedBases(configFiles: readonly string[], opts: NormalizedOptions, workspaceRoot: string): string[] {
  if (opts.bases) {
    const wanted = new Set(opts.bases.map((b) => toPosix(path.normalize(b)).replace(/\/$/, '') || '.'));
    return configFiles.map((f) => toPosix(path.dirname(f))).filter((d) => wanted.has(d));
  }
  return configFiles.filter((f) => isOsvConfig(path.join(workspaceRoot, f))).map((f) => toPosix(path.dirname(f)));
}

async function describe(base: string, opts: NormalizedOptions, workspaceRoot: string): Promise<BaseDescription> {
  try {
    const d = await describeBase({
      osvBase: path.join(workspaceRoot, base),
      ...(opts.cacheDir ? { cacheDir: path.resolve(workspaceRoot, opts.cacheDir) } : {}),
      images: opts.images.map((i) => ({ name: i.name, words: i.words })),
    });
    described.set(base, d);
    return d;
  } catch (e) {
    if (isOsvbError(e)) throw new Error(`${PLUGIN_NAME}: OSv base ${base}: ${e.format()}`);
    throw e;
  }
}

function envInputs(): Array<{ env: string }> {
  return [...TOOLCHAIN_ENV].sort().map((env) => ({ env }));
}

/**
 * A prebuilt kernel is an input of the image: its files when it is in the workspace, else (Nx
 * hashes no file outside it) a checksum of its loader.img taken when the task is hashed.
 */
function kernelInputs(kernel: string | undefined, workspaceRoot: string): Array<string | { runtime: string }> {
  if (!kernel) return [];
  const abs = path.resolve(workspaceRoot, kernel);
  const rel = relative(workspaceRoot, abs);
  const isDir = fs.statSync(abs, { throwIfNoEntry: false })?.isDirectory() ?? false;
  if (rel && rel !== '.') return isDir ? KERNEL_BUILD_FILES.map((f) => `{workspaceRoot}/${rel}/${f}`) : [`{workspaceRoot}/${rel}`];
  const files = isDir ? KERNEL_BUILD_FILES.map((f) => path.join(abs, f)) : [abs];
  return [{ runtime: `cksum ${files.map((f) => `'${f.replace(/'/g, "'\\''")}'`).join(' ')} 2>/dev/null; true` }];
}

function imageProjectName(image: string, base: string, bases: number): string {
  return bases > 1 ? `${path.posix.basename(base)}-${image}` : image;
}

/** The files `osvb build` writes for these words, as Nx outputs (workspace-relative). */
function imageOutputs(buildPathRel: string | undefined, words: readonly string[], workspaceRoot: string, base: string, kernel: { format: 'qcow2' | 'raw' } | undefined): string[] {
  const out: string[] = [];
  const parsed = parseBuildWords(words);
  if (buildPathRel && kernel) {
    // The prebuilt kernel's files placed in the build path, and the disk with its record.
    for (const f of KERNEL_BUILD_FILES) out.push(`{workspaceRoot}/${buildPathRel}/${f}`);
    const disk = `${parsed.createDisk ? 'disk' : 'usr'}.${kernel.format === 'raw' ? 'raw' : 'img'}`;
    out.push(`{workspaceRoot}/${buildPathRel}/${disk}`, `{workspaceRoot}/${buildPathRel}/${disk}.osvb-disk.json`);
  }
  if (buildPathRel) {
    // What writeOsvOutputs and the image stage write: OSv's outputs, run_on_init command files,
    // javamains, fstab, and for the rofs family the image and its layout record.
    for (const f of ['usr.manifest', 'bootfs.manifest', 'cmdline', 'javamains', '30-auto-*', 'fstab']) out.push(`{workspaceRoot}/${buildPathRel}/${f}`);
    if (parsed.fs === 'rofs' || parsed.fs === 'rofs_with_zfs' || parsed.fs === 'rofs_with_ext') {
      out.push(`{workspaceRoot}/${buildPathRel}/rofs.img`, `{workspaceRoot}/${buildPathRel}/rofs.img.osvb-layout.json`);
    }
  }
  if (parsed.exportMode !== 'none') {
    const dir = relative(workspaceRoot, path.resolve(workspaceRoot, base, parsed.exportDir ?? path.join('build', 'export')));
    if (dir) out.push(`{workspaceRoot}/${dir}`);
  }
  if (parsed.ociDir) {
    const dir = relative(workspaceRoot, path.resolve(workspaceRoot, base, parsed.ociDir));
    if (dir) out.push(`{workspaceRoot}/${dir}`);
  }
  return out;
}

/** Words that select or package the image, not how modules build: module targets leave them out. */
const IMAGE_ONLY_WORDS = new Set(['image', 'modules', 'usrskel', 'export', 'export_dir', 'oci']);

/**
 * The words a module target builds with: the image's words that reach make (fs=, mode=, arch=,
 * NAME=value), so a module built on its own gets the same cache key as inside the image build.
 */
function moduleWords(imageWords: readonly string[]): string[] {
  return imageWords.filter((w) => {
    const eq = w.indexOf('=');
    return eq > 0 && !w.startsWith('-') && !IMAGE_ONLY_WORDS.has(w.slice(0, eq));
  });
}

function projectsOf(base: string, d: BaseDescription, opts: NormalizedOptions, workspaceRoot: string, bases: number): Record<string, ProjectConfiguration> {
  const projects: Record<string, ProjectConfiguration> = {};
  const words = moduleWords(d.images[0]?.words ?? []);
  for (const m of d.modules) {
    const root = relative(workspaceRoot, m.dir);
    if (!root || root === base || root === '.') continue; // outside the workspace, or the base itself
    const { outputs, unignored } = moduleOutputs(m.dir, m.outputs);
    const build: TargetConfiguration = {
      executor: `${PLUGIN_NAME}:module`,
      options: { osvBase: base, module: m.name, ...(words.length ? { words } : {}) },
      cache: true,
      dependsOn: [`^${opts.buildTargetName}`],
      inputs: ['osvModule', '^osvModule', ...envInputs()],
      outputs: outputs.map((o) => `{projectRoot}/${o}`),
      metadata: {
        description: m.hasMakefile ? `make module in ${root}, through osv-build's cache` : `OSv module ${m.name} (no Makefile: nothing to build)`,
        technologies: ['osv'],
        ...(m.error ? { help: { command: `npx osvb explain ${m.name} --osv-base ${base}`, example: {} } } : {}),
      },
    };
    projects[root] = {
      root,
      name: `${opts.projectPrefix}${m.name}`,
      projectType: 'library',
      tags: ['osv:module'],
      namedInputs: { osvModule: [`{projectRoot}/**/*`, ...unignored.map((u) => `!{projectRoot}/${u}`)] },
      targets: { [opts.buildTargetName]: build },
    };
  }
  for (const img of d.images) {
    const buildPathRel = img.buildPath ? relative(workspaceRoot, img.buildPath) : undefined;
    const cacheRel = relative(workspaceRoot, d.cacheDir);
    const negations = [buildPathRel, cacheRel].filter((p): p is string => p !== undefined && (p === base || p.startsWith(`${base}/`)) && p !== base).map((p) => `!{workspaceRoot}/${p}/**/*`);
    // Only what the image step writes: module outputs are the module targets' (listing hundreds of
    // module globs here made every cached image run expand them: +6% on a 500-module base).
    const conf = opts.images.find((i) => i.name === img.name);
    const kernel = conf?.kernel;
    const diskOptions = { ...(kernel ? { kernel } : {}), ...(conf?.imageFormat ? { imageFormat: conf.imageFormat } : {}) };
    const outputs = imageOutputs(buildPathRel, img.words, workspaceRoot, base, kernel ? { format: conf?.imageFormat ?? 'qcow2' } : undefined);
    // moduleTasks: Nx runs (or replays) every module's build target first, each its own task
    // and cache entry; the image task then only assembles (no make runs in it).
    const build: TargetConfiguration = {
      executor: `${PLUGIN_NAME}:image`,
      options: { osvBase: base, words: img.words, ...diskOptions, ...(opts.moduleTasks ? { moduleTasks: true } : {}) },
      ...(opts.moduleTasks ? { dependsOn: [`^${opts.buildTargetName}`] } : {}),
      cache: true,
      inputs: ['osvImage', '^osvModule', ...envInputs(), ...kernelInputs(kernel, workspaceRoot)],
      outputs,
      metadata: {
        description: `osvb build ${img.words.join(' ') || '(image=default)'} in ${base}${opts.moduleTasks ? ', from the modules their own build tasks built' : ''}`,
        technologies: ['osv'],
      },
    };
    const watch: TargetConfiguration = {
      executor: `${PLUGIN_NAME}:watch`,
      options: { osvBase: base, words: img.words, ...diskOptions },
      continuous: true,
      cache: false,
      metadata: { description: `osvb watch ${img.words.join(' ')}: build, then rebuild what each change touches`.replace('watch :', 'watch:'), technologies: ['osv'] },
    };
    // Boots the image the build target wrote (needs a kernel to have written usr.img).
    const run: TargetConfiguration = {
      executor: `${PLUGIN_NAME}:run`,
      options: { osvBase: base, words: img.words, ...(conf?.imageFormat ? { imageFormat: conf.imageFormat } : {}) },
      dependsOn: [opts.buildTargetName],
      cache: false,
      metadata: { description: `osvb run: boot the image ${opts.buildTargetName} wrote under QEMU${kernel ? '' : ' (set images.<name>.kernel so the build writes usr.img)'}`, technologies: ['osv'] },
    };
    const name = imageProjectName(img.name, base, bases);
    if (projects[base]) throw new Error(`${PLUGIN_NAME}: two image projects for ${base}; only one image project per base is supported (got "${projects[base].name}" and "${name}")`);
    projects[base] = {
      root: base,
      name,
      projectType: 'application',
      tags: ['osv:image'],
      namedInputs: { osvImage: ['{projectRoot}/**/*', ...negations] },
      targets: { [opts.buildTargetName]: build, watch, run },
    };
  }
  return projects;
}

export async function createNodesImpl(configFiles: readonly string[], rawOptions: unknown, context: CreateNodesContextV2): Promise<Array<readonly [string, CreateNodesResult]>> {
  const opts = normalizeOptions(rawOptions);
  const bases = selectedBases(configFiles, opts, context.workspaceRoot);
  const results: Array<readonly [string, CreateNodesResult]> = [];
  for (const base of bases) {
    const d = await describe(base, opts, context.workspaceRoot);
    results.push([base === '.' ? 'config.json' : `${base}/config.json`, { projects: projectsOf(base, d, opts, context.workspaceRoot, bases.length) }] as const);
  }
  return results;
}

export async function createDependenciesImpl(rawOptions: unknown, context: CreateDependenciesContext): Promise<RawProjectGraphDependency[]> {
  const opts = normalizeOptions(rawOptions);
  const ws = context.workspaceRoot;
  const byRoot = new Map<string, string>();
  for (const [name, p] of Object.entries(context.projects)) byRoot.set(p.root, name);
  const known = (project: string, file: string): boolean => (context.fileMap.projectFileMap[project] ?? []).some((f) => f.file === file);
  const deps: RawProjectGraphDependency[] = [];
  const bases = [...new Set(Object.values(context.projects).filter((p) => p.tags?.includes('osv:image')).map((p) => p.root))];
  for (const base of bases) {
    const d = described.get(base) ?? (await describe(base, opts, ws));
    const projectOf = new Map<string, string>();
    for (const m of d.modules) {
      const root = relative(ws, m.dir);
      const name = root ? byRoot.get(root) : undefined;
      if (name) projectOf.set(m.name, name);
    }
    for (const m of d.modules) {
      const source = projectOf.get(m.name);
      if (!source) continue;
      const file = relative(ws, path.join(m.dir, 'module.py'));
      for (const r of m.requires) {
        const target = projectOf.get(r);
        if (!target || target === source) continue;
        deps.push(edge(source, target, file, file !== undefined && known(source, file)));
      }
    }
    const imageProject = byRoot.get(base);
    if (!imageProject) continue;
    const img = d.images[0];
    if (!img) continue;
    const file = img.imageConfig ? relative(ws, img.imageConfig) : undefined;
    for (const n of img.modules) {
      const target = projectOf.get(n);
      if (!target) continue;
      deps.push(edge(imageProject, target, file, file !== undefined && known(imageProject, file)));
    }
  }
  described.clear();
  return deps;
}
