// Shared by the benchmark scripts: option parsing (Node's util.parseArgs, strict), medians, logging.
import path from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const OSVB = path.join(REPO, 'packages/cli/bin/osvb.js');

/**
 * Parse `argv` against `spec` ({ name: default }): numbers, strings and booleans by the
 * default's type (undefined defaults are strings); `--help` prints `usage` and exits.
 */
export function benchOptions(usage, spec, argv = process.argv.slice(2)) {
  const options = { help: { type: 'boolean', short: 'h' } };
  for (const [name, def] of Object.entries(spec)) options[name] = { type: typeof def === 'boolean' ? 'boolean' : 'string' };
  let values;
  try {
    ({ values } = parseArgs({ args: argv, options, strict: true }));
  } catch (e) {
    console.error(`${e.message}\n${usage}`);
    process.exit(2);
  }
  if (values.help) {
    console.log(usage);
    process.exit(0);
  }
  const out = {};
  for (const [name, def] of Object.entries(spec)) {
    const v = values[name];
    if (v === undefined) out[name] = def;
    else if (typeof def === 'number') {
      out[name] = Number(v);
      if (!Number.isFinite(out[name])) {
        console.error(`--${name} ${v}: expected a number\n${usage}`);
        process.exit(2);
      }
    } else out[name] = v;
  }
  return out;
}

export function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

export const log = (s) => process.stderr.write(s + '\n');
