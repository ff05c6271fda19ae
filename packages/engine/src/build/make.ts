/**
 * Running `make module` in a module directory (spec §5.1) with argument arrays (no shell).
 * The output is kept so a failure can show its last lines; it is streamed when asked.
 */
import { OsvbError } from '../errors/index.js';

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
  const { execa } = await import('execa');
  if (req.signal?.aborted) throw new OsvbError('OSVB_INTERRUPTED', `make for ${req.moduleName} was not started: the build was interrupted`);
  // make runs in its own process group so that stopping the build stops everything it
  // started (recipes, compilers), not only make itself.
  const sub = execa(program, makeArgs(req.jobs), {
    cwd: req.dir,
    env: req.env,
    extendEnv: false,
    all: true,
    reject: false,
    stdin: 'ignore',
    detached: true,
  });
  let canceled = false;
  let forceTimer: NodeJS.Timeout | undefined;
  const stopGroup = (): void => {
    canceled = true;
    const kill = (sig: NodeJS.Signals): void => {
      try {
        if (sub.pid) process.kill(-sub.pid, sig);
      } catch {
        /* already gone */
      }
    };
    kill('SIGTERM');
    forceTimer = setTimeout(() => kill('SIGKILL'), 5000);
    forceTimer.unref();
  };
  req.signal?.addEventListener('abort', stopGroup, { once: true });
  let output = '';
  sub.all?.setEncoding('utf8');
  let partial = '';
  sub.all?.on('data', (chunk: string) => {
    output += chunk;
    if (req.onLine) {
      partial += chunk;
      const lines = partial.split('\n');
      partial = lines.pop() ?? '';
      for (const l of lines) req.onLine(l);
    }
  });
  const res = await sub;
  req.signal?.removeEventListener('abort', stopGroup);
  if (forceTimer) clearTimeout(forceTimer);
  if (partial && req.onLine) req.onLine(partial);
  const durationMs = performance.now() - started;
  if (canceled) {
    throw new OsvbError('OSVB_INTERRUPTED', `make for ${req.moduleName} was stopped`);
  }
  if (res.code === 'ENOENT' && res.exitCode === undefined) {
    throw new OsvbError('OSVB_MAKE_MISSING', `"${program}" was not found; module ${req.moduleName} has a Makefile`, {
      hint: 'install make and a C compiler (Debian/Ubuntu: apt-get install -y make gcc)',
    });
  }
  if (res.exitCode !== 0) {
    const tail = output.split('\n').filter((l, i, a) => l !== '' || i < a.length - 1).slice(-20);
    const status = res.exitCode ?? res.signal ?? 'unknown';
    throw new OsvbError('OSVB_MAKE_FAILED', `make failed for ${req.moduleName} (exit code ${status})`, {
      location: { file: `${req.dir.replace(/\/+$/, '')}/Makefile` },
      details: tail.length ? ['last lines of its output:', ...tail.map((l) => `| ${l}`)] : ['(make printed nothing)'],
    });
  }
  return { durationMs, output };
}
