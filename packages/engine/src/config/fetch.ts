/**
 * Fetching `git`/`svn`/`dir` modules into BUILD/module/<name>. OSv runs one shell string with
 * unquoted words; we pass argument arrays (no shell, so a name or URL with `;` runs nothing)
 * and fetch into a temp directory renamed into place, so a failed fetch leaves nothing that a
 * later build would mistake for a complete module.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { OsvbError } from '../errors/index.js';
import type { LocatedModule } from './config.js';

export function fetchCommand(mod: LocatedModule, target: string): [string, string[]] {
  const entry = mod.entry;
  if (!entry) throw new OsvbError('OSVB_INTERNAL', `module ${mod.name} is not a fetched module`);
  switch (entry.type) {
    case 'git':
      return ['git', ['clone', '-b', entry.branch ?? '', '--', entry.path, target]];
    case 'svn':
      return ['svn', ['co', '--', entry.path, target]];
    case 'dir':
      return ['cp', ['-a', '--', entry.path, target]];
    default:
      throw new OsvbError('OSVB_CONFIG_SCHEMA', `module "${mod.name}": ${entry.type} is unknown type (known: direct-dir, dir, git, svn)`, {
        location: { file: mod.declaredIn },
        hint: 'fix the "type" of the module entry',
      });
  }
}

/** Make sure a located module's directory exists, fetching it when needed. */
export async function ensureModuleDir(mod: LocatedModule, log: (line: string) => void): Promise<void> {
  if (fs.existsSync(mod.hostDir)) return;
  if (mod.type === 'direct-dir' || !mod.entry) {
    throw new OsvbError('OSVB_MODULE_PATH_MISSING', `Path does not exist: ${mod.dir}`, {
      location: { file: mod.declaredIn },
      hint: `module "${mod.name}" is a direct-dir entry whose path is missing`,
    });
  }
  const tmp = `${mod.hostDir.replace(/\/+$/, '')}.osvb-fetch-${process.pid}`;
  const [cmd, args] = fetchCommand(mod, tmp);
  log(`Fetching ${mod.entry.name ?? mod.name}`);
  fs.mkdirSync(path.dirname(tmp), { recursive: true });
  fs.rmSync(tmp, { recursive: true, force: true });
  const { execa } = await import('execa');
  const res = await execa(cmd, args, { reject: false, all: true, stdin: 'ignore' });
  if (res.exitCode !== 0 || res.failed) {
    fs.rmSync(tmp, { recursive: true, force: true });
    const code = res.exitCode ?? -1;
    const tail = (res.all ?? '').split('\n').filter(Boolean).slice(-20);
    throw new OsvbError('OSVB_MODULE_FETCH', `Command failed with exit code: ${code} (fetching module "${mod.name}": ${cmd} ${args.join(' ')})`, {
      details: tail.length ? tail : res.code === 'ENOENT' ? [`${cmd}: command not found`] : [],
    });
  }
  fs.renameSync(tmp, mod.hostDir.replace(/\/+$/, ''));
}
