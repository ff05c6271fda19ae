/** A real turborepo-remote-cache server (the devDependency) on 127.0.0.1, filesystem storage, random port. */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { REPO, tempDir } from './cli.js';

export interface RemoteCacheServer {
  url: string;
  token: string;
  storage: string;
  /** Files stored so far (relative to storage). */
  files(): string[];
  stop(): Promise<void>;
}

export async function startRemoteCache(opts: { token?: string; signatureKey?: string; readOnly?: boolean } = {}): Promise<RemoteCacheServer> {
  const storage = tempDir('osvb-remote-store-');
  const token = opts.token ?? 'test-token';
  const child: ChildProcess = spawn(process.execPath, [path.join(REPO, 'node_modules/turborepo-remote-cache/dist/cli.js')], {
    env: {
      ...process.env,
      HOST: '127.0.0.1',
      PORT: '0',
      TURBO_TOKEN: token,
      STORAGE_PROVIDER: 'local',
      STORAGE_PATH: storage,
      STORAGE_PATH_USE_TMP_FOLDER: 'false',
      NODE_ENV: 'production',
      LOG_LEVEL: 'info',
      ...(opts.signatureKey ? { TURBO_REMOTE_CACHE_SIGNATURE_KEY: opts.signatureKey } : {}),
      ...(opts.readOnly ? { READ_ONLY: 'true' } : {}),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`turborepo-remote-cache did not start:\n${log}`)), 20_000);
    const onData = (d: Buffer): void => {
      log += d.toString();
      const m = /Server listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(log);
      if (m) {
        clearTimeout(timer);
        resolve(m[1] as string);
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.on('exit', (code) => reject(new Error(`turborepo-remote-cache exited (${code}):\n${log}`)));
  });
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  return {
    url,
    token,
    storage,
    files(): string[] {
      const out: string[] = [];
      const walk = (d: string, rel: string): void => {
        for (const e of fs.readdirSync(d, { withFileTypes: true })) {
          if (e.isDirectory()) walk(path.join(d, e.name), rel ? `${rel}/${e.name}` : e.name);
          else out.push(rel ? `${rel}/${e.name}` : e.name);
        }
      };
      walk(storage, '');
      return out.sort();
    },
    async stop(): Promise<void> {
      if (child.exitCode === null) child.kill('SIGKILL');
      await exited;
      fs.rmSync(storage, { recursive: true, force: true });
    },
  };
}
