/** Helpers for the engine's unit tests (not part of the built package). */
import { expect } from 'vitest';
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
