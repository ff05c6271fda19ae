/** Plain records returned by the evaluation worker (see python/osvb_worker.py). */

export interface CallSite {
  file: string;
  line: number;
  /** Where Python gives one (a SyntaxError). */
  column?: number;
}

export interface FileMapFilter {
  pattern: string;
  exclude: boolean;
}

export interface FileMapMapping {
  host: string;
  guest: string | null;
  filters: FileMapFilter[];
  allowSymlink: boolean;
  site: CallSite | null;
}

export interface FileMapLink {
  guest: string;
  target: string | null;
  site: CallSite | null;
}

export interface FileMapRecord {
  mappings: FileMapMapping[];
  links: FileMapLink[];
}

export interface EvaluatedModule {
  name: string;
  /**
   * Where the module is: MODULE_DIR as module.py saw it, joined to the OSv base by the pipeline
   * when it is relative (OSv runs module.py and `make module` with cwd = OSV_BASE).
   */
  dir: string;
  /** MODULE_DIR as written, when `dir` had to be joined to the OSv base (manifests substitute this text). */
  moduleDirText?: string;
  /** Run-table entry (`*`, `none`, or a configuration name), if the module has one. */
  run: string | null;
  hasModulePy: boolean;
  /** Names this module's module.py required, in call order. */
  requires: string[];
  usrFiles: FileMapRecord | null;
  bootfsFiles: FileMapRecord | null;
}

export type AppRecord =
  | { kind: 'run'; launcher: string }
  | { kind: 'init'; sequence: number; cmdline: string }
  | { kind: 'custom'; launcher: string; usr: string; bootfs: string }
  | { kind: 'jvm'; launcher: string; javamains: string };

export interface WorkerErrorRecord {
  code: string;
  message: string;
  hint?: string;
  details?: string[];
  location?: CallSite;
  loading?: string[];
}

export interface EvaluationResult {
  /** Required modules in OSv's order (post-order of first require). */
  modules: EvaluatedModule[];
  apps: AppRecord[] | null;
  /** OSv fails this late (after `make module`); the engine re-raises it after the builds. */
  appsError: WorkerErrorRecord | null;
  /** Names the image config required directly. */
  imageRequires: string[];
  /** Every module.py / image config executed. */
  userFiles: string[];
  /** What the evaluation looked at (present on a fresh evaluation, not in cached records). */
  reads?: EvaluationReads;
  /** What a later evaluation needs to replay the modules that ran (fresh evaluations only). */
  partial?: PartialRecords;
}

/** How a module.py's run changed the evaluation, and its attributes (opaque to the engine). */
export interface ModuleReplayRecord {
  replayable: boolean;
  events: unknown[];
  attrs: unknown;
}

export interface PartialRecords {
  /** Modules replayed from their records instead of running their module.py. */
  replayed: string[];
  /** Modules whose module.py ran. */
  modules: Record<string, ModuleReplayRecord>;
  /** Why no module of this evaluation may be replayed next time (null: they may). */
  noPartial: string | null;
  /** Why a partial evaluation was abandoned for a full one. */
  fullReason?: string;
}

/** What the engine lets the worker replay: the module's directory and its record (with its FileMaps). */
export interface ReplayInput {
  dir: string;
  record: { events: unknown[]; attrs: unknown; usrFiles: FileMapRecord | null; bootfsFiles: FileMapRecord | null };
}

/** Paths and variables module.py code looked at, as the worker reports them. */
export interface ModuleReads {
  files: string[];
  dirs: string[];
  /** `S:path` (followed stat) or `L:path` (lstat). */
  stats: string[];
  env: string[];
  envAll: boolean;
}

export interface EvaluationReads extends ModuleReads {
  /** The reads each module.py made while it ran (the union is in the fields above). */
  byModule?: Record<string, ModuleReads>;
  /** Reads made outside any module.py (the image config, the worker). */
  outside?: ModuleReads;
  /** Why the evaluation must not be cached (it wrote files, ran a shell command), if so. */
  uncacheable: string[];
}

export type EvaluationSpec =
  | { kind: 'image'; file: string }
  | { kind: 'modules'; items: Array<{ name: string; config: string | null }> };

export interface EvaluateParams {
  osvBase: string;
  buildPath: string;
  env: Record<string, string>;
  spec: EvaluationSpec;
  /** Modules that may be replayed instead of run (partial evaluation). */
  replay?: Record<string, ReplayInput>;
}
