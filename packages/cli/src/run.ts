/**
 * `osvb run`: boot an OSv image under QEMU (the common subset of OSv's scripts/run.py). The
 * serial console goes to stdout, osvb's own notices to stderr.
 */
import { spawnSync } from 'node:child_process';
import { parseArgs } from 'node:util';
import { defaultRunImage, OsvbError, runVm, type BlockCache, type VmOptions } from '@osv-build/engine';
import { RUN_HELP } from './help.js';

const RUN_OPTIONS = {
  image: { type: 'string', short: 'i' },
  execute: { type: 'string', short: 'e' },
  memsize: { type: 'string', short: 'm' },
  vcpus: { type: 'string', short: 'c' },
  forward: { type: 'string', multiple: true },
  'no-network': { type: 'boolean' },
  timeout: { type: 'string' },
  accel: { type: 'string' },
  'qemu-path': { type: 'string' },
  'block-device-cache': { type: 'string' },
  'pass-args': { type: 'string', multiple: true },
  'osv-base': { type: 'string' },
  'build-path': { type: 'string' },
  verbose: { type: 'boolean', short: 'v' },
  help: { type: 'boolean', short: 'h' },
} as const;

export interface ParsedRunArgs {
  image: string | undefined;
  words: string[];
  osvBase: string | undefined;
  buildPath: string | undefined;
  vm: Omit<VmOptions, 'image'>;
  verbose: boolean;
  help: boolean;
}

function usage(message: string, hint = 'see osvb run --help'): OsvbError {
  return new OsvbError('OSVB_USAGE', message, { hint });
}

/** `osvb run` arguments; everything after `--` goes to QEMU as it is. */
export function parseRunArgs(argv: readonly string[]): ParsedRunArgs {
  const dashes = argv.indexOf('--');
  const own = dashes < 0 ? [...argv] : argv.slice(0, dashes);
  const extra = dashes < 0 ? [] : argv.slice(dashes + 1);
  let parsed;
  try {
    parsed = parseArgs({ args: own, options: RUN_OPTIONS, allowPositionals: true, strict: true });
  } catch (e) {
    throw usage((e as Error).message.replace(/\. To specify a positional.*$/s, ''));
  }
  const v = parsed.values;
  const words = parsed.positionals.filter((p) => p.includes('='));
  const images = parsed.positionals.filter((p) => !p.includes('='));
  if (v.image !== undefined) images.unshift(v.image);
  if (images.length > 1) throw usage(`one image at a time: ${images.join(', ')}`);
  const image = images[0];
  if (image !== undefined && (words.length || v['osv-base'] !== undefined || v['build-path'] !== undefined)) {
    const what = words[0] ?? (v['osv-base'] !== undefined ? '--osv-base' : '--build-path');
    throw usage(`${what} chooses the default image; it has no effect with an image named (${image})`, 'name the image, or give the build words and options that find it, not both');
  }
  const number = (flag: string, text: string | undefined): number | undefined => {
    if (text === undefined) return undefined;
    const n = Number(text);
    if (text.trim() === '' || !Number.isFinite(n)) throw usage(`${flag} ${text}: not a number`);
    return n;
  };
  const accel = v.accel;
  if (accel !== undefined && accel !== 'auto' && accel !== 'kvm' && accel !== 'tcg') throw usage(`--accel ${accel}: expected auto, kvm or tcg`);
  const vm: Omit<VmOptions, 'image'> = {
    ...(v.execute !== undefined ? { execute: v.execute } : {}),
    ...(v.memsize !== undefined ? { memory: v.memsize } : {}),
    ...(v.vcpus !== undefined ? { cpus: number('-c', v.vcpus) as number } : {}),
    ...(v.forward ? { forwards: v.forward } : {}),
    ...(v['no-network'] ? { networking: false } : {}),
    ...(v.timeout !== undefined ? { timeoutSeconds: number('--timeout', v.timeout) as number } : {}),
    ...(accel !== undefined ? { accel } : {}),
    ...(v['qemu-path'] !== undefined ? { qemu: v['qemu-path'] } : {}),
    ...(v['block-device-cache'] !== undefined ? { blockCache: v['block-device-cache'] as BlockCache } : {}),
    extraArgs: [...(v['pass-args'] ?? []).flatMap((a) => a.split(/\s+/).filter(Boolean)), ...extra],
  };
  return {
    image,
    words,
    osvBase: v['osv-base'],
    buildPath: v['build-path'],
    vm,
    verbose: v.verbose ?? false,
    help: v.help ?? false,
  };
}

/** run.py's stty save/restore: QEMU puts a terminal on its stdin into raw mode. */
function sttySave(): string | undefined {
  const r = spawnSync('stty', ['-g'], { stdio: ['inherit', 'pipe', 'ignore'], encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

function sttyRestore(saved: string | undefined): void {
  if (saved) spawnSync('stty', [saved], { stdio: ['inherit', 'ignore', 'ignore'] });
}

export async function runRun(argv: string[]): Promise<number> {
  const args = parseRunArgs(argv);
  if (args.help) {
    process.stdout.write(RUN_HELP);
    return 0;
  }
  const image =
    args.image ??
    defaultRunImage({
      words: args.words,
      ...(args.osvBase !== undefined ? { osvBase: args.osvBase } : {}),
      ...(args.buildPath !== undefined ? { buildPath: args.buildPath } : {}),
    });
  const note = (text: string): void => {
    process.stderr.write(`osvb: ${text}\n`);
  };
  const controller = new AbortController();
  let signalled: NodeJS.Signals | undefined;
  const onSignal = (sig: NodeJS.Signals): void => {
    signalled ??= sig;
    controller.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  // Whoever read the console went away (a closed pipe): stop the VM.
  let outputGone = false;
  const onOutputError = (e: NodeJS.ErrnoException): void => {
    if (e.code !== 'EPIPE') return;
    outputGone = true;
    controller.abort();
  };
  process.stdout.on('error', onOutputError);
  const interactive = process.stdin.isTTY === true;
  const stty = interactive ? sttySave() : undefined;
  try {
    const result = await runVm({
      ...args.vm,
      image,
      signal: controller.signal,
      stdin: interactive ? 'inherit' : 'ignore',
      onOutput: (chunk) => {
        if (!outputGone) process.stdout.write(chunk);
      },
      onStderr: (chunk) => process.stderr.write(chunk),
      onNotice: (n) => {
        if (n.kind === 'accel' || n.kind === 'cmdline' || args.verbose) note(n.text);
      },
    });
    if (args.verbose) note(`${result.status} after ${(result.durationMs / 1000).toFixed(1)} s (QEMU exit status ${result.qemuExitCode ?? 'none'})`);
    if (result.error) throw result.error;
    if (result.status === 'stopped' && signalled === 'SIGTERM') return 143;
    return result.exitCode;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    process.stdout.off('error', onOutputError);
    sttyRestore(stty);
    // SeaBIOS turns the terminal's line wrapping off (ESC [?7l); turn it back on.
    if (process.stdout.isTTY && !outputGone) process.stdout.write('\x1b[?7h');
  }
}
