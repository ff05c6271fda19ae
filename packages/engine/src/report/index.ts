/**
 * Typed events the engine emits; reporters (CLI, Nx executor) turn them into text.
 */
import type { OsvbError } from '../errors/index.js';

export type BuildEvent =
  | { type: 'start'; osvBase: string; buildPath: string; spec: string }
  | { type: 'evaluated'; modules: Array<{ name: string; run: string | null }>; durationMs: number; cached: boolean; reason?: string }
  | { type: 'module-start'; name: string }
  | { type: 'module-built'; name: string; durationMs: number }
  | { type: 'module-restored'; name: string; durationMs: number; /** Nothing to do: outputs were already in place. */ upToDate: boolean; /** remote: the result came from the remote cache; task: built by its own task (BuildOptions.builtElsewhere), taken as it is. */ from?: 'remote' | 'task' }
  | { type: 'module-failed'; name: string; error: OsvbError }
  | { type: 'module-skipped'; name: string; reason: string }
  | { type: 'make-output'; name: string; line: string }
  | { type: 'module-py-output'; line: string }
  | { type: 'log'; text: string }
  | { type: 'warning'; text: string }
  | { type: 'outputs-written'; files: string[] }
  /** A disk image (usr.img) was brought up to date: written anew, changed in place, or found current. */
  | { type: 'disk-written'; file: string; mode: 'full' | 'in-place' | 'unchanged'; bytesWritten: number; virtualSize: number; reason?: string; durationMs: number }
  /** The kernel make of an OSv source tree: a stage started, is running (a heartbeat), or ended. */
  | { type: 'kernel-progress'; stage: 'config' | 'stage1' | 'link' | 'full'; state: 'start' | 'running' | 'done'; elapsedMs: number; lines: number; compiles: number }
  | { type: 'kernel-done'; status: 'up-to-date' | 'restored' | 'built'; key: string; durationMs: number; fromRemote?: boolean; build?: string; reason?: string }
  /** Something the user should see once, that is not a problem (e.g. how to get a usr.img). */
  | { type: 'notice'; text: string }
  | { type: 'done'; ok: boolean; durationMs: number; modules: number; built: number; restored: number; /** Of `restored`, outputs already in place. */ upToDate?: number; failed: number; evaluationCached: boolean; /** Of `restored`, from the remote cache. */ fromRemote?: number };

export type Reporter = (event: BuildEvent) => void;

export const silentReporter: Reporter = () => {};
export { textReporter, jsonReporter, liveTerminal, startLine, describeSpec, type TextReporterOptions } from './text.js';
