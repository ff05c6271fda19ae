export {
  writeBootfs,
  planBootfs,
  encodeBootfsHeader,
  bootfsDependsText,
  BOOTFS_RECORD_SIZE,
  BOOTFS_MAX_NAME,
  type BootfsOptions,
  type BootfsPlan,
  type BootfsRecord,
  type BootfsResult,
} from './bootfs.js';
