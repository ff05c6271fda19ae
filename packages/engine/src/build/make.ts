/**
 * Running `make module` in a module directory (spec §5.1) with an argument array (no shell).
 * The output is kept so a failure can show its last lines; it is streamed when asked.
 *
 * This is the one hot path that uses node:child_process directly instead of execa: a large
 * image runs hundreds of makes, and execa's per-process set-up (~3 ms of main-thread CPU each,
 * measured) competes with the compilers on a small machine.
 */
import { OsvbError } from '../errors/index.js';
import { childProcess } from '../fsutil/index.js';
import { waitForGroup } from './processGroup.js';

export interface MakeRequest {
  moduleName: string;
  dir: string;
  /** OSv's -j word: undefined (none), '-' (bare -j) or a number. */
  jobs: string | undefined;
  env: Record<string, string>;
  signal?: AbortSignal;
  onLine?: (line: string) => void;
  /** The make program (`MAKE` or `make`). */
  make?: string;
}

export interface MakeResult {
  durationMs: number;
  output: string;
}

export function makeArgs(jobs: string | undefined): string[] {
  if (jobs === undefined) return ['module'];
  if (jobs === '-') return ['module', '-j'];
  return ['module', `-j${jobs}`];
}

export async function runMake(req: MakeRequest): Promise<MakeResult> {
  const started = performance.now();
  const program = req.make ?? 'make';
  if (req.signal?.aborted) throw new OsvbError('OSVB_INTERRUPTED', `make for ${req.moduleName} was not started: the build was interrupted`);
  // make runs in its own process group so that stopping the build stops everything it
  // started (recipes, compilers), not only make itself.
  const sub = childProcess().spawn(program, makeArgs(req.jobs), {
    cwd: req.dir,
    env: req.env,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let output = '';
  let partial = '';
  const onData = (chunk: Buffer): void => {
    const text = chunk.toString('utf8');
    output += text;
    if (req.onLine) {
      partial += text;
      const lines = partial.split('\n');
      partial = lines.pop() ?? '';
      for (const l of lines) req.onLine(l);
    }
  };
  sub.stdout?.on('data', onData);
  sub.stderr?.on('data', onData);
  const exit = await waitForGroup(sub, req.signal);
  if (partial && req.onLine) req.onLine(partial);
  const durationMs = performance.now() - started;
  if (exit.canceled) {
    throw new OsvbError('OSVB_INTERRUPTED', `make for ${req.moduleName} was stopped`);
  }
  if (exit.error) {
    if (exit.error.code === 'ENOENT') {
      throw new OsvbError('OSVB_MAKE_MISSING', `"${program}" was not found; module ${req.moduleName} has a Makefile`, {
        hint: 'install make and a C compiler (Debian/Ubuntu: apt-get install -y make gcc)',
      });
    }
    throw new OsvbError('OSVB_MAKE_FAILED', `could not run make for ${req.moduleName}: ${exit.error.message}`);
  }
  if (exit.code !== 0) {
    const tail = output.split('\n').filter((l, i, a) => l !== '' || i < a.length - 1).slice(-20);
    const status = exit.code ?? exit.signal ?? 'unknown';
    throw new OsvbError('OSVB_MAKE_FAILED', `make failed for ${req.moduleName} (exit code ${status})`, {
      location: { file: `${req.dir.replace(/\/+$/, '')}/Makefile` },
      details: tail.length ? ['last lines of its output:', ...tail.map((l) => `| ${l}`)] : ['(make printed nothing)'],
    });
  }
  return { durationMs, output };
}

export interface MakeQuestion {
  /** make's exit status: 0 up to date, 1 something would be remade, 2 an error; null when killed. */
  code: number | null;
  /** make's data base (`-p`), printed after it answered. */
  database: string;
}

/**
 * Ask make whether `module` is up to date without running any recipe: `make -pq module`, with
 * `-o FILE` for each file it must treat as old. Run like `make module` (same directory and
 * environment, its own process group), except that messages are in the C locale so that the
 * data base can be read.
 */
export async function questionMake(req: Omit<MakeRequest, 'jobs' | 'onLine'> & { assumeOld: readonly string[] }): Promise<MakeQuestion> {
  const program = req.make ?? 'make';
  if (req.signal?.aborted) throw new OsvbError('OSVB_INTERRUPTED', `make -q for ${req.moduleName} was not started: the build was interrupted`);
  const args = ['-pq', ...req.assumeOld.flatMap((f) => ['-o', f]), 'module'];
  const sub = childProcess().spawn(program, args, {
    cwd: req.dir,
    env: { ...req.env, LC_ALL: 'C' },
    stdio: ['ignore', 'pipe', 'ignore'],
    detached: true,
  });
  const chunks: Buffer[] = [];
  sub.stdout?.on('data', (c: Buffer) => chunks.push(c));
  const exit = await waitForGroup(sub, req.signal);
  if (exit.canceled) throw new OsvbError('OSVB_INTERRUPTED', `make -q for ${req.moduleName} was stopped`);
  if (exit.error) return { code: null, database: '' };
  return { code: exit.code, database: Buffer.concat(chunks).toString('utf8') };
}
