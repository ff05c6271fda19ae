#!/usr/bin/env node
// Disk oracle: regenerates test/conformance/disk/expected.json by assembling usr.img with OSv's
// own tools, in the order scripts/build runs them (create_rofs_disk and the ramfs case block,
// then the cmdline prefix and `imgedit.py setargs`): gen-rofs-img.py, imgedit.py (through
// qemu-nbd), qemu-img, dd. The expected file keeps, per case, the sha256 of the guest-visible
// bytes (qemu-img convert -O raw), the virtual size and the final BUILD/cmdline text.
//
//   node tools/conformance/disk-oracle.mjs
//   OSV_REF=/path/to/osv        OSv checkout (default /work/ref/osv)
//   OSV_KERNEL=/path/to/dir     a kernel build's outputs (default ../shared/osv-kernel)
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const ref = path.resolve(process.env.OSV_REF || '/work/ref/osv');
const kernel = path.resolve(process.env.OSV_KERNEL || path.join(root, '../shared/osv-kernel'));
const fixture = path.join(root, 'test/conformance/disk');
const cases = JSON.parse(fs.readFileSync(path.join(fixture, 'cases.json'), 'utf8'));

function sh(script, cwd) {
  return execFileSync('bash', ['-c', `set -euo pipefail\n${script}`], { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
}

export function rawDigest(image) {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'disk-oracle-raw-'));
  try {
    const raw = path.join(tmp, 'x.raw');
    execFileSync('qemu-img', ['convert', '-O', 'raw', image, raw]);
    const h = crypto.createHash('sha256');
    const fd = fs.openSync(raw, 'r');
    const buf = Buffer.alloc(1 << 22);
    for (let n; (n = fs.readSync(fd, buf, 0, buf.length, null)) > 0; ) h.update(buf.subarray(0, n));
    fs.closeSync(fd);
    return { sha256: h.digest('hex'), size: fs.statSync(raw).size };
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

/**
 * scripts/build's commands after module.py for fs=rofs|ramfs|virtiofs, as a bash script to run
 * with cwd = the build directory holding loader.img, usr.manifest and cmdline: create_rofs_disk
 * (or the ramfs/virtiofs case block), then the cmdline prefix and `imgedit.py setargs`. Also
 * used by tools/bench/disk.mjs as the baseline.
 */
export function osvDiskScript({ scripts, fs: fsType, fsSize = 512 * 1024 * 1024, libgccDir, createDisk = false, diskBin }) {
  const define = libgccDir ? ` -D libgcc_s_dir="${libgccDir}"` : '';
  let steps = `loader_size=$(stat --printf %s loader.img)\nkernel_end=$(($loader_size+2097151 & ~2097151))\nfs_size=${fsSize}\n`;
  // --create-disk: the partition at 512 of scripts/disk.bin, into disk.img (no setargs: no usr.img).
  steps += createDisk ? `partition_offset=512\nbare="${diskBin}"\nraw_disk=disk\nqcow2_disk=disk\n` : 'partition_offset=$kernel_end\nbare=loader.img\nraw_disk=bare\nqcow2_disk=usr\n';
  if (fsType === 'rofs') {
    steps += `rm -rf rofs.img
python3 ${scripts}/gen-rofs-img.py -o rofs.img -m usr.manifest${define} >/dev/null
partition_size=$(stat --printf %s rofs.img)
image_size=$fs_size
cp $bare $raw_disk.raw
python3 ${scripts}/imgedit.py setpartition "-f raw \${raw_disk}.raw" 2 $partition_offset $partition_size
qemu-img resize \${raw_disk}.raw \${image_size}b >/dev/null 2>&1
dd if=rofs.img of=\${raw_disk}.raw obs=$partition_offset seek=1 >/dev/null 2>&1
qemu-img convert -f raw -O qcow2 $raw_disk.raw $qcow2_disk.img
qemu-img resize $qcow2_disk.img \${image_size}b >/dev/null 2>&1
`;
  } else {
    steps += `image_size=$partition_offset
cp $bare $raw_disk.raw
python3 ${scripts}/imgedit.py setpartition "-f raw \${raw_disk}.raw" 2 $partition_offset 0
qemu-img resize \${raw_disk}.raw \${image_size}b >/dev/null 2>&1
qemu-img convert -f raw -O qcow2 $raw_disk.raw $qcow2_disk.img
`;
  }
  return `${steps}rm -f $raw_disk.raw
cmdline=$(cat cmdline)
echo -n "--rootfs=${fsType} \${cmdline}" > cmdline
if [[ -f usr.img ]]; then PYTHONPATH=${scripts} python3 ${scripts}/imgedit.py setargs usr.img \`cat cmdline\`; fi
`;
}

/** The stand-in for OSv's scripts/disk.bin (not ours to copy): a boot sector with only its signature. */
export function syntheticDiskBin(file) {
  const b = Buffer.alloc(512);
  b[510] = 0x55;
  b[511] = 0xaa;
  fs.writeFileSync(file, b);
}

function main() {
  const sha = (f) => crypto.createHash('sha256').update(fs.readFileSync(f)).digest('hex');
  const out = { generatedBy: 'tools/conformance/disk-oracle.mjs', loaderSha256: sha(path.join(kernel, 'loader.img')), cases: {} };
  for (const [name, c] of Object.entries(cases)) {
    const work = fs.mkdtempSync(path.join(os.tmpdir(), `disk-oracle-${name}-`));
    try {
      fs.cpSync(path.join(fixture, 'tree'), work, { recursive: true });
      fs.copyFileSync(path.join(kernel, 'loader.img'), path.join(work, 'loader.img'));
      fs.writeFileSync(path.join(work, 'cmdline'), c.cmdline);
      if (c.createDisk) syntheticDiskBin(path.join(work, 'disk.bin'));
    const steps = osvDiskScript({ scripts: `${ref}/scripts`, fs: c.fs, fsSize: c.fs_size ?? 512 * 1024 * 1024, createDisk: c.createDisk, diskBin: path.join(work, 'disk.bin') });
      sh(steps, work);
      out.cases[name] = { ...rawDigest(path.join(work, c.createDisk ? 'disk.img' : 'usr.img')), cmdline: fs.readFileSync(path.join(work, 'cmdline'), 'utf8') };
      if (c.fs === 'rofs') out.cases[name].rofsSha256 = sha(path.join(work, 'rofs.img'));
      console.log(name, out.cases[name].sha256);
    } finally {
      fs.rmSync(work, { recursive: true, force: true });
    }
  }
  fs.writeFileSync(path.join(fixture, 'expected.json'), JSON.stringify(out, null, 2) + '\n');
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) main();
