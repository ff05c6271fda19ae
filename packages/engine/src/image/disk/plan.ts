/**
 * Where scripts/build puts things on the disk for each file system (its `create_rofs_disk` and
 * the case blocks around it), as a pure plan: the partition, the virtual size, which bytes come
 * from where. Sizes that scripts/build would fail on later (a qemu-img shrink) are errors here.
 */
import { OsvbError } from '../../errors/index.js';
import { SECTOR } from './mbr.js';

export type DiskFs = 'zfs' | 'rofs' | 'ramfs' | 'virtiofs' | 'ext' | 'rofs_with_zfs' | 'rofs_with_ext';

export const KERNEL_ALIGN = 2 * 1024 * 1024;
export const DEFAULT_FS_SIZE = 512 * 1024 * 1024;

export interface DiskPlanInput {
  fs: DiskFs;
  /** Bytes of the boot image at the start of the disk: loader.img, or scripts/disk.bin with createDisk. */
  bareSize: number;
  /** loader.img's size (kernel_end is derived from it even when the bare image is disk.bin). */
  loaderSize: number;
  /** rofs.img's size (ROFS file systems). */
  rofsSize?: number;
  fsSize: number;
  /** `--create-disk`: a kernel-less disk.img, partition at byte 512. */
  createDisk: boolean;
}

export interface DiskPlan {
  /** The file written in the build path: usr.img, or disk.img with --create-disk. */
  name: 'usr' | 'disk';
  kernelEnd: number;
  partitionOffset: number;
  partitionSize: number;
  virtualSize: number;
  /** Whether rofs.img goes into the partition. */
  rofs: boolean;
  /** Whether the command line goes to byte 512 (scripts/build runs setargs on usr.img only). */
  cmdline: boolean;
}

/** File systems whose usr.img osvb writes; the others need OSv's in-VM or host fs builders. */
export const DISK_FILE_SYSTEMS: readonly DiskFs[] = ['rofs', 'ramfs', 'virtiofs'];

/** Why osvb cannot write a usr.img for this fs (undefined when it can). */
export function unsupportedDiskFs(fs: DiskFs): string | undefined {
  switch (fs) {
    case 'zfs':
    case 'rofs_with_zfs':
      return `fs=${fs} needs OSv's zfs_builder, run inside a VM (scripts/upload_manifest.py / zfs-image-on-host.sh), which osvb does not run`;
    case 'ext':
    case 'rofs_with_ext':
      return `fs=${fs} needs OSv's host ext tools (scripts/ext-disk-utils.sh, with root and a loop device), which osvb does not run`;
    default:
      return undefined;
  }
}

/** fs_size in bytes from the words, as scripts/build computes it (rounded down to 512 bytes). */
export function fsSizeFromWords(vars: Readonly<Record<string, string>>): { bytes: number; warning?: string } {
  const num = (name: string): number | undefined => {
    const v = vars[name];
    if (v === undefined) return undefined;
    if (!/^[0-9]+$/.test(v)) throw new OsvbError('OSVB_USAGE', `${name}=${v}: expected a whole number of ${name === 'fs_size' ? 'bytes' : 'MiB'}`);
    return Number(v);
  };
  const mb = num('fs_size_mb');
  const given = num('fs_size');
  const raw = given ?? (mb ?? 512) * 1024 * 1024;
  const bytes = raw - (raw % SECTOR);
  if (bytes !== raw) return { bytes, warning: `fs_size=${raw} is not a multiple of 512: using ${bytes} (as scripts/build rounds it down)` };
  return { bytes };
}

export function planDisk(input: DiskPlanInput): DiskPlan {
  const kernelEnd = Math.ceil(input.loaderSize / KERNEL_ALIGN) * KERNEL_ALIGN;
  const partitionOffset = input.createDisk ? SECTOR : kernelEnd;
  const name = input.createDisk ? 'disk' : 'usr';
  const tooSmall = (need: number, what: string): OsvbError =>
    new OsvbError('OSVB_DISK_SIZE', `fs_size ${input.fsSize} bytes is too small: ${what} needs ${need} bytes`, {
      hint: `raise it, e.g. fs_size_mb=${Math.ceil(need / (1024 * 1024))} (default 512)`,
    });
  if (input.bareSize > partitionOffset) {
    throw new OsvbError('OSVB_DISK_SIZE', `the boot image is ${input.bareSize} bytes, larger than the ${partitionOffset} bytes before the partition`);
  }
  switch (input.fs) {
    case 'rofs': {
      const rofsSize = input.rofsSize ?? 0;
      const need = partitionOffset + rofsSize;
      if (need > input.fsSize) throw tooSmall(need, `the partition at ${partitionOffset} plus rofs.img (${rofsSize} bytes)`);
      return { name, kernelEnd, partitionOffset, partitionSize: rofsSize, virtualSize: input.fsSize, rofs: true, cmdline: !input.createDisk };
    }
    case 'ramfs':
    case 'virtiofs':
      // The root file system is the kernel's bootfs (ramfs) or comes from virtiofsd at run time.
      return { name, kernelEnd, partitionOffset, partitionSize: 0, virtualSize: partitionOffset, rofs: false, cmdline: !input.createDisk };
    default:
      throw new OsvbError('OSVB_DISK_UNSUPPORTED', `osvb cannot write ${name}.img for fs=${input.fs}: ${unsupportedDiskFs(input.fs) ?? ''}`, {
        hint: 'use fs=rofs (or ramfs, virtiofs), or OSv\'s scripts/build for this file system',
      });
  }
}
