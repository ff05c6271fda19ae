/** `osvb watch`: build, then rebuild on every change until Ctrl-C; one line per build. */
import { describeCycle, jsonReporter, textReporter, VmSupervisor, watchBuild, type BuildEvent, type Reporter, type SupervisorEvent, type WatchCycle } from '@osv-build/engine';
import { engineOptions, parseBuildArgs } from './args.js';
import { WATCH_HELP } from './help.js';

function cycleJson(c: WatchCycle): string {
  const r = c.result;
  return JSON.stringify({
    type: 'watch-build',
    index: c.index,
    ok: c.ok,
    trigger: c.trigger,
    built: c.built,
    restored: c.restored,
    durationMs: c.durationMs,
    ...(r ? { written: r.written, images: r.images } : {}),
    ...(c.error ? { error: { code: c.error.code, message: c.error.message, location: c.error.location, details: c.error.details, hint: c.error.hint } } : {}),
  });
}

export async function runWatch(argv: string[]): Promise<number> {
  const args = parseBuildArgs(argv, 'watch');
  if (args.help) {
    process.stdout.write(WATCH_HELP);
    return 0;
  }
  const controller = new AbortController();
  const onSignal = (): void => controller.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  // Whoever read our output went away (a closed pipe): stop as on Ctrl-C, without a stack trace.
  let outputGone = false;
  const onOutputError = (e: NodeJS.ErrnoException): void => {
    if (e.code !== 'EPIPE') return;
    outputGone = true;
    controller.abort();
  };
  process.stdout.on('error', onOutputError);
  process.stderr.on('error', onOutputError);
  const out = (s: string): void => {
    if (!outputGone) process.stdout.write(s + '\n');
  };
  // Per-module lines would drown the one-line-per-build summary: only warnings, module.py
  // output and (with -v) make output and everything else go through.
  const text = textReporter({ verbose: args.verbose, quiet: args.progress === 'none', write: (s) => process.stderr.write(s + '\n') });
  const reporter: Reporter = args.json
    ? jsonReporter(out)
    : (e: BuildEvent) => {
        if (args.verbose || e.type === 'warning' || e.type === 'module-py-output' || (e.type === 'log' && e.text.startsWith('Fetching'))) text(e);
      };
  // --run: the VM of the last good build; its console goes to stdout, its story to stderr.
  const vmNote = (text: string): void => {
    if (args.json) out(JSON.stringify({ type: 'vm', text }));
    else process.stderr.write(`[vm] ${text}\n`);
  };
  const vm = args.run
    ? new VmSupervisor(
        {
          ...args.run,
          onOutput: (chunk) => {
            if (args.json) out(JSON.stringify({ type: 'vm-output', text: chunk.toString('utf8') }));
            else if (!outputGone) process.stdout.write(chunk);
          },
          onNotice: (n) => {
            if (n.kind === 'accel' || args.verbose) vmNote(n.text);
          },
        },
        (e: SupervisorEvent) => {
          if (e.type === 'vm-start') vmNote(`booting ${e.image} (VM ${e.index})`);
          else if (e.type === 'vm-exit') vmNote(`VM ${e.index} ${e.result.status === 'poweroff' ? 'powered off' : e.result.status === 'stopped' ? 'stopped' : `ended: ${e.result.status}`} after ${(e.result.durationMs / 1000).toFixed(1)}s`);
          else vmNote(e.error.format());
        },
      )
    : undefined;
  let warnedNoDisk = false;
  const afterCycle = (c: WatchCycle): void => {
    if (!vm) return;
    if (!c.ok) {
      if (vm.running) vmNote('the build failed: the VM of the last good build keeps running');
      return;
    }
    const disk = c.result?.images.disk;
    if (!disk) {
      if (!warnedNoDisk) vmNote('no usr.img to boot: --run needs a kernel (--kernel DIR) and fs=rofs, ramfs or virtiofs');
      warnedNoDisk = true;
      return;
    }
    // A rebuild that left usr.img as it was (a touched file, a comment in a Makefile) boots nothing.
    if (disk.mode !== 'unchanged' || c.index === 0) void vm.boot(disk.file);
  };
  try {
    await watchBuild({
      ...engineOptions(args),
      ...(args.debounceMs !== undefined ? { debounceMs: args.debounceMs } : {}),
      reporter,
      streamMakeOutput: args.verbose,
      signal: controller.signal,
      onCycle: (c) => {
        if (args.json) out(cycleJson(c));
        else {
          out(describeCycle(c));
          if (!c.ok && c.error) process.stderr.write(c.error.format() + '\n');
        }
        afterCycle(c);
      },
      onWatching: (info) => {
        if (args.json) out(JSON.stringify({ type: 'watching', paths: info.paths }));
        else if (!controller.signal.aborted) process.stderr.write(`watching ${info.paths} paths (Ctrl-C to stop)\n`);
      },
    });
    await vm?.stop();
    if (args.json) out(JSON.stringify({ type: 'watch-stopped' }));
    return 0;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

