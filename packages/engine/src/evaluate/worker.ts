/**
 * The long-lived python3 worker that runs module.py files (one per build). It speaks JSON lines
 * over stdio; while it evaluates it calls back into the engine to locate (and fetch) modules.
 */
import { childProcess, readlineModule } from '../fsutil/index.js';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { OsvbError, isOsvbError, type OsvbErrorCode } from '../errors/index.js';
import type { EvaluateParams, EvaluationResult, WorkerErrorRecord } from './types.js';
import type { Interpreter } from './interpreter.js';

/** The worker script ships in the engine package's python/ folder (found the same way when bundled). */
export const WORKER_SCRIPT = path.join(path.dirname(createRequire(import.meta.url).resolve('@osv-build/engine/package.json')), 'python', 'osvb_worker.py');

export interface WorkerHandlers {
  locate(name: string): Promise<{ dir: string; type: string }>;
}

export interface WorkerOptions {
  python?: string | Interpreter;
  /** module.py output and the worker's own progress lines. */
  onOutput?: (line: string) => void;
  onLog?: (line: string) => void;
}

interface Pending {
  resolve(value: unknown): void;
  reject(err: Error): void;
}

export function workerErrorToOsvb(rec: WorkerErrorRecord): OsvbError {
  const details = [...(rec.details ?? [])];
  if (rec.loading && rec.loading.length > 0) details.push(`while loading: ${rec.loading.join(' -> ')}`);
  return new OsvbError(rec.code as OsvbErrorCode, rec.message, {
    ...(rec.location ? { location: { file: rec.location.file, line: rec.location.line, ...(rec.location.column ? { column: rec.location.column } : {}) } } : {}),
    details,
    ...(rec.hint ? { hint: rec.hint } : {}),
  });
}

export class PythonWorker {
  private readonly proc: ChildProcessWithoutNullStreams;
  /** Settles when the process has exited and its streams are closed. */
  private readonly closed: Promise<void>;
  private readonly pending = new Map<number, Pending>();
  private nextId = 0;
  private handlers: WorkerHandlers | undefined;
  private exited: Error | undefined;
  private readonly stderrTail: string[] = [];

  private constructor(
    proc: ChildProcessWithoutNullStreams,
    private readonly opts: WorkerOptions,
  ) {
    this.proc = proc;
    this.closed = new Promise((resolve) => {
      proc.once('close', () => resolve());
      proc.once('error', () => resolve());
    });
    // A worker that died makes writes to its stdin fail: reported by the 'close' handler.
    proc.stdin.on('error', () => {});
    const out = readlineModule().createInterface({ input: proc.stdout! });
    out.on('line', (line) => this.onLine(line));
    const err = readlineModule().createInterface({ input: proc.stderr! });
    err.on('line', (line) => {
      this.stderrTail.push(line);
      if (this.stderrTail.length > 20) this.stderrTail.shift();
      this.opts.onOutput?.(line);
    });
  }

  static async start(opts: WorkerOptions = {}): Promise<PythonWorker> {
    const interp: Interpreter = typeof opts.python === 'object' ? opts.python : { command: opts.python ?? process.env['OSVB_PYTHON'] ?? 'python3' };
    const python = interp.command;
    // node:child_process directly: execa costs 0.1-0.2 s to load, more than a small evaluation.
    const proc = childProcess().spawn(python, ['-u', WORKER_SCRIPT], {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { ...(interp.env ?? process.env), PYTHONDONTWRITEBYTECODE: '1' },
      ...(interp.cwd ? { cwd: interp.cwd } : {}),
    });
    const worker = new PythonWorker(proc, opts);
    const fail = (err: OsvbError): void => {
      worker.exited ??= err;
      for (const p of worker.pending.values()) p.reject(worker.exited);
      worker.pending.clear();
    };
    proc.once('error', (e: NodeJS.ErrnoException) => {
      fail(
        e.code === 'ENOENT'
          ? new OsvbError('OSVB_PYTHON_MISSING', `python3 was not found (tried "${python}"); osvb runs module.py files with it`, {
              hint: 'install it (Debian/Ubuntu: apt-get install -y python3) or point OSVB_PYTHON at a Python 3 interpreter',
            })
          : new OsvbError('OSVB_WORKER', `the python3 evaluation worker could not be started (${python}): ${e.message}`),
      );
    });
    proc.once('close', (code, signal) => {
      fail(
        new OsvbError('OSVB_WORKER', `the python3 evaluation worker exited unexpectedly (${code ?? signal ?? 'unknown'})`, {
          details: worker.stderrTail.slice(-10),
        }),
      );
    });
    const pong = (await worker.request('ping', {})) as { executable?: unknown };
    if (interp.learn && typeof pong?.executable === 'string') interp.learn(pong.executable);
    return worker;
  }

  evaluate(params: EvaluateParams, handlers: WorkerHandlers): Promise<EvaluationResult> {
    this.handlers = handlers;
    return this.request('evaluate', params) as Promise<EvaluationResult>;
  }

  private request(method: string, params: unknown): Promise<unknown> {
    if (this.exited) return Promise.reject(this.exited);
    const id = ++this.nextId;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.proc.stdin!.write(JSON.stringify({ id, method, params }) + '\n');
    });
  }

  private onLine(line: string): void {
    let msg: { type: string; id?: number; method?: string; params?: Record<string, unknown>; result?: unknown; error?: WorkerErrorRecord; text?: string };
    try {
      msg = JSON.parse(line);
    } catch {
      this.opts.onOutput?.(line);
      return;
    }
    if (msg.type === 'log') {
      this.opts.onLog?.(msg.text ?? '');
    } else if (msg.type === 'call') {
      void this.answer(msg.id!, msg.method!, msg.params ?? {});
    } else if (msg.type === 'result') {
      const p = this.pending.get(msg.id!);
      if (!p) return;
      this.pending.delete(msg.id!);
      if (msg.error) p.reject(workerErrorToOsvb(msg.error));
      else p.resolve(msg.result);
    }
  }

  private async answer(id: number, method: string, params: Record<string, unknown>): Promise<void> {
    let reply: Record<string, unknown>;
    try {
      if (method !== 'locate' || !this.handlers) throw new OsvbError('OSVB_INTERNAL', `unknown worker call ${method}`);
      reply = { type: 'reply', id, result: await this.handlers.locate(String(params['name'])) };
    } catch (e) {
      const err = isOsvbError(e) ? e : new OsvbError('OSVB_INTERNAL', e instanceof Error ? e.message : String(e));
      const loc = err.location;
      reply = {
        type: 'reply',
        id,
        error: { code: err.code, message: err.message, ...(err.hint ? { hint: err.hint } : {}), ...(loc ? { location: { file: loc.file, line: loc.line ?? 1, ...(loc.column ? { column: loc.column } : {}) } } : {}) },
      };
    }
    this.proc.stdin!.write(JSON.stringify(reply) + '\n');
  }

  async close(): Promise<void> {
    if (this.exited) return;
    this.proc.stdin.end();
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), 2000);
    await this.closed;
    clearTimeout(timer);
  }
}
