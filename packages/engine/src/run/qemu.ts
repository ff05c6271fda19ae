/**
 * The QEMU command line for an OSv image: the common subset of OSv's scripts/run.py
 * (`start_osv_qemu`) for x86_64 — a virtio-blk disk, one virtio-net NIC on user networking
 * (run.py's default `--nics 1`) with `--forward` rules as `hostfwd=`, virtio-rng, the serial
 * console on stdio. `qemuArgv` is pure; the probes (format, /dev/kvm, O_DIRECT) are beside it.
 */
import * as fs from 'node:fs';
import { OsvbError } from '../errors/index.js';

export type Accel = 'kvm' | 'tcg';
export type DiskFormat = 'qcow2' | 'raw';
/** run.py's `--block-device-cache` values. */
export type BlockCache = 'none' | 'writethrough' | 'writeback' | 'directsync' | 'unsafe';

export interface VmOptions {
  /** The disk image (qcow2 or raw: told apart by the first 4 bytes, `QFI\xfb`). */
  image: string;
  /** QEMU's `-m` (run.py `-m`, default 2G). */
  memory?: string;
  /** QEMU's `-smp` (run.py `-c`, default 4). */
  cpus?: number;
  /** run.py `--forward RULE`: QEMU's `hostfwd` syntax `[tcp|udp]:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT`, or `PORT`, or `HOSTPORT:GUESTPORT` (tcp). */
  forwards?: string[];
  /** One virtio-net NIC on QEMU user networking (default true, as run.py's default `--nics 1`); false: `-nic none`. */
  networking?: boolean;
  /** Stop the VM after this many seconds: status 'timeout' and an OSVB_RUN_TIMEOUT error. */
  timeoutSeconds?: number;
  /** auto (default): kvm when /dev/kvm opens read-write, else tcg. */
  accel?: 'auto' | Accel;
  /** The QEMU binary (default $OSVB_QEMU, else qemu-system-x86_64). */
  qemu?: string;
  /** Appended after everything else (run.py `--pass-args`). */
  extraArgs?: string[];
  /** Aborting stops the VM: SIGTERM, then SIGKILL after `killGraceMs`. Status 'stopped'. */
  signal?: AbortSignal;
  /** Serial console bytes, as they come. */
  onOutput?: (chunk: Buffer) => void;
  /** QEMU's own stderr, as it comes (default: kept only for the error of a failed run). */
  onStderr?: (chunk: Buffer) => void;
  /** Notices: which accelerator and why, the QEMU command line (the CLI shows the latter with -v). */
  onNotice?: (notice: VmNotice) => void;
  /**
   * run.py `-e CMD`: boot with this OSv command line instead of the image's, without changing the
   * image (a temporary qcow2 overlay carries it). A leading `--rootfs=X` of the image's command
   * line is kept unless CMD has its own `--rootfs=`.
   */
  execute?: string;
  /** run.py `--block-device-cache` (default: cache=none,aio=native; unsafe,aio=threads where O_DIRECT is refused). */
  blockCache?: BlockCache;
  /** QEMU's stdin: 'ignore' (default) or 'inherit' (type into the guest console). */
  stdin?: 'ignore' | 'inherit';
  /** Between SIGTERM and SIGKILL when stopping the VM (default 3000). */
  killGraceMs?: number;
  /** Environment for QEMU and for $OSVB_QEMU (default process.env). */
  env?: Readonly<Record<string, string | undefined>>;
}

export type VmNotice =
  | { kind: 'accel'; accel: Accel; text: string }
  | { kind: 'command'; argv: string[]; text: string }
  | { kind: 'cmdline'; cmdline: string; text: string };

export type VmStatus = 'poweroff' | 'timeout' | 'stopped' | 'failed';

export interface VmResult {
  /** What a command should exit with: 0 poweroff, 1 timeout or failure, 130 stopped by the signal (128+N when QEMU was stopped by someone else's signal N). */
  exitCode: number;
  status: VmStatus;
  durationMs: number;
  accel: Accel;
  /** QEMU's own exit status (null when it was killed by a signal). */
  qemuExitCode: number | null;
  /** The full command line, binary first. */
  argv: string[];
  /** For 'timeout' and 'failed': the error to report (OSVB_RUN_TIMEOUT, OSVB_RUN_FAILED). */
  error?: OsvbError;
}

export interface QemuArgvInput extends VmOptions {
  accel: Accel;
  format: DiskFormat;
  /** Whether the image file accepts O_DIRECT (default true); run.py falls back to cache=unsafe,aio=threads. */
  directIo?: boolean;
}

/** run.py's defaults. */
export const DEFAULT_MEMORY = '2G';
export const DEFAULT_CPUS = 4;
export const DEFAULT_QEMU = 'qemu-system-x86_64';

/** QEMU's `-m` size: a number of MiB, or with a K/M/G/T suffix (run.py passes `-m` through). */
const MEMORY = /^[0-9]+(\.[0-9]+)?[KMGT]?$/i;

function usage(message: string, hint?: string): OsvbError {
  return new OsvbError('OSVB_USAGE', message, hint ? { hint } : {});
}

/** A comma inside a QEMU option value is written twice. */
export function qemuOptionValue(text: string): string {
  return text.replace(/,/g, ',,');
}

const PORT = /^[0-9]{1,5}$/;

function checkPort(rule: string, port: string, what: string): void {
  const n = Number(port);
  if (!PORT.test(port) || n < 1 || n > 65535) throw forwardError(rule, `${what} "${port}" is not a port (1-65535)`);
}

function forwardError(rule: string, why: string): OsvbError {
  return usage(`--forward ${rule}: ${why}`, 'use QEMU\'s hostfwd form [tcp|udp]:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT (e.g. tcp::8080-:80), or PORT, or HOSTPORT:GUESTPORT');
}

/**
 * A `--forward` rule as a QEMU `hostfwd=` value. run.py passes the rule to QEMU as it is
 * (`hostfwd=RULE`); osvb checks it first, so a typo is an error naming the rule rather than a
 * QEMU failure, and also takes the short forms `8000` (tcp::8000-:8000) and `8080:80`.
 */
export function parseForward(rule: string): string {
  const text = rule.trim();
  if (PORT.test(text)) {
    checkPort(rule, text, 'port');
    return `tcp::${text}-:${text}`;
  }
  const short = /^([0-9]+):([0-9]+)$/.exec(text);
  if (short) {
    checkPort(rule, short[1] as string, 'host port');
    checkPort(rule, short[2] as string, 'guest port');
    return `tcp::${short[1]}-:${short[2]}`;
  }
  // [tcp|udp]:[hostaddr]:hostport-[guestaddr]:guestport (slirp's own parser: the protocol may be empty).
  const m = /^(tcp|udp|)?:([^:,\-]*):([^:,\-]*)-([^:,\-]*):([^:,\-]*)$/i.exec(text);
  if (!m) throw forwardError(rule, 'not a forwarding rule');
  const [, proto = '', hostAddr = '', hostPort = '', guestAddr = '', guestPort = ''] = m;
  const ipv4 = /^[0-9]{1,3}(\.[0-9]{1,3}){3}$/;
  if (hostAddr && !ipv4.test(hostAddr)) throw forwardError(rule, `host address "${hostAddr}" is not an IPv4 address`);
  if (guestAddr && !ipv4.test(guestAddr)) throw forwardError(rule, `guest address "${guestAddr}" is not an IPv4 address`);
  checkPort(rule, hostPort, 'host port');
  checkPort(rule, guestPort, 'guest port');
  return `${(proto || 'tcp').toLowerCase()}:${hostAddr}:${hostPort}-${guestAddr}:${guestPort}`;
}

/** Checks the options every run needs, with errors that name the option. */
export function checkVmOptions(opts: VmOptions): void {
  if (opts.memory !== undefined && !MEMORY.test(opts.memory)) {
    throw usage(`-m ${opts.memory}: not a memory size`, 'e.g. -m 512M, -m 2G (a plain number is MiB, as QEMU takes it)');
  }
  if (opts.cpus !== undefined && (!Number.isInteger(opts.cpus) || opts.cpus < 1 || opts.cpus > 255)) {
    throw usage(`-c ${opts.cpus}: expected a number of vCPUs from 1 to 255`);
  }
  if (opts.timeoutSeconds !== undefined && !(opts.timeoutSeconds > 0 && Number.isFinite(opts.timeoutSeconds))) {
    throw usage(`--timeout ${opts.timeoutSeconds}: expected a number of seconds greater than 0`);
  }
  if (opts.networking === false && opts.forwards?.length) {
    throw usage('--forward needs networking, which is turned off', 'drop --no-network, or the --forward rules');
  }
  if (opts.accel !== undefined && !['auto', 'kvm', 'tcg'].includes(opts.accel)) {
    throw usage(`--accel ${String(opts.accel)}: expected auto, kvm or tcg`);
  }
  if (opts.blockCache !== undefined && !['none', 'writethrough', 'writeback', 'directsync', 'unsafe'].includes(opts.blockCache)) {
    throw usage(`--block-device-cache ${String(opts.blockCache)}: expected none, writethrough, writeback, directsync or unsafe`);
  }
}

/** The arguments after the binary. Pure: the probes' answers come in as `accel`, `format`, `directIo`. */
export function qemuArgv(opts: QemuArgvInput): string[] {
  checkVmOptions(opts);
  const args = ['-m', opts.memory ?? DEFAULT_MEMORY, '-smp', String(opts.cpus ?? DEFAULT_CPUS), '-nographic', '-no-reboot'];
  // The serial console and QEMU's monitor (Ctrl-A c) on stdio. signal=on (run.py --with-signals):
  // Ctrl-C on a terminal stops QEMU (and reaches osvb) instead of going to the guest.
  args.push('-chardev', 'stdio,id=stdio,mux=on,signal=on', '-serial', 'chardev:stdio', '-mon', 'chardev=stdio,mode=readline');
  // run.py: O_DIRECT refused (tmpfs) → cache=unsafe,aio=threads; --block-device-cache X → cache=X,aio=threads.
  const aio = opts.directIo === false ? 'cache=unsafe,aio=threads' : opts.blockCache ? `cache=${opts.blockCache},aio=threads` : 'cache=none,aio=native';
  args.push(
    '-device', 'virtio-blk-pci,id=blk0,drive=hd0,bootindex=0',
    '-drive', `file=${qemuOptionValue(opts.image)},if=none,id=hd0,format=${opts.format},${aio}`,
  );
  if (opts.networking ?? true) {
    const fwd = (opts.forwards ?? []).map((r) => `,hostfwd=${parseForward(r)}`).join('');
    args.push('-netdev', `user,id=un0,net=192.168.122.0/24,host=192.168.122.1${fwd}`, '-device', 'virtio-net-pci,netdev=un0');
  } else {
    args.push('-nic', 'none');
  }
  args.push('-device', 'virtio-rng-pci');
  if (opts.accel === 'kvm') args.push('-enable-kvm', '-cpu', 'host,+x2apic');
  else args.push('-accel', 'tcg');
  args.push(...(opts.extraArgs ?? []));
  return args;
}

/** qcow2 when the file starts with `QFI\xfb`, else raw. */
export function detectDiskFormat(file: string): DiskFormat {
  const fd = fs.openSync(file, 'r');
  try {
    const head = Buffer.alloc(4);
    const n = fs.readSync(fd, head, 0, 4, 0);
    return n === 4 && head.equals(Buffer.from([0x51, 0x46, 0x49, 0xfb])) ? 'qcow2' : 'raw';
  } finally {
    fs.closeSync(fd);
  }
}

/** Why /dev/kvm cannot be used, or undefined when it opens read-write (as QEMU opens it). */
export function kvmProblem(device = '/dev/kvm'): string | undefined {
  try {
    fs.closeSync(fs.openSync(device, fs.constants.O_RDWR));
    return undefined;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return `${device} does not exist`;
    if (code === 'EACCES' || code === 'EPERM') return `${device} is not readable and writable by this user`;
    return `${device}: ${(e as Error).message}`;
  }
}

/** run.py's is_direct_io_supported: whether the file opens with O_DIRECT (tmpfs refuses it with EINVAL). */
export function directIoSupported(file: string): boolean {
  const O_DIRECT = fs.constants.O_DIRECT;
  if (O_DIRECT === undefined) return false;
  try {
    fs.closeSync(fs.openSync(file, fs.constants.O_RDONLY | O_DIRECT));
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EINVAL') return false;
    throw e;
  }
}
