/**
 * An error at a line of the generated usr.manifest, told where that line came from: the skeleton
 * or the module manifest (or module.py) the user can edit, not a file osvb writes.
 */
import * as fs from 'node:fs';
import { OsvbError } from '../errors/index.js';
import type { OsvOutputs } from '../image/index.js';

export interface ManifestLineSource {
  /** The module the line belongs to, or `skeleton` / `generated`. */
  name: string;
  kind: 'skeleton' | 'module' | 'generated';
  file?: string;
  line?: number;
}

/** Which section of the generated manifest holds its line `line` (1-based), and the source line. */
export function manifestLineSource(text: string, sections: OsvOutputs['usrSections'], line: number): ManifestLineSource | undefined {
  const lines = text.split('\n');
  const generated = lines[line - 1];
  if (generated === undefined) return undefined;
  let first = 2; // line 1 is the "[manifest]" header
  for (const s of sections) {
    const count = s.text.split('\n').length - 1;
    if (line >= first && line < first + count) {
      const guest = generated.split(/:\s/)[0]?.trim() ?? '';
      for (const file of s.sources ?? []) {
        const at = findGuest(file, guest);
        if (at !== undefined) return { name: s.name, kind: s.kind, file, line: at };
      }
      return { name: s.name, kind: s.kind, ...(s.sources?.[0] ? { file: s.sources[0] } : {}) };
    }
    first += count;
  }
  return undefined;
}

/** The first line of `file` that maps `guest` (a manifest line or a module.py call naming it). */
function findGuest(file: string, guest: string): number | undefined {
  if (!guest) return undefined;
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
  const lines = text.split('\n');
  // Exact guest path first; then its directory, for lines a `/**` or `&` expanded.
  let g = guest;
  while (g.length > 1) {
    const i = lines.findIndex((l) => l.includes(g));
    if (i >= 0) return i + 1;
    const cut = g.lastIndexOf('/');
    if (cut <= 0) break;
    g = g.slice(0, cut);
  }
  return undefined;
}

/** The same error, located at the source of the generated line it names (the generated line as detail). */
export function atManifestSource(e: OsvbError, usrManifest: string, text: string, sections: OsvOutputs['usrSections']): OsvbError {
  const loc = e.location;
  if (!loc || loc.file !== usrManifest || loc.line === undefined) return e;
  const src = manifestLineSource(text, sections, loc.line);
  if (!src?.file) return e;
  const from = src.kind === 'skeleton' ? 'the skeleton' : src.kind === 'module' ? `module ${src.name}` : 'module.py';
  return new OsvbError(e.code, e.message, {
    location: { file: src.file, ...(src.line !== undefined ? { line: src.line } : {}) },
    details: [`in ${from}'s line, written to ${usrManifest}:${loc.line}`, ...e.details],
    ...(e.hint ? { hint: e.hint } : {}),
    cause: e,
  });
}
