/**
 * Stage B parsing (OSv's `read_manifest`, spec §6.3): skip blank, comment and `[manifest]`
 * lines; split on the first `": "` (a third part is dropped, as OSv does); strip both sides.
 * A line without `": "` is an error with file and line (OSv crashes). Pure.
 */
import { OsvbError } from '../errors/index.js';
import { pyRstrip, pyStrip, splitUniversalLines } from '../fsutil/index.js';

export interface ManifestEntry {
  guest: string;
  host: string;
  /** 1-based line in the manifest file it came from. */
  line: number;
}

// `[^\n]` rather than `.`: Python's `.` also matches \r, U+2028 and U+2029.
const SKIP = /^[ \t]*(|#[^\n]*|\[manifest\])$/;

export function isSkippedLine(rstripped: string): boolean {
  return SKIP.test(rstripped);
}

export function parseManifest(text: string, file: string): ManifestEntry[] {
  const out: ManifestEntry[] = [];
  splitUniversalLines(text).forEach((raw, i) => {
    const line = pyRstrip(raw);
    if (isSkippedLine(line)) return;
    const parts = line.split(': ');
    if (parts.length < 2) {
      throw new OsvbError('OSVB_MANIFEST_SYNTAX', `expected "GUEST: HOST" (a colon followed by a space), got "${line}"`, {
        location: { file, line: i + 1 },
      });
    }
    out.push({ guest: pyStrip(parts[0] as string), host: pyStrip(parts[1] as string), line: i + 1 });
  });
  return out;
}
