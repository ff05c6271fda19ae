/**
 * OSv's generated build outputs (spec §7): usr.manifest, bootfs.manifest, cmdline, javamains
 * and /init/30-auto-NN, text-identical to scripts/module.py. Computed in memory, then written
 * together (temp files renamed at the end), so a failure leaves the previous outputs intact.
 */
import * as fs from 'node:fs';
import { OsvbError } from '../errors/index.js';
import { pyJoin, writeFilesAtomic, type WalkOrder } from '../fsutil/index.js';
import type { AppRecord, EvaluatedModule } from '../evaluate/types.js';
import { expandFileMapCached, readManifestLines, stageA, type FileMapCacheStore, type PatternMode } from '../manifest/index.js';
import { ENGINE_VERSION } from '../version.js';

export interface OsvOutputsInput {
  osvBase: string;
  buildPath: string;
  modules: readonly EvaluatedModule[];
  apps: readonly AppRecord[];
  /** `default`, `none` or a path joined to OSV_BASE. */
  usrSkel: string;
  libgccSDir: string;
  walkOrder: WalkOrder;
  patternMode: PatternMode;
  appendManifest: boolean;
  /** Where FileMap expansions are cached (none: always walk). */
  fileMapCache?: FileMapCacheStore;
  /** Told about every path the outputs depend on (skeletons, manifests, FileMap roots and directories). */
  observe?: (path: string) => void;
}

export interface OsvOutputs {
  /** File name (in the build path) → content. */
  files: Map<string, string>;
  noAppsSelected: boolean;
  /**
   * usr.manifest by origin, in order: the skeleton, each module (its usr.manifest and usr
   * FileMap), then what the build generated (/init, javamains, app lines, append.manifest).
   * Their concatenation after the header is usr.manifest; image layers are made from them.
   */
  usrSections: Array<{
    name: string;
    kind: 'skeleton' | 'module' | 'generated';
    text: string;
    /** The files its lines were written from (a skeleton, a module's usr.manifest, its module.py). */
    sources?: string[];
  }>;
}

function existsFile(p: string): boolean {
  try {
    return fs.statSync(p, { throwIfNoEntry: false }) !== undefined;
  } catch {
    return false;
  }
}

function readSkeleton(file: string, what: string): string[] {
  if (!existsFile(file)) {
    throw new OsvbError('OSVB_CONFIG_MISSING', `${what} not found: ${file}`, {
      hint: 'an OSv base has usr.manifest.skel and bootfs.manifest.skel at its root; usrskel=none builds without one',
    });
  }
  return readManifestLines(file);
}

export function generateOsvOutputs(input: OsvOutputsInput): OsvOutputs {
  const files = new Map<string, string>();
  const extra = new Map<string, string>();
  const manifests: Record<'usr' | 'bootfs', string> = { usr: '', bootfs: '' };
  const usrSections: OsvOutputs['usrSections'] = [];
  let mark = 0;
  const section = (type: 'usr' | 'bootfs', text: string, name: string, kind: 'skeleton' | 'module' | 'generated', sources: string[] = []): void => {
    if (type === 'usr') usrSections.push({ name, kind, text: text.slice(mark), ...(sources.length ? { sources } : {}) });
    mark = text.length;
  };

  for (const type of ['usr', 'bootfs'] as const) {
    const name = `${type}.manifest`;
    let skel = `${name}.skel`;
    if (type === 'usr' && input.usrSkel !== 'default') skel = input.usrSkel;
    let text = '[manifest]\n';
    mark = text.length;
    if (skel !== 'none') {
      const skelFile = pyJoin(input.osvBase, skel);
      input.observe?.(skelFile);
      text += stageA({ file: skelFile, lines: readSkeleton(skelFile, `${type} skeleton`), variables: {}, libgccSDir: input.libgccSDir, kind: 'skeleton' });
    }
    section(type, text, 'skeleton', 'skeleton', skel !== 'none' ? [pyJoin(input.osvBase, skel)] : []);
    for (const m of input.modules) {
      const moduleManifest = pyJoin(m.dir, name);
      const sources: string[] = [];
      input.observe?.(moduleManifest);
      if (existsFile(moduleManifest)) {
        sources.push(moduleManifest);
        text += stageA({
          file: moduleManifest,
          lines: readManifestLines(moduleManifest),
          variables: { MODULE_DIR: m.moduleDirText ?? m.dir, OSV_BASE: input.osvBase },
          libgccSDir: input.libgccSDir,
          kind: 'module',
        });
      }
      const fm = type === 'usr' ? m.usrFiles : m.bootfsFiles;
      if (fm) {
        const opts = { walkOrder: input.walkOrder, patternMode: input.patternMode, moduleName: m.name, ...(input.observe ? { observe: input.observe } : {}) };
        text += expandFileMapCached(fm, opts, input.fileMapCache, ENGINE_VERSION);
        sources.push(pyJoin(m.dir, 'module.py'));
      }
      section(type, text, m.name, 'module', sources);
    }
    for (const app of input.apps) {
      if (app.kind === 'init' && type === 'usr') {
        const fileName = `30-auto-${String(app.sequence).padStart(2, '0')}`;
        const local = pyJoin(input.buildPath, fileName);
        extra.set(fileName, app.cmdline);
        text += `/init/${fileName}: ${local}\n`;
      } else if (app.kind === 'jvm' && type === 'usr') {
        const local = pyJoin(input.buildPath, 'javamains');
        extra.set('javamains', app.javamains);
        text += `/etc/javamains: ${local}\n`;
      } else if (app.kind === 'custom') {
        text += type === 'usr' ? app.usr : app.bootfs;
      }
    }
    section(type, text, 'generated', 'generated');
    manifests[type] = text;
  }

  let cmdline = input.apps.map((a) => (a.kind === 'init' ? '' : a.launcher)).filter((s) => s.length > 0).join('&');
  const noAppsSelected = input.apps.length === 0;

  if (input.appendManifest) {
    const appendFile = pyJoin(input.buildPath, 'append.manifest');
    input.observe?.(appendFile);
    input.observe?.(pyJoin(input.buildPath, 'append_cmdline'));
    if (existsFile(appendFile)) {
      const appended = fs.readFileSync(appendFile, 'utf8');
      manifests.usr += appended;
      const generated = usrSections[usrSections.length - 1];
      if (generated) generated.text += appended;
      const appendCmdline = pyJoin(input.buildPath, 'append_cmdline');
      if (existsFile(appendCmdline) && cmdline.replace(/\n+$/, '') === '') cmdline = fs.readFileSync(appendCmdline, 'utf8');
    }
  }

  files.set('usr.manifest', manifests.usr);
  files.set('bootfs.manifest', manifests.bootfs);
  for (const [k, v] of extra) files.set(k, v);
  files.set('cmdline', cmdline);
  return { files, noAppsSelected, usrSections };
}

/** Write the outputs that differ from what is on disk (unchanged files keep their mtime). */
export function writeOsvOutputs(buildPath: string, outputs: OsvOutputs): string[] {
  fs.mkdirSync(buildPath, { recursive: true });
  const list = [...outputs.files]
    .map(([name, data]) => ({ path: pyJoin(buildPath, name), data }))
    .filter((f) => {
      try {
        return fs.readFileSync(f.path, 'utf8') !== f.data;
      } catch {
        return true;
      }
    });
  writeFilesAtomic(list);
  return list.map((f) => f.path);
}
