/** Turns engine events into plain lines on stderr, or JSON lines on stdout with --json. */
import type { BuildEvent, Reporter } from './index.js';

function secs(ms: number): string {
  return `${(ms / 1000).toFixed(2)}s`;
}

/** 2m05s for minutes-long work, else seconds. */
function clock(ms: number): string {
  const s = ms / 1000;
  return s >= 60 ? `${Math.floor(s / 60)}m${String(Math.round(s % 60)).padStart(2, '0')}s` : `${s.toFixed(1)}s`;
}

export interface TextReporterOptions {
  verbose: boolean;
  write?: (s: string) => void;
  /**
   * A terminal for a live status line during the kernel build (stage and elapsed time, redrawn
   * every second). Without it (CI, pipes) the kernel build is plain lines: start, a heartbeat, done.
   */
  live?: NodeJS.WriteStream;
}

/** What a build builds, in words rather than module.py's spec syntax (`!default` → image default). */
export function describeSpec(spec: string): string {
  if (spec.startsWith('!')) {
    const items = spec.slice(1);
    return items.includes(',') ? `modules ${items}` : `image ${items}`;
  }
  return spec === 'empty' ? 'image empty' : `modules ${spec} and config.json's defaults`;
}

/** The first line of a build (also replayed by the "nothing to do" memo). */
export function startLine(spec: string, osvBase: string, buildPath: string): string {
  return `osvb: building ${describeSpec(spec)} in ${osvBase} → ${buildPath}`;
}

/** Whether stderr is a terminal that can take a live status line (not under CI=true). */
export function liveTerminal(env: Readonly<Record<string, string | undefined>> = process.env): NodeJS.WriteStream | undefined {
  return process.stderr.isTTY && env['CI'] !== 'true' && env['TERM'] !== 'dumb' ? process.stderr : undefined;
}

/** One redrawn line on a terminal: cleared before anything else is printed. */
class StatusLine {
  private timer: NodeJS.Timeout | undefined;
  private shown = false;

  constructor(private readonly tty: NodeJS.WriteStream) {}

  start(render: () => string): void {
    this.stop();
    const draw = (): void => {
      this.tty.write(`\r\x1b[K${render()}`);
      this.shown = true;
    };
    draw();
    this.timer = setInterval(draw, 1000);
    this.timer.unref();
  }

  clear(): void {
    if (!this.shown) return;
    this.tty.write('\r\x1b[K');
    this.shown = false;
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.clear();
  }
}

export function textReporter(opts: TextReporterOptions): Reporter {
  const print = opts.write ?? ((s: string) => process.stderr.write(s + '\n'));
  const status = opts.live ? new StatusLine(opts.live) : undefined;
  const write = (s: string): void => {
    status?.clear();
    print(s);
  };
  let kernel = { stage: '', since: 0, compiles: 0 };
  return (e: BuildEvent) => {
    switch (e.type) {
      case 'start':
        write(startLine(e.spec, e.osvBase, e.buildPath));
        break;
      case 'evaluated':
        if (opts.verbose || !e.cached) {
          const how = e.cached ? 'evaluation cached' : `evaluated in ${secs(e.durationMs)}${e.reason ? `: ${e.reason}` : ''}`;
          const names = e.modules.map((m) => (m.run ? `${m.name}.${m.run}` : m.name));
          const shown = opts.verbose || names.length <= 24 ? names : [...names.slice(0, 20), `… ${names.length - 20} more`];
          write(`modules: ${names.length ? shown.join(', ') : 'none'} (${how})`);
        }
        break;
      case 'module-restored':
        // Modules whose outputs were already in place are only counted in the summary.
        if (e.from === 'task') {
          if (opts.verbose) write(`${e.name}: built by its own task`);
        } else if (opts.verbose || !e.upToDate) write(`restored ${e.name}${e.from === 'remote' ? ' from the remote cache' : ''} (${secs(e.durationMs)})${e.upToDate ? ' up to date' : ''}`);
        break;
      case 'module-built':
        write(`built ${e.name} (${secs(e.durationMs)})`);
        break;
      case 'module-failed':
        write(`failed ${e.name}${e.error.code === 'OSVB_INTERRUPTED' ? ' (stopped)' : ''}`);
        break;
      case 'module-skipped':
        write(`skipped ${e.name}: ${e.reason}`);
        break;
      case 'make-output':
        write(`[${e.name}] ${e.line}`);
        break;
      case 'module-py-output':
        write(e.line);
        break;
      case 'log':
        if (opts.verbose || e.text.startsWith('Fetching') || e.text.startsWith('Adding module') || e.text.startsWith('remote cache:') || e.text === 'No apps selected') write(e.text);
        break;
      case 'warning':
        write(`warning: ${e.text}`);
        break;
      case 'notice':
        write(e.text);
        break;
      case 'kernel-progress': {
        const t = clock(e.elapsedMs);
        if (status) {
          // A terminal: one live line while a stage runs, a plain line when it ends.
          if (e.state === 'done') {
            status.stop();
            write(`kernel: ${e.stage} done in ${t}${e.compiles ? ` (${e.compiles} compiles)` : ''}`);
          } else {
            // The node's elapsed time is the truth; the line counts on from it.
            kernel = { stage: e.stage, since: Date.now() - e.elapsedMs, compiles: e.compiles };
            const k = kernel;
            status.start(() => `kernel: ${k.stage} ${clock(Date.now() - k.since)}${k.compiles ? ` (${k.compiles} compiles)` : ''}`);
          }
          break;
        }
        // Plain lines (CI logs, pipes): a stage's start and end, and a heartbeat while it runs.
        if (e.state === 'start') write(`kernel: ${e.stage}…`);
        else if (e.state === 'running') write(`kernel: ${e.stage} running for ${t} (${e.compiles} compiles so far)`);
        else write(`kernel: ${e.stage} done in ${t}${e.compiles ? ` (${e.compiles} compiles)` : ''}`);
        break;
      }
      case 'kernel-done':
        status?.stop();
        if (e.status === 'up-to-date') {
          if (opts.verbose) write(`kernel up to date (key ${e.key.slice(0, 16)})`);
        } else write(`kernel ${e.status === 'restored' ? `restored from the ${e.fromRemote ? 'remote ' : ''}cache` : `built${e.build ? ` (${e.build}: ${e.reason})` : ''}`} in ${clock(e.durationMs)}`);
        break;
      case 'disk-written': {
        const mib = `${Math.round(e.virtualSize / (1024 * 1024))} MiB disk`;
        const what =
          e.mode === 'unchanged' ? 'up to date' : e.mode === 'in-place' ? `updated in place (${e.bytesWritten} bytes written)` : `written${opts.verbose && e.reason ? ` (${e.reason})` : ''}`;
        write(`${e.file}: ${what}, ${mib} (${secs(e.durationMs)})`);
        break;
      }
      case 'outputs-written':
        if (opts.verbose) for (const f of e.files) write(`wrote ${f}`);
        break;
      case 'done': {
        // up to date (outputs in place), restored (from a cache), built (make ran): what happened.
        const upToDate = e.upToDate ?? 0;
        const restoredNow = e.restored - upToDate;
        const parts = [...(upToDate ? [`${upToDate} up to date`] : []), e.fromRemote ? `${restoredNow} restored (${e.fromRemote} from the remote cache)` : `${restoredNow} restored`, `${e.built} built`];
        write(`${e.modules} module${e.modules === 1 ? '' : 's'}: ${parts.join(', ')} in ${secs(e.durationMs)}`);
        break;
      }
      case 'module-start':
        if (opts.verbose) write(`building ${e.name}`);
        break;
    }
  };
}

export function jsonReporter(write: (s: string) => void = (s) => process.stdout.write(s + '\n')): Reporter {
  return (e: BuildEvent) => {
    if (e.type === 'module-failed') {
      write(JSON.stringify({ type: e.type, name: e.name, error: { code: e.error.code, message: e.error.message, details: e.error.details } }));
    } else {
      write(JSON.stringify(e));
    }
  };
}
