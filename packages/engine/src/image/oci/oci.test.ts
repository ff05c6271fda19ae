import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { extract } from 'tar-stream';
import { afterEach, describe, expect, it } from 'vitest';
import { OsvbError } from '../../errors/index.js';
import type { ImageEntry } from '../../layers/index.js';
import { writeOciLayout, type OciLayerInput } from './index.js';

let tmp: string[] = [];
function tempDir(): string {
  const d = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'osvb-oci-')));
  tmp.push(d);
  return d;
}
afterEach(() => {
  for (const d of tmp) fs.rmSync(d, { recursive: true, force: true });
  tmp = [];
});

function which(bin: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${bin}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
const hasUmoci = which('umoci');
const hasSkopeo = which('skopeo');
if (!hasUmoci) console.log('OCI umoci test skipped: umoci is not installed (apt-get install umoci)');
if (!hasSkopeo) console.log('OCI skopeo test skipped: skopeo is not installed (apt-get install skopeo)');

const LONG_NAME = `/opt/${'long-directory-name/'.repeat(6)}file-with-a-long-name.txt`;
const LONG_TARGET = `/usr/lib/${'x'.repeat(120)}`;

/** Host files for a two-layer image under `host`; returns the layers. */
function makeLayers(host: string): OciLayerInput[] {
  const file = (rel: string, data: string | Buffer, mode = 0o644): string => {
    const p = path.join(host, rel);
    fs.mkdirSync(path.dirname(p), { recursive: true });
    fs.writeFileSync(p, data);
    fs.chmodSync(p, mode);
    return p;
  };
  const big = Buffer.alloc(3 * 1024 * 1024 + 17);
  for (let i = 0; i < big.length; i++) big[i] = (i * 7 + (i >> 10)) & 0xff;
  const base: ImageEntry[] = [
    { guest: '/etc/hosts', kind: 'file', source: file('hosts', '127.0.0.1 localhost\n') },
    { guest: '/etc/mnttab', kind: 'link', target: '/proc/mounts' },
    { guest: '/usr/lib/libx.so', kind: 'file', source: file('libx.so', 'ELF-ish', 0o755) },
    { guest: '/dev', kind: 'dir' },
    { guest: '/', kind: 'dir' },
    { guest: '/tools/run', kind: 'file', source: file('run', '#!/bin/sh\n', 0o700) },
    // Modes given by the layer (the host's bits) only decide "executable or not".
    { guest: '/etc/conf', kind: 'file', source: file('conf', 'c\n', 0o664), mode: 0o664 },
    { guest: '/bin/x', kind: 'file', source: file('x', 'x\n'), mode: 0o750 },
    { guest: '/var', kind: 'dir', mode: 0o775 },
  ];
  const app: ImageEntry[] = [
    { guest: '/app/main.txt', kind: 'file', source: file('main.txt', 'main\n') },
    { guest: '/app/data/big.bin', kind: 'file', source: file('big.bin', big) },
    { guest: '/app/ünïcødé', kind: 'file', source: file('u', 'u\n') },
    { guest: LONG_NAME, kind: 'file', source: file('long', 'long\n') },
    { guest: '/app/longlink', kind: 'link', target: LONG_TARGET },
    { guest: '/app/rel', kind: 'link', target: '../etc/hosts' },
    { guest: '/app/empty', kind: 'file', source: file('empty', '') },
  ];
  return [
    { name: 'base', entries: base },
    { name: 'app', entries: app },
  ];
}

/** The guest tree the layers describe: path → kind + content or target (parents included). */
function expectedTree(layers: OciLayerInput[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const l of layers) {
    for (const e of l.entries) {
      const parts = e.guest.split('/').filter(Boolean);
      for (let i = 1; i < parts.length; i++) out.set(parts.slice(0, i).join('/'), 'dir');
      if (parts.length === 0) continue;
      const p = parts.join('/');
      if (e.kind === 'dir') out.set(p, 'dir');
      else if (e.kind === 'link') out.set(p, `link:${e.target}`);
      else out.set(p, `file:${fs.readFileSync(e.source as string).toString('base64')}`);
    }
  }
  return out;
}

function actualTree(root: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (dir: string): void => {
    for (const name of fs.readdirSync(dir)) {
      const p = path.join(dir, name);
      const rel = path.relative(root, p);
      const st = fs.lstatSync(p);
      if (st.isSymbolicLink()) out.set(rel, `link:${fs.readlinkSync(p)}`);
      else if (st.isDirectory()) {
        out.set(rel, 'dir');
        walk(p);
      } else out.set(rel, `file:${fs.readFileSync(p).toString('base64')}`);
    }
  };
  walk(root);
  return out;
}

function sorted(m: Map<string, string>): Array<[string, string]> {
  return [...m.entries()].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
}

function blobListing(dir: string): string[] {
  const b = path.join(dir, 'blobs', 'sha256');
  return fs
    .readdirSync(b)
    .sort()
    .map((n) => {
      const st = fs.statSync(path.join(b, n), { bigint: true });
      return `${n}:${st.ino}:${st.mtimeNs}`;
    });
}

interface TarHeader {
  name: string;
  type: string;
  mode: number;
  uid: number;
  gid: number;
  uname: string;
  gname: string;
  mtime: Date;
  linkname: string | null;
  size: number;
}

async function readTar(file: string): Promise<TarHeader[]> {
  const ex = extract();
  const headers: TarHeader[] = [];
  const done = (async (): Promise<void> => {
    for await (const entry of ex) {
      headers.push(entry.header as unknown as TarHeader);
      entry.resume();
    }
  })();
  fs.createReadStream(file).pipe(ex as unknown as NodeJS.WritableStream);
  await done;
  return headers;
}

function readJson(p: string): Record<string, unknown> {
  return JSON.parse(fs.readFileSync(p, 'utf8')) as Record<string, unknown>;
}

describe('OCI image layout', () => {
  it('writes a valid, deterministic layout', async () => {
    const root = tempDir();
    const layers = makeLayers(path.join(root, 'host'));
    const dir = path.join(root, 'image');
    const res = await writeOciLayout(dir, { layers, cmdline: '/tools/run --verbose "a b"', arch: 'x64' });
    expect(readJson(path.join(dir, 'oci-layout'))).toEqual({ imageLayoutVersion: '1.0.0' });
    const index = readJson(path.join(dir, 'index.json')) as { mediaType: string; manifests: Array<{ digest: string; annotations: Record<string, string> }> };
    expect(index.mediaType).toBe('application/vnd.oci.image.index.v1+json');
    expect(index.manifests).toHaveLength(1);
    expect(index.manifests[0]?.digest).toBe(res.manifestDigest);
    expect(index.manifests[0]?.annotations).toEqual({ 'org.opencontainers.image.ref.name': 'latest' });
    // Sorted keys: the file is its own canonical form.
    const indexText = fs.readFileSync(path.join(dir, 'index.json'), 'utf8');
    expect(indexText.indexOf('"manifests"')).toBeLessThan(indexText.indexOf('"mediaType":"application/vnd.oci.image.index'));

    const blob = (d: string): string => path.join(dir, 'blobs', 'sha256', d.slice('sha256:'.length));
    const manifest = readJson(blob(res.manifestDigest)) as {
      config: { digest: string };
      layers: Array<{ mediaType: string; digest: string; size: number; annotations: Record<string, string> }>;
    };
    expect(manifest.config.digest).toBe(res.configDigest);
    expect(manifest.layers.map((l) => [l.mediaType, l.annotations['org.osv.module'], l.digest])).toEqual([
      ['application/vnd.oci.image.layer.v1.tar', 'base', res.layers[0]?.digest],
      ['application/vnd.oci.image.layer.v1.tar', 'app', res.layers[1]?.digest],
    ]);
    const config = readJson(blob(res.configDigest)) as {
      architecture: string;
      os: string;
      config: { Cmd: string[]; Labels: Record<string, string> };
      rootfs: { type: string; diff_ids: string[] };
    };
    expect(config.architecture).toBe('amd64');
    expect(config.config.Cmd).toEqual(['/tools/run --verbose "a b"']);
    expect(config.config.Labels['org.osv.cmdline']).toBe('/tools/run --verbose "a b"');
    expect(config.rootfs).toEqual({ type: 'layers', diff_ids: res.layers.map((l) => l.digest) });

    const base = await readTar(blob(res.layers[0]?.digest as string));
    expect(base.map((h) => [h.name, h.type, h.mode.toString(8)])).toEqual([
      ['bin/', 'directory', '755'],
      ['bin/x', 'file', '755'],
      ['dev/', 'directory', '755'],
      ['etc/', 'directory', '755'],
      ['etc/conf', 'file', '644'],
      ['etc/hosts', 'file', '644'],
      ['etc/mnttab', 'symlink', '777'],
      ['tools/', 'directory', '755'],
      ['tools/run', 'file', '755'],
      ['usr/', 'directory', '755'],
      ['usr/lib/', 'directory', '755'],
      ['usr/lib/libx.so', 'file', '755'],
      ['var/', 'directory', '755'],
    ]);
    const app = await readTar(blob(res.layers[1]?.digest as string));
    for (const h of [...base, ...app]) {
      expect([h.mtime.getTime(), h.uid, h.gid, h.uname, h.gname]).toEqual([0, 0, 0, '', '']);
      expect(h.type).not.toMatch(/pax/);
    }
    expect(app.map((h) => h.name)).toContain(LONG_NAME.slice(1));
    expect(app.find((h) => h.name === 'app/longlink')?.linkname).toBe(LONG_TARGET);
    expect(app.find((h) => h.name === 'app/data/big.bin')?.size).toBe(3 * 1024 * 1024 + 17);
  });

  it('an unchanged rebuild writes no blob; a changed layer writes only itself and the old one is collected', async () => {
    const root = tempDir();
    const layers = makeLayers(path.join(root, 'host'));
    const dir = path.join(root, 'image');
    const first = await writeOciLayout(dir, { layers, cmdline: '/x', arch: 'aarch64' });
    expect(first.layers.map((l) => l.written)).toEqual([true, true]);
    const listing = blobListing(dir);
    const indexStat = fs.statSync(path.join(dir, 'index.json'), { bigint: true }).mtimeNs;

    const again = await writeOciLayout(dir, { layers, cmdline: '/x', arch: 'aarch64' });
    expect(again.layers.map((l) => l.written)).toEqual([false, false]);
    expect(again.manifestDigest).toBe(first.manifestDigest);
    expect(again.removed).toEqual([]);
    expect(blobListing(dir)).toEqual(listing);
    expect(fs.statSync(path.join(dir, 'index.json'), { bigint: true }).mtimeNs).toBe(indexStat);

    // Touching a source (same content) re-tars the layer but writes no blob either.
    const later = new Date(Date.now() + 10_000);
    fs.utimesSync(path.join(root, 'host', 'main.txt'), later, later);
    const touched = await writeOciLayout(dir, { layers, cmdline: '/x', arch: 'aarch64' });
    expect(touched.layers.map((l) => l.written)).toEqual([false, false]);
    expect(blobListing(dir)).toEqual(listing);

    // A changed file: a new app layer, same base layer; old app layer and manifest collected.
    fs.writeFileSync(path.join(root, 'host', 'main.txt'), 'changed\n');
    const changed = await writeOciLayout(dir, { layers, cmdline: '/x', arch: 'aarch64' });
    expect(changed.layers[0]?.digest).toBe(first.layers[0]?.digest);
    expect(changed.layers[0]?.written).toBe(false);
    expect(changed.layers[1]?.written).toBe(true);
    expect(changed.removed).toEqual([first.configDigest, first.layers[1]?.digest, first.manifestDigest].sort());
    const names = fs.readdirSync(path.join(dir, 'blobs', 'sha256'));
    expect(names).toHaveLength(4);
    expect(names).not.toContain(first.layers[1]?.digest.slice(7));
  });

  it('layer digests do not depend on where the host files are', async () => {
    const root = tempDir();
    const a = await writeOciLayout(path.join(root, 'img-a'), { layers: makeLayers(path.join(root, 'host-a')), cmdline: '/x', arch: 'x64' });
    const b = await writeOciLayout(path.join(root, 'img-b'), { layers: makeLayers(path.join(root, 'elsewhere', 'host-b')), cmdline: '/x', arch: 'x64' });
    expect(b.layers.map((l) => l.digest)).toEqual(a.layers.map((l) => l.digest));
    expect(b.manifestDigest).toBe(a.manifestDigest);
    // And into the same layout: the blobs are already there.
    const c = await writeOciLayout(path.join(root, 'img-a'), { layers: makeLayers(path.join(root, 'third')), cmdline: '/x', arch: 'x64' });
    expect(c.layers.map((l) => l.written)).toEqual([false, false]);
  });

  it('rejects bad input', async () => {
    const root = tempDir();
    const dir = path.join(root, 'image');
    const src = path.join(root, 'f');
    fs.writeFileSync(src, 'f');
    const bad = async (entries: ImageEntry[], arch = 'x64'): Promise<OsvbError> => {
      try {
        await writeOciLayout(dir, { layers: [{ name: 'm', entries }], cmdline: '', arch });
      } catch (e) {
        expect(e).toBeInstanceOf(OsvbError);
        return e as OsvbError;
      }
      throw new Error('expected an error');
    };
    expect((await bad([{ guest: '/a/../../etc/passwd', kind: 'file', source: src }])).message).toMatch(/"\.\."/);
    expect((await bad([{ guest: '/a', kind: 'file', source: path.join(root, 'missing') }])).message).toMatch(/does not exist/);
    expect((await bad([{ guest: '/a', kind: 'file', source: src }, { guest: '/a/b', kind: 'file', source: src }])).message).toMatch(/"\/a" is a file/);
    expect((await bad([], 'sparc')).message).toMatch(/unknown architecture/);
  });

  it.skipIf(!hasUmoci)('umoci unpacks it to the guest tree', async () => {
    const root = tempDir();
    const layers = makeLayers(path.join(root, 'host'));
    const dir = path.join(root, 'image');
    await writeOciLayout(dir, { layers, cmdline: '/tools/run', arch: 'x64' });
    const bundle = path.join(root, 'bundle');
    execFileSync('umoci', ['unpack', '--rootless', '--image', `${dir}:latest`, bundle], { stdio: 'pipe' });
    const rootfs = path.join(bundle, 'rootfs');
    expect(sorted(actualTree(rootfs))).toEqual(sorted(expectedTree(layers)));
    expect(fs.statSync(path.join(rootfs, 'tools', 'run')).mode & 0o777).toBe(0o755);
    expect(fs.statSync(path.join(rootfs, 'etc', 'hosts')).mode & 0o777).toBe(0o644);
    const runtime = readJson(path.join(bundle, 'config.json')) as { process: { args: string[] } };
    expect(runtime.process.args).toEqual(['/tools/run']);
  });

  it.skipIf(!hasSkopeo)('skopeo inspects it', async () => {
    const root = tempDir();
    const layers = makeLayers(path.join(root, 'host'));
    const dir = path.join(root, 'image');
    const res = await writeOciLayout(dir, { layers, cmdline: '/tools/run', arch: 'x64' });
    const out = JSON.parse(execFileSync('skopeo', ['inspect', `oci:${dir}:latest`], { encoding: 'utf8' })) as {
      Digest: string;
      Layers: string[];
      Architecture: string;
      Os: string;
      Labels: Record<string, string>;
    };
    expect(out.Digest).toBe(res.manifestDigest);
    expect(out.Layers).toEqual(res.layers.map((l) => l.digest));
    expect(out.Architecture).toBe('amd64');
    expect(out.Labels['org.osv.cmdline']).toBe('/tools/run');
  });
});
