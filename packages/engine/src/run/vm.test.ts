/**
 * runVm with the real QEMU and the prebuilt OSv kernel: boot to poweroff, the timeout, stopping
 * by signal, -e through a qcow2 overlay (raw and qcow2 images left byte-identical), failures.
 * Skipped with a one-line reason where QEMU or the kernel is missing, unless CI=true.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { OsvbError } from '../errors/index.js';
import { useTempDirs } from '../testing/index.js';
import { readImageCmdline } from './cmdline.js';
import type { VmNotice, VmOptions, VmResult } from './qemu.js';
import { bootSkipReason, compileHello, TEST_KERNEL_DIR, writeTestImage } from './testImage.js';
import { runVm } from './vm.js';

const skip = bootSkipReason();
if (skip && (process.env['CI'] === 'true' || process.env['OSVB_TEST_REQUIRE_QEMU'] === '1')) throw new Error(`boot tests cannot run: ${skip}`);
if (skip) console.warn(`skipping OSv boot tests: ${skip}`);

const tempDir = useTempDirs('osvb-run-vm-', 'all');

/** A small guest: 1 vCPU and 512 MiB boot as fast as run.py's 4 and 2G under TCG, and leave cores to parallel tests. */
const SMALL = { cpus: 1, memory: '512M', timeoutSeconds: 60 } as const;

async function boot(opts: VmOptions): Promise<{ result: VmResult; console: string; notices: VmNotice[] }> {
  let out = '';
  const notices: VmNotice[] = [];
  const result = await runVm({ ...opts, onOutput: (c) => (out += c.toString('latin1')), onNotice: (n) => notices.push(n) });
  return { result, console: out, notices };
}

function sha(file: string): string {
  return createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

describe.skipIf(skip !== undefined)('runVm (QEMU, OSv kernel)', { timeout: 90_000 }, () => {
  let dir: string;
  let hello: string;
  /** --rootfs=rofs /hello */
  let raw: string;
  /** --rootfs=rofs /hello s600 (prints, then sleeps 10 minutes) */
  let sleeper: string;
  /** `raw` converted to qcow2 with qemu-img. */
  let qcow2: string;

  beforeAll(async () => {
    dir = tempDir();
    hello = compileHello(dir);
    const image = async (name: string, cmdline: string): Promise<string> => {
      const work = path.join(dir, `${name}.work`);
      fs.mkdirSync(work);
      const out = path.join(dir, name);
      await writeTestImage({ kernelDir: TEST_KERNEL_DIR, files: { '/hello': hello }, cmdline, workDir: work, out });
      return out;
    };
    raw = await image('usr.raw', '--rootfs=rofs /hello');
    sleeper = await image('sleeper.raw', '--rootfs=rofs /hello s600');
    qcow2 = path.join(dir, 'usr.img');
    execFileSync('qemu-img', ['convert', '-f', 'raw', '-O', 'qcow2', raw, qcow2]);
  });

  it('boots a raw image with run.py\'s defaults, prints the console, and ends with status 0 when the guest powers off', async () => {
    const { result, console: out, notices } = await boot({ image: raw, timeoutSeconds: 60 });
    expect(out).toContain('OSv v0.57.0');
    expect(out).toContain('Cmdline: /hello');
    expect(out).toMatch(/hello from osv:\r?\n/);
    expect(result).toMatchObject({ status: 'poweroff', exitCode: 0, qemuExitCode: 0 });
    expect(result.error).toBeUndefined();
    const accel = notices.find((n) => n.kind === 'accel');
    expect(accel?.text).toMatch(result.accel === 'tcg' ? /^booting with TCG \(.*\): slow$/ : /^booting with KVM$/);
    const command = notices.find((n) => n.kind === 'command');
    expect(command?.kind === 'command' && command.argv.slice(1, 5)).toEqual(['-m', '2G', '-smp', '4']);
    console.log(`boot to poweroff (${result.accel}, 4 vCPUs, 2G, user networking): ${(result.durationMs / 1000).toFixed(2)} s`);
  });

  it('boots a qcow2 image without networking', async () => {
    const { result, console: out } = await boot({ ...SMALL, image: qcow2, networking: false });
    expect(out).toMatch(/hello from osv:\r?\n/);
    expect(result.status).toBe('poweroff');
    expect(result.argv).toContain('-nic');
  });

  it('stops a guest that runs longer than the timeout: status timeout, exit code 1, OSVB_RUN_TIMEOUT', async () => {
    const t0 = performance.now();
    const { result } = await boot({ ...SMALL, image: sleeper, timeoutSeconds: 1 });
    expect(result.status).toBe('timeout');
    expect(result.exitCode).toBe(1);
    expect(result.error).toBeInstanceOf(OsvbError);
    expect(result.error?.code).toBe('OSVB_RUN_TIMEOUT');
    expect(result.error?.message).toMatch(/did not power off within 1 s/);
    expect(result.error?.exitCode).toBe(1);
    // SIGTERM ends QEMU at once: well before the SIGKILL grace period.
    expect(performance.now() - t0).toBeLessThan(1000 + 3000);
  });

  it('stops the VM when the signal aborts: status stopped, exit code 130', async () => {
    const controller = new AbortController();
    let out = '';
    const result = await runVm({
      ...SMALL,
      image: sleeper,
      signal: controller.signal,
      onOutput: (c) => {
        out += c.toString('latin1');
        if (out.includes('hello from osv: [s600]')) controller.abort();
      },
    });
    expect(out).toContain('hello from osv: [s600]');
    expect(result).toMatchObject({ status: 'stopped', exitCode: 130 });
    expect(result.error).toBeUndefined();
  });

  for (const which of ['raw', 'qcow2'] as const) {
    it(`-e boots another command line through an overlay and leaves the ${which} image byte-identical`, async () => {
      const image = which === 'raw' ? raw : qcow2;
      const before = sha(image);
      const { result, console: out, notices } = await boot({ ...SMALL, image, execute: '/hello other' });
      expect(out).toContain('Cmdline: /hello other');
      expect(out).toMatch(/hello from osv: \[other\]\r?\n/);
      expect(result.status).toBe('poweroff');
      expect(notices.find((n) => n.kind === 'cmdline')?.text).toBe('command line: --rootfs=rofs /hello other');
      expect(sha(image)).toBe(before);
      expect(readImageCmdline(image, which)).toBe('--rootfs=rofs /hello');
      // The overlay's directory is gone.
      const drive = result.argv[result.argv.indexOf('-drive') + 1] as string;
      const overlay = /^file=(.*?),if=none/.exec(drive)?.[1] as string;
      expect(overlay).toMatch(/overlay\.qcow2$/);
      expect(fs.existsSync(path.dirname(overlay))).toBe(false);
    });
  }

  it('-e names a qcow2 image the overlay cannot read (compressed), before QEMU starts', async () => {
    const compressed = path.join(dir, 'compressed.img');
    execFileSync('qemu-img', ['convert', '-c', '-f', 'raw', '-O', 'qcow2', raw, compressed]);
    const e = await runVm({ ...SMALL, image: compressed, execute: '/hello' }).catch((x: unknown) => x as OsvbError);
    expect(e).toBeInstanceOf(OsvbError);
    expect((e as OsvbError).code).toBe('OSVB_RUN_IMAGE');
    expect((e as OsvbError).message).toBe(`-e: cannot read ${compressed} through an overlay: has compressed clusters`);
    expect((e as OsvbError).hint).toMatch(/qemu-img convert -O qcow2/);
  });

  it('reports QEMU failing with its message: status failed, OSVB_RUN_FAILED', async () => {
    const { result } = await boot({ ...SMALL, image: raw, extraArgs: ['-no-such-option'] });
    expect(result.status).toBe('failed');
    expect(result.exitCode).toBe(1);
    expect(result.error?.code).toBe('OSVB_RUN_FAILED');
    expect(result.error?.details.join('\n')).toMatch(/-no-such-option/);
  });
});

describe('runVm errors before QEMU starts', () => {
  it('names a missing image and says how to build one (exit status 2)', async () => {
    const missing = path.join(tempDir(), 'nope', 'usr.img');
    const e = await runVm({ image: missing }).catch((x: unknown) => x as OsvbError);
    expect(e).toBeInstanceOf(OsvbError);
    expect((e as OsvbError).code).toBe('OSVB_RUN_IMAGE');
    expect((e as OsvbError).message).toBe(`${missing}: no such image`);
    expect((e as OsvbError).hint).toMatch(/osvb build fs=rofs --kernel DIR/);
    expect((e as OsvbError).exitCode).toBe(2);
  });

  it('names a missing QEMU binary and its Debian package', async () => {
    const image = path.join(tempDir(), 'usr.raw');
    fs.writeFileSync(image, Buffer.alloc(1024));
    const e = await runVm({ image, accel: 'tcg', qemu: '/nonexistent/qemu-system-x86_64' }).catch((x: unknown) => x as OsvbError);
    expect(e).toBeInstanceOf(OsvbError);
    expect((e as OsvbError).code).toBe('OSVB_QEMU_MISSING');
    expect((e as OsvbError).message).toBe('/nonexistent/qemu-system-x86_64: not found');
    expect((e as OsvbError).hint).toMatch(/apt-get install qemu-system-x86/);
    const viaEnv = await runVm({ image, accel: 'tcg', env: { ...process.env, OSVB_QEMU: '/nonexistent/q' } }).catch((x: unknown) => x as OsvbError);
    expect((viaEnv as OsvbError).message).toBe('/nonexistent/q: not found');
  });
});
