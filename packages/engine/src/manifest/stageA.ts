/**
 * Stage A: copying a skeleton or module manifest into BUILD/usr.manifest or bootfs.manifest
 * (OSv's `append_manifest`, spec §6.2). Lines are right-stripped, a bare `[manifest]` header is
 * dropped, `${NAME}` is substituted (module manifests know MODULE_DIR and OSV_BASE, skeletons
 * nothing) and `%(libgcc_s_dir)s` is replaced when that value is non-empty. Pure.
 *
 * Differences from OSv, on purpose: several `${…}` on one line are each substituted (OSv's greedy
 * regex fails on them), and a line that stage B could not parse (no `: `) is reported here with
 * its file and line instead of crashing the image tools later.
 */
import { OsvbError } from '../errors/index.js';
import { pyRstrip } from '../fsutil/index.js';
import { isSkippedLine } from './parse.js';

export interface StageAInput {
  /** Source file, for error messages. */
  file: string;
  lines: readonly string[];
  /** Variables for `${NAME}`; empty for skeletons. */
  variables: Readonly<Record<string, string>>;
  /** The `libgcc_s_dir` environment value; empty leaves `%(libgcc_s_dir)s` for stage B. */
  libgccSDir: string;
  /** What the variables are, for the error hint. */
  kind: 'skeleton' | 'module';
}

const VAR = /\$\{(.*?)\}/g;

export function stageA(input: StageAInput): string {
  let out = '';
  input.lines.forEach((raw, index) => {
    const line = pyRstrip(raw);
    if (line === '[manifest]') return;
    let expanded = line.replace(VAR, (_whole, name: string) => {
      const value = Object.hasOwn(input.variables, name) ? input.variables[name] : undefined;
      if (value === undefined) {
        throw new OsvbError('OSVB_MANIFEST_UNDEFINED_VAR', `Undefined variable: ${name}`, {
          location: { file: input.file, line: index + 1 },
          hint:
            input.kind === 'module'
              ? 'module manifests may use ${MODULE_DIR} and ${OSV_BASE} (the whole line is substituted, comments included)'
              : 'skeleton manifests take no ${…} variables',
        });
      }
      return value;
    });
    if (input.libgccSDir.length > 0) expanded = expanded.split('%(libgcc_s_dir)s').join(input.libgccSDir);
    if (!isSkippedLine(expanded) && !expanded.includes(': ')) {
      throw new OsvbError('OSVB_MANIFEST_SYNTAX', `expected "GUEST: HOST" (a colon followed by a space), got "${expanded}"`, {
        location: { file: input.file, line: index + 1 },
      });
    }
    out += expanded + '\n';
  });
  return out;
}
