/** Test rig: real trees in temp dirs, the real osvb binary, a logging `make` wrapper on PATH. */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const OSVB = path.join(REPO, 'packages/cli/bin/osvb.js');

export function tempDir(prefix = 'osvb-test-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** Write files (relative path → content) under root. */
export function writeTree(root: string, files: Record<string, string>): void {
  for (const [rel, text] of Object.entries(files)) {
    const p = path.join(root, rel);
    fs.mkdirSync(path.dirname(p), { recursive: true });
    fs.writeFileSync(p, text);
  }
}

export function copyTree(src: string, dest: string): void {
  fs.cpSync(src, dest, { recursive: true, verbatimSymlinks: true });
}

/**
 * Copy the bundled example as a fresh clone has it: the files git tracks or would track, not
 * build outputs or the cache a local build left there.
 */
export function copyExample(dest: string): void {
  const src = path.join(REPO, 'examples/osv');
  const r = spawnSync('git', ['-C', src, 'ls-files', '-z', '--cached', '--others', '--exclude-standard', '.'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`git ls-files failed: ${r.stderr}`);
  for (const rel of r.stdout.split('\0').filter(Boolean)) {
    if (!fs.existsSync(path.join(src, rel))) continue; // deleted in the work tree
    fs.mkdirSync(path.dirname(path.join(dest, rel)), { recursive: true });
    fs.cpSync(path.join(src, rel), path.join(dest, rel), { verbatimSymlinks: true });
  }
}

/**
 * A directory holding a `make` that logs each invocation (cwd and args, one JSON line) to
 * `log` and then runs the real make, so tests can count real builds.
 */
export function makeWrapper(dir: string, log: string): string {
  const realMake = execaSyncWhich('make');
  const bin = path.join(dir, 'wrapper-bin');
  fs.mkdirSync(bin, { recursive: true });
  const script = `#!/bin/sh
printf '{"cwd":"%s","args":"%s"}\\n' "$PWD" "$*" >> '${log}'
exec '${realMake}' "$@"
`;
  fs.writeFileSync(path.join(bin, 'make'), script, { mode: 0o755 });
  return bin;
}

function execaSyncWhich(cmd: string): string {
  for (const d of (process.env['PATH'] ?? '').split(':')) {
    const p = path.join(d, cmd);
    if (d && fs.existsSync(p) && !p.includes('wrapper-bin')) return p;
  }
  throw new Error(`${cmd} not found on PATH`);
}

export function readMakeLog(log: string): Array<{ cwd: string; args: string }> {
  if (!fs.existsSync(log)) return [];
  return fs
    .readFileSync(log, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { cwd: string; args: string });
}

export interface RunResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

export async function osvb(args: string[], opts: { cwd?: string; env?: Record<string, string | undefined>; path?: string } = {}): Promise<RunResult> {
  const env: Record<string, string | undefined> = { ...process.env, OSV_BASE: undefined, OSV_BUILD_PATH: undefined, CI: 'true', ...opts.env };
  if (opts.path) env['PATH'] = `${opts.path}:${process.env['PATH'] ?? ''}`;
  const res = await execa(process.execPath, [OSVB, ...args], {
    cwd: opts.cwd ?? REPO,
    env,
    extendEnv: false,
    reject: false,
    stdin: 'ignore',
    stripFinalNewline: false,
  });
  return { exitCode: res.exitCode ?? -1, stdout: String(res.stdout), stderr: String(res.stderr) };
}

/** Files in a directory (recursively), relative, sorted. */
export function listFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string, rel: string): void => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) walk(path.join(d, e.name), r);
      else out.push(r);
    }
  };
  if (fs.existsSync(dir)) walk(dir, '');
  return out.sort();
}
