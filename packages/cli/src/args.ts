/**
 * Command-line parsing. Options go through Node's own `util.parseArgs` (strict: an unknown
 * option is an error naming it); scripts/build's words (`image=…`, `-j4`, `-j 4`,
 * `--append-manifest`, …) are taken out first, because their forms are not getopt forms.
 */
import { parseArgs } from 'node:util';
import { OsvbError, remoteCacheConfig, type BuildOptions, type ProgressMode, type RemoteCacheConfig } from '@osv-build/engine';

const WORD_FLAGS = new Set(['--append-manifest', '--create-disk', '--create-zfs-disk', '--use-openzfs']);

export const BUILD_OPTIONS = {
  'osv-base': { type: 'string' },
  'build-path': { type: 'string' },
  compat: { type: 'string' },
  json: { type: 'boolean' },
  'keep-going': { type: 'boolean' },
  verbose: { type: 'boolean', short: 'v' },
  'libgcc-s-dir': { type: 'string' },
  bootfs: { type: 'boolean' },
  'cache-dir': { type: 'string' },
  oci: { type: 'string' },
  'require-image': { type: 'boolean' },
  'remote-cache': { type: 'string' },
  'remote-cache-mode': { type: 'string' },
  kernel: { type: 'string' },
  'image-format': { type: 'string' },
  progress: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

/** `osvb watch` takes the build options plus these. */
export const WATCH_OPTIONS = {
  ...BUILD_OPTIONS,
  debounce: { type: 'string' },
  // --run: boot usr.img after each successful build (osvb run's VM options, long forms only).
  run: { type: 'boolean' },
  memsize: { type: 'string' },
  vcpus: { type: 'string' },
  forward: { type: 'string', multiple: true },
  accel: { type: 'string' },
} as const;

export interface ParsedBuildArgs {
  words: string[];
  osvBase: string | undefined;
  buildPath: string | undefined;
  compat: 'default' | 'osv';
  json: boolean;
  keepGoing: boolean;
  verbose: boolean;
  libgccSDir: string | undefined;
  bootfs: boolean;
  cacheDir: string | undefined;
  ociDir: string | undefined;
  requireImage: boolean;
  help: boolean;
  /** `osvb watch --debounce MS`. */
  debounceMs: number | undefined;
  /** `osvb watch --run [--memsize M] [--vcpus N] [--forward R]… [--accel A]`. */
  run: { memory?: string; cpus?: number; forwards?: string[]; accel?: 'auto' | 'kvm' | 'tcg' } | undefined;
  /** The remote cache from --remote-cache/--remote-cache-mode and OSVB_REMOTE_CACHE_* (null: none). */
  remoteCache: RemoteCacheConfig | null;
  /** `--kernel DIR|FILE`: a prebuilt kernel. */
  kernel: string | undefined;
  /** `--image-format qcow2|raw`. */
  imageFormat: 'qcow2' | 'raw' | undefined;
  /** `--progress=auto|tty|plain|none`. */
  progress: ProgressMode;
}

const PROGRESS_MODES: readonly ProgressMode[] = ['auto', 'tty', 'plain', 'none'];

export function parseBuildArgs(argv: readonly string[], command: 'build' | 'watch' = 'build'): ParsedBuildArgs {
  const words: string[] = [];
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (WORD_FLAGS.has(a) || /^-j[0-9]*$/.test(a)) {
      words.push(a);
      if (a === '-j' && /^[0-9]+$/.test(argv[i + 1] ?? '')) words.push(argv[++i] as string);
    } else {
      rest.push(a);
    }
  }
  let parsed;
  try {
    parsed = parseArgs({ args: rest, options: command === 'watch' ? WATCH_OPTIONS : BUILD_OPTIONS, allowPositionals: true, strict: true });
  } catch (e) {
    throw new OsvbError('OSVB_USAGE', (e as Error).message.replace(/\. To specify a positional.*$/s, ''), { hint: 'see osvb --help' });
  }
  const v = parsed.values as typeof parsed.values & { debounce?: string; run?: boolean; memsize?: string; vcpus?: string; forward?: string[]; accel?: string };
  let run: ParsedBuildArgs['run'];
  if (v.run) {
    const cpus = v.vcpus === undefined ? undefined : Number(v.vcpus);
    if (cpus !== undefined && (!Number.isInteger(cpus) || cpus < 1)) throw new OsvbError('OSVB_USAGE', `--vcpus ${v.vcpus}: expected a number of vCPUs`);
    if (v.accel !== undefined && !['auto', 'kvm', 'tcg'].includes(v.accel)) throw new OsvbError('OSVB_USAGE', `--accel ${v.accel}: expected auto, kvm or tcg`);
    run = {
      ...(v.memsize ? { memory: v.memsize } : {}),
      ...(cpus ? { cpus } : {}),
      ...(v.forward ? { forwards: v.forward } : {}),
      ...(v.accel ? { accel: v.accel as 'auto' | 'kvm' | 'tcg' } : {}),
    };
  } else if (v.memsize !== undefined || v.vcpus !== undefined || v.forward !== undefined || v.accel !== undefined) {
    throw new OsvbError('OSVB_USAGE', '--memsize, --vcpus, --forward and --accel set up the VM of --run', { hint: 'osvb watch --run --vcpus 1 …' });
  }
  let debounceMs: number | undefined;
  if (v.debounce !== undefined) {
    debounceMs = Number(v.debounce);
    if (!Number.isInteger(debounceMs) || debounceMs < 0 || debounceMs > 60_000) throw new OsvbError('OSVB_USAGE', `--debounce ${v.debounce}: expected milliseconds, 0 to 60000`);
  }
  const imageFormat = v['image-format'];
  if (imageFormat !== undefined && imageFormat !== 'qcow2' && imageFormat !== 'raw') {
    throw new OsvbError('OSVB_USAGE', `--image-format ${imageFormat}: expected qcow2 (usr.img, the default) or raw (usr.raw)`);
  }
  const progress = (v.progress ?? 'auto') as ProgressMode;
  if (!PROGRESS_MODES.includes(progress)) {
    throw new OsvbError('OSVB_USAGE', `--progress=${v.progress}: expected auto, tty, plain or none`, { hint: 'auto: a live line on a terminal, plain lines otherwise' });
  }
  const compat = v.compat ?? 'default';
  if (compat !== 'osv' && compat !== 'default') {
    throw new OsvbError('OSVB_USAGE', `--compat=${compat}: expected --compat=osv (or --compat=default)`);
  }
  // Words keep their relative order: parseArgs positionals, with the -j/flag words re-inserted.
  const positionals = parsed.positionals;
  const ordered = argv.filter((a) => words.includes(a) || positionals.includes(a));
  return {
    words: ordered,
    osvBase: v['osv-base'],
    buildPath: v['build-path'],
    compat,
    json: v.json ?? false,
    keepGoing: v['keep-going'] ?? false,
    verbose: v.verbose ?? false,
    libgccSDir: v['libgcc-s-dir'],
    bootfs: v.bootfs ?? false,
    cacheDir: v['cache-dir'],
    ociDir: v.oci,
    requireImage: v['require-image'] ?? false,
    help: v.help ?? false,
    debounceMs,
    run,
    remoteCache: remoteFrom(v['remote-cache'], v['remote-cache-mode']),
    kernel: v.kernel,
    imageFormat,
    progress,
  };
}

/** The engine options that `osvb build`, `manifest` and `watch` take alike. */
export function engineOptions(args: ParsedBuildArgs): Omit<BuildOptions, 'reporter' | 'signal'> {
  return {
    words: args.words,
    osvBase: args.osvBase,
    buildPath: args.buildPath,
    compat: args.compat,
    keepGoing: args.keepGoing,
    libgccSDir: args.libgccSDir,
    cacheDir: args.cacheDir,
    ...(args.ociDir ? { ociDir: args.ociDir } : {}),
    requireImage: args.requireImage,
    remoteCache: args.remoteCache,
    repeatWarnings: args.verbose,
    ...(args.kernel !== undefined ? { kernel: args.kernel } : {}),
    ...(args.imageFormat ? { imageFormat: args.imageFormat } : {}),
  };
}

function remoteFrom(url: string | undefined, mode: string | undefined): RemoteCacheConfig | null {
  const c = remoteCacheConfig(process.env, { url, mode });
  if (c && 'error' in c) throw new OsvbError('OSVB_USAGE', c.error, { hint: 'e.g. --remote-cache http://127.0.0.1:3000 --remote-cache-mode read' });
  if (!c && mode !== undefined) throw new OsvbError('OSVB_USAGE', '--remote-cache-mode needs a remote cache: --remote-cache URL or OSVB_REMOTE_CACHE_URL');
  return c ?? null;
}

/** `500M`, `2G`, `1.5GB`, `1048576` → bytes. */
export function parseSize(text: string): number {
  const m = /^([0-9]+(?:\.[0-9]+)?)\s*([kmgt]?)(i?b)?$/i.exec(text.trim());
  if (!m) throw new OsvbError('OSVB_USAGE', `"${text}" is not a size`, { hint: 'use a number of bytes or a suffix: 500M, 2G' });
  const unit = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 }[(m[2] ?? '').toLowerCase() as '' | 'k' | 'm' | 'g' | 't'];
  return Math.floor(Number(m[1]) * unit);
}
