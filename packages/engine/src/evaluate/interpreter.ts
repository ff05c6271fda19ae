/**
 * Which python3 binary to start. A `python3` found on PATH may be a version-manager shim
 * (pyenv's costs ~0.2 s per start, more than an evaluation of a small tree); the binary it
 * resolves to is asked once and remembered in the cache, keyed by the shim, PATH and the
 * variables such managers read.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { findOnPath, writeFileAtomic } from '../fsutil/index.js';


/**
 * What to start: the binary a version-manager shim resolved to, when known. When it is not, the
 * command found on PATH is started as it is (a shim then costs what it costs module.py, once)
 * in the base directory with the build's environment, as the shim would be asked, and `learn`
 * remembers the binary the worker reports for the next build.
 */
export interface Interpreter {
  command: string;
  cwd?: string;
  env?: Readonly<Record<string, string | undefined>>;
  learn?: (executable: string) => void;
}

export function resolveInterpreter(command: string, cacheFile: string, env: Readonly<Record<string, string | undefined>>, cwd: string): Interpreter {
  if (command.includes('/')) return { command };
  const found = findOnPath(command, env['PATH']);
  if (!found) return { command }; // the worker reports it missing, with the install hint
  let st: fs.Stats;
  try {
    st = fs.statSync(found);
  } catch {
    return { command };
  }
  const id = JSON.stringify([found, st.size, st.mtimeMs, env['PATH'], env['PYENV_VERSION'], env['PYENV_ROOT'], env['VIRTUAL_ENV'], cwd]);
  try {
    const c = JSON.parse(fs.readFileSync(cacheFile, 'utf8')) as { id: string; executable: string };
    if (c.id === id && fs.existsSync(c.executable)) return { command: c.executable };
  } catch {
    /* not known yet */
  }
  return {
    command: found,
    cwd,
    env,
    learn: (executable) => {
      if (!executable || !path.isAbsolute(executable) || !fs.existsSync(executable)) return;
      try {
        fs.mkdirSync(path.dirname(cacheFile), { recursive: true });
        writeFileAtomic(cacheFile, JSON.stringify({ id, executable }));
      } catch {
        // Asked again next time.
      }
    },
  };
}
