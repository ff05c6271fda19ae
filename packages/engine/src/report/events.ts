/** The events the engine emits while it builds (kept apart from the reporters that read them). */
import type { OsvbError } from '../errors/index.js';

export type BuildEvent =
  | { type: 'start'; osvBase: string; buildPath: string; spec: string }
  | { type: 'evaluated'; modules: Array<{ name: string; run: string | null }>; durationMs: number; cached: boolean; reason?: string }
  /** How many modules have a Makefile: each is made, restored or found up to date (the progress total). */
  | { type: 'modules-planned'; withMakefile: number }
  | { type: 'module-start'; name: string }
  | { type: 'module-built'; name: string; durationMs: number }
  | { type: 'module-restored'; name: string; durationMs: number; /** Nothing to do: outputs were already in place. */ upToDate: boolean; /** remote: the result came from the remote cache; task: built by its own task (BuildOptions.builtElsewhere), taken as it is. */ from?: 'remote' | 'task'; /** Set when make was not run by early cutoff: why. */ cutoff?: string }
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
  /** What the build leaves in the build path, for the closing lines (sent just before `done`). */
  | { type: 'outputs'; buildPath: string; files: BuildOutputFile[] }
  | { type: 'done'; ok: boolean; durationMs: number; modules: number; built: number; restored: number; /** Of `restored`, outputs already in place. */ upToDate?: number; failed: number; evaluationCached: boolean; /** Of `restored`, from the remote cache. */ fromRemote?: number };

export type Reporter = (event: BuildEvent) => void;


/** One file a build leaves behind, as the closing lines show it. */
export interface BuildOutputFile {
  /** Absolute path. */
  path: string;
  /** Its size; none for a directory. */
  bytes?: number;
  /** What this build did to it. */
  state: 'written' | 'updated' | 'unchanged';
  /** e.g. `qcow2, 64 MiB disk`. */
  detail?: string;
}
