#!/usr/bin/env node
// Regenerates every fixture's expected.img with OSv's own scripts/gen-rofs-img.py.
//
//   node packages/engine/src/image/rofs/testdata/regen.mjs [OSV_REF]   (default $OSV_REF, else /work/ref/osv)
//
// Each fixture is <name>/build (the build directory: manifest usr.manifest plus the host files
// it names, relative to it) and <name>/case.json ({ defines, mkdirs }: mkdirs are the empty
// directories git cannot store). The build directory is copied to a temp dir first, so that
// OSv's strip_file never writes *-stripped.so files into the fixtures; STRIP is left unset.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const osv = process.argv[2] ?? process.env.OSV_REF ?? '/work/ref/osv';
const script = path.join(osv, 'scripts', 'gen-rofs-img.py');
if (!fs.existsSync(script)) {
  console.error(`no ${script}`);
  process.exit(2);
}
for (const name of fs.readdirSync(here).sort()) {
  const caseFile = path.join(here, name, 'case.json');
  if (!fs.existsSync(caseFile)) continue;
  const c = JSON.parse(fs.readFileSync(caseFile, 'utf8'));
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), `rofs-${name}-`));
  const build = path.join(tmp, 'build');
  fs.cpSync(path.join(here, name, 'build'), build, { recursive: true, verbatimSymlinks: true });
  for (const d of c.mkdirs ?? []) fs.mkdirSync(path.join(build, d), { recursive: true });
  const args = [script, '-o', path.join(tmp, 'out.img'), '-m', 'usr.manifest'];
  for (const [k, v] of Object.entries(c.defines ?? {})) args.push('-D', `${k}=${v}`);
  const env = { ...process.env };
  delete env.STRIP;
  const r = spawnSync('python3', args, { cwd: build, env, encoding: 'utf8' });
  if (r.status !== 0) {
    console.error(`${name}: gen-rofs-img.py failed (${r.status})\n${r.stdout}${r.stderr}`);
    process.exit(1);
  }
  fs.copyFileSync(path.join(tmp, 'out.img'), path.join(here, name, 'expected.img'));
  console.log(`${name}: ${fs.statSync(path.join(here, name, 'expected.img')).size} bytes`);
  fs.rmSync(tmp, { recursive: true, force: true });
}
