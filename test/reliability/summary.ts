/**
 * The reliability suite's figures: each scenario appends one JSON line (runs, failures, corrupt
 * cache entries found, peak RSS) to the summary file that tools/reliability/run.mjs prints as a
 * table. `OSVB_RELIABILITY=full` runs the full counts; the default (CI) is the short version.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { REPO } from '../helpers/cli.js';

export const FULL = process.env['OSVB_RELIABILITY'] === 'full';

/** Pick the full or the short count. */
export function count(full: number, short: number): number {
  return FULL ? full : short;
}

export interface ScenarioFigures {
  scenario: string;
  runs: number;
  failures: number;
  corrupt?: number;
  peakRssMB?: number;
  note?: string;
}

export const SUMMARY_FILE = process.env['OSVB_RELIABILITY_SUMMARY'] ?? path.join(REPO, '.reliability', 'summary.jsonl');

export function recordFigures(f: ScenarioFigures): void {
  fs.mkdirSync(path.dirname(SUMMARY_FILE), { recursive: true });
  fs.appendFileSync(SUMMARY_FILE, JSON.stringify({ ...f, mode: FULL ? 'full' : 'short', at: new Date().toISOString() }) + '\n');
}
