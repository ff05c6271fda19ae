/**
 * The whole way to an image that boots: examples/osv's native apps (real make + gcc) built into
 * usr.img with the prebuilt OSv kernel (../shared/osv-kernel), booted by `osvb run` under real
 * QEMU (TCG here), the apps' output read off the serial console, a clean power-off. Then an
 * edited data file: usr.img updated in place, and the next boot shows the change.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { copyExample, osvb, tempDir } from '../helpers/cli.js';
import { missingFor, SHARED_KERNEL } from '../helpers/tools.js';

const skip = missingFor('e2e/boot.test.ts', ['kernel', 'qemu', 'qemu-img']);
const sha = (f: string): string => crypto.createHash('sha256').update(fs.readFileSync(f)).digest('hex');
/** One vCPU and little memory: quickest under TCG on two cores. */
const VM = ['-c', '1', '-m', '256M', '--no-network', '--timeout', '90'];

describe.skipIf(skip !== undefined)('usr.img boots (osvb build --kernel, osvb run)', () => {
  const dirs: string[] = [];
  afterAll(() => {
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
  });
  const base = (): string => {
    const d = tempDir('osvb-boot-');
    dirs.push(d);
    copyExample(d);
    return d;
  };

  it('builds the native apps into usr.img, boots it, and boots the change after a data file is edited', async () => {
    const dir = base();
    const build = await osvb(['build', 'image=native', 'fs=rofs', '--kernel', SHARED_KERNEL], { cwd: dir });
    expect(build.exitCode, build.stderr).toBe(0);
    const img = path.join(dir, 'build/release/usr.img');
    expect(fs.existsSync(img)).toBe(true);
    expect(build.stderr).toMatch(/outputs in build\/release:\n(.*\n)*  usr\.img +[\d.]+ MiB  written \(qcow2, 512 MiB disk\)/);
    expect(fs.readFileSync(path.join(dir, 'build/release/cmdline'), 'utf8')).toBe('--rootfs=rofs /hello.so');

    const run = await osvb(['run', ...VM], { cwd: dir });
    expect(run.exitCode, run.stderr + run.stdout).toBe(0);
    expect(run.stdout).toContain('OSv v0.57.0');
    expect(run.stdout).toContain('Cmdline: /hello.so');
    expect(run.stdout).toContain('Welcome to the osv-build example image.'); // run_on_init: /hello.so --motd /etc/motd
    expect(run.stdout).toContain('Hello, world!');
    expect(run.stderr).toMatch(/TCG|KVM/);

    // A data file of a module: only the image changes, in place.
    fs.writeFileSync(path.join(dir, 'extra/banner/motd'), 'A freshly edited message of the day.\n');
    const again = await osvb(['build', 'image=native', 'fs=rofs', '--kernel', SHARED_KERNEL], { cwd: dir });
    expect(again.exitCode, again.stderr).toBe(0);
    expect(again.stderr).toMatch(/  usr\.img +[\d.]+ MiB  updated \(qcow2, 512 MiB disk, \d+ bytes written\)/);
    const rerun = await osvb(['run', ...VM], { cwd: dir });
    expect(rerun.exitCode, rerun.stderr + rerun.stdout).toBe(0);
    expect(rerun.stdout).toContain('A freshly edited message of the day.');
    expect(rerun.stdout).not.toContain('Welcome to the osv-build example image.');

    // Nothing changed: usr.img is not written.
    const before = fs.statSync(img).mtimeMs;
    const noop = await osvb(['build', 'image=native', 'fs=rofs', '--kernel', SHARED_KERNEL], { cwd: dir });
    expect(noop.stderr).toMatch(/  usr\.img +[\d.]+ MiB  unchanged \(qcow2, 512 MiB disk\)/);
    expect(fs.statSync(img).mtimeMs).toBe(before);

    // -e: another command line for one boot; the image stays as it was.
    const digest = sha(img);
    const version = await osvb(['run', ...VM, '-e', '/hello.so --version'], { cwd: dir });
    expect(version.exitCode, version.stderr + version.stdout).toBe(0);
    expect(version.stdout).toContain('Cmdline: /hello.so --version');
    expect(version.stdout).not.toContain('Hello, world!');
    expect(sha(img)).toBe(digest);
  }, 300_000);

  it('a guest that does not power off in time is stopped: OSVB_RUN_TIMEOUT, exit 1', async () => {
    const dir = base();
    expect((await osvb(['build', 'image=native', 'fs=rofs', '--kernel', SHARED_KERNEL], { cwd: dir })).exitCode).toBe(0);
    const r = await osvb(['run', '-c', '1', '-m', '256M', '--no-network', '--timeout', '1'], { cwd: dir });
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain('error[OSVB_RUN_TIMEOUT]');
  }, 120_000);

  it('without a kernel, fs=rofs still writes rofs.img and says how to get usr.img; bad kernels are clear errors', async () => {
    const dir = base();
    const plain = await osvb(['build', 'image=native', 'fs=rofs'], { cwd: dir });
    expect(plain.exitCode, plain.stderr).toBe(0);
    expect(plain.stderr).toContain('usr.img not written: no kernel (pass --kernel DIR');
    expect(fs.existsSync(path.join(dir, 'build/release/rofs.img'))).toBe(true);
    expect(fs.existsSync(path.join(dir, 'build/release/usr.img'))).toBe(false);

    const missing = await osvb(['build', 'image=native', 'fs=rofs', '--kernel', path.join(dir, 'nowhere')], { cwd: dir });
    expect(missing.exitCode).toBe(2);
    expect(missing.stderr).toContain('error[OSVB_KERNEL_MISSING]');

    const cut = path.join(dir, 'cut.img');
    fs.writeFileSync(cut, fs.readFileSync(path.join(SHARED_KERNEL, 'loader.img')).subarray(0, 1_000_000));
    const truncated = await osvb(['build', 'image=native', 'fs=rofs', '--kernel', cut], { cwd: dir });
    expect(truncated.exitCode).toBe(2);
    expect(truncated.stderr).toContain('error[OSVB_KERNEL_INVALID]');
    expect(truncated.stderr).toContain('truncated');

    const ramfs = await osvb(['build', 'image=native', 'fs=ramfs', '--kernel', SHARED_KERNEL], { cwd: dir });
    expect(ramfs.exitCode).toBe(2);
    expect(ramfs.stderr).toContain('links the generated bootfs into the kernel');

    const small = await osvb(['build', 'image=native', 'fs=rofs', 'fs_size_mb=4', '--kernel', SHARED_KERNEL], { cwd: dir });
    expect(small.exitCode).toBe(2);
    expect(small.stderr).toContain('error[OSVB_DISK_SIZE]');
    expect(fs.existsSync(path.join(dir, 'build/release/usr.img'))).toBe(false);
  }, 120_000);
});

describe.skipIf(skip !== undefined)('osvb watch --run', () => {
  it('boots after the first build, reboots the new image after a change, boots nothing for a failed build', async () => {
    const dir = tempDir('osvb-watch-run-');
    copyExample(dir);
    const { spawn } = await import('node:child_process');
    const { OSVB } = await import('../helpers/cli.js');
    const child = spawn(process.execPath, [OSVB, 'watch', 'image=native', 'fs=rofs', '--kernel', SHARED_KERNEL, '--run', '--vcpus', '1', '--memsize', '256M', '--debounce', '40'], {
      cwd: dir,
      env: { ...process.env, OSV_BASE: undefined, OSV_BUILD_PATH: undefined, CI: 'true' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const waitFor = async (what: string, pred: () => boolean, ms = 90_000): Promise<void> => {
      const end = Date.now() + ms;
      while (!pred()) {
        if (Date.now() > end) throw new Error(`timed out waiting for ${what}\nstdout: ${stdout}\nstderr: ${stderr}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    };
    const count = (text: string, s: string): number => s.split(text).length - 1;
    try {
      await waitFor('the first boot', () => stdout.includes('Hello, world!') && stderr.includes('powered off'));
      expect(stderr).toContain('[vm] booting');
      fs.writeFileSync(path.join(dir, 'extra/banner/motd'), 'Edited while watching.\n');
      await waitFor('the reboot with the edited file', () => stdout.includes('Edited while watching.'));
      await waitFor('the second VM to power off', () => count('powered off', stderr) >= 2);
      // A compile error: the build fails, no VM is booted for it.
      const c = path.join(dir, 'apps/hello/hello.c');
      const good = fs.readFileSync(c, 'utf8');
      fs.writeFileSync(c, good + '\nthis is not C;\n');
      await waitFor('the failed build', () => stdout.includes('failed') || stderr.includes('error['));
      const boots = count('[vm] booting /', stderr);
      expect(boots).toBe(2);
      // Fixed with a change the guest shows: booted; a rebuild to the image it runs already boots nothing.
      fs.writeFileSync(c, good.replace('"hello using %s\\n"', '"hello (edited) using %s\\n"').replace('return greet(', 'puts("edited hello"); return greet('));
      await waitFor('the boot after the fix', () => count('[vm] booting /', stderr) === 3 && stdout.includes('edited hello'));
    } finally {
      child.kill('SIGINT');
      await new Promise((r) => child.on('exit', r));
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }, 300_000);
});
