/** Helpers for the engine's unit tests (not part of the built package). */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, expect } from 'vitest';
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
 * and is removed after each test.
 */
export function useTempDirs(prefix: string): () => string {
  let made: string[] = [];
  afterEach(() => {
    for (const d of made) fs.rmSync(d, { recursive: true, force: true });
    made = [];
  });
  return () => {
    const d = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), prefix)));
    made.push(d);
    return d;
  };
}
