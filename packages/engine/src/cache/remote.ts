/**
 * A remote cache behind the local one, speaking the Turborepo remote-cache HTTP API
 * (`/v8/artifacts/:id`, GET/PUT/HEAD, Bearer token, `teamId=`/`slug=`), so the self-hosted
 * `turborepo-remote-cache` server (local disk, S3, GCS, Azure) and compatible services work.
 *
 * - Content blobs are artifacts named by their digest (`osvb-cas-<xxh64>`), shared by every
 *   module and image that has the same bytes; action records are `osvb-ac-<ns>-<key>`.
 * - Everything downloaded is verified before use: a blob against its digest, a record against
 *   its key, and with a signature key (OSVB_REMOTE_CACHE_SIGNATURE_KEY) the `x-artifact-tag`
 *   HMAC-SHA256 (over id ‖ team ‖ body, base64, as Turborepo signs) — a missing or wrong tag is
 *   rejected.
 * - Faults never fail a build: a transport error, timeout, auth failure or 5xx turns the remote
 *   off for the rest of the build with one warning; a bad artifact is a miss with a warning.
 * - Uploads run in the background, a few at a time (p-limit), and `flush()` waits for them.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import pLimit from 'p-limit';
import { digestBytes, digestString, type Digest } from '../hash/index.js';

export type RemoteCacheMode = 'read' | 'write' | 'read-write';

export interface RemoteCacheConfig {
  url: string;
  token?: string;
  /** Turborepo's team scope: sent as `teamId=` when it starts with `team_`, else `slug=` (default "osvb"). */
  team?: string;
  mode: RemoteCacheMode;
  signatureKey?: string;
  /** Per request (default 15 s). */
  timeoutMs?: number;
  /** Uploads at once (default 4). */
  uploadConcurrency?: number;
}

export interface RemoteCacheStats {
  hits: number;
  misses: number;
  downloadedBytes: number;
  uploadedBytes: number;
  uploads: number;
  rejected: number;
}

const MODES: readonly RemoteCacheMode[] = ['read', 'write', 'read-write'];

/** Blobs up to this size travel inside their action record (most module outputs and logs). */
export const INLINE_BLOB_MAX = 64 * 1024;

/** The remote configuration from flags (first) and OSVB_REMOTE_CACHE_* variables; undefined when no URL. */
export function remoteCacheConfig(
  env: Readonly<Record<string, string | undefined>>,
  flags: { url?: string | undefined; mode?: string | undefined } = {},
): RemoteCacheConfig | undefined | { error: string } {
  const url = flags.url ?? env['OSVB_REMOTE_CACHE_URL'];
  if (!url) return undefined;
  try {
    const u = new URL(url);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') return { error: `remote cache URL ${url}: expected http:// or https://` };
  } catch {
    return { error: `remote cache URL "${url}" is not a URL` };
  }
  const mode = flags.mode ?? env['OSVB_REMOTE_CACHE_MODE'] ?? 'read-write';
  if (!MODES.includes(mode as RemoteCacheMode)) return { error: `remote cache mode "${mode}": expected read, write or read-write` };
  const timeout = env['OSVB_REMOTE_CACHE_TIMEOUT_MS'];
  return {
    url: url.replace(/\/+$/, ''),
    mode: mode as RemoteCacheMode,
    ...(env['OSVB_REMOTE_CACHE_TOKEN'] ? { token: env['OSVB_REMOTE_CACHE_TOKEN'] } : {}),
    ...(env['OSVB_REMOTE_CACHE_TEAM'] ? { team: env['OSVB_REMOTE_CACHE_TEAM'] } : {}),
    ...(env['OSVB_REMOTE_CACHE_SIGNATURE_KEY'] ? { signatureKey: env['OSVB_REMOTE_CACHE_SIGNATURE_KEY'] } : {}),
    ...(timeout && Number(timeout) > 0 ? { timeoutMs: Number(timeout) } : {}),
  };
}

class RemoteOff extends Error {}

export class RemoteCache {
  readonly stats: RemoteCacheStats = { hits: 0, misses: 0, downloadedBytes: 0, uploadedBytes: 0, uploads: 0, rejected: 0 };
  /** Why the remote was turned off for this build, if it was. */
  off: string | undefined;
  private readonly limit: ReturnType<typeof pLimit>;
  private readonly pending = new Set<Promise<void>>();
  private readonly warned = new Set<string>();
  private readonly team: string;

  constructor(
    readonly config: RemoteCacheConfig,
    private readonly warn: (text: string) => void,
  ) {
    this.limit = pLimit(config.uploadConcurrency ?? 4);
    this.team = config.team ?? 'osvb';
  }

  get canRead(): boolean {
    return !this.off && this.config.mode !== 'write';
  }

  get canWrite(): boolean {
    return !this.off && this.config.mode !== 'read';
  }

  private warnOnce(kind: string, text: string): void {
    if (this.warned.has(kind)) return;
    this.warned.add(kind);
    this.warn(text);
  }

  private turnOff(why: string): never {
    if (!this.off) {
      this.off = why;
      this.warn(`remote cache ${this.config.url} is not used for the rest of this build: ${why}`);
    }
    throw new RemoteOff(why);
  }

  private url(id: string): string {
    const scope = this.team.startsWith('team_') ? `teamId=${encodeURIComponent(this.team)}` : `slug=${encodeURIComponent(this.team)}`;
    return `${this.config.url}/v8/artifacts/${encodeURIComponent(id)}?${scope}`;
  }

  private tag(id: string, body: Uint8Array): string | undefined {
    if (!this.config.signatureKey) return undefined;
    return createHmac('sha256', this.config.signatureKey).update(id).update(this.team).update(body).digest('base64');
  }

  private async request(method: 'GET' | 'PUT' | 'HEAD', id: string, body?: Uint8Array): Promise<Response> {
    if (this.off) throw new RemoteOff(this.off);
    const headers: Record<string, string> = {};
    if (this.config.token) headers['authorization'] = `Bearer ${this.config.token}`;
    if (body) {
      headers['content-type'] = 'application/octet-stream';
      const tag = this.tag(id, body);
      if (tag) headers['x-artifact-tag'] = tag;
    }
    let res: Response;
    try {
      res = await fetch(this.url(id), {
        method,
        headers,
        ...(body ? { body } : {}),
        signal: AbortSignal.timeout(this.config.timeoutMs ?? 15_000),
      });
    } catch (e) {
      const err = e as Error & { cause?: { code?: string } };
      this.turnOff(err.name === 'TimeoutError' ? `no answer within ${(this.config.timeoutMs ?? 15_000) / 1000} s` : `${err.cause?.code ?? err.message}`);
    }
    if (res.status === 401 || res.status === 403) {
      const text = (await res.text().catch(() => '')).slice(0, 200);
      if (method === 'PUT' && res.status === 403) {
        // A read-only token or server: reading may still work.
        this.warnOnce('put-403', `remote cache refused an upload (403${text ? `: ${text}` : ''}); not uploading for the rest of this build`);
        this.config.mode = 'read';
        return res;
      }
      this.turnOff(`${res.status} ${res.statusText}${text ? `: ${text}` : ''} (check OSVB_REMOTE_CACHE_TOKEN)`);
    }
    if (res.status >= 500) this.turnOff(`${res.status} ${res.statusText}`);
    return res;
  }

  /** An artifact's verified body, or undefined (a miss, a rejected artifact or the remote is off). */
  private async get(id: string): Promise<Buffer | undefined> {
    if (!this.canRead) return undefined;
    try {
      const res = await this.request('GET', id);
      if (res.status === 404) {
        await res.body?.cancel();
        this.stats.misses++;
        return undefined;
      }
      if (res.status !== 200) {
        await res.body?.cancel();
        this.warnOnce(`get-${res.status}`, `remote cache answered ${res.status} for ${id}; treated as a miss`);
        this.stats.misses++;
        return undefined;
      }
      const body = Buffer.from(await res.arrayBuffer());
      const declared = res.headers.get('content-length');
      if (declared !== null && Number(declared) !== body.length) {
        this.reject(id, `truncated (${body.length} of ${declared} bytes)`);
        return undefined;
      }
      if (this.config.signatureKey) {
        const tag = res.headers.get('x-artifact-tag');
        const want = this.tag(id, body) as string;
        if (!tag) return this.reject(id, 'it is not signed (OSVB_REMOTE_CACHE_SIGNATURE_KEY is set)');
        const a = Buffer.from(tag);
        const b = Buffer.from(want);
        if (a.length !== b.length || !timingSafeEqual(a, b)) return this.reject(id, 'its signature does not match');
      }
      this.stats.downloadedBytes += body.length;
      return body;
    } catch (e) {
      if (e instanceof RemoteOff) return undefined;
      // The body stream broke (server gone mid-transfer, a reset): a fault like any other.
      if (!this.off) {
        try {
          this.turnOff(`download of ${id} failed: ${(e as Error).message}`);
        } catch {
          /* turned off */
        }
      }
      return undefined;
    }
  }

  private reject(id: string, why: string): undefined {
    this.stats.rejected++;
    this.warnOnce(`reject-${why}`, `remote cache artifact ${id} rejected: ${why}; building locally`);
    return undefined;
  }

  /** A content blob, verified against its digest. */
  async getBlob(d: Digest): Promise<Buffer | undefined> {
    const body = await this.get(`osvb-cas-${d}`);
    if (body && digestBytes(body) !== d) return this.reject(`osvb-cas-${d}`, 'its content does not match its digest');
    return body;
  }

  /**
   * An action record, checked to be the one asked for, with the small blobs that travel inside
   * it (each verified against its digest by the caller through `inline`).
   */
  async getAction<T>(namespace: string, key: string): Promise<{ value: T; inline: Map<string, Buffer> } | undefined> {
    const id = `osvb-ac-${namespace}-${key}`;
    const body = await this.get(id);
    if (!body) return undefined;
    try {
      const rec = JSON.parse(body.toString('utf8')) as { key: string; value: T; inline?: Record<string, string>; check?: string };
      if (rec.key !== key || rec.value === undefined) throw new Error('not this key');
      // A checksum over the record catches damage in transit or storage (signing covers malice).
      if (rec.check !== digestString(JSON.stringify([rec.key, rec.value, rec.inline ?? {}]))) return this.reject(id, 'its checksum does not match (damaged)');
      const inline = new Map<string, Buffer>();
      for (const [d, b64] of Object.entries(rec.inline ?? {})) {
        const data = Buffer.from(b64, 'base64');
        if (digestBytes(data) !== d) return this.reject(id, 'an inline blob does not match its digest');
        inline.set(d, data);
      }
      this.stats.hits++;
      return { value: rec.value, inline };
    } catch {
      return this.reject(id, 'it is not a valid record for this key');
    }
  }

  private enqueue(task: () => Promise<void>): Promise<void> {
    const p = this.limit(async () => {
      if (!this.canWrite) return;
      try {
        await task();
      } catch (e) {
        if (!(e instanceof RemoteOff)) this.warnOnce('upload', `remote cache upload failed: ${(e as Error).message}`);
      }
    });
    this.pending.add(p);
    void p.finally(() => this.pending.delete(p));
    return p;
  }

  private async put(id: string, body: Uint8Array): Promise<void> {
    const res = await this.request('PUT', id, body);
    await res.body?.cancel();
    if (res.status >= 200 && res.status < 300) {
      this.stats.uploads++;
      this.stats.uploadedBytes += body.length;
    } else if (res.status !== 403 && res.status !== 409) {
      this.warnOnce(`put-${res.status}`, `remote cache refused an upload (${res.status} ${res.statusText})`);
    }
  }

  /** Upload a blob unless the remote has it (HEAD first: blobs are shared and can be large). */
  uploadBlob(d: Digest, read: () => Buffer | undefined): Promise<void> {
    return this.enqueue(async () => {
      const id = `osvb-cas-${d}`;
      const head = await this.request('HEAD', id);
      await head.body?.cancel();
      if (head.status === 200) return;
      const body = read();
      if (body) await this.put(id, body);
    });
  }

  /**
   * Upload an action record once `after` (its large blobs) are up; `inline` blobs (small ones)
   * travel inside the record: one request instead of one per file.
   */
  uploadAction(namespace: string, key: string, value: unknown, after: readonly Promise<void>[] = [], inline: ReadonlyMap<string, Buffer> = new Map()): Promise<void> {
    // Waits outside the upload slots: holding one while its blobs queue behind it could deadlock.
    const p = Promise.all(after).then(() =>
      this.enqueue(async () => {
        const packed: Record<string, string> = {};
        for (const [d, data] of inline) packed[d] = data.toString('base64');
        const check = digestString(JSON.stringify([key, value, packed]));
        await this.put(`osvb-ac-${namespace}-${key}`, Buffer.from(JSON.stringify({ key, value, inline: packed, check })));
      }),
    );
    this.pending.add(p);
    void p.finally(() => this.pending.delete(p));
    return p;
  }

  /** Whether the remote has an action record (HEAD). */
  async hasAction(namespace: string, key: string): Promise<boolean> {
    if (this.off) return false;
    try {
      const res = await this.request('HEAD', `osvb-ac-${namespace}-${key}`);
      await res.body?.cancel();
      return res.status === 200;
    } catch {
      return false;
    }
  }

  /** Wait for every upload started so far (and those they start). */
  async flush(): Promise<void> {
    while (this.pending.size > 0) await Promise.all([...this.pending]);
  }
}
