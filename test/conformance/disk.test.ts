/**
 * usr.img against OSv's own tools: on the same loader.img (../shared/osv-kernel) and the same
 * usr.manifest, the guest-visible bytes of osvb's usr.img (qcow2 and raw) equal those of the
 * usr.img that scripts/build's commands make (gen-rofs-img.py, imgedit.py through qemu-nbd,
 * qemu-img, dd), recorded by tools/conformance/disk-oracle.mjs in disk/expected.json as sha256
 * digests with the final BUILD/cmdline text.
 */
import { spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { diskCmdline } from '../../packages/engine/src/pipeline/images.js';
import { writeDiskImage } from '../../packages/engine/src/image/disk/index.js';
import { writeRofsImageFromManifest } from '../../packages/engine/src/image/rofs/index.js';
import { initHashing } from '../../packages/engine/src/hash/index.js';
import { REPO, tempDir } from '../helpers/cli.js';
import { missingFor, SHARED_KERNEL, toRaw } from '../helpers/tools.js';
import { osvDiskScript, syntheticDiskBin } from '../../tools/conformance/disk-oracle.mjs';

const FIXTURE = path.join(REPO, 'test/conformance/disk');
const cases = JSON.parse(fs.readFileSync(path.join(FIXTURE, 'cases.json'), 'utf8')) as Record<string, { fs: 'rofs' | 'ramfs' | 'virtiofs'; cmdline: string; fs_size?: number; createDisk?: boolean }>;
const expected = JSON.parse(fs.readFileSync(path.join(FIXTURE, 'expected.json'), 'utf8')) as {
  loaderSha256: string;
  cases: Record<string, { sha256: string; size: number; cmdline: string; rofsSha256?: string }>;
};
const sha256 = (b: Buffer): string => crypto.createHash('sha256').update(b).digest('hex');
const skip = missingFor('conformance/disk.test.ts', ['kernel', 'qemu-img']);

describe.skipIf(skip !== undefined)('usr.img equals what scripts/build makes (disk-oracle)', () => {
  it('uses the loader.img the expectations were made with', () => {
    expect(sha256(fs.readFileSync(path.join(SHARED_KERNEL, 'loader.img')))).toBe(expected.loaderSha256);
  });

  for (const [name, c] of Object.entries(cases)) {
    for (const format of ['qcow2', 'raw'] as const) {
      it(`${name} (${format})`, async () => {
        await initHashing();
        const build = tempDir('osvb-disk-conf-');
        try {
          fs.cpSync(path.join(FIXTURE, 'tree'), build, { recursive: true });
          const want = expected.cases[name];
          if (!want) throw new Error(`no expectation for ${name}: run node tools/conformance/disk-oracle.mjs`);
          let rofsImg: string | undefined;
          if (c.fs === 'rofs') {
            rofsImg = path.join(build, 'rofs.img');
            const text = fs.readFileSync(path.join(build, 'usr.manifest'), 'utf8');
            await writeRofsImageFromManifest(text, { file: 'usr.manifest', cwd: build, walkOrder: 'sorted', strip: false }, rofsImg, { incremental: false });
            expect(sha256(fs.readFileSync(rofsImg))).toBe(want.rofsSha256);
          }
          const cmdline = diskCmdline(c.fs, c.cmdline);
          expect(cmdline).toBe(want.cmdline);
          const diskBin = path.join(build, 'disk.bin');
          if (c.createDisk) syntheticDiskBin(diskBin);
          const res = writeDiskImage({
            buildPath: build,
            fs: c.fs,
            loaderImg: path.join(SHARED_KERNEL, 'loader.img'),
            ...(rofsImg ? { rofsImg } : {}),
            cmdline,
            fsSize: c.fs_size ?? 512 * 1024 * 1024,
            createDisk: c.createDisk ?? false,
            diskBin,
            format,
          });
          const diskName = c.createDisk ? 'disk' : 'usr';
          expect(res.file).toBe(path.join(build, format === 'raw' ? `${diskName}.raw` : `${diskName}.img`));
          if (format === 'qcow2') {
            const check = spawnSync('qemu-img', ['check', res.file], { encoding: 'utf8' });
            expect(check.status, check.stdout + check.stderr).toBe(0);
            const info = JSON.parse(spawnSync('qemu-img', ['info', '--output=json', res.file], { encoding: 'utf8' }).stdout) as { format: string };
            expect(info.format).toBe('qcow2');
          }
          const raw = toRaw(res.file, path.join(build, 'guest.raw'));
          expect(raw.length).toBe(want.size);
          expect(sha256(raw)).toBe(want.sha256);
        } finally {
          fs.rmSync(build, { recursive: true, force: true });
        }
      });
    }
  }
});

const OSV_REF = process.env['OSV_REF'] ?? '/work/ref/osv';
const haveOsv = fs.existsSync(path.join(OSV_REF, 'scripts/imgedit.py')) && spawnSync('qemu-nbd', ['--version'], { stdio: 'ignore' }).status === 0;

describe.skipIf(skip !== undefined || !haveOsv)('usr.img equals what scripts/build makes, OSv run live', () => {
  it('rofs and ramfs: osvb and OSv\'s own commands on the same inputs give the same guest bytes', async () => {
    await initHashing();
    for (const [name, c] of Object.entries(cases).filter(([n]) => n === 'rofs-default' || n === 'ramfs')) {
      const osv = tempDir('osvb-disk-live-osv-');
      const mine = tempDir('osvb-disk-live-osvb-');
      try {
        for (const d of [osv, mine]) fs.cpSync(path.join(FIXTURE, 'tree'), d, { recursive: true });
        fs.copyFileSync(path.join(SHARED_KERNEL, 'loader.img'), path.join(osv, 'loader.img'));
        fs.writeFileSync(path.join(osv, 'cmdline'), c.cmdline);
        const r = spawnSync('bash', ['-c', `set -euo pipefail\n${osvDiskScript({ scripts: path.join(OSV_REF, 'scripts'), fs: c.fs })}`], { cwd: osv, encoding: 'utf8' });
        expect(r.status, r.stderr).toBe(0);
        let rofsImg: string | undefined;
        if (c.fs === 'rofs') {
          rofsImg = path.join(mine, 'rofs.img');
          await writeRofsImageFromManifest(fs.readFileSync(path.join(mine, 'usr.manifest'), 'utf8'), { file: 'usr.manifest', cwd: mine, walkOrder: 'sorted', strip: false }, rofsImg, { incremental: false });
        }
        const res = writeDiskImage({ buildPath: mine, fs: c.fs, loaderImg: path.join(SHARED_KERNEL, 'loader.img'), ...(rofsImg ? { rofsImg } : {}), cmdline: diskCmdline(c.fs, c.cmdline), fsSize: 512 * 1024 * 1024, createDisk: false, format: 'qcow2' });
        expect(fs.readFileSync(path.join(osv, 'cmdline'), 'utf8'), name).toBe(diskCmdline(c.fs, c.cmdline));
        const cmp = spawnSync('qemu-img', ['compare', '-f', 'qcow2', '-F', 'qcow2', res.file, path.join(osv, 'usr.img')], { encoding: 'utf8' });
        expect(cmp.status, `${name}: ${cmp.stdout}${cmp.stderr}`).toBe(0);
      } finally {
        fs.rmSync(osv, { recursive: true, force: true });
        fs.rmSync(mine, { recursive: true, force: true });
      }
    }
  }, 120_000);
});
