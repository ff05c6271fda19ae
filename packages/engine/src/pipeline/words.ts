/**
 * scripts/build's words (spec §4.7), minus the kernel: which words it consumes, which it
 * exports to every make and module.py, and how image=/modules=/fs=/usrskel=/export= and
 * --append-manifest turn into module.py's spec, skeleton and --no-required. Pure.
 */
import { OsvbError } from '../errors/index.js';
import { fsSizeFromWords } from '../image/disk/plan.js';

export type FsType = 'zfs' | 'rofs' | 'ramfs' | 'virtiofs' | 'ext' | 'rofs_with_zfs' | 'rofs_with_ext';
const FS_TYPES: readonly FsType[] = ['zfs', 'rofs', 'ramfs', 'virtiofs', 'ext', 'rofs_with_zfs', 'rofs_with_ext'];

export interface BuildWords {
  /** Every NAME=value word (consumed or not), last one wins. */
  vars: Record<string, string>;
  /** NAME=value words passed on to make and exported (all but image/modules/fs/usrskel). */
  exported: Array<[string, string]>;
  /** The spec handed to module evaluation, e.g. `!default` or `a,b.fg`. */
  spec: string;
  fs: FsType;
  /** `default`, `none`, or a skeleton path relative to OSV_BASE. */
  usrSkel: string;
  /**
   * The bootfs manifest scripts/build gives the kernel for this fs: a skeleton relative to
   * OSV_BASE, or for ramfs the generated usr.manifest (scripts/build names it
   * build/<mode>.<arch>/usr.manifest).
   */
  kernelBootfsManifest: string;
  noRequired: boolean;
  appendManifest: boolean;
  /** OSv's -j value for `make module`: undefined, '-' (bare -j) or digits. */
  jobs: string | undefined;
  mode: string;
  arch: string | undefined;
  exportMode: 'none' | 'selected' | 'all';
  exportDir: string | undefined;
  /** `oci=DIR`: write an OCI image layout there. */
  ociDir: string | undefined;
  /** `--create-disk`: a kernel-less disk.img instead of usr.img. */
  createDisk: boolean;
  /** The disk's size in bytes (`fs_size=`, `fs_size_mb=`; default 512 MiB), rounded down to 512. */
  fsSize: number;
  /** Why fs_size was changed (not a multiple of 512), for a warning. */
  fsSizeWarning?: string;
  /** Words scripts/build accepts that osvb ignores (zfs disk options), for a notice. */
  ignored: string[];
  /** Likely typos: NAME=value words one or two edits from a word scripts/build knows. */
  warnings: string[];
}

/** The NAME=value words scripts/build (and osvb) give a meaning to; others only reach make. */
const KNOWN_VARS = ['image', 'modules', 'fs', 'usrskel', 'export', 'export_dir', 'oci', 'mode', 'arch', 'fs_size', 'fs_size_mb', 'app_local_exec_tls_size'];

/** Edit distance: insertions, deletions, substitutions and swaps of neighbours. */
function editDistance(a: string, b: string): number {
  const rows: number[][] = [];
  for (let i = 0; i <= a.length; i++) {
    const row: number[] = [i];
    for (let j = 1; j <= b.length; j++) {
      if (i === 0) {
        row.push(j);
        continue;
      }
      const prev = rows[i - 1] as number[];
      let v = Math.min((prev[j] as number) + 1, (row[j - 1] as number) + 1, (prev[j - 1] as number) + (a[i - 1] === b[j - 1] ? 0 : 1));
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, ((rows[i - 2] as number[])[j - 2] as number) + 1);
      row.push(v);
    }
    rows.push(row);
  }
  return (rows[a.length] as number[])[b.length] as number;
}

/** "did you mean image=?" for a NAME close to a known word (one edit for short names, two for longer). */
export function suggestWord(name: string): string | undefined {
  if (KNOWN_VARS.includes(name)) return undefined;
  let best: { word: string; dist: number } | undefined;
  for (const word of KNOWN_VARS) {
    const max = word.length <= 4 ? 1 : 2;
    const dist = Math.abs(name.length - word.length) > max ? max + 1 : editDistance(name, word);
    if (dist <= max && (!best || dist < best.dist)) best = { word, dist };
  }
  return best?.word;
}

const CONSUMED_FLAGS = new Set(['check', '--append-manifest', '--create-disk', '--create-zfs-disk', '--use-openzfs']);
// `oci=` is osvb's own word: not exported to make (it would change every module's key).
const CONSUMED_VARS = new Set(['image', 'modules', 'fs', 'usrskel', 'oci']);

export function parseBuildWords(words: readonly string[]): BuildWords {
  const vars: Record<string, string> = {};
  const exported: Array<[string, string]> = [];
  const ignored: string[] = [];
  const warnings: string[] = [];
  let jobs: string | undefined;
  let appendManifest = false;
  let createDisk = false;
  let checkNumber = false;

  for (const w of words) {
    if (checkNumber) {
      checkNumber = false;
      if (/^[0-9]/.test(w)) {
        if (/^0+$/.test(w)) throw new OsvbError('OSVB_USAGE', `"-j ${w}": expected at least one job`, { hint: '-jN with N ≥ 1, or -j alone for no limit' });
        jobs = w;
        continue;
      }
    }
    const eq = w.indexOf('=');
    if (eq > 0 && !w.startsWith('-')) {
      const name = w.slice(0, eq);
      const value = w.slice(eq + 1);
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) {
        throw new OsvbError('OSVB_USAGE', `"${w}" is not a NAME=value word: "${name}" is not a valid variable name`);
      }
      vars[name] = value;
      if (!CONSUMED_VARS.has(name)) exported.push([name, value]);
      const meant = suggestWord(name);
      if (meant) warnings.push(`"${w}": did you mean ${meant}=? (${name}= is not a word osvb knows; like scripts/build, it passes it on to make)`);
      continue;
    }
    if (w === '-j') {
      jobs = '-';
      checkNumber = true;
    } else if (/^-j0+$/.test(w)) {
      throw new OsvbError('OSVB_USAGE', `"${w}": expected at least one job`, { hint: '-jN with N ≥ 1, or -j alone for no limit' });
    } else if (/^-j[0-9]+$/.test(w)) {
      jobs = w.slice(2);
    } else if (w.startsWith('-j')) {
      throw new OsvbError('OSVB_USAGE', `"${w}": expected -jN with a number of jobs`);
    } else if (w === 'check') {
      vars['image'] = 'tests';
    } else if (w === '--append-manifest') {
      appendManifest = true;
    } else if (w === '--create-disk') {
      createDisk = true;
    } else if (CONSUMED_FLAGS.has(w)) {
      ignored.push(w);
    } else if (w === 'clean') {
      throw new OsvbError('OSVB_USAGE', '"clean" is not a build word in osvb', { hint: 'use "osvb cache clean" or remove the build path' });
    } else {
      throw new OsvbError('OSVB_USAGE', `unknown word "${w}"`, {
        hint: 'osvb build takes scripts/build words (image=, modules=, fs=, usrskel=, export=, -jN, --append-manifest, NAME=value); see osvb build --help',
      });
    }
  }

  const arch = vars['arch'];
  const image = vars['image'] ?? (arch === 'aarch64' ? 'uush' : 'default');
  let spec = vars['modules'] ?? `!${image}`;
  const fsValue = vars['fs'] ?? 'zfs';
  if (!(FS_TYPES as readonly string[]).includes(fsValue)) {
    throw new OsvbError('OSVB_UNKNOWN_FS', `Unknown filesystem "${fsValue}"`, { hint: `fs= takes one of ${FS_TYPES.join(', ')}` });
  }
  const fs = fsValue as FsType;
  let usrSkel = 'default';
  let kernelBootfsManifest = 'bootfs.manifest.skel';
  const mode = vars['mode'] ?? 'release';
  switch (fs) {
    case 'zfs':
      break;
    case 'ext':
      kernelBootfsManifest = 'bootfs_ext.manifest.skel';
      usrSkel = 'usr_ext.manifest.skel';
      break;
    case 'rofs':
    case 'rofs_with_zfs':
    case 'rofs_with_ext':
    case 'virtiofs':
      kernelBootfsManifest = 'bootfs_empty.manifest.skel';
      usrSkel = 'usr_rofs.manifest.skel';
      break;
    case 'ramfs':
      kernelBootfsManifest = 'usr.manifest';
      usrSkel = 'usr_ramfs.manifest.skel';
      break;
  }
  if (vars['usrskel']) usrSkel = vars['usrskel'];
  const exportValue = vars['export'] ?? 'none';
  if (!['none', 'selected', 'all'].includes(exportValue)) {
    throw new OsvbError('OSVB_USAGE', `export=${exportValue}: expected none, selected or all`);
  }
  if (appendManifest && spec === '!default') spec = 'empty';
  if (fs === 'ext' || fs === 'rofs_with_ext') spec += ',libext';
  const fsSize = fsSizeFromWords(vars);

  return {
    vars,
    exported,
    spec,
    fs,
    usrSkel,
    kernelBootfsManifest,
    noRequired: exportValue === 'selected',
    appendManifest,
    jobs,
    mode,
    arch,
    exportMode: exportValue as BuildWords['exportMode'],
    exportDir: vars['export_dir'],
    ociDir: vars['oci'],
    createDisk,
    fsSize: fsSize.bytes,
    ...(fsSize.warning ? { fsSizeWarning: fsSize.warning } : {}),
    ignored,
    warnings,
  };
}
