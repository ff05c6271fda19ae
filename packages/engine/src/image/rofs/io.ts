/** Small I/O and hashing helpers the ROFS writer and its layout file share. */
import * as fs from 'node:fs';
import xxhash from 'xxhash-wasm';

export type Hasher = Awaited<ReturnType<typeof xxhash>>;
let hasherPromise: Promise<Hasher> | undefined;
export function getHasher(): Promise<Hasher> {
  hasherPromise ??= xxhash();
  return hasherPromise;
}

/** A 64-bit digest as 16 hex digits. */
export function hex(n: bigint): string {
  return n.toString(16).padStart(16, '0');
}

/**
 * Read up to `want + probe` bytes at `pos`, stopping as soon as at least `want` arrived. A regular
 * file returns short only at its end, so asking for one extra byte detects growth without a
 * second read in the common case.
 */
export function readAtLeast(fd: number, buf: Buffer, off: number, want: number, probe: 0 | 1, pos: number): number {
  let got = 0;
  const ask = want + probe;
  while (got < want) {
    const n = fs.readSync(fd, buf, off + got, ask - got, pos + got);
    if (n === 0) break;
    got += n;
  }
  return got;
}

export function removeQuietly(p: string): void {
  try {
    fs.rmSync(p, { force: true });
  } catch {
    /* best effort */
  }
}
