/**
 * `osvb bootfs` and `osvb export`: OSv's scripts/mkbootfs.py and scripts/export_manifest.py.
 *
 *   osvb bootfs -m MANIFEST -o OUT [-d DEPS] [-D NAME=VALUE…]
 *   osvb export -m MANIFEST -e DIR [-D NAME=VALUE…]
 *
 * Both run from the build path, as OSv runs its tools.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { decodeManifestText, exportManifest, initHashing, OsvbError, writeBootfs } from '@osv-build/engine';
import { parseDefines } from './rofs.js';

const COMMON_OPTIONS = `  -m MANIFEST            the manifest
  -D NAME=VALUE          a define for %(NAME)s in host paths (repeatable)
  --compat=osv           walk /** directories in the OS's order, as OSv does (default: sorted)
  --cache-dir DIR        where stripped .so copies are kept (default: $OSVB_CACHE_DIR,
                         else <osv base>/.osvb/cache)
  --osv-base DIR         the OSv base (default: $OSV_BASE, else ../..)
  --json                 print the result as one JSON line`;

export const BOOTFS_HELP = `Usage: osvb bootfs -m MANIFEST -o OUT [-d DEPS] [-D NAME=VALUE…] [OPTIONS]

Writes the kernel's bootfs blob exactly as OSv's scripts/mkbootfs.py does. Run it from the
build path: relative host paths resolve against the current directory, and .so files under
it (or under ../../modules and ../../apps) are stored stripped ($STRIP, default strip).
Unlike mkbootfs.py, a missing host file, a dangling link or a name longer than 110 bytes is
an error, and nothing is written.

Options:
  -o OUT                 the blob to write
  -d DEPS                also write a make dependency file
${COMMON_OPTIONS}
`;

export const EXPORT_HELP = `Usage: osvb export -m MANIFEST -e DIR [-D NAME=VALUE…] [OPTIONS]

Exports the files a manifest names into DIR, as OSv's scripts/export_manifest.py does
(defines are applied after /** expansion, as there). Incremental: unchanged files are left
untouched, changed ones replaced, entries no longer in the manifest removed; the record of
what was exported is kept beside DIR (.DIR.osvb-export.json). Run it from the build path.

Options:
  -e DIR                 the export directory
  -v, --verbose          print a line for every file, link and directory, like export_manifest.py
${COMMON_OPTIONS}
`;

function usage(cmd: string, message: string): OsvbError {
  return new OsvbError('OSVB_USAGE', message, { hint: `see osvb ${cmd} --help` });
}

function parse(cmd: 'bootfs' | 'export', argv: string[]) {
  try {
    return parseArgs({
      args: argv,
      allowPositionals: false,
      strict: true,
      options: {
        manifest: { type: 'string', short: 'm' },
        output: { type: 'string', short: 'o' },
        depends: { type: 'string', short: 'd' },
        export: { type: 'string', short: 'e' },
        define: { type: 'string', short: 'D', multiple: true },
        compat: { type: 'string' },
        'cache-dir': { type: 'string' },
        'osv-base': { type: 'string' },
        json: { type: 'boolean' },
        verbose: { type: 'boolean', short: 'v' },
        help: { type: 'boolean', short: 'h' },
      },
    }).values;
  } catch (e) {
    throw usage(cmd, (e as Error).message.replace(/\. To specify a positional.*$/s, ''));
  }
}

export async function runImageCommand(cmd: 'bootfs' | 'export', argv: string[]): Promise<number> {
  const v = parse(cmd, argv);
  if (v.help) {
    process.stdout.write(cmd === 'bootfs' ? BOOTFS_HELP : EXPORT_HELP);
    return 0;
  }
  if (!v.manifest) throw usage(cmd, `osvb ${cmd} needs -m MANIFEST`);
  if (cmd === 'bootfs' && !v.output) throw usage(cmd, 'osvb bootfs needs -o OUT');
  if (cmd === 'export' && !v.export) throw usage(cmd, 'osvb export needs -e DIR');
  if (cmd === 'bootfs' && v.export !== undefined) throw usage(cmd, '-e is an option of osvb export');
  if (cmd === 'export' && (v.output !== undefined || v.depends !== undefined)) throw usage(cmd, '-o and -d are options of osvb bootfs');
  const compat = v.compat ?? 'default';
  if (compat !== 'osv' && compat !== 'default') throw usage(cmd, `--compat=${compat}: expected --compat=osv (or --compat=default)`);

  const defines = parseDefines(v.define ?? []);
  const cwd = process.cwd();
  const osvBase = path.resolve(v['osv-base'] ?? (process.env['OSV_BASE'] || undefined) ?? path.join(cwd, '..', '..'));
  const cacheDir = path.resolve(v['cache-dir'] ?? process.env['OSVB_CACHE_DIR'] ?? path.join(osvBase, '.osvb', 'cache'));
  const strip = {
    strip: process.env['STRIP'] || 'strip',
    cacheDir,
    warn: (text: string): void => {
      process.stderr.write(text + '\n');
    },
  };
  const walkOrder = compat === 'osv' ? ('os' as const) : ('sorted' as const);
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(path.resolve(cwd, v.manifest));
  } catch (e) {
    throw new OsvbError('OSVB_CONFIG_MISSING', `cannot read manifest ${v.manifest}: ${(e as Error).message}`, { cause: e });
  }
  const text = decodeManifestText(v.manifest, bytes);
  await initHashing();

  if (cmd === 'bootfs') {
    const res = writeBootfs(text, v.manifest, {
      out: v.output as string,
      ...(v.depends !== undefined ? { depends: v.depends } : {}),
      cwd,
      defines,
      walkOrder,
      strip,
    });
    if (v.json) process.stdout.write(JSON.stringify({ type: 'bootfs', output: res.output, entries: res.records.length, size: res.size }) + '\n');
    else if (v.verbose) process.stderr.write(`osvb bootfs: ${v.output}: ${res.records.length} entries, ${res.size} bytes\n`);
    return 0;
  }

  const res = exportManifest(text, v.manifest, v.export as string, {
    cwd,
    defines,
    walkOrder,
    strip,
    log: (line) => {
      // `[ERR] unable to export HOST` is a warning (export_manifest.py carries on, status 0).
      if (line.startsWith('[ERR]')) process.stderr.write(line + '\n');
      else if (v.verbose && !v.json) process.stdout.write(line + '\n');
    },
  });
  if (v.json) {
    process.stdout.write(
      JSON.stringify({ type: 'export', dir: res.exportDir, written: res.written, removed: res.removed, unchanged: res.unchanged, warnings: res.warnings }) + '\n',
    );
  } else {
    process.stdout.write(
      `[INFO] exported into ${res.exportDir}: ${res.written.length} written, ${res.unchanged} unchanged, ${res.removed.length} removed` +
        (res.warnings.length ? `, ${res.warnings.length} not exportable` : '') +
        '\n',
    );
  }
  return 0;
}
