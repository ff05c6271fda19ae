/**
 * The remote cache end to end: the real osvb CLI against a real turborepo-remote-cache server on
 * 127.0.0.1 (filesystem storage), with real make and gcc; makes counted through a wrapper.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { copyExample, makeWrapper, osvb, readMakeLog, tempDir, writeTree, type RunResult } from '../helpers/cli.js';
import { startRemoteCache, type RemoteCacheServer } from '../helpers/remoteCache.js';
import { recordFigures } from '../reliability/summary.js';

/** Fault scenarios (for the reliability summary): each adds its cases once they passed. */
const faults = { planned: 0, passed: 0 };
function faultCases(n: number): () => void {
  faults.planned += n;
  return () => {
    faults.passed += n;
  };
}

const dirs: string[] = [];
const servers: RemoteCacheServer[] = [];
function scratch(): string {
  const d = tempDir('osvb-remote-');
  dirs.push(d);
  return d;
}
afterEach(async () => {
  for (const s of servers.splice(0)) await s.stop();
});
afterAll(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
  recordFigures({ scenario: 'remote cache faults (bad token, signatures, tampering, server death)', runs: faults.planned, failures: faults.planned - faults.passed });
});
async function server(opts: Parameters<typeof startRemoteCache>[0] = {}): Promise<RemoteCacheServer> {
  const s = await startRemoteCache(opts);
  servers.push(s);
  return s;
}

/** A copy of examples/osv with its own cache and make log. */
function checkout(): { base: string; cache: string; log: string; wrapper: string } {
  const root = scratch();
  const base = path.join(root, 'osv');
  copyExample(base);
  const log = path.join(root, 'make.log');
  return { base, cache: path.join(root, 'cache'), log, wrapper: makeWrapper(root, log) };
}

async function build(c: ReturnType<typeof checkout>, env: Record<string, string | undefined>, extra: string[] = []): Promise<RunResult & { makes: number }> {
  const before = readMakeLog(c.log).length;
  const res = await osvb(['build', '--osv-base', c.base, '--cache-dir', c.cache, ...extra], { path: c.wrapper, env });
  return { ...res, makes: readMakeLog(c.log).length - before };
}

const remoteEnv = (s: RemoteCacheServer, more: Record<string, string> = {}): Record<string, string> => ({ OSVB_REMOTE_CACHE_URL: s.url, OSVB_REMOTE_CACHE_TOKEN: s.token, ...more });
const outputsOf = (base: string): Buffer[] => ['modules/libgreet/libgreet.so', 'apps/hello/hello.so'].map((f) => fs.readFileSync(path.join(base, f)));

describe('remote cache (turborepo-remote-cache on loopback)', () => {
  it('one checkout populates it; another at a different path with an empty local cache runs no make and no python3, and gets identical outputs', async () => {
    const s = await server();
    // A python3 that logs its starts (the same path for both checkouts: it is part of the key).
    const tools = scratch();
    const pythonLog = path.join(tools, 'python.log');
    const python = path.join(tools, 'python3-logged');
    fs.writeFileSync(python, `#!/bin/sh\necho start >> '${pythonLog}'\nexec python3 "$@"\n`, { mode: 0o755 });
    const starts = (): number => (fs.existsSync(pythonLog) ? fs.readFileSync(pythonLog, 'utf8').split('\n').filter(Boolean).length : 0);
    const a = checkout();
    const first = await build(a, remoteEnv(s, { OSVB_PYTHON: python }));
    expect(first.exitCode, first.stderr).toBe(0);
    expect(first.makes).toBe(2);
    expect(first.stderr).toMatch(/remote cache: 0 modules restored from it, .*\(\d+ uploads\)/);
    expect(s.files().some((f) => f.includes('osvb-ac-build-'))).toBe(true);

    const b = checkout();
    expect(b.base).not.toBe(a.base);
    const pythonBefore = starts();
    expect(pythonBefore).toBeGreaterThan(0);
    const second = await build(b, remoteEnv(s, { OSVB_PYTHON: python }));
    expect(second.exitCode, second.stderr).toBe(0);
    expect(second.makes).toBe(0);
    // The evaluation record came from the remote too (its reads checked against B's files).
    expect(starts()).toBe(pythonBefore);
    expect(second.stderr).toMatch(/restored libgreet from the remote cache/);
    expect(second.stderr).toMatch(/2 restored \(2 from the remote cache\)/);
    expect(outputsOf(b.base)).toEqual(outputsOf(a.base));
    // The remote's results went into B's local cache: offline now, B still needs no make.
    fs.rmSync(path.join(b.base, 'modules/libgreet/libgreet.so'));
    const offline = await build(b, { OSVB_REMOTE_CACHE_URL: undefined });
    expect(offline.makes).toBe(0);
  });

  it('large outputs travel as content-addressed blobs, shared by modules with the same bytes', async () => {
    const s = await server();
    const tree = (): string => {
      const root = scratch();
      const mod = (n: string): Record<string, string> => ({
        [`modules/${n}/module.py`]: 'from osv.modules import api\n',
        // 300 kB of the same bytes in both modules: one blob on the server.
        [`modules/${n}/Makefile`]: 'module:\n\thead -c 300000 /dev/zero | tr "\\0" "a" > big.bin\n',
        [`modules/${n}/usr.manifest`]: `/${n}.bin: \${MODULE_DIR}/big.bin\n`,
      });
      writeTree(root, {
        'config.json': JSON.stringify({ modules: { repositories: ['${OSV_BASE}/modules'] } }),
        'usr.manifest.skel': '[manifest]\n',
        'bootfs.manifest.skel': '[manifest]\n',
        'images/default.py': "from osv.modules import api\napi.require('one')\napi.require('two')\n",
        ...mod('one'),
        ...mod('two'),
      });
      return root;
    };
    const a = tree();
    const first = await osvb(['build', '--osv-base', a, '--cache-dir', path.join(a, '.c')], { env: remoteEnv(s) });
    expect(first.exitCode, first.stderr).toBe(0);
    expect(s.files().filter((f) => f.includes('osvb-cas-'))).toHaveLength(1);
    const b = tree();
    const second = await osvb(['build', '--osv-base', b, '--cache-dir', path.join(b, '.c'), '-v'], { env: remoteEnv(s) });
    expect(second.exitCode, second.stderr).toBe(0);
    expect(second.stderr).toMatch(/2 restored \(2 from the remote cache\)/);
    expect(fs.readFileSync(path.join(b, 'modules/two/big.bin')).equals(fs.readFileSync(path.join(a, 'modules/two/big.bin')))).toBe(true);
  });

  it('a module that opts in to path-sensitive keys is not shared across checkout paths (the others are)', async () => {
    const s = await server();
    const a = checkout();
    const b = checkout();
    for (const c of [a, b]) fs.writeFileSync(path.join(c.base, 'apps/hello/.osvb-path-sensitive'), 'hello.so embeds its build directory\n');
    expect((await build(a, remoteEnv(s))).makes).toBe(2);
    const res = await build(b, remoteEnv(s));
    expect(res.exitCode, res.stderr).toBe(0);
    expect(res.stderr).toMatch(/restored libgreet from the remote cache/);
    expect(readMakeLog(b.log).map((c) => path.relative(b.base, c.cwd))).toEqual(['apps/hello']);
    // The same path again (a second build in B after a clean) is served by the cache.
    fs.rmSync(path.join(b.base, 'apps/hello/hello.so'));
    expect((await build(b, remoteEnv(s))).makes).toBe(0);
  });

  it('read mode uploads nothing; a populated cache still serves it', async () => {
    const s = await server();
    const a = checkout();
    const ro = await build(a, remoteEnv(s), ['--remote-cache-mode', 'read']);
    expect(ro.exitCode, ro.stderr).toBe(0);
    expect(ro.makes).toBe(2);
    expect(s.files()).toEqual([]);
    const rw = await build(checkout(), remoteEnv(s));
    expect(rw.makes).toBe(2);
    const reader = await build(checkout(), remoteEnv(s, { OSVB_REMOTE_CACHE_MODE: 'read' }));
    expect(reader.makes).toBe(0);
  });

  it('a wrong token: one warning, a local build, exit 0', async () => {
    const done = faultCases(1);
    const s = await server();
    const res = await build(checkout(), remoteEnv(s, { OSVB_REMOTE_CACHE_TOKEN: 'wrong' }));
    expect(res.exitCode, res.stderr).toBe(0);
    expect(res.makes).toBe(2);
    expect(res.stderr.match(/warning: remote cache/g)).toHaveLength(1);
    expect(res.stderr).toMatch(/401/);
    expect(s.files()).toEqual([]);
    done();
  });

  it('signed artifacts: the same key verifies; a wrong key, an unsigned artifact and a tampered one are rejected and built locally', async () => {
    const done = faultCases(3);
    const s = await server({ signatureKey: 'server-stores-tags' });
    const signed = remoteEnv(s, { OSVB_REMOTE_CACHE_SIGNATURE_KEY: 'k1' });
    expect((await build(checkout(), signed)).makes).toBe(2);
    expect(s.files().some((f) => f.endsWith('.tag') || f.includes('tag'))).toBe(true);
    expect((await build(checkout(), signed)).makes).toBe(0);

    const wrongKey = await build(checkout(), remoteEnv(s, { OSVB_REMOTE_CACHE_SIGNATURE_KEY: 'k2' }));
    expect(wrongKey.exitCode).toBe(0);
    expect(wrongKey.makes).toBe(2);
    expect(wrongKey.stderr).toMatch(/rejected: its signature does not match/);

    // Tamper with every stored artifact (records carry the small blobs inline): signed clients
    // reject the tag, unsigned ones the checksum or the digest.
    for (const f of s.files().filter((f) => f.includes('osvb-') && !f.includes('tag'))) {
      const p = path.join(s.storage, f);
      const data = fs.readFileSync(p);
      const i = data.length >> 1;
      data[i] = (data[i] as number) ^ 0xff;
      fs.writeFileSync(p, data);
    }
    // (read mode: a local rebuild must not replace the damaged artifacts before the next check)
    const tampered = await build(checkout(), { ...signed, OSVB_REMOTE_CACHE_MODE: 'read' });
    expect(tampered.makes).toBe(2);
    expect(tampered.stderr).toMatch(/rejected/);
    const unsigned = await build(checkout(), remoteEnv(s));
    expect(unsigned.makes).toBe(2);
    expect(unsigned.stderr).toMatch(/rejected: (its checksum does not match|an inline blob does not match its digest|its content does not match its digest|it is not a valid record)/);
    done();
  });

  it('an unsigned artifact is rejected when signing is on', async () => {
    const done = faultCases(1);
    // A server without a signature key of its own keeps and returns no tags at all.
    const s = await server();
    expect((await build(checkout(), remoteEnv(s))).makes).toBe(2);
    const res = await build(checkout(), remoteEnv(s, { OSVB_REMOTE_CACHE_SIGNATURE_KEY: 'k1' }));
    expect(res.makes).toBe(2);
    expect(res.stderr).toMatch(/rejected: it is not signed/);
    done();
  });

  it('a server that dies mid-build: the build succeeds locally, with one warning', async () => {
    const done = faultCases(1);
    const s = await server();
    const root = scratch();
    writeTree(root, {
      'config.json': JSON.stringify({ modules: { repositories: ['${OSV_BASE}/modules'] } }),
      'usr.manifest.skel': '[manifest]\n',
      'bootfs.manifest.skel': '[manifest]\n',
      'images/default.py': "from osv.modules import api\napi.require('slow')\napi.require('after')\n",
      'modules/slow/module.py': 'from osv.modules import api\n',
      'modules/slow/Makefile': 'module:\n\tsleep 1\n\techo slow > out.txt\n',
      'modules/slow/usr.manifest': '/slow.txt: ${MODULE_DIR}/out.txt\n',
      'modules/after/module.py': "from osv.modules import api\napi.require('slow')\n",
      'modules/after/Makefile': 'module:\n\techo after > out.txt\n',
      'modules/after/usr.manifest': '/after.txt: ${MODULE_DIR}/out.txt\n',
    });
    const running = osvb(['build', '--osv-base', root, '--cache-dir', path.join(root, '.cache')], { env: remoteEnv(s) });
    await new Promise((r) => setTimeout(r, 400));
    await s.stop();
    const res = await running;
    expect(res.exitCode, res.stderr).toBe(0);
    expect(fs.readFileSync(path.join(root, 'modules/after/out.txt'), 'utf8')).toBe('after\n');
    expect(res.stderr.match(/warning: remote cache/g)).toHaveLength(1);
    expect(res.stderr).toMatch(/not used for the rest of this build/);
    done();
  });

  it('a bad remote cache URL or mode is a usage error', async () => {
    const bad = await osvb(['build', '--osv-base', checkout().base, '--remote-cache', 'ftp://x']);
    expect(bad.exitCode).toBe(2);
    expect(bad.stderr).toMatch(/error\[OSVB_USAGE\]: remote cache URL ftp:\/\/x: expected http/);
    const mode = await osvb(['build', '--osv-base', checkout().base, '--remote-cache', 'http://127.0.0.1:9', '--remote-cache-mode', 'sometimes']);
    expect(mode.exitCode).toBe(2);
    expect(mode.stderr).toMatch(/remote cache mode "sometimes"/);
  });
});
