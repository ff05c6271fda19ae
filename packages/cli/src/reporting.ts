/** How every osvb command ends: errors as `error[CODE]` lines (or a JSON record), exit codes. */
import { toOsvbError } from '@osv-build/engine';

export async function reportingErrors(argv: readonly string[], run: () => Promise<number>): Promise<number> {
  const verbose = argv.includes('--verbose') || argv.includes('-v');
  const json = argv.includes('--json');
  try {
    return await run();
  } catch (e) {
    const err = toOsvbError(e);
    if (json) {
      process.stdout.write(JSON.stringify({ type: 'error', code: err.code, message: err.message, location: err.location, details: err.details, hint: err.hint }) + '\n');
    }
    process.stderr.write(err.format() + '\n');
    if (verbose && e instanceof Error && e.stack) process.stderr.write(e.stack + '\n');
    return err.code === 'OSVB_INTERRUPTED' ? 130 : err.exitCode;
  }
}
