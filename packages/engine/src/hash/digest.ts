/**
 * Digests: xxh64 (xxhash-wasm) as 16 hex characters. Keys are digests of canonical JSON
 * (sorted keys), so a key is the same for the same inputs on any machine.
 */
import * as fs from 'node:fs';
import xxhash from 'xxhash-wasm';

export type Digest = string & { readonly __digest: unique symbol };

type Hasher = Awaited<ReturnType<typeof xxhash>>;
let hasher: Hasher | undefined;

/** Load the wasm hasher once; every other function here needs it. */
export async function initHashing(): Promise<void> {
  hasher ??= await xxhash();
}

function h(): Hasher {
  if (!hasher) throw new Error('initHashing() was not awaited');
  return hasher;
}

function hex(n: bigint): Digest {
  return n.toString(16).padStart(16, '0') as Digest;
}

export function digestBytes(data: Uint8Array): Digest {
  return hex(h().h64Raw(data));
}

export function digestString(text: string): Digest {
  return hex(h().h64Raw(Buffer.from(text, 'utf8')));
}

/** JSON with object keys sorted at every level: the stable text a key is computed from. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) => {
    if (v && typeof v === 'object' && !Array.isArray(v)) {
      const sorted: Record<string, unknown> = {};
      for (const k of Object.keys(v as Record<string, unknown>).sort()) sorted[k] = (v as Record<string, unknown>)[k];
      return sorted;
    }
    return v;
  });
}

export function digestValue(value: unknown): Digest {
  return digestString(canonicalJson(value));
}

const CHUNK = 1 << 20;

/** Digest of a file's content, read in chunks (bounded memory for any size). */
export function digestFile(file: string): Digest {
  const fd = fs.openSync(file, 'r');
  try {
    const st = fs.fstatSync(fd);
    if (st.size <= CHUNK) return digestBytes(fs.readFileSync(fd));
    const state = h().create64();
    const buf = Buffer.allocUnsafe(CHUNK);
    for (;;) {
      const n = fs.readSync(fd, buf, 0, CHUNK, null);
      if (n <= 0) break;
      state.update(n === CHUNK ? buf : buf.subarray(0, n));
    }
    return hex(state.digest());
  } finally {
    fs.closeSync(fd);
  }
}
