/**
 * Per-base build state: for every module, its last key and key inputs (for `explain`), the
 * outputs its build produced (left out of later keys), and stat fingerprints of its inputs
 * and outputs, so an unchanged module costs a few `stat`s. One file per OSv base in the cache
 * directory, read once and written once per build.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeFileAtomic } from '../fsutil/index.js';
import { digestString } from '../hash/index.js';
import type { InputFingerprint, ModuleKeyInputs } from './moduleKeys.js';
import type { MakeEvidence } from './cutoff.js';

export interface OutputSignature {
  path: string;
  /** size, mtime ns, inode, mode — or the link target for a symlink. */
  sig: [string, string, string, number] | { link: string };
}

export interface ModuleState {
  key: string;
  inputs: ModuleKeyInputs;
  outputs: string[];
  /** 'cutoff': make was not run, by early cutoff (see cutoff.ts); `cutoff` says why. */
  status: 'built' | 'restored' | 'cutoff';
  at: string;
  cutoff?: string;
  /** make's last up-to-date answer for this module and what it depended on. */
  makeEvidence?: MakeEvidence;
  fingerprint: InputFingerprint | null;
  /** Output signatures right after the build or restore; null when untrusted. */
  outputSigs: OutputSignature[] | null;
}

interface StateFile {
  v: 1;
  modules: Record<string, ModuleState>;
}

export class BuildState {
  private readonly file: string;
  private data: StateFile = { v: 1, modules: {} };
  private readonly changed = new Map<string, ModuleState>();

  constructor(cacheDir: string, osvBase: string) {
    this.file = path.join(cacheDir, 'state', `${digestString(osvBase)}.json`);
    this.data = this.read();
  }

  private read(): StateFile {
    try {
      const d = JSON.parse(fs.readFileSync(this.file, 'utf8')) as StateFile;
      if (d.v === 1 && d.modules && typeof d.modules === 'object') return d;
    } catch {
      /* missing or unreadable: it is only state */
    }
    return { v: 1, modules: {} };
  }

  get(name: string): ModuleState | undefined {
    return this.changed.get(name) ?? this.data.modules[name];
  }

  set(name: string, st: ModuleState): void {
    this.changed.set(name, st);
  }

  /** Merge this build's changes into the file (re-read first: another build may have written). */
  save(): void {
    if (this.changed.size === 0) return;
    const current = this.read();
    for (const [k, v] of this.changed) current.modules[k] = v;
    fs.mkdirSync(path.dirname(this.file), { recursive: true });
    writeFileAtomic(this.file, JSON.stringify(current));
    // A small index of what each module produced, for readers that need only that (describeBase).
    const outputs: Record<string, string[]> = {};
    for (const [k, v] of Object.entries(current.modules)) outputs[k] = v.outputs;
    writeFileAtomic(outputsFileOf(this.file), JSON.stringify({ v: 1, outputs }));
    this.data = current;
    this.changed.clear();
  }

  /** Each module's outputs from its last build here, without reading the whole state. */
  static readOutputs(cacheDir: string, osvBase: string): Record<string, string[]> {
    const file = path.join(cacheDir, 'state', `${digestString(osvBase)}.json`);
    try {
      const d = JSON.parse(fs.readFileSync(outputsFileOf(file), 'utf8')) as { v: number; outputs: Record<string, string[]> };
      if (d.v === 1 && d.outputs && typeof d.outputs === 'object') return d.outputs;
    } catch {
      /* missing (written by an older osvb): read the state itself */
    }
    const out: Record<string, string[]> = {};
    for (const [k, v] of Object.entries(new BuildState(cacheDir, osvBase).data.modules)) out[k] = v.outputs;
    return out;
  }
}

function outputsFileOf(stateFile: string): string {
  return stateFile.replace(/\.json$/, '.outputs.json');
}

const RACY_MS = 2000;

/** Signatures of outputs as they are now; null if any is too fresh to be trusted later. */
export function outputSignatures(dir: string, outputs: readonly string[]): OutputSignature[] | null {
  const out: OutputSignature[] = [];
  const now = Date.now();
  for (const rel of outputs) {
    const p = path.join(dir, rel);
    let st: fs.BigIntStats | undefined;
    try {
      st = fs.lstatSync(p, { bigint: true, throwIfNoEntry: false });
    } catch {
      return null;
    }
    if (!st) return null;
    if (st.isSymbolicLink()) {
      out.push({ path: rel, sig: { link: fs.readlinkSync(p) } });
      continue;
    }
    if (Number(st.mtimeMs) >= now - RACY_MS) return null;
    out.push({ path: rel, sig: [st.size.toString(), st.mtimeNs.toString(), st.ino.toString(), Number(st.mode) & 0o777] });
  }
  return out;
}

/** True while every output is exactly as recorded. */
export function outputsHold(dir: string, sigs: readonly OutputSignature[]): boolean {
  for (const o of sigs) {
    const p = path.join(dir, o.path);
    try {
      if ('link' in o.sig) {
        if (fs.readlinkSync(p) !== o.sig.link) return false;
        continue;
      }
      const st = fs.lstatSync(p, { bigint: true, throwIfNoEntry: false });
      const [s, m, i, mode] = o.sig;
      if (!st || !st.isFile() || st.size.toString() !== s || st.mtimeNs.toString() !== m || st.ino.toString() !== i || (Number(st.mode) & 0o777) !== mode) return false;
    } catch {
      return false;
    }
  }
  return true;
}
