/**
 * `osvb run`: argument parsing, and the CLI run as a process (built dist/main.js) booting the
 * prebuilt OSv kernel under QEMU: console on stdout, notices and errors on stderr, exit codes.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OsvbError } from '@osv-build/engine';
import { bootSkipReason, compileHello, TEST_KERNEL_DIR, writeTestImage } from '../../engine/src/run/testImage.js';
import { parseRunArgs } from './run.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const MAIN = path.resolve(HERE, '../dist/main.js');

const temps: string[] = [];
function tempDir(): string {
  const d = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'osvb-cli-run-')));
  temps.push(d);
  return d;
}
afterAll(() => {
  for (const d of temps) fs.rmSync(d, { recursive: true, force: true });
});

const code = `const m = await import(${JSON.stringify(pathToFileURL(MAIN).href)}); process.exitCode = await m.main(process.argv.slice(1));`;

function osvb(cwd: string, args: string[], env: Record<string, string> = {}): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', code, '--', 'run', ...args], {
    cwd,
    env: { ...process.env, ...env },
    timeout: 90_000,
  });
  return { status: r.status, stdout: r.stdout.toString('latin1'), stderr: r.stderr.toString() };
}

function usageError(argv: string[]): OsvbError {
  try {
    parseRunArgs(argv);
  } catch (e) {
    expect(e).toBeInstanceOf(OsvbError);
    return e as OsvbError;
  }
  throw new Error('expected an OsvbError');
}

describe('parseRunArgs', () => {
  it('takes run.py\'s options, the image, build words and QEMU arguments after --', () => {
    const a = parseRunArgs(['usr.img', '-e', '/hello x', '-m', '1G', '-c', '2', '--forward', '8080:80', '--forward', 'tcp::2222-:22', '--timeout', '30', '--accel', 'tcg', '--pass-args=-s -S', '--', '-d', 'int']);
    expect(a.image).toBe('usr.img');
    expect(a.vm).toEqual({
      execute: '/hello x',
      memory: '1G',
      cpus: 2,
      forwards: ['8080:80', 'tcp::2222-:22'],
      timeoutSeconds: 30,
      accel: 'tcg',
      extraArgs: ['-s', '-S', '-d', 'int'],
    });
    expect(parseRunArgs(['-i', 'x.raw', '--no-network']).vm.networking).toBe(false);
    const d = parseRunArgs(['mode=debug', '--osv-base', '/b']);
    expect(d).toMatchObject({ image: undefined, words: ['mode=debug'], osvBase: '/b' });
  });

  it('rejects what it cannot use, naming it', () => {
    expect(usageError(['a.img', 'b.img']).message).toBe('one image at a time: a.img, b.img');
    expect(usageError(['a.img', 'mode=debug']).message).toMatch(/^mode=debug chooses the default image; it has no effect with an image named \(a\.img\)/);
    expect(usageError(['a.img', '--build-path', 'b']).message).toMatch(/^--build-path chooses the default image/);
    expect(usageError(['--timeout', 'soon']).message).toBe('--timeout soon: not a number');
    expect(usageError(['--accel', 'hvf']).message).toBe('--accel hvf: expected auto, kvm or tcg');
    expect(usageError(['--bogus']).message).toMatch(/Unknown option '--bogus'/);
  });
});

const skip = !fs.existsSync(MAIN) ? `${MAIN} is not built (npm run build)` : bootSkipReason();
if (skip && (process.env['CI'] === 'true' || process.env['OSVB_TEST_REQUIRE_QEMU'] === '1')) throw new Error(`osvb run tests cannot run: ${skip}`);
if (skip) console.warn(`skipping osvb run boot tests: ${skip}`);

describe.skipIf(skip !== undefined)('osvb run (QEMU, OSv kernel)', { timeout: 90_000 }, () => {
  let dir: string;
  let image: string;
  let sleeper: string;
  const small = ['-c', '1', '-m', '512M'];

  beforeAll(async () => {
    dir = tempDir();
    const hello = compileHello(dir);
    const make = async (out: string, cmdline: string): Promise<void> => {
      const work = `${out}.work`;
      fs.mkdirSync(work, { recursive: true });
      await writeTestImage({ kernelDir: TEST_KERNEL_DIR, files: { '/hello': hello }, cmdline, workDir: work, out });
    };
    image = path.join(dir, 'usr.raw');
    sleeper = path.join(dir, 'sleeper.raw');
    await make(image, '--rootfs=rofs /hello');
    await make(sleeper, '--rootfs=rofs /hello s600');
  });

  it('boots IMAGE: the console on stdout, which accelerator on stderr, exit status 0 at poweroff', () => {
    const r = osvb(dir, [image, '--timeout', '60', ...small]);
    expect(r.stdout).toMatch(/hello from osv:\r?\n/);
    expect(r.stderr).toMatch(/^osvb: booting with (TCG \(.*\): slow|KVM)$/m);
    expect(r.stderr).not.toContain('-nographic');
    expect(r.status).toBe(0);
  });

  it('-v prints the QEMU command line and how the VM ended', () => {
    const r = osvb(dir, [image, '--timeout', '60', '-v', '--no-network', ...small, '--', '-name', 'osvb-test']);
    expect(r.stderr).toContain(`-drive file=${image},if=none,id=hd0,format=raw`);
    expect(r.stderr).toMatch(/-nic none .*-name osvb-test/);
    expect(r.stderr).toMatch(/^osvb: poweroff after [0-9.]+ s \(QEMU exit status 0\)$/m);
    expect(r.status).toBe(0);
  });

  it('--timeout stops a guest that runs longer: error OSVB_RUN_TIMEOUT, exit status 1', () => {
    const r = osvb(dir, [sleeper, '--timeout', '1', ...small]);
    expect(r.stderr).toContain('error[OSVB_RUN_TIMEOUT]: the VM did not power off within 1 s (--timeout); stopped it');
    expect(r.stderr).not.toContain('terminating on signal');
    expect(r.status).toBe(1);
  });

  it('-e boots another command line, and the image stays byte-identical', () => {
    const digest = (): string => createHash('sha256').update(fs.readFileSync(image)).digest('hex');
    const before = digest();
    const r = osvb(dir, [image, '-e', '/hello other', '--timeout', '60', ...small]);
    expect(r.stdout).toMatch(/hello from osv: \[other\]\r?\n/);
    expect(r.stderr).toContain('osvb: command line: --rootfs=rofs /hello other');
    expect(r.status).toBe(0);
    expect(digest()).toBe(before);
  });

  it('boots the build path\'s image when none is named, as osvb build resolves it (usr.raw when there is no usr.img)', () => {
    const base = path.join(dir, 'base');
    fs.mkdirSync(path.join(base, 'build', 'release'), { recursive: true });
    fs.writeFileSync(path.join(base, 'config.json'), '{}\n');
    fs.copyFileSync(image, path.join(base, 'build', 'release', 'usr.raw'));
    const r = osvb(dir, ['--osv-base', base, '--timeout', '60', ...small]);
    expect(r.stdout).toMatch(/hello from osv:\r?\n/);
    expect(r.status).toBe(0);
    const inBase = osvb(base, ['mode=debug']);
    expect(inBase.stderr).toContain(`error[OSVB_RUN_IMAGE]: ${path.join(base, 'build', 'debug', 'usr.img')}: no such image`);
    expect(inBase.status).toBe(2);
  });

  it('stops the VM on SIGINT and exits with 130', async () => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', code, '--', 'run', sleeper, '--timeout', '60', ...small], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));
    const status = await new Promise<number | null>((resolve) => {
      child.stdout.on('data', (c: Buffer) => {
        out += c.toString('latin1');
        if (out.includes('hello from osv: [s600]')) child.kill('SIGINT');
      });
      child.on('close', (c) => resolve(c));
    });
    expect(out).toContain('hello from osv: [s600]');
    expect(err).not.toContain('error[');
    expect(status).toBe(130);
  });

  it('passes QEMU\'s own error through once when QEMU fails: OSVB_RUN_FAILED, exit status 1', () => {
    const r = osvb(dir, [image, ...small, '--', '-no-such-option']);
    expect(r.stderr.match(/-no-such-option: invalid option/g)).toHaveLength(1);
    expect(r.stderr).toContain('error[OSVB_RUN_FAILED]: qemu-system-x86_64 exited with status 1');
    expect(r.status).toBe(1);
  });

  it('says which package to install when QEMU is missing (exit status 2)', () => {
    const r = osvb(dir, [image], { OSVB_QEMU: '/nonexistent/qemu-system-x86_64' });
    expect(r.stderr).toContain('error[OSVB_QEMU_MISSING]: /nonexistent/qemu-system-x86_64: not found');
    expect(r.stderr).toContain('apt-get install qemu-system-x86');
    expect(r.status).toBe(2);
  });
});
