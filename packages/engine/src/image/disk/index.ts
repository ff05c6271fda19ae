export { chs, partitionEntry, cmdlinePatch, checkLoader, CMDLINE_OFFSET, CMDLINE_AREA, type BytePatch } from './mbr.js';
export { planDisk, fsSizeFromWords, unsupportedDiskFs, DISK_FILE_SYSTEMS, DEFAULT_FS_SIZE, KERNEL_ALIGN, type DiskFs, type DiskPlan, type DiskPlanInput } from './plan.js';
export { RawDisk, type DiskTarget } from './raw.js';
export { Qcow2Image, QCOW2_CLUSTER_SIZE, type Qcow2Backing } from './qcow2.js';
export { writeDiskImage, readCheckedLoader, diskImagePath, diskRecordPath, fileSignature, type DiskFormat, type DiskWriteInput, type DiskWriteResult } from './writer.js';
