/**
 * Which python3 binary to start. A `python3` found on PATH may be a version-manager shim
 * (pyenv's costs ~0.2 s per start, more than an evaluation of a small tree); the binary it
 * resolves to is asked once and remembered in the cache, keyed by the shim, PATH and the
 * variables such managers read.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { childProcess, findOnPath, writeFileAtomic } from '../fsutil/index.js';


export function resolveInterpreter(command: string, cacheFile: string, env: Readonly<Record<string, string | undefined>>, cwd: string): string {
  if (command.includes('/')) return command;
  const found = findOnPath(command, env['PATH']);
  if (!found) return command; // the worker reports it missing, with the install hint
  let st: fs.Stats;
  try {
    st = fs.statSync(found);
  } catch {
    return command;
  }
  const id = JSON.stringify([found, st.size, st.mtimeMs, env['PATH'], env['PYENV_VERSION'], env['PYENV_ROOT'], env['VIRTUAL_ENV'], cwd]);
  try {
    const c = JSON.parse(fs.readFileSync(cacheFile, 'utf8')) as { id: string; executable: string };
    if (c.id === id && fs.existsSync(c.executable)) return c.executable;
  } catch {
    /* not known yet */
  }
  try {
    const out = childProcess()
      .execFileSync(found, ['-c', 'import sys; print(sys.executable)'], { cwd, env: env as NodeJS.ProcessEnv, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
      .trim();
    if (!out || !fs.existsSync(out)) return command;
    fs.mkdirSync(path.dirname(cacheFile), { recursive: true });
    writeFileAtomic(cacheFile, JSON.stringify({ id, executable: out }));
    return out;
  } catch {
    return command;
  }
}
