/**
 * The image stage of `osvb build`, after OSv's outputs are written: BUILD/fstab as
 * scripts/build leaves it, `rofs.img` for the ROFS file systems (updated in place), the guest
 * tree for `export=`, and an OCI image layout (one layer per module) for `oci=`/`--oci`.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { isOsvbError, OsvbError } from '../errors/index.js';
import { pyJoin, writeFileAtomic, type WalkOrder } from '../fsutil/index.js';
import type { StatCache } from '../hash/index.js';
import { exportManifest, writeOciLayout, writeRofsImageFromManifest, type OsvOutputs } from '../image/index.js';
import { fileSignature, unsupportedDiskFs, writeDiskImage, type DiskFormat, type DiskWriteResult } from '../image/disk/index.js';
import type { StripContext } from '../image/strip.js';
import { computeLayers } from '../layers/index.js';
import type { Reporter } from '../report/index.js';
import { atManifestSource } from './manifestSource.js';
import type { FsType } from './words.js';

export interface ImageStageInput {
  osvBase: string;
  buildPath: string;
  fs: FsType;
  libgccSDir: string;
  walkOrder: WalkOrder;
  /** `--compat=osv`: also an existing `<x>-stripped.so` is used as gen-rofs-img.py uses it. */
  osvCompat: boolean;
  arch: string;
  outputs: OsvOutputs;
  cacheDir: string;
  statCache: StatCache;
  env: Readonly<Record<string, string>>;
  exportMode: 'none' | 'selected' | 'all';
  exportDir: string | undefined;
  ociDir: string | undefined;
  /** Fail (instead of warning) when rofs.img (or usr.img) cannot be made. */
  requireImage: boolean;
  /** The kernel's loader.img in the build path: usr.img is written when there is one. */
  loaderImg: string | undefined;
  disk: { format: DiskFormat; createDisk: boolean; fsSize: number };
  reporter: Reporter;
}

export interface ImageStageResult {
  rofs?: { written: boolean; bytesWritten: number; filesWritten: number; filesReused: number; mode: string; reason?: string; treeReused?: boolean };
  exported?: { dir: string; changed: number };
  oci?: { dir: string; layersWritten: number; layersReused: number; manifestDigest: string };
  disk?: DiskWriteResult;
}

/** scripts/build's last word on BUILD/cmdline when it makes a disk: `--rootfs=<fs> <cmdline>`. */
export function diskCmdline(fsType: FsType, cmdline: string): string {
  return `--rootfs=${fsType} ${cmdline.replace(/\n+$/, '')}`;
}

const ROFS_FAMILY: readonly FsType[] = ['rofs', 'rofs_with_zfs', 'rofs_with_ext'];

/** BUILD/fstab as scripts/build leaves it for each file system (spec §4.7 table). */
export function fstabFor(fsType: FsType, osvBase: string): string | undefined {
  const read = (name: string): string | undefined => {
    try {
      return fs.readFileSync(path.join(osvBase, 'static', 'etc', name), 'utf8');
    } catch {
      return undefined;
    }
  };
  switch (fsType) {
    case 'zfs':
    case 'ramfs':
      return read('fstab');
    case 'ext':
      return read('fstab_ext');
    case 'rofs':
      return read('fstab_rofs');
    case 'rofs_with_zfs': {
      const t = read('fstab_rofs');
      return t === undefined ? undefined : `${t}/dev/vblk0.2 /data      zfs       defaults 0 0\n`;
    }
    case 'rofs_with_ext': {
      const t = read('fstab_rofs');
      return t === undefined ? undefined : `${t}/dev/vblk0.2 /data      ext       defaults 0 0\n`;
    }
    case 'virtiofs':
      return undefined;
  }
}

function writeIfChanged(file: string, text: string): void {
  try {
    if (fs.readFileSync(file, 'utf8') === text) return;
  } catch {
    /* missing */
  }
  writeFileAtomic(file, text);
}

export async function writeImages(input: ImageStageInput): Promise<ImageStageResult> {
  const wantsRofs = ROFS_FAMILY.includes(input.fs);
  const wantsExport = input.exportMode !== 'none';
  const result: ImageStageResult = {};
  if (!wantsRofs && !wantsExport && !input.ociDir && !input.loaderImg) return result;

  const fstab = fstabFor(input.fs, input.osvBase);
  if (fstab !== undefined) writeIfChanged(path.join(input.buildPath, 'fstab'), fstab);

  const usrText = input.outputs.files.get('usr.manifest') ?? '';
  const file = pyJoin(input.buildPath, 'usr.manifest');
  const warn = (text: string): void => input.reporter({ type: 'warning', text });
  // Stripped copies are found by content: the stat cache spares reading unchanged `.so` files.
  const digest = (f: string): string => input.statCache.digest(f);
  const reuseExisting = input.osvCompat;
  const strip: StripContext = { cwd: input.buildPath, strip: input.env['STRIP'] || 'strip', cacheDir: input.cacheDir, warn, digest, ...(reuseExisting ? { reuseExisting } : {}) };
  const defines = { libgcc_s_dir: input.libgccSDir };

  let rofsUpdate: { before: string | undefined; changed: Array<[number, number]> | undefined } | undefined;
  if (wantsRofs) {
    const out = path.join(input.buildPath, 'rofs.img');
    const before = fileSignature(out);
    try {
      const stats = await writeRofsImageFromManifest(
        usrText,
        { file, cwd: input.buildPath, defines, walkOrder: input.walkOrder, strip: { program: strip.strip, cacheDir: strip.cacheDir, warn, digest, ...(reuseExisting ? { reuseExisting } : {}) } },
        out,
        { incremental: true },
      );
      result.rofs = { written: true, bytesWritten: stats.bytesWritten, filesWritten: stats.filesWritten, filesReused: stats.filesReused, mode: stats.mode, treeReused: stats.treeReused ?? false };
      rofsUpdate = { before, changed: stats.changed };
      input.reporter({
        type: 'log',
        text: `rofs.img ${stats.mode === 'in-place' ? `updated in place${stats.treeReused ? ' (same tree)' : ''}` : 'written'}: ${stats.filesWritten} files written, ${stats.filesReused} reused, ${stats.bytesWritten} bytes`,
      });
    } catch (thrown) {
      // Named at the skeleton or module manifest line the user can edit, not at usr.manifest's.
      const e = isOsvbError(thrown) ? atManifestSource(thrown, file, usrText, input.outputs.usrSections) : thrown;
      // A tree whose manifest maps files the kernel build makes (libenviron.so, …) cannot be
      // imaged by osvb alone; module.py succeeds there, so by default that is a warning.
      if (!isOsvbError(e) || input.requireImage || e.code !== 'OSVB_IMAGE_INPUT') throw e;
      result.rofs = { written: false, bytesWritten: 0, filesWritten: 0, filesReused: 0, mode: 'none', reason: e.format() };
      warn(`rofs.img was not written (pass --require-image to make this an error):\n${e.format().replace(/^/gm, '  ')}`);
    }
  }

  if (input.loaderImg) {
    const disk = writeDisk(input, rofsUpdate, result.rofs?.written === false);
    if (disk) result.disk = disk;
  } else if (wantsRofs && result.rofs?.written) {
    input.reporter({ type: 'notice', text: 'usr.img not written: no kernel (pass --kernel DIR with a prebuilt OSv kernel, or build in an OSv source tree)' });
  }

  if (wantsExport) {
    const dir = path.resolve(input.exportDir ?? path.join(input.osvBase, 'build', 'export'));
    const res = exportManifest(usrText, file, dir, { cwd: input.buildPath, defines, walkOrder: input.walkOrder, strip });
    for (const w of res.warnings) warn(w);
    result.exported = { dir, changed: res.written.length + res.removed.length };
    input.reporter({ type: 'log', text: `exported to ${dir}: ${res.written.length} written, ${res.removed.length} removed, ${res.unchanged} unchanged` });
  }

  if (input.ociDir) {
    const layers = computeLayers(input.outputs.usrSections, { cwd: input.buildPath, defines, walkOrder: input.walkOrder, strip, statCache: input.statCache, file });
    const res = await writeOciLayout(path.resolve(input.ociDir), {
      layers: layers.map((l) => ({ name: l.name, entries: l.entries })),
      cmdline: input.outputs.files.get('cmdline') ?? '',
      arch: input.arch,
    });
    const written = res.layers.filter((l) => l.written).length;
    result.oci = { dir: res.dir, layersWritten: written, layersReused: res.layers.length - written, manifestDigest: res.manifestDigest };
    input.reporter({ type: 'log', text: `OCI layout ${res.dir}: ${res.layers.length} layers (${written} written, ${res.layers.length - written} reused)` });
  }
  return result;
}

/** usr.img (or disk.img) from loader.img and rofs.img, when the file system allows it. */
function writeDisk(
  input: ImageStageInput,
  rofsUpdate: { before: string | undefined; changed: Array<[number, number]> | undefined } | undefined,
  rofsMissing: boolean,
): DiskWriteResult | undefined {
  const name = input.disk.createDisk ? 'disk.img' : 'usr.img';
  const unsupported = unsupportedDiskFs(input.fs);
  const skip = (why: string): undefined => {
    if (input.requireImage) throw new OsvbError('OSVB_DISK_UNSUPPORTED', `${name} was not written: ${why}`);
    input.reporter({ type: 'warning', text: `${name} was not written: ${why}` });
    return undefined;
  };
  if (unsupported) return skip(unsupported);
  if (rofsMissing) return skip('rofs.img could not be made (see above)');
  const res = writeDiskImage({
    buildPath: input.buildPath,
    fs: input.fs,
    loaderImg: input.loaderImg as string,
    diskBin: path.join(input.osvBase, 'scripts', 'disk.bin'),
    ...(ROFS_FAMILY.includes(input.fs) ? { rofsImg: path.join(input.buildPath, 'rofs.img') } : {}),
    ...(rofsUpdate ? { rofsUpdate } : {}),
    cmdline: input.outputs.files.get('cmdline') ?? '',
    fsSize: input.disk.fsSize,
    createDisk: input.disk.createDisk,
    format: input.disk.format,
    digest: (f) => input.statCache.digest(f),
  });
  input.reporter({
    type: 'disk-written',
    file: res.file,
    mode: res.mode,
    bytesWritten: res.bytesWritten,
    virtualSize: res.plan.virtualSize,
    durationMs: res.durationMs,
    ...(res.reason ? { reason: res.reason } : {}),
  });
  return res;
}
