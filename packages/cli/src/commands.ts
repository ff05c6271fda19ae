/** `osvb explain` and `osvb cache …`. */
import * as path from 'node:path';
import { explainKernelBuild, explainModule, initHashing, lastBuildWords, LocalCache, OsvbError } from '@osv-build/engine';
import { parseArgs } from 'node:util';
import { parseBuildArgs, parseSize } from './args.js';
import { CACHE_HELP, EXPLAIN_HELP } from './help.js';

export async function runExplain(argv: string[]): Promise<number> {
  const args = parseBuildArgs(argv);
  if (args.help) {
    process.stdout.write(EXPLAIN_HELP);
    return 0;
  }
  const moduleIndex = args.words.findIndex((w) => !w.includes('=') && !w.startsWith('-'));
  if (moduleIndex < 0) throw new OsvbError('OSVB_USAGE', 'osvb explain needs a module name', { hint: 'osvb explain MODULE [image words]' });
  const name = args.words[moduleIndex] as string;
  let words = args.words.filter((_w, i) => i !== moduleIndex);
  if (words.length === 0) {
    // Without words: the words of the last build, said out loud (a default fs=zfs build is rarely what was meant).
    const last = lastBuildWords({ osvBase: args.osvBase, cacheDir: args.cacheDir });
    if (last) {
      words = last;
      process.stderr.write(`explaining with the words of the last build: ${last.length ? last.join(' ') : '(none)'}\n`);
    }
  }
  if (name === 'kernel') return explainKernelCommand(args, words);
  const ex = await explainModule(
    { words, osvBase: args.osvBase, buildPath: args.buildPath, compat: args.compat, libgccSDir: args.libgccSDir, cacheDir: args.cacheDir },
    name,
  );
  if (args.json) {
    process.stdout.write(JSON.stringify({ type: 'explain', ...ex, last: ex.last ? { key: ex.last.key, status: ex.last.status, at: ex.last.at, ...(ex.last.cutoff ? { cutoff: ex.last.cutoff } : {}) } : null }) + '\n');
    return 0;
  }
  const out: string[] = [];
  if (ex.verdict === 'nothing') out.push(`${name}: has no Makefile; nothing to build (its key still feeds the modules that require it)`);
  else if (ex.verdict === 'restore') out.push(`${name}: will be restored from the cache (key ${ex.key}); make will not run`);
  else if (ex.cutoff?.startsWith('will be skipped')) out.push(`${name}: key ${ex.key} is not in the cache, but make will not run: it ${ex.cutoff}`);
  else out.push(`${name}: will be rebuilt (key ${ex.key} is not in the cache)${ex.cutoff ? `\n${ex.cutoff}` : ''}`);
  if (ex.last?.status === 'cutoff') {
    out.push(`last build: skipped by early cutoff at ${ex.last.at} (key ${ex.last.key}); make module did not run`);
    if (ex.last.cutoff) out.push(`  why: ${ex.last.cutoff}`);
  } else if (ex.last) out.push(`last build: ${ex.last.status} at ${ex.last.at} (key ${ex.last.key})`);
  if (ex.reasons.length === 0) out.push(ex.last ? 'no input changed since the last build' : 'no earlier build is recorded');
  else {
    out.push(ex.last ? 'changed since the last build:' : 'why:');
    for (const r of ex.reasons) out.push(`  - ${r.text}`);
  }
  if (ex.dependents.length) out.push(`modules that require it (rebuilt with it when it changes, unless early cutoff shows their make has nothing to do): ${ex.dependents.join(', ')}`);
  process.stdout.write(out.join('\n') + '\n');
  return 0;
}

/** `osvb explain kernel [WORDS]`: the kernel node of an OSv source tree. */
async function explainKernelCommand(args: ReturnType<typeof parseBuildArgs>, words: string[]): Promise<number> {
  const ex = await explainKernelBuild({ words, osvBase: args.osvBase, buildPath: args.buildPath, compat: args.compat, libgccSDir: args.libgccSDir, cacheDir: args.cacheDir });
  if (args.json) {
    process.stdout.write(JSON.stringify({ type: 'explain-kernel', ...ex }) + '\n');
    return 0;
  }
  const out: string[] = [];
  if (ex.verdict === 'up-to-date') out.push(`kernel: up to date (key ${ex.key}); make will not run`);
  else if (ex.verdict === 'restore') out.push(`kernel: will be restored from the cache (key ${ex.key}); make will not run`);
  else out.push(`kernel: will be built (key ${ex.key} is not in the cache)${ex.build ? `: ${ex.build.kind === 'full' ? 'make -B' : ex.build.kind === 'incremental' ? "make's own incremental build" : 'from scratch'} (${ex.build.reason})` : ''}`);
  if (ex.reasons.length) {
    out.push('changed since the last kernel build:');
    for (const r of ex.reasons) out.push(`  - ${r}`);
  }
  process.stdout.write(out.join('\n') + '\n');
  return 0;
}

function humanBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${n.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}

export async function runCache(argv: string[]): Promise<number> {
  const { values, positionals } = (() => {
    try {
      return parseArgs({
        args: argv,
        options: {
          'cache-dir': { type: 'string' },
          'osv-base': { type: 'string' },
          'max-size': { type: 'string' },
          json: { type: 'boolean' },
          help: { type: 'boolean', short: 'h' },
        },
        allowPositionals: true,
        strict: true,
      });
    } catch (e) {
      throw new OsvbError('OSVB_USAGE', (e as Error).message, { hint: 'see osvb cache --help' });
    }
  })();
  const sub = positionals[0];
  if (values.help || sub === undefined) {
    process.stdout.write(CACHE_HELP);
    return values.help ? 0 : 2;
  }
  const base = path.resolve(values['osv-base'] ?? (process.env['OSV_BASE'] || undefined) ?? process.cwd());
  const dir = path.resolve(values['cache-dir'] ?? process.env['OSVB_CACHE_DIR'] ?? path.join(base, '.osvb', 'cache'));
  const cache = new LocalCache(dir);
  const print = (obj: Record<string, unknown>, text: string): void => {
    process.stdout.write(values.json ? JSON.stringify(obj) + '\n' : text + '\n');
  };
  switch (sub) {
    case 'stats': {
      const s = cache.stats();
      print(
        { type: 'cache-stats', dir, ...s },
        `cache ${dir}\n  blobs:   ${s.blobs} (${humanBytes(s.blobBytes)})\n  records: ${s.actions} (${humanBytes(s.actionBytes)})\n  total:   ${humanBytes(s.blobBytes + s.actionBytes)}`,
      );
      return 0;
    }
    case 'gc': {
      if (!values['max-size']) throw new OsvbError('OSVB_USAGE', 'osvb cache gc needs --max-size SIZE', { hint: 'e.g. osvb cache gc --max-size 2G' });
      const r = cache.gc(parseSize(values['max-size']));
      print({ type: 'cache-gc', dir, ...r }, `removed ${r.removed} entries (${humanBytes(r.freedBytes)}); cache is now ${humanBytes(r.sizeBytes)}`);
      return 0;
    }
    case 'clean':
      cache.clean();
      print({ type: 'cache-clean', dir }, `removed ${dir}`);
      return 0;
    case 'verify': {
      await initHashing();
      const r = cache.verify();
      print(
        { type: 'cache-verify', dir, ...r },
        `checked ${r.blobs} blobs and ${r.actions} records: ${r.corrupt.length} corrupt${r.corrupt.length ? ' (removed):\n' + r.corrupt.map((c) => `  ${c}`).join('\n') : ''}`,
      );
      return r.corrupt.length ? 1 : 0;
    }
    default:
      throw new OsvbError('OSVB_USAGE', `unknown cache command "${sub}"`, { hint: 'osvb cache stats | gc --max-size SIZE | clean | verify' });
  }
}
