/**
 * One kernel make run: an argument array (no shell), cwd the OSv base, its own process group
 * (stopping the build stops the compilers too), output lines streamed, a heartbeat while it
 * runs. The output is kept for the error message and the cache's log.
 */
import { OsvbError } from '../errors/index.js';
import { childProcess } from '../fsutil/index.js';
import { waitForGroup } from '../build/processGroup.js';

export type KernelStage = 'config' | 'stage1' | 'link' | 'full';

export interface KernelProgress {
  stage: KernelStage;
  state: 'start' | 'running' | 'done';
  elapsedMs: number;
  /** Output lines so far in this stage. */
  lines: number;
  /** Command lines so far (make's `CC …`/`CXX …` summaries). */
  compiles: number;
}

export interface KernelMakeRun {
  stage: KernelStage;
  args: string[];
  env: Record<string, string>;
  cwd: string;
  signal?: AbortSignal;
  onLine?: (line: string) => void;
  onProgress?: (p: KernelProgress) => void;
  heartbeatMs: number;
  make?: string;
}

export interface KernelMakeResult {
  stage: KernelStage;
  args: string[];
  durationMs: number;
  output: string;
}

const COMPILE_LINE = /^\s*(CC|CXX|AS|HOST_CXX|LINK|LD)\s/;

export async function runKernelMake(req: KernelMakeRun): Promise<KernelMakeResult> {
  const started = performance.now();
  const program = req.make ?? 'make';
  if (req.signal?.aborted) throw new OsvbError('OSVB_INTERRUPTED', `the kernel make (${req.stage}) was not started: the build was interrupted`);
  let lines = 0;
  let compiles = 0;
  const progress = (state: KernelProgress['state']): void => req.onProgress?.({ stage: req.stage, state, elapsedMs: performance.now() - started, lines, compiles });
  progress('start');
  const sub = childProcess().spawn(program, req.args, { cwd: req.cwd, env: req.env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  const chunks: string[] = [];
  let partial = '';
  const onData = (chunk: Buffer): void => {
    const text = chunk.toString('utf8');
    chunks.push(text);
    partial += text;
    const ls = partial.split('\n');
    partial = ls.pop() ?? '';
    for (const l of ls) {
      lines++;
      if (COMPILE_LINE.test(l)) compiles++;
      req.onLine?.(l);
    }
  };
  sub.stdout?.on('data', onData);
  sub.stderr?.on('data', onData);
  const beat = setInterval(() => progress('running'), req.heartbeatMs);
  beat.unref();
  const exit = await waitForGroup(sub, req.signal);
  clearInterval(beat);
  if (partial) {
    lines++;
    req.onLine?.(partial);
  }
  const output = chunks.join('');
  const durationMs = performance.now() - started;
  if (exit.canceled) throw new OsvbError('OSVB_INTERRUPTED', `the kernel make (${req.stage}) was stopped`);
  if (exit.error) {
    if (exit.error.code === 'ENOENT') {
      throw new OsvbError('OSVB_MAKE_MISSING', `"${program}" was not found; the OSv kernel is built with make`, { hint: 'install make and gcc/g++ (Debian/Ubuntu: apt-get install -y make g++)' });
    }
    throw new OsvbError('OSVB_MAKE_FAILED', `could not run the kernel make (${req.stage}): ${exit.error.message}`);
  }
  if (exit.code !== 0) {
    const tail = output.split('\n').filter((l, i, a) => l !== '' || i < a.length - 1).slice(-25);
    throw new OsvbError('OSVB_MAKE_FAILED', `the kernel make failed (${req.stage}: make ${req.args.join(' ')}; exit ${exit.code ?? exit.signal ?? 'unknown'})`, {
      location: { file: `${req.cwd.replace(/\/+$/, '')}/Makefile` },
      details: tail.length ? ['last lines of its output:', ...tail.map((l) => `| ${l}`)] : ['(make printed nothing)'],
    });
  }
  progress('done');
  return { stage: req.stage, args: req.args, durationMs, output };
}
