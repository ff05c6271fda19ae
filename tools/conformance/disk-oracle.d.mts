// Types for disk-oracle.mjs (used from test/conformance/disk.test.ts).

/** Write the stand-in for OSv's scripts/disk.bin: 512 bytes, only the boot signature. */
export function syntheticDiskBin(file: string): void;

/** scripts/build's disk commands for fs=rofs|ramfs|virtiofs, as a bash script run in the build directory. */
export function osvDiskScript(opts: { scripts: string; fs: string; fsSize?: number; libgccDir?: string; createDisk?: boolean; diskBin?: string }): string;

export function rawDigest(image: string): { sha256: string; size: number };
