/** The QEMU command line (pure), forwarding rules, the -e command line, the probes. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { error, useTempDirs } from '../testing/index.js';
import { commandLineForExecute, cmdlineBytes, readImageCmdline } from './cmdline.js';
import { checkVmOptions, detectDiskFormat, directIoSupported, kvmProblem, parseForward, qemuArgv } from './qemu.js';
import { chooseAccel, formatCommand, qemuBinary } from './vm.js';

const tempDir = useTempDirs('osvb-run-unit-');

/** The value that follows `flag` in argv (every one, in order). */
function values(argv: string[], flag: string): string[] {
  return argv.flatMap((a, i) => (a === flag ? [argv[i + 1] as string] : []));
}

describe('qemuArgv', () => {
  it('has run.py\'s defaults: 2G, 4 vCPUs, the console on stdio (Ctrl-C stops QEMU), virtio-blk with cache=none,aio=native, one user-networking NIC, virtio-rng', () => {
    const argv = qemuArgv({ image: '/b/usr.img', accel: 'tcg', format: 'qcow2' });
    expect(argv).toEqual([
      '-m', '2G',
      '-smp', '4',
      '-nographic',
      '-no-reboot',
      '-chardev', 'stdio,id=stdio,mux=on,signal=on',
      '-serial', 'chardev:stdio',
      '-mon', 'chardev=stdio,mode=readline',
      '-device', 'virtio-blk-pci,id=blk0,drive=hd0,bootindex=0',
      '-drive', 'file=/b/usr.img,if=none,id=hd0,format=qcow2,cache=none,aio=native',
      '-netdev', 'user,id=un0,net=192.168.122.0/24,host=192.168.122.1',
      '-device', 'virtio-net-pci,netdev=un0',
      '-device', 'virtio-rng-pci',
      '-accel', 'tcg',
    ]);
  });

  it('uses KVM with -enable-kvm -cpu host,+x2apic, as run.py does', () => {
    const argv = qemuArgv({ image: '/i', accel: 'kvm', format: 'raw' });
    expect(argv.slice(-3)).toEqual(['-enable-kvm', '-cpu', 'host,+x2apic']);
    expect(argv).not.toContain('-accel');
  });

  it('takes memory, vCPUs, the raw format and the cache fallbacks', () => {
    const argv = qemuArgv({ image: '/i', accel: 'tcg', format: 'raw', memory: '512M', cpus: 1, directIo: false });
    expect(values(argv, '-m')).toEqual(['512M']);
    expect(values(argv, '-smp')).toEqual(['1']);
    expect(values(argv, '-drive')).toEqual(['file=/i,if=none,id=hd0,format=raw,cache=unsafe,aio=threads']);
    const wb = qemuArgv({ image: '/i', accel: 'tcg', format: 'raw', blockCache: 'writeback' });
    expect(values(wb, '-drive')).toEqual(['file=/i,if=none,id=hd0,format=raw,cache=writeback,aio=threads']);
  });

  it('doubles commas in the image path (QEMU option syntax)', () => {
    expect(values(qemuArgv({ image: '/a,b/usr.img', accel: 'tcg', format: 'qcow2' }), '-drive')[0]).toMatch(/^file=\/a,,b\/usr\.img,if=none/);
  });

  it('adds --forward rules as hostfwd= of the user network, and -nic none without networking', () => {
    const argv = qemuArgv({ image: '/i', accel: 'tcg', format: 'raw', forwards: ['tcp::8000-:8000', '8080:80', 'udp:127.0.0.1:5353-:53'] });
    expect(values(argv, '-netdev')).toEqual(['user,id=un0,net=192.168.122.0/24,host=192.168.122.1,hostfwd=tcp::8000-:8000,hostfwd=tcp::8080-:80,hostfwd=udp:127.0.0.1:5353-:53']);
    const none = qemuArgv({ image: '/i', accel: 'tcg', format: 'raw', networking: false });
    expect(values(none, '-nic')).toEqual(['none']);
    expect(none).not.toContain('-netdev');
    expect(none).not.toContain('virtio-net-pci,netdev=un0');
  });

  it('appends extra arguments last', () => {
    expect(qemuArgv({ image: '/i', accel: 'tcg', format: 'raw', extraArgs: ['-s', '-S'] }).slice(-2)).toEqual(['-s', '-S']);
  });

  it('rejects bad options with errors that name them', () => {
    expect(error(() => qemuArgv({ image: '/i', accel: 'tcg', format: 'raw', memory: 'lots' })).message).toMatch(/^-m lots: not a memory size/);
    expect(error(() => checkVmOptions({ image: '/i', cpus: 0 })).message).toMatch(/^-c 0:/);
    expect(error(() => checkVmOptions({ image: '/i', cpus: 1.5 })).code).toBe('OSVB_USAGE');
    expect(error(() => checkVmOptions({ image: '/i', timeoutSeconds: 0 })).message).toMatch(/^--timeout 0:/);
    expect(error(() => checkVmOptions({ image: '/i', networking: false, forwards: ['80'] })).message).toMatch(/--forward needs networking/);
    expect(error(() => checkVmOptions({ image: '/i', accel: 'xen' as 'kvm' })).message).toMatch(/^--accel xen:/);
    for (const ok of ['2G', '512', '512M', '1.5g', '4096k']) expect(() => checkVmOptions({ image: '/i', memory: ok })).not.toThrow();
  });
});

describe('parseForward', () => {
  it('passes QEMU hostfwd rules through, the protocol defaulting to tcp', () => {
    expect(parseForward('tcp::8000-:8000')).toBe('tcp::8000-:8000');
    expect(parseForward('tcp:127.0.0.1:8000-10.0.2.15:80')).toBe('tcp:127.0.0.1:8000-10.0.2.15:80');
    expect(parseForward('UDP::53-:53')).toBe('udp::53-:53');
    expect(parseForward('::2222-:22')).toBe('tcp::2222-:22');
  });

  it('takes PORT and HOSTPORT:GUESTPORT as tcp shorthands', () => {
    expect(parseForward('8000')).toBe('tcp::8000-:8000');
    expect(parseForward('8080:80')).toBe('tcp::8080-:80');
  });

  it('rejects what QEMU would reject, naming the rule', () => {
    for (const bad of ['', 'tcp:8000', 'tcp::8000', 'tcp::0-:80', 'tcp::8000-:70000', 'sctp::1-:1', 'tcp:host:1-:1', '8080:80:1', 'tcp::1-:1,restrict=on']) {
      const e = error(() => parseForward(bad));
      expect(e.code).toBe('OSVB_USAGE');
      expect(e.message.startsWith(`--forward ${bad}:`)).toBe(true);
      expect(e.hint).toMatch(/tcp::8080-:80/);
    }
  });
});

describe('the -e command line', () => {
  it('keeps the image\'s leading --rootfs= unless the new command has one', () => {
    expect(commandLineForExecute('--rootfs=rofs /hello', '/hello other')).toBe('--rootfs=rofs /hello other');
    expect(commandLineForExecute('--verbose --rootfs=zfs /tools/cpiod.so', '/x')).toBe('--rootfs=zfs /x');
    expect(commandLineForExecute('--rootfs=rofs /hello', '--rootfs=ramfs /y')).toBe('--rootfs=ramfs /y');
    expect(commandLineForExecute('--rootfs=rofs /hello', '--env=A=1 --rootfs=zfs /y')).toBe('--env=A=1 --rootfs=zfs /y');
    expect(commandLineForExecute('/hello --rootfs=rofs', '/x')).toBe('/x');
    expect(commandLineForExecute('', '/x')).toBe('/x');
  });

  it('fits the 63 sectors OSv reads', () => {
    expect(cmdlineBytes('/x')).toEqual(Buffer.from('/x\0'));
    expect(cmdlineBytes('a'.repeat(63 * 512 - 1)).length).toBe(63 * 512);
    expect(error(() => cmdlineBytes('a'.repeat(63 * 512))).message).toMatch(/32256 bytes long; OSv's boot sector reads at most 32255/);
  });

  it('reads a raw image\'s command line from byte 512 to the NUL', async () => {
    const f = path.join(tempDir(), 'usr.raw');
    const img = Buffer.alloc(4096, 0xff);
    img.write('--rootfs=rofs /hello\0junk', 512, 'utf8');
    fs.writeFileSync(f, img);
    expect(readImageCmdline(f, 'raw')).toBe('--rootfs=rofs /hello');
  });
});

describe('probes', () => {
  it('tells qcow2 from raw by the magic', () => {
    const dir = tempDir();
    fs.writeFileSync(path.join(dir, 'q'), Buffer.from([0x51, 0x46, 0x49, 0xfb, 0, 0, 0, 3]));
    fs.writeFileSync(path.join(dir, 'r'), Buffer.alloc(1024));
    fs.writeFileSync(path.join(dir, 'short'), 'QF');
    expect(detectDiskFormat(path.join(dir, 'q'))).toBe('qcow2');
    expect(detectDiskFormat(path.join(dir, 'r'))).toBe('raw');
    expect(detectDiskFormat(path.join(dir, 'short'))).toBe('raw');
  });

  it('says why a KVM device cannot be used, and chooses TCG for auto', () => {
    const missing = path.join(tempDir(), 'kvm');
    expect(kvmProblem(missing)).toBe(`${missing} does not exist`);
    expect(chooseAccel('auto', missing)).toEqual({ accel: 'tcg', text: `booting with TCG (no usable /dev/kvm: ${missing} does not exist): slow` });
    expect(chooseAccel('tcg', missing).accel).toBe('tcg');
    const e = error(() => chooseAccel('kvm', missing));
    expect(e.code).toBe('OSVB_KVM_UNAVAILABLE');
    expect(e.exitCode).toBe(2);
  });

  it('finds O_DIRECT support on the temp directory\'s file system without failing', () => {
    const f = path.join(tempDir(), 'f');
    fs.writeFileSync(f, Buffer.alloc(512));
    expect(typeof directIoSupported(f)).toBe('boolean');
  });

  it('picks the binary: option, then $OSVB_QEMU, then qemu-system-x86_64', () => {
    expect(qemuBinary({ qemu: '/q', env: { OSVB_QEMU: '/e' } })).toBe('/q');
    expect(qemuBinary({ env: { OSVB_QEMU: '/e' } })).toBe('/e');
    expect(qemuBinary({ env: { OSVB_QEMU: '' } })).toBe('qemu-system-x86_64');
  });

  it('formats a command line for pasting into a shell', () => {
    expect(formatCommand(['qemu', '-drive', 'file=/a b,if=none', "it's"])).toBe(`qemu -drive 'file=/a b,if=none' 'it'\\''s'`);
  });
});
