/**
 * `osvb rofs`: OSv's scripts/gen-rofs-img.py, byte for byte, plus reading images back.
 *
 *   osvb rofs -m MANIFEST -o OUT [-D NAME=VALUE…] [--compat=osv] [--no-incremental]
 *   osvb rofs ls IMAGE [--json]
 *   osvb rofs cat IMAGE PATH
 *   osvb rofs extract IMAGE DIR
 */
import * as path from 'node:path';
import { once } from 'node:events';
import { parseArgs } from 'node:util';
import { OsvbError, RofsImage, readRofsManifest, writeRofsImageFromManifest, type RofsEntry, type RofsWriteStats } from '@osv-build/engine';

export const ROFS_HELP = `Usage:
  osvb rofs -m MANIFEST -o OUT [-D NAME=VALUE…] [OPTIONS]
  osvb rofs ls IMAGE [--json]
  osvb rofs cat IMAGE PATH
  osvb rofs extract IMAGE DIR

Writes a ROFS image from a manifest exactly as OSv's scripts/gen-rofs-img.py does. Run it
from the build path, like OSv's Makefile runs gen-rofs-img.py: relative host paths are
resolved against the current directory, and .so files under it (or under ../../modules and
../../apps) are stored stripped ($STRIP, default strip).

Options:
  -m MANIFEST            the manifest (usr.manifest)
  -o OUT                 the image to write
  -D NAME=VALUE          a define for %(NAME)s in host paths (repeatable)
  --compat=osv           walk /** directories in the OS's order, as OSv does (default: sorted)
  --no-incremental       write the whole image; no layout file, no in-place update
                         (default: keep OUT.osvb-layout.json and rewrite only what moved or
                         changed; when no directory, link or stripped .so the manifest
                         reached changed, the tree is not even built again)
  --cache-dir DIR        where stripped .so copies are kept (default: $OSVB_CACHE_DIR,
                         else <osv base>/.osvb/cache)
  --osv-base DIR         the OSv base (default: $OSV_BASE, else ../..)
  --json                 print the result as one JSON line
  -v, --verbose          print every file and link, like gen-rofs-img.py
  --timings              say where the time went (tree, sizes, layout, data), which copier
                         copied the data (native threads, or JavaScript where it is not built),
                         and whether the tree was reused or why it was built

ls lists every entry (kind, size, path, link target); cat writes one file to stdout;
extract writes the tree into DIR (created if missing, must be empty), refusing names that
could escape it. Exit status: 0 ok, 1 I/O failure, 2 bad input or a corrupt image.
`;

function usage(message: string): OsvbError {
  return new OsvbError('OSVB_USAGE', message, { hint: 'see osvb rofs --help' });
}

function parsing<T>(fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    throw usage((e as Error).message.replace(/\. To specify a positional.*$/s, ''));
  }
}

/** `-D NAME=VALUE` the way gen-rofs-img's optparse callback splits it (exactly one `=`). */
export function parseDefines(items: readonly string[]): Record<string, string> {
  const defines: Record<string, string> = {};
  for (const item of items) {
    const parts = item.split('=');
    if (parts.length !== 2) {
      throw new OsvbError('OSVB_USAGE', `-D ${item}: expected NAME=VALUE with exactly one "="`, {
        hint: 'gen-rofs-img.py rejects a define without "=" or with a value containing "=" as well',
      });
    }
    defines[parts[0] as string] = parts[1] as string;
  }
  return defines;
}

async function writeOut(chunk: Uint8Array): Promise<void> {
  if (!process.stdout.write(chunk)) await once(process.stdout, 'drain');
}

function lsLine(e: RofsEntry): string {
  const kind = e.kind === 'dir' ? 'd' : e.kind === 'link' ? 'l' : '-';
  const size = e.kind === 'file' ? String(e.size) : e.kind === 'dir' ? `${e.size}` : '';
  return `${kind} ${size.padStart(12)}  ${e.path}${e.kind === 'link' ? ` -> ${e.target}` : ''}`;
}

async function runBuildImage(argv: string[]): Promise<number> {
  const { values, positionals } = parsing(() =>
    parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      allowNegative: true,
      options: {
        manifest: { type: 'string', short: 'm' },
        output: { type: 'string', short: 'o' },
        define: { type: 'string', short: 'D', multiple: true },
        compat: { type: 'string' },
        incremental: { type: 'boolean', default: true },
        'cache-dir': { type: 'string' },
        'osv-base': { type: 'string' },
        json: { type: 'boolean' },
        verbose: { type: 'boolean', short: 'v' },
        timings: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    }),
  );
  if (values.help) {
    process.stdout.write(ROFS_HELP);
    return 0;
  }
  if (positionals.length > 0) throw usage(`unexpected argument "${positionals[0]}"`);
  if (!values.manifest) throw usage('osvb rofs needs -m MANIFEST');
  if (!values.output) throw usage('osvb rofs needs -o OUT');
  const compat = values.compat ?? 'default';
  if (compat !== 'osv' && compat !== 'default') throw usage(`--compat=${compat}: expected --compat=osv (or --compat=default)`);
  const defines = parseDefines(values.define ?? []);
  const cwd = process.cwd();
  const osvBase = path.resolve(values['osv-base'] ?? (process.env['OSV_BASE'] || undefined) ?? path.join(cwd, '..', '..'));
  const cacheDir = path.resolve(values['cache-dir'] ?? process.env['OSVB_CACHE_DIR'] ?? path.join(osvBase, '.osvb', 'cache'));
  const warn = (text: string): void => {
    process.stderr.write(text + '\n');
  };
  const started = performance.now();
  const text = readRofsManifest(values.manifest);
  const out = path.resolve(values.output);
  const stats = await writeRofsImageFromManifest(
    text,
    { file: values.manifest, cwd, defines, walkOrder: compat === 'osv' ? 'os' : 'sorted', strip: { program: process.env['STRIP'] || 'strip', cacheDir, warn } },
    out,
    { incremental: values.incremental ?? true },
  );
  if (values.timings) process.stderr.write(timingsLine(performance.now() - started, stats) + '\n');
  if (values.json) {
    process.stdout.write(JSON.stringify({ type: 'rofs', image: out, ...stats }) + '\n');
    return 0;
  }
  if (values.verbose) {
    const img = RofsImage.open(out);
    try {
      for (const e of img.entries) {
        if (e.kind === 'file') process.stdout.write(`Adding ${e.path}\n`);
        else if (e.kind === 'link') process.stdout.write(`Link ${e.path} to ${e.target}\n`);
      }
    } finally {
      img.close();
    }
    process.stdout.write(
      `First block: ${stats.structureFirstBlock}, blocks count: ${stats.structureBlocks}\n` +
        `Directory entries count ${stats.dentries}\nSymlinks count ${stats.symlinks}\nInodes count ${stats.inodes}\n`,
    );
  }
  const how =
    stats.mode === 'in-place'
      ? `updated in place${stats.treeReused ? ' (same tree)' : ''}: ${stats.filesWritten} files written, ${stats.filesReused} unchanged`
      : `${stats.filesWritten} files written${stats.fullReason ? ` (whole image: ${stats.fullReason})` : ''}`;
  process.stderr.write(
    `osvb rofs: ${values.output}: ${stats.files} files, ${stats.symlinks} links, ${stats.directories} directories, ${stats.imageSize} bytes; ${how}, ${stats.bytesWritten} bytes written\n`,
  );
  return 0;
}

function timingsLine(totalMs: number, stats: RofsWriteStats): string {
  const ms = (n: number): string => `${Math.round(n)} ms`;
  const parts = [`total ${ms(totalMs)}`];
  if (stats.treeMs !== undefined) {
    parts.push(stats.treeReused ? `tree ${ms(stats.treeMs)} (unchanged: its reads were checked, it was not built)` : `tree ${ms(stats.treeMs)}${stats.treeReason ? ` (built: ${stats.treeReason})` : ''}`);
  }
  const p = stats.phaseMs;
  if (p?.sizes !== undefined) parts.push(`sizes ${ms(p.sizes)} (layout planned meanwhile)`);
  if (p) parts.push(`layout ${ms(p.layout)}`, `data ${ms(p.data)}${stats.copier?.startsWith('native') ? ' (on native threads, sizes and layout included)' : ''}`);
  return `osvb rofs: timings: ${parts.join(', ')}${stats.copier ? `; copier: ${stats.copier}` : '; updated in place'}`;
}

export async function runRofs(argv: string[]): Promise<number> {
  const sub = argv[0];
  if (sub === 'ls' || sub === 'cat' || sub === 'extract') {
    const { values, positionals } = parsing(() =>
      parseArgs({
        args: argv.slice(1),
        allowPositionals: true,
        strict: true,
        options: { json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
      }),
    );
    if (values.help) {
      process.stdout.write(ROFS_HELP);
      return 0;
    }
    const want = sub === 'ls' ? 1 : 2;
    if (positionals.length !== want) {
      throw usage(sub === 'ls' ? 'usage: osvb rofs ls IMAGE' : sub === 'cat' ? 'usage: osvb rofs cat IMAGE PATH' : 'usage: osvb rofs extract IMAGE DIR');
    }
    const [imagePath, arg] = positionals as [string, string | undefined];
    const img = RofsImage.open(imagePath);
    try {
      if (sub === 'ls') {
        if (values.json) {
          for (const e of img.entries) await writeOut(Buffer.from(JSON.stringify(e) + '\n'));
        } else {
          let text = '';
          for (const e of img.entries) {
            text += lsLine(e) + '\n';
            if (text.length > 1 << 16) {
              await writeOut(Buffer.from(text));
              text = '';
            }
          }
          await writeOut(Buffer.from(text));
        }
      } else if (sub === 'cat') {
        for (const chunk of img.fileChunks(arg as string)) await writeOut(Buffer.from(chunk));
      } else {
        const r = img.extract(arg as string);
        const line = values.json
          ? JSON.stringify({ type: 'rofs-extract', dir: path.resolve(arg as string), ...r })
          : `extracted ${r.files} files (${r.bytes} bytes), ${r.links} links and ${r.directories} directories into ${arg}`;
        process.stdout.write(line + '\n');
      }
    } finally {
      img.close();
    }
    return 0;
  }
  return runBuildImage(argv);
}
