/** Turns engine events into plain lines on stderr, or JSON lines on stdout with --json. */
import * as path from 'node:path';
import type { BuildEvent, BuildOutputFile, Reporter } from './events.js';

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
  /** `--progress=none`: warnings, notices and failures only; no progress or summary lines. */
  quiet?: boolean;
  /** Without a live line: how often a line says which modules are still being made (default 30 s). */
  heartbeatMs?: number;
  /** Paths under this directory are shown relative to it (default: the working directory). */
  cwd?: string;
}

export type ProgressMode = 'auto' | 'tty' | 'plain' | 'none';

/**
 * `--progress`: `auto` is a live status line when stderr is a terminal (not under CI=true or
 * TERM=dumb) and plain lines otherwise; `tty` forces the live line, `plain` the lines, `none`
 * leaves warnings and errors only.
 */
export function progressMode(
  requested: ProgressMode = 'auto',
  env: Readonly<Record<string, string | undefined>> = process.env,
): Pick<TextReporterOptions, 'live' | 'quiet'> {
  if (requested === 'none') return { quiet: true };
  if (requested === 'plain') return {};
  if (requested === 'tty') return { live: process.stderr };
  const live = liveTerminal(env);
  return live ? { live } : {};
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
    if (this.timer) clearInterval(this.timer);
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
  // What the status line (or the plain heartbeat) shows: the kernel stage and the modules in make.
  let kernel: { stage: string; since: number; compiles: number } | undefined;
  const modules = { total: 0, done: 0, running: new Map<string, number>(), since: 0 };
  const render = (): string => {
    const parts: string[] = [];
    if (kernel) parts.push(`kernel: ${kernel.stage} ${clock(Date.now() - kernel.since)}${kernel.compiles ? ` (${kernel.compiles} compiles)` : ''}`);
    if (modules.running.size > 0) parts.push(`[${modules.done}/${modules.total}] making ${listNames([...modules.running.keys()])} ${clock(Date.now() - modules.since)}`);
    return parts.join(' · ');
  };
  const redraw = (): void => {
    if (!status) return;
    if (kernel || modules.running.size > 0) status.start(render);
    else status.stop();
  };
  let heartbeat: NodeJS.Timeout | undefined;
  const moduleStarted = (name: string): void => {
    if (modules.running.size === 0) modules.since = Date.now();
    modules.running.set(name, Date.now());
    if (status) redraw();
    else if (!opts.quiet && !heartbeat) {
      heartbeat = setInterval(() => {
        if (modules.running.size > 0) write(`still making ${listNames([...modules.running.keys()])} (${clock(Date.now() - modules.since)}, ${modules.done}/${modules.total} modules done)`);
      }, opts.heartbeatMs ?? 30_000);
      heartbeat.unref();
    }
  };
  const moduleEnded = (name: string): void => {
    modules.done++;
    if (!modules.running.delete(name)) return;
    if (modules.running.size === 0 && heartbeat) {
      clearInterval(heartbeat);
      heartbeat = undefined;
    }
    redraw();
  };
  let outputs: { buildPath: string; files: BuildOutputFile[] } | undefined;
  const cwd = opts.cwd ?? process.cwd();
  const show = (p: string): string => {
    const rel = path.relative(cwd, p);
    return rel && !rel.startsWith('..') && !path.isAbsolute(rel) ? rel : p;
  };
  const progress = (s: string): void => {
    if (!opts.quiet) write(s);
  };
  return (e: BuildEvent) => {
    switch (e.type) {
      case 'start':
        progress(startLine(e.spec, e.osvBase, e.buildPath));
        break;
      case 'modules-planned':
        modules.total = e.withMakefile;
        modules.done = 0;
        break;
      case 'evaluated':
        if (opts.verbose || !e.cached) {
          const how = e.cached ? 'evaluation cached' : `evaluated in ${secs(e.durationMs)}${e.reason ? `: ${e.reason}` : ''}`;
          const names = e.modules.map((m) => (m.run ? `${m.name}.${m.run}` : m.name));
          const shown = opts.verbose || names.length <= 24 ? names : [...names.slice(0, 20), `… ${names.length - 20} more`];
          progress(`modules: ${names.length ? shown.join(', ') : 'none'} (${how})`);
        }
        break;
      case 'module-start':
        moduleStarted(e.name);
        if (opts.verbose) write(`building ${e.name}`);
        break;
      // Each line first, then the status line is redrawn under it.
      case 'module-restored':
        // Modules whose outputs were already in place are only counted in the summary.
        if (e.from === 'task') {
          if (opts.verbose) write(`${e.name}: built by its own task`);
        } else if (e.cutoff) {
          if (opts.verbose) progress(`${e.name}: skipped by early cutoff (${secs(e.durationMs)}): ${e.cutoff}`);
        } else if (opts.verbose || !e.upToDate) progress(`restored ${e.name}${e.from === 'remote' ? ' from the remote cache' : ''} (${secs(e.durationMs)})${e.upToDate ? ' up to date' : ''}`);
        moduleEnded(e.name);
        break;
      case 'module-built':
        progress(`built ${e.name} (${secs(e.durationMs)})`);
        moduleEnded(e.name);
        break;
      case 'module-failed':
        write(`failed ${e.name}${e.error.code === 'OSVB_INTERRUPTED' ? ' (stopped)' : ''}`);
        moduleEnded(e.name);
        break;
      case 'module-skipped':
        progress(`skipped ${e.name}: ${e.reason}`);
        moduleEnded(e.name);
        break;
      case 'make-output':
        write(`[${e.name}] ${e.line}`);
        break;
      case 'module-py-output':
        write(e.line);
        break;
      case 'log':
        if (opts.verbose || (!opts.quiet && (e.text.startsWith('Fetching') || e.text.startsWith('Adding module') || e.text.startsWith('remote cache:') || e.text === 'No apps selected'))) write(e.text);
        break;
      case 'warning':
        write(`warning: ${e.text}`);
        break;
      case 'notice':
        progress(e.text);
        break;
      case 'kernel-progress': {
        if (opts.quiet) break;
        const t = clock(e.elapsedMs);
        if (status) {
          // A terminal: one live line while a stage runs, a plain line when it ends.
          if (e.state === 'done') {
            kernel = undefined;
            redraw();
            write(`kernel: ${e.stage} done in ${t}${e.compiles ? ` (${e.compiles} compiles)` : ''}`);
          } else {
            // The node's elapsed time is the truth; the line counts on from it.
            kernel = { stage: e.stage, since: Date.now() - e.elapsedMs, compiles: e.compiles };
            redraw();
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
        kernel = undefined;
        redraw();
        if (e.status === 'up-to-date') {
          if (opts.verbose) write(`kernel up to date (key ${e.key.slice(0, 16)})`);
        } else progress(`kernel ${e.status === 'restored' ? `restored from the ${e.fromRemote ? 'remote ' : ''}cache` : `built${e.build ? ` (${e.build}: ${e.reason})` : ''}`} in ${clock(e.durationMs)}`);
        break;
      case 'disk-written': {
        if (!opts.verbose) break; // the closing lines name usr.img with its size and what happened
        const mib = `${Math.round(e.virtualSize / (1024 * 1024))} MiB disk`;
        const what = e.mode === 'unchanged' ? 'up to date' : e.mode === 'in-place' ? `updated in place (${e.bytesWritten} bytes written)` : `written${e.reason ? ` (${e.reason})` : ''}`;
        write(`${e.file}: ${what}, ${mib} (${secs(e.durationMs)})`);
        break;
      }
      case 'outputs-written':
        if (opts.verbose) for (const f of e.files) write(`wrote ${f}`);
        break;
      case 'outputs':
        outputs = { buildPath: e.buildPath, files: e.files };
        break;
      case 'done': {
        if (heartbeat) clearInterval(heartbeat);
        heartbeat = undefined;
        kernel = undefined;
        modules.running.clear();
        status?.stop();
        if (opts.quiet) break;
        // up to date (outputs in place), restored (from a cache), built (make ran): what happened.
        const upToDate = e.upToDate ?? 0;
        const restoredNow = e.restored - upToDate;
        const parts = [...(upToDate ? [`${upToDate} up to date`] : []), e.fromRemote ? `${restoredNow} restored (${e.fromRemote} from the remote cache)` : `${restoredNow} restored`, `${e.built} built`];
        write(`${e.modules} module${e.modules === 1 ? '' : 's'}: ${parts.join(', ')} in ${secs(e.durationMs)}`);
        if (outputs) for (const line of outputLines(outputs.buildPath, outputs.files, show)) write(line);
        outputs = undefined;
        break;
      }
    }
  };
}

/** `a, b, c` or `a, b, c and 4 more`: the status line stays one line. */
function listNames(names: string[]): string {
  return names.length <= 3 ? names.join(', ') : `${names.slice(0, 3).join(', ')} and ${names.length - 3} more`;
}

const STATE_WORDS: Record<BuildOutputFile['state'], string> = { written: 'written', updated: 'updated', unchanged: 'unchanged' };

/** The closing lines: where the outputs are, the images with their sizes and what this build did. */
export function outputLines(buildPath: string, files: readonly BuildOutputFile[], show: (p: string) => string = (p) => p): string[] {
  if (files.length === 0) return [];
  const inBuild = (f: BuildOutputFile): boolean => path.dirname(f.path) === path.resolve(buildPath);
  const small = files.filter((f) => inBuild(f) && !f.detail && (f.bytes ?? 0) < 1024 * 1024 && !/\.(img|raw)$/.test(f.path));
  const big = files.filter((f) => !small.includes(f));
  const lines = [`outputs in ${show(buildPath)}:`];
  if (small.length > 0) {
    const changed = small.filter((f) => f.state !== 'unchanged').length;
    lines.push(`  ${small.map((f) => path.basename(f.path)).join(', ')} (${changed === 0 ? 'unchanged' : changed === small.length ? 'written' : `${changed} changed`})`);
  }
  const width = Math.max(0, ...big.map((f) => (inBuild(f) ? path.basename(f.path) : show(f.path)).length));
  for (const f of big) {
    const name = inBuild(f) ? path.basename(f.path) : show(f.path);
    lines.push(`  ${name.padEnd(width)}  ${(f.bytes === undefined ? '' : size(f.bytes)).padStart(9)}  ${STATE_WORDS[f.state]}${f.detail ? ` (${f.detail})` : ''}`);
  }
  return lines;
}

function size(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  if (bytes < 1024 ** 3) return `${(bytes / 1024 ** 2).toFixed(1)} MiB`;
  return `${(bytes / 1024 ** 3).toFixed(2)} GiB`;
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
