/** Helpers for the engine's unit tests (not part of the built package). */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, afterEach, expect } from 'vitest';
import { OsvbError } from '../errors/index.js';

/** Run fn, expect it to throw an OsvbError, and return that error for further assertions. */
export function error(fn: () => unknown): OsvbError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(OsvbError);
    return e as OsvbError;
  }
  throw new Error('expected an OsvbError');
}

/**
 * A temp-directory factory for one test file: each directory is a real path (links resolved)
 * and is removed after each test, or after the whole file with `after: 'all'` (for
 * directories a describe block shares between its tests).
 */
export function useTempDirs(prefix: string, after: 'each' | 'all' = 'each'): () => string {
  let made: string[] = [];
  (after === 'each' ? afterEach : afterAll)(() => {
    for (const d of made) fs.rmSync(d, { recursive: true, force: true });
    made = [];
  });
  return () => {
    const d = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), prefix)));
    made.push(d);
    return d;
  };
}

/** An ELF executable to strip, when `strip` ($STRIP) and one are available (tests of .so stripping). */
export function strippableElf(): string | undefined {
  try {
    execFileSync(process.env['STRIP'] ?? 'strip', ['--version'], { stdio: 'ignore' });
  } catch {
    return undefined;
  }
  return ['/bin/true', '/usr/bin/true'].find((p) => fs.existsSync(p));
}

/** `n` deterministic pseudo-random bytes (the same for the same seed). */
export function bytes(n: number, seed: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  let x = seed * 2654435761 + 1;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
}
