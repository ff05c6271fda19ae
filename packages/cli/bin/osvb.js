#!/usr/bin/env node
const argv = process.argv.slice(2);

// Diagnostics for the reliability suite and benchmarks: the process's peak RSS, on exit.
if (process.env.OSVB_REPORT_RSS) {
  process.on('exit', () => process.stderr.write(`osvb: peak RSS ${Math.round(process.resourceUsage().maxRSS / 1024)} MB\n`));
}

// "Nothing to do": when the last identical `osvb build` left a memo whose every dependency is
// unchanged, say so without loading the engine (see engine/src/pipeline/noopCheck.ts).
const QUIET_FAST_PATH_BLOCKERS = new Set(['--json', '-v', '--verbose', '-h', '--help']);
if (argv[0] === 'build' && !argv.some((a) => QUIET_FAST_PATH_BLOCKERS.has(a)) && !process.env.OSVB_NO_MEMO) {
  const started = performance.now();
  try {
    const { checkNoopMemo, noopMemoFileForArgs, ENGINE_VERSION } = await import('@osv-build/engine/noop-check');
    const rest = argv.slice(1);
    const file = noopMemoFileForArgs(rest, process.cwd(), process.env);
    const memo = file && checkNoopMemo(file, ENGINE_VERSION, rest, process.cwd(), process.env);
    if (memo) {
      const secs = ((performance.now() - started) / 1000).toFixed(2);
      const quiet = argv.includes('--progress=none') || argv.some((a, i) => a === '--progress' && argv[i + 1] === 'none');
      if (!quiet) process.stderr.write(`${memo.lines.join('\n')}\n${memo.modules} module${memo.modules === 1 ? '' : 's'}: ${memo.modules} up to date, 0 restored, 0 built in ${secs}s (nothing changed)\n`);
      process.exit(0);
    }
  } catch {
    // Any doubt: do the full build.
  }
}

// The bundled CLI (dist/osvb.mjs; dist/osvb-rofs.mjs for `osvb rofs` alone) starts faster;
// dist/main.js is the same code unbundled.
let cli;
try {
  cli = await import(argv[0] === 'rofs' ? '../dist/osvb-rofs.mjs' : '../dist/osvb.mjs');
} catch (e) {
  if (e?.code !== 'ERR_MODULE_NOT_FOUND') throw e;
  cli = await import('../dist/main.js');
}
process.exitCode = await cli.main(argv);
