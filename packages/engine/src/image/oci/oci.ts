/**
 * An OCI image layout (image-spec v1.0: `oci-layout`, `index.json`, `blobs/sha256/…`) with one
 * uncompressed tar layer per given layer (one per module), so registries, skopeo, umoci,
 * podman & co. can store and inspect an OSv image and share unchanged modules' layers.
 *
 * Layers are deterministic: entries sorted by path (bytes), missing parent directories added,
 * mtime 0, uid/gid 0, no user or group names, fixed modes (directories 0755, files 0644, or 0755
 * when executable by anyone, links 0777), so host umasks do not leak in; a PAX header appears
 * only for a name or link target that ustar cannot hold, and carries just that path. The same
 * guest tree gives the same layer digest wherever its files live on the host.
 *
 * Incremental and content-addressed: a blob is written (temp file + rename) only when it is not
 * in the layout yet. A small memo (`.osvb-oci.json` in the layout) maps a layer's inputs
 * (entries plus each source's stat signature) to its digest, so an unchanged layer is neither
 * re-read nor re-tarred. After index.json is written, blobs it no longer reaches are deleted.
 *
 * The layout belongs to osvb: index.json holds exactly the one image written, tagged `tag`
 * (default `latest`) through `org.opencontainers.image.ref.name`.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { finished } from 'node:stream/promises';
import type { Pack } from 'tar-stream';
import { OsvbError } from '../../errors/index.js';
import { canonicalJson, digestValue, initHashing } from '../../hash/index.js';
import { tempNameFor, writeFileAtomic } from '../../fsutil/index.js';
import type { ImageEntry } from '../../layers/index.js';

export interface OciLayerInput {
  /** Module name, recorded as the layer annotation `org.osv.module`. */
  name: string;
  /**
   * Guest entries (layers/ `ImageEntry`): a file's `source` is read (links followed), a link's
   * `target` stored verbatim. `mode` only says whether a file is executable (default: the
   * source's own bits); stored modes are fixed, see above.
   */
  entries: ImageEntry[];
}

export interface OciLayoutOptions {
  layers: OciLayerInput[];
  /** The OSv command line: `config.Cmd` = [cmdline] and label `org.osv.cmdline`. */
  cmdline: string;
  /** OSv's (`x64`, `aarch64`) or OCI's (`amd64`, `arm64`) architecture name. */
  arch: string;
  /** Reference name in index.json; default `latest`. */
  tag?: string;
}

export interface OciLayerResult {
  name: string;
  /** `sha256:…`; the layer is uncompressed, so this is also its diff_id. */
  digest: string;
  size: number;
  /** False when the blob was already in the layout (nothing written). */
  written: boolean;
}

export interface OciLayoutResult {
  dir: string;
  manifestDigest: string;
  configDigest: string;
  layers: OciLayerResult[];
  /** Blobs deleted because index.json no longer reaches them. */
  removed: string[];
}

export const OCI_LAYER_TAR = 'application/vnd.oci.image.layer.v1.tar';
export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
export const OCI_CONFIG = 'application/vnd.oci.image.config.v1+json';

const ARCH: Readonly<Record<string, string>> = { x64: 'amd64', x86_64: 'amd64', amd64: 'amd64', aarch64: 'arm64', arm64: 'arm64' };
/** Bump when the tar encoding changes, so memoised layer digests are not reused. */
const LAYER_FORMAT = 1;
const MEMO_FILE = '.osvb-oci.json';
const RACY_NS = 2_000_000_000n;

interface TarItem {
  path: string;
  kind: 'file' | 'dir' | 'link';
  mode: number;
  size: number;
  source?: string;
  target?: string;
  /** Source stat signature (files). */
  sig?: string;
}

function ociError(message: string, hint?: string): OsvbError {
  return new OsvbError('OSVB_OCI', message, hint === undefined ? {} : { hint });
}

function guestParts(guest: string, layer: string): string[] {
  const parts = guest.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.includes('..')) throw ociError(`layer ${layer}: guest path "${guest}" has a ".." component`);
  return parts;
}

function compareBytes(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/** The sorted tar items of one layer, parents included; stats sources. */
function layerItems(layer: OciLayerInput, now: bigint): { items: TarItem[]; racy: boolean } {
  const items = new Map<string, TarItem>();
  let racy = false;
  for (const e of layer.entries) {
    const parts = guestParts(e.guest, layer.name);
    const p = parts.join('/');
    if (p === '') {
      if (e.kind === 'dir') continue;
      throw ociError(`layer ${layer.name}: a ${e.kind} cannot be the root directory ("${e.guest}")`);
    }
    if (e.kind === 'dir') {
      items.set(p, { path: p, kind: 'dir', mode: 0o755, size: 0 });
    } else if (e.kind === 'link') {
      if (e.target === undefined) throw ociError(`layer ${layer.name}: link "${e.guest}" has no target`);
      items.set(p, { path: p, kind: 'link', mode: 0o777, size: 0, target: e.target });
    } else {
      if (e.source === undefined) throw ociError(`layer ${layer.name}: file "${e.guest}" has no source`);
      let st: fs.BigIntStats;
      try {
        st = fs.statSync(e.source, { bigint: true });
      } catch {
        throw ociError(`layer ${layer.name}: source "${e.source}" of "${e.guest}" does not exist`);
      }
      if (!st.isFile()) throw ociError(`layer ${layer.name}: source "${e.source}" of "${e.guest}" is not a regular file`);
      const bits = e.mode ?? Number(st.mode & 0o7777n);
      const mode = (bits & 0o111) !== 0 ? 0o755 : 0o644;
      if (st.mtimeNs + RACY_NS > now || st.ctimeNs + RACY_NS > now) racy = true;
      items.set(p, {
        path: p,
        kind: 'file',
        mode,
        size: Number(st.size),
        source: path.resolve(e.source),
        sig: `${st.size}:${st.mtimeNs}:${st.ctimeNs}:${st.ino}:${st.dev}`,
      });
    }
  }
  for (const item of [...items.values()]) {
    const parts = item.path.split('/');
    for (let i = 1; i < parts.length; i++) {
      const parent = parts.slice(0, i).join('/');
      const have = items.get(parent);
      if (have === undefined) items.set(parent, { path: parent, kind: 'dir', mode: 0o755, size: 0 });
      else if (have.kind !== 'dir') throw ociError(`layer ${layer.name}: "/${parent}" is a ${have.kind} but "/${item.path}" is below it`);
    }
  }
  return { items: [...items.values()].sort((a, b) => compareBytes(a.path, b.path)), racy };
}

function waitDrain(stream: NodeJS.EventEmitter): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      stream.off('drain', done);
      stream.off('close', done);
      resolve();
    };
    stream.on('drain', done);
    stream.on('close', done);
  });
}

function addItem(pack: Pack, item: TarItem): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const header = {
      name: item.kind === 'dir' ? `${item.path}/` : item.path,
      type: item.kind === 'dir' ? ('directory' as const) : item.kind === 'link' ? ('symlink' as const) : ('file' as const),
      mode: item.mode,
      mtime: new Date(0),
      uid: 0,
      gid: 0,
      uname: '',
      gname: '',
      size: item.kind === 'file' ? item.size : 0,
      ...(item.kind === 'link' ? { linkname: item.target as string } : {}),
    };
    const sink = pack.entry(header, (err) => (err ? reject(err) : resolve()));
    if (item.kind !== 'file') return;
    sink.on('error', reject);
    const rs = fs.createReadStream(item.source as string, { highWaterMark: 1 << 20 });
    rs.on('error', (e) => {
      sink.destroy(e);
      reject(e);
    });
    rs.on('data', (chunk) => {
      if (!sink.write(chunk as Buffer)) {
        rs.pause();
        void waitDrain(sink).then(() => rs.resume());
      }
    });
    rs.on('end', () => sink.end(undefined));
  });
}

/** Stream the layer's tar into a temp file in the blob directory; returns its digest and size. */
async function writeLayerTar(items: readonly TarItem[], blobDir: string): Promise<{ hex: string; size: number; tmp: string }> {
  // tar-stream (mafintosh's streaming tar packer, used by the npm/docker tooling ecosystem) writes
  // correct ustar headers, falls back to PAX only for long or non-ASCII paths, and streams file
  // bodies with backpressure, so memory stays bounded whatever the layer size. Loaded lazily:
  // only image writes need it, and CLI start-up should not pay for it.
  const { pack: createPack } = await import('tar-stream');
  const pack = createPack();
  const tmp = tempNameFor(path.join(blobDir, 'layer'));
  const hash = createHash('sha256');
  let size = 0;
  const ws = fs.createWriteStream(tmp, { mode: 0o644 });
  let wsError: Error | undefined;
  ws.on('error', (e) => {
    wsError ??= e;
  });
  const consumer = (async (): Promise<void> => {
    for await (const chunk of pack as AsyncIterable<Buffer>) {
      if (wsError) throw wsError;
      hash.update(chunk);
      size += chunk.length;
      if (!ws.write(chunk)) await waitDrain(ws);
    }
    ws.end();
    await finished(ws);
  })();
  // A failed write stops the packer, which fails the entry being added.
  const failed = consumer.catch((e: unknown) => {
    pack.destroy(e as Error);
    throw e;
  });
  failed.catch(() => {});
  try {
    for (const item of items) await addItem(pack, item);
    pack.finalize();
    await failed;
  } catch (e) {
    pack.destroy(e as Error);
    ws.destroy();
    const cause = await failed.then(
      () => e,
      (ce: unknown) => ce,
    );
    fs.rmSync(tmp, { force: true });
    throw cause instanceof OsvbError ? cause : new OsvbError('OSVB_IO', `writing an OCI layer failed: ${(cause as Error).message}`, { cause });
  }
  return { hex: hash.digest('hex'), size, tmp };
}

function blobPath(dir: string, digest: string): string {
  const [alg, hex] = digest.split(':') as [string, string];
  return path.join(dir, 'blobs', alg, hex);
}

function sizeIf(p: string): number | undefined {
  try {
    return fs.statSync(p).size;
  } catch {
    return undefined;
  }
}

/** Store bytes as a blob unless present; returns its descriptor fields. */
function putBlob(dir: string, data: Buffer): { digest: string; size: number } {
  const digest = `sha256:${createHash('sha256').update(data).digest('hex')}`;
  const p = blobPath(dir, digest);
  if (sizeIf(p) !== data.length) writeFileAtomic(p, data, 0o644);
  return { digest, size: data.length };
}

/** Write a file only when its content differs (keeps mtime otherwise). */
function putFile(p: string, data: string): void {
  try {
    if (fs.readFileSync(p, 'utf8') === data) return;
  } catch {
    /* missing */
  }
  writeFileAtomic(p, data, 0o644);
}

interface Memo {
  v: number;
  layers: Record<string, { digest: string; size: number }>;
}

function readMemo(file: string): Memo['layers'] {
  try {
    const m = JSON.parse(fs.readFileSync(file, 'utf8')) as Memo;
    return m.v === LAYER_FORMAT && m.layers && typeof m.layers === 'object' ? m.layers : {};
  } catch {
    return {};
  }
}

interface Descriptor {
  mediaType?: string;
  digest?: string;
}

/** Every blob digest reachable from index.json (manifests, configs, layers, nested indexes). */
function reachableBlobs(dir: string): Set<string> {
  const seen = new Set<string>();
  const visit = (d: Descriptor): void => {
    if (typeof d.digest !== 'string' || seen.has(d.digest)) return;
    seen.add(d.digest);
    if (d.mediaType !== OCI_MANIFEST && d.mediaType !== OCI_INDEX) return;
    const doc = JSON.parse(fs.readFileSync(blobPath(dir, d.digest), 'utf8')) as { config?: Descriptor; layers?: Descriptor[]; manifests?: Descriptor[] };
    if (doc.config) visit(doc.config);
    for (const l of doc.layers ?? []) visit(l);
    for (const m of doc.manifests ?? []) visit(m);
  };
  const index = JSON.parse(fs.readFileSync(path.join(dir, 'index.json'), 'utf8')) as { manifests?: Descriptor[] };
  for (const m of index.manifests ?? []) visit(m);
  return seen;
}

function collectGarbage(dir: string): string[] {
  const keep = reachableBlobs(dir);
  const removed: string[] = [];
  const blobs = path.join(dir, 'blobs');
  for (const alg of fs.readdirSync(blobs)) {
    let names: string[];
    try {
      names = fs.readdirSync(path.join(blobs, alg));
    } catch {
      continue;
    }
    for (const name of names) {
      if (!/^[0-9a-f]+$/.test(name)) continue; // temp files and anything else are not blobs
      const digest = `${alg}:${name}`;
      if (keep.has(digest)) continue;
      fs.rmSync(path.join(blobs, alg, name), { force: true });
      removed.push(digest);
    }
  }
  return removed.sort();
}

/** Write (or update) an OCI image layout in `dir`. */
export async function writeOciLayout(dir: string, opts: OciLayoutOptions): Promise<OciLayoutResult> {
  await initHashing();
  const arch = ARCH[opts.arch];
  if (arch === undefined) throw ociError(`unknown architecture "${opts.arch}"`, `use one of ${Object.keys(ARCH).join(', ')}`);
  const tag = opts.tag ?? 'latest';
  const root = path.resolve(dir);
  const blobDir = path.join(root, 'blobs', 'sha256');
  fs.mkdirSync(blobDir, { recursive: true });
  putFile(path.join(root, 'oci-layout'), canonicalJson({ imageLayoutVersion: '1.0.0' }));

  const memoFile = path.join(root, MEMO_FILE);
  const memo = readMemo(memoFile);
  const nextMemo: Memo['layers'] = {};
  const now = BigInt(Date.now()) * 1_000_000n;
  const layers: OciLayerResult[] = [];
  for (const layer of opts.layers) {
    const { items, racy } = layerItems(layer, now);
    const key = digestValue({
      v: LAYER_FORMAT,
      items: items.map((i) => [i.path, i.kind, i.mode, i.size, i.target ?? null, i.source ?? null, i.sig ?? null]),
    });
    const known = memo[key];
    if (known && sizeIf(blobPath(root, known.digest)) === known.size) {
      layers.push({ name: layer.name, digest: known.digest, size: known.size, written: false });
      nextMemo[key] = known;
      continue;
    }
    const { hex, size, tmp } = await writeLayerTar(items, blobDir);
    const digest = `sha256:${hex}`;
    const target = blobPath(root, digest);
    let written = false;
    if (sizeIf(target) === size) {
      fs.rmSync(tmp, { force: true });
    } else {
      fs.renameSync(tmp, target);
      written = true;
    }
    layers.push({ name: layer.name, digest, size, written });
    if (!racy) nextMemo[key] = { digest, size };
  }

  const config = Buffer.from(
    canonicalJson({
      architecture: arch,
      os: 'linux',
      config: { Cmd: [opts.cmdline], Labels: { 'org.osv.cmdline': opts.cmdline } },
      rootfs: { type: 'layers', diff_ids: layers.map((l) => l.digest) },
      history: layers.map((l) => ({ created_by: `osv module ${l.name}` })),
    }),
  );
  const configDesc = putBlob(root, config);
  const manifest = Buffer.from(
    canonicalJson({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: OCI_CONFIG, ...configDesc },
      layers: layers.map((l) => ({ mediaType: OCI_LAYER_TAR, digest: l.digest, size: l.size, annotations: { 'org.osv.module': l.name } })),
    }),
  );
  const manifestDesc = putBlob(root, manifest);
  putFile(
    path.join(root, 'index.json'),
    canonicalJson({
      schemaVersion: 2,
      mediaType: OCI_INDEX,
      manifests: [
        {
          mediaType: OCI_MANIFEST,
          ...manifestDesc,
          platform: { architecture: arch, os: 'linux' },
          annotations: { 'org.opencontainers.image.ref.name': tag },
        },
      ],
    }),
  );
  const removed = collectGarbage(root);
  putFile(memoFile, canonicalJson({ v: LAYER_FORMAT, layers: nextMemo }));
  return { dir: root, manifestDigest: manifestDesc.digest, configDigest: configDesc.digest, layers, removed };
}
