/**
 * `runVm`: boot an OSv image under QEMU, stream its serial console, and end in one of four
 * ways — the guest powered off (QEMU exits 0), the timeout stopped it, the caller's signal
 * stopped it, or QEMU failed.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { OsvbError } from '../errors/index.js';
import { createExecuteOverlay, type Overlay } from './cmdline.js';
import {
  checkVmOptions,
  DEFAULT_QEMU,
  detectDiskFormat,
  directIoSupported,
  kvmProblem,
  qemuArgv,
  type Accel,
  type VmOptions,
  type VmResult,
  type VmStatus,
} from './qemu.js';

const STDERR_KEEP = 16 * 1024;

/** The binary runVm starts: `opts.qemu`, else $OSVB_QEMU, else qemu-system-x86_64. */
export function qemuBinary(opts: Pick<VmOptions, 'qemu' | 'env'>): string {
  return opts.qemu || (opts.env ?? process.env)['OSVB_QEMU'] || DEFAULT_QEMU;
}

function missingImage(image: string, why: string): OsvbError {
  return new OsvbError('OSVB_RUN_IMAGE', `${image}: ${why}`, {
    hint: 'build a bootable image first (osvb build fs=rofs --kernel DIR), or name one: osvb run IMAGE',
  });
}

/** The accelerator for `opts.accel`, with the notice that says which one and why. */
export function chooseAccel(requested: VmOptions['accel'], device = '/dev/kvm'): { accel: Accel; text: string } {
  if (requested === 'tcg') return { accel: 'tcg', text: 'booting with TCG (--accel tcg): slow' };
  const problem = kvmProblem(device);
  if (!problem) return { accel: 'kvm', text: 'booting with KVM' };
  if (requested === 'kvm') {
    throw new OsvbError('OSVB_KVM_UNAVAILABLE', `--accel kvm: ${problem}`, {
      hint: 'use --accel tcg (slow), or run where KVM is available (on Debian: add the user to the "kvm" group)',
    });
  }
  return { accel: 'tcg', text: `booting with TCG (no usable /dev/kvm: ${problem}): slow` };
}

function shellWord(word: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

/** A command line as one could paste it into a shell. */
export function formatCommand(argv: readonly string[]): string {
  return argv.map(shellWord).join(' ');
}

function tailLines(text: string, n: number): string[] {
  const lines = text.split('\n').filter((l) => l.trim() !== '');
  return lines.slice(-n);
}

export async function runVm(opts: VmOptions): Promise<VmResult> {
  checkVmOptions(opts);
  const image = path.resolve(opts.image);
  let st: fs.Stats;
  try {
    st = fs.statSync(image);
  } catch {
    throw missingImage(image, 'no such image');
  }
  if (!st.isFile() && !st.isBlockDevice()) throw missingImage(image, 'not a disk image file');
  let format;
  try {
    format = detectDiskFormat(image);
  } catch (e) {
    throw missingImage(image, `cannot read it (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  const { accel, text } = chooseAccel(opts.accel ?? 'auto');
  opts.onNotice?.({ kind: 'accel', accel, text });
  const binary = qemuBinary(opts);
  if (opts.signal?.aborted) return { exitCode: 130, status: 'stopped', durationMs: 0, accel, qemuExitCode: null, argv: [binary] };

  let overlay: Overlay | undefined;
  try {
    let bootImage = image;
    let bootFormat = format;
    if (opts.execute !== undefined) {
      overlay = createExecuteOverlay(image, format, opts.execute);
      opts.onNotice?.({ kind: 'cmdline', cmdline: overlay.cmdline, text: `command line: ${overlay.cmdline}` });
      bootImage = overlay.file;
      bootFormat = 'qcow2';
    }
    const directIo = directIoSupported(bootImage) && (bootImage === image || directIoSupported(image));
    const args = qemuArgv({ ...opts, image: bootImage, accel, format: bootFormat, directIo });
    const argv = [binary, ...args];
    opts.onNotice?.({ kind: 'command', argv, text: formatCommand(argv) });
    return await supervise(binary, args, argv, accel, opts);
  } finally {
    overlay?.dispose();
  }
}

function supervise(binary: string, args: string[], argv: string[], accel: Accel, opts: VmOptions): Promise<VmResult> {
  return new Promise<VmResult>((resolve, reject) => {
    const started = performance.now();
    const child = spawn(binary, args, {
      stdio: [opts.stdin === 'inherit' ? 'inherit' : 'ignore', 'pipe', 'pipe'],
      env: (opts.env ?? process.env) as NodeJS.ProcessEnv,
    });
    let stderr = '';
    let ending: 'timeout' | 'stopped' | undefined;
    let killTimer: NodeJS.Timeout | undefined;

    const stop = (why: 'timeout' | 'stopped'): void => {
      if (ending || child.exitCode !== null || child.signalCode !== null) return;
      ending = why;
      child.kill('SIGTERM');
      killTimer = setTimeout(() => child.kill('SIGKILL'), opts.killGraceMs ?? 3000);
    };
    const onAbort = (): void => stop('stopped');
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    const timeoutTimer = opts.timeoutSeconds !== undefined ? setTimeout(() => stop('timeout'), opts.timeoutSeconds * 1000) : undefined;

    child.stdout.on('data', (chunk: Buffer) => opts.onOutput?.(chunk));
    child.stderr.on('data', (chunk: Buffer) => {
      stderr = (stderr + chunk.toString('utf8')).slice(-STDERR_KEEP);
      if (!opts.onStderr) return;
      // QEMU's "terminating on signal 15 from pid …" says what we did: not news to the caller.
      if (ending) {
        const text = chunk.toString('utf8').replace(/^[^\n]*terminating on signal [0-9]+[^\n]*\n?/gm, '');
        if (text) opts.onStderr(Buffer.from(text));
      } else {
        opts.onStderr(chunk);
      }
    });
    let settled = false;
    const cleanup = (): boolean => {
      clearTimeout(timeoutTimer);
      clearTimeout(killTimer);
      opts.signal?.removeEventListener('abort', onAbort);
      if (settled) return false;
      settled = true;
      return true;
    };
    child.on('error', (e: NodeJS.ErrnoException) => {
      // Failing to start (no such binary); errors of a running child (a failed kill) are not fatal.
      if (child.pid !== undefined || !cleanup()) return;
      if (e.code === 'ENOENT' || e.code === 'EACCES') {
        reject(
          new OsvbError('OSVB_QEMU_MISSING', `${binary}: ${e.code === 'ENOENT' ? 'not found' : 'not executable'}`, {
            hint: 'install QEMU (on Debian/Ubuntu: apt-get install qemu-system-x86), or point $OSVB_QEMU (--qemu) at the binary',
            cause: e,
          }),
        );
      } else {
        reject(new OsvbError('OSVB_RUN_FAILED', `${binary}: could not start it: ${e.message}`, { cause: e }));
      }
    });
    child.on('close', (code, signal) => {
      if (!cleanup()) return;
      const durationMs = performance.now() - started;
      const base = { durationMs, accel, qemuExitCode: code, argv };
      const result = (status: VmStatus, exitCode: number, error?: OsvbError): VmResult => ({ ...base, status, exitCode, ...(error ? { error } : {}) });
      if (ending === 'timeout') {
        resolve(
          result(
            'timeout',
            1,
            new OsvbError('OSVB_RUN_TIMEOUT', `the VM did not power off within ${opts.timeoutSeconds} s (--timeout); stopped it`, {
              hint: 'give it longer (--timeout S); a guest that hangs after an error may need --power-off-on-abort on its command line',
            }),
          ),
        );
        return;
      }
      if (ending === 'stopped') {
        resolve(result('stopped', 130));
        return;
      }
      // QEMU stopped by someone else's signal: it says so ("terminating on signal 15 from pid …") and exits 0.
      const term = /terminating on signal ([0-9]+)/.exec(stderr);
      if (term) {
        resolve(result('stopped', 128 + Number(term[1])));
        return;
      }
      if (code === 0) {
        resolve(result('poweroff', 0));
        return;
      }
      const how = code !== null ? `exited with status ${code}` : `was killed by ${signal}`;
      resolve(
        result(
          'failed',
          1,
          new OsvbError('OSVB_RUN_FAILED', `${path.basename(binary)} ${how}`, {
            // With onStderr the caller has shown QEMU's messages already.
            ...(opts.onStderr ? {} : { details: tailLines(stderr, 20) }),
            hint: opts.onStderr ? 'QEMU\'s message is above; osvb run -v shows the QEMU command line' : 'the lines above are the end of QEMU\'s stderr',
          }),
        ),
      );
    });
  });
}
