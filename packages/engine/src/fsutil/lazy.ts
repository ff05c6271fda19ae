/**
 * Node built-ins that only slow paths need, loaded on first use: a no-op build should not pay
 * for compiling child_process, readline or crypto at start-up.
 */
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

export function lazyBuiltin<T>(id: string): () => T {
  let mod: T | undefined;
  return () => (mod ??= require(id) as T);
}

export const childProcess = lazyBuiltin<typeof import('node:child_process')>('node:child_process');
export const readlineModule = lazyBuiltin<typeof import('node:readline')>('node:readline');

let counter = 0;
/** A name unique across processes (pid) and within one (counter + time). */
export function uniqueSuffix(): string {
  counter = (counter + 1) % 0x7fffffff;
  return `${process.pid}-${Date.now().toString(36)}-${counter.toString(36)}`;
}
