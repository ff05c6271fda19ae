/** A failed copy: file `index` in the list; kind 0 open/stat, 1 read, 2 more data than its size, 3 less (`got` bytes), 4 write, 5 not a regular file. */
export interface CopyFailure {
  index: number;
  kind: 0 | 1 | 2 | 3 | 4 | 5;
  /** errno (positive), 0 when the kind says it all. */
  errno: number;
  got: number;
}

/** A job running on background threads. */
export interface JobHandle {
  readonly __osvbJobHandle: unique symbol;
}

export interface NativeCopier {
  /**
   * Copy `count` files (NUL-terminated UTF-8 paths in `paths`) into `outFd`, file i at `start` +
   * the sum of the earlier files' sizes each rounded up to 512. `sizes`: the size, or -1 where
   * the file must be stat'ed first. Everything runs on `threads` background threads. Flags: 1,
   * never copy_file_range; 2, in place: the area holds old data, so each file's padding is
   * written as zeros too.
   */
  copyStart(paths: Buffer, count: number, sizes: Float64Array, hash: boolean, outFd: number, start: number, threads: number, flags: number): JobHandle;
  /** Wait until every size is known (writes them to `sizes`): the data bytes (padded), or the first file that could not be stat'ed. */
  copySizes(handle: JobHandle, sizes: Float64Array): number | CopyFailure;
  /**
   * Wait for the copy: the data bytes written (padded), or the first failure in file order;
   * undefined when `cancel` stopped it. With hashing, each file's XXH64 (seed 0) goes to `digests`.
   */
  copyWait(handle: JobHandle, digests: BigUint64Array | null, cancel: boolean): number | CopyFailure | undefined;
  /**
   * stat(2) every path on `threads` background threads. Flags: 1, every file type is a result,
   * and so is a failed stat (no failure is returned); 2, lstat (links are not followed).
   */
  statStart(paths: Buffer, count: number, threads: number, flags?: number): JobHandle;
  /**
   * Wait for statStart: `out` (count × 8) gets size (-1 where the stat failed), mtime s, ns,
   * ctime s, ns, inode, device, mode (-errno where the stat failed, with flag 1) per path;
   * returns the first failure in file order (kind 0: cannot stat, 5: not a regular file), or
   * undefined.
   */
  statWait(handle: JobHandle, out: Float64Array): CopyFailure | undefined;
  /** XXH64 (seed 0) of the bytes: for tests against xxhash-wasm. */
  xxh64(data: Uint8Array): bigint;
}

export const native: NativeCopier | null;
