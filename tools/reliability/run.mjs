#!/usr/bin/env node
// The reliability suite with its figures: runs test/reliability (and the remote-cache fault
// tests) with the full counts, then prints one row per scenario: runs, failures, corrupt cache
// entries found, peak RSS. `--short` runs the counts CI runs.
//
//   npm run test:reliability            # full: 50 kills, 10k fuzz cases per input, 100k files, 4 GB file
//   npm run test:reliability -- --short
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const short = process.argv.includes('--short');
const summary = path.join(REPO, '.reliability', `summary-${process.pid}.jsonl`);
fs.mkdirSync(path.dirname(summary), { recursive: true });
fs.rmSync(summary, { force: true });
const vitest = path.join(REPO, 'node_modules/.bin/vitest');
const r = spawnSync(vitest, ['run', 'test/reliability', 'test/e2e/remote.test.ts'], {
  cwd: REPO,
  stdio: 'inherit',
  env: { ...process.env, OSVB_RELIABILITY: short ? 'short' : 'full', OSVB_RELIABILITY_SUMMARY: summary },
});
const rows = fs.existsSync(summary) ? fs.readFileSync(summary, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l)) : [];
const cols = ['scenario', 'runs', 'failures', 'corrupt', 'peak RSS MB', 'note'];
const table = rows.map((x) => [x.scenario, String(x.runs), String(x.failures), x.corrupt === undefined ? '-' : String(x.corrupt), x.peakRssMB === undefined ? '-' : String(x.peakRssMB), x.note ?? '']);
const widths = cols.map((c, i) => Math.max(c.length, ...table.map((t) => t[i].length)));
const line = (cells) => '| ' + cells.map((c, i) => c.padEnd(widths[i])).join(' | ') + ' |';
console.log(`\nReliability suite (${short ? 'short' : 'full'}), ${new Date().toISOString()}`);
console.log(line(cols));
console.log('|' + widths.map((w) => '-'.repeat(w + 2)).join('|') + '|');
for (const t of table) console.log(line(t));
const total = rows.reduce((a, x) => a + x.failures, 0);
console.log(`\n${rows.length} scenarios, ${rows.reduce((a, x) => a + x.runs, 0)} runs, ${total} failures`);
process.exit(r.status === 0 && total === 0 ? 0 : 1);
