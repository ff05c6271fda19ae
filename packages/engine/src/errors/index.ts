/**
 * One error type for everything a user can act on. The CLI prints `message` and `code`
 * (never a stack unless --verbose) and maps `exitCode` to the process status.
 */
export type OsvbErrorCode =
  | 'OSVB_USAGE'
  | 'OSVB_CONFIG_SYNTAX'
  | 'OSVB_CONFIG_SCHEMA'
  | 'OSVB_CONFIG_MISSING'
  | 'OSVB_MODULE_NOT_FOUND'
  | 'OSVB_MODULE_PATH_MISSING'
  | 'OSVB_MODULE_FETCH'
  | 'OSVB_IMAGE_SPEC'
  | 'OSVB_RECURSIVE_REQUIRE'
  | 'OSVB_RUN_CONFIG_CONFLICT'
  | 'OSVB_ATTRIBUTE_NOT_SET'
  | 'OSVB_PROVIDES_CONFLICT'
  | 'OSVB_UNKNOWN_APP_TYPE'
  | 'OSVB_MODULE_PY'
  | 'OSVB_MODULE_EXIT'
  | 'OSVB_FILEMAP'
  | 'OSVB_PYTHON_MISSING'
  | 'OSVB_WORKER'
  | 'OSVB_MANIFEST_SYNTAX'
  | 'OSVB_MANIFEST_UNDEFINED_VAR'
  | 'OSVB_MANIFEST_DEFINE'
  | 'OSVB_MANIFEST_ENCODING'
  | 'OSVB_SYMLINK'
  | 'OSVB_HOST_MISSING'
  | 'OSVB_BOOTFS_NAME'
  | 'OSVB_EXPORT_PATH'
  | 'OSVB_EXPORT_CONFLICT'
  | 'OSVB_EXPORT_LINK'
  | 'OSVB_OCI'
  | 'OSVB_MAKE_FAILED'
  | 'OSVB_MAKE_MISSING'
  | 'OSVB_UNKNOWN_FS'
  | 'OSVB_IMAGE_INPUT'
  | 'OSVB_ROFS_CORRUPT'
  | 'OSVB_ROFS_UNSAFE'
  | 'OSVB_DISK_SIZE'
  | 'OSVB_DISK_CMDLINE'
  | 'OSVB_DISK_UNSUPPORTED'
  | 'OSVB_KERNEL_MISSING'
  | 'OSVB_KERNEL_INVALID'
  | 'OSVB_IO'
  | 'OSVB_INTERRUPTED'
  | 'OSVB_QEMU_MISSING'
  | 'OSVB_KVM_UNAVAILABLE'
  | 'OSVB_RUN_IMAGE'
  | 'OSVB_RUN_FAILED'
  | 'OSVB_RUN_TIMEOUT'
  | 'OSVB_INTERNAL';

/** Exit status: 1 = the build itself failed (make, a module.py at run time), 2 = bad input. */
const BUILD_FAILURES: ReadonlySet<OsvbErrorCode> = new Set([
  'OSVB_MAKE_FAILED',
  'OSVB_MODULE_EXIT',
  'OSVB_MODULE_FETCH',
  'OSVB_WORKER',
  'OSVB_IO',
  'OSVB_INTERRUPTED',
  'OSVB_RUN_FAILED',
  'OSVB_RUN_TIMEOUT',
  'OSVB_INTERNAL',
]);

export interface SourceLocation {
  file: string;
  line?: number;
  column?: number;
}

export interface OsvbErrorOptions {
  location?: SourceLocation;
  /** Extra lines shown under the message (e.g. the tail of a make log). */
  details?: string[];
  /** A hint telling the user what to do. */
  hint?: string;
  cause?: unknown;
  /** Overrides the code's exit status (a permission problem is the user's to fix: 2). */
  exitCode?: 1 | 2;
}

export class OsvbError extends Error {
  readonly code: OsvbErrorCode;
  readonly location: SourceLocation | undefined;
  readonly details: string[];
  readonly hint: string | undefined;
  private readonly exitOverride: 1 | 2 | undefined;

  constructor(code: OsvbErrorCode, message: string, options: OsvbErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'OsvbError';
    this.code = code;
    this.location = options.location;
    this.details = options.details ?? [];
    this.hint = options.hint;
    this.exitOverride = options.exitCode;
  }

  get exitCode(): 1 | 2 {
    return this.exitOverride ?? (BUILD_FAILURES.has(this.code) ? 1 : 2);
  }

  /** `file:line:col: message` (the form editors and CI annotators understand). */
  get where(): string {
    const loc = this.location;
    if (!loc) return '';
    let s = loc.file;
    if (loc.line !== undefined) s += `:${loc.line}`;
    if (loc.line !== undefined && loc.column !== undefined) s += `:${loc.column}`;
    return s;
  }

  format(): string {
    const head = this.where ? `${this.where}: ${this.message}` : this.message;
    const lines = [`error[${this.code}]: ${head}`];
    for (const d of this.details) lines.push(`  ${d}`);
    if (this.hint) lines.push(`hint: ${this.hint}`);
    return lines.join('\n');
  }
}

export function isOsvbError(e: unknown): e is OsvbError {
  return e instanceof OsvbError;
}

/** 1-based line and column of a character offset in `text`. */
export function lineColumnAt(text: string, offset: number): { line: number; column: number } {
  let line = 1;
  let lineStart = 0;
  for (let i = 0; i < offset && i < text.length; i++) {
    if (text.charCodeAt(i) === 10) {
      line++;
      lineStart = i + 1;
    }
  }
  return { line, column: offset - lineStart + 1 };
}

const SYSCALL_VERBS: Record<string, string> = {
  open: 'open',
  mkdir: 'create the directory',
  rename: 'rename into',
  unlink: 'remove',
  rmdir: 'remove',
  write: 'write',
  copyfile: 'copy to',
  scandir: 'list',
  symlink: 'create the link',
  chmod: 'change the mode of',
  utime: 'set the times of',
};

const IO_HINTS: Record<string, string> = {
  EACCES: 'check the permissions of that path; osvb writes its cache in <base>/.osvb/cache (--cache-dir or OSVB_CACHE_DIR moves it) and its outputs in the build path (--build-path)',
  EPERM: 'check the permissions of that path; osvb writes its cache in <base>/.osvb/cache (--cache-dir or OSVB_CACHE_DIR moves it) and its outputs in the build path (--build-path)',
  EROFS: 'that file system is read-only: point --cache-dir and --build-path somewhere writable',
  ENOSPC: 'the disk is full: free space, or trim the cache (osvb cache gc --max-size 2G)',
  EDQUOT: 'the disk quota is used up: free space, or trim the cache (osvb cache gc --max-size 2G)',
};

/**
 * Any error as the error a user sees: an OsvbError as it is; a file-system error Node raised
 * (EACCES on a read-only cache, ENOSPC, …) as OSVB_IO naming the operation and the path, with a
 * hint — never "internal error"; anything else as OSVB_INTERNAL.
 */
export function toOsvbError(e: unknown): OsvbError {
  if (isOsvbError(e)) return e;
  const sys = e as NodeJS.ErrnoException & { dest?: string };
  if (sys && typeof sys.code === 'string' && typeof sys.syscall === 'string' && IO_HINTS[sys.code]) {
    const verb = SYSCALL_VERBS[sys.syscall] ?? sys.syscall;
    const where = sys.dest ? `${sys.path} → ${sys.dest}` : (sys.path ?? 'a file');
    return new OsvbError('OSVB_IO', `cannot ${verb} ${where}: ${sys.code}`, { hint: IO_HINTS[sys.code], cause: e, exitCode: sys.code === 'ENOSPC' || sys.code === 'EDQUOT' ? 1 : 2 });
  }
  return new OsvbError('OSVB_INTERNAL', `internal error: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
}
