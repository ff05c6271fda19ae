#!/usr/bin/env node
// `osvb build` command-line shape on top of OSv's own scripts/module.py, for checking the
// conformance suite itself:
//
//   OSVB_CONFORMANCE_BIN=tools/conformance/osv-adapter.mjs npx vitest run test/conformance
//
// Every fixture must pass except the "expectedByHand" ones (where osvb deliberately differs from
// OSv). Without --compat=osv, directory walks and the conditional-require set are sorted like the
// oracle does; with --compat=osv module.py runs untouched (raw readdir order), which checks that
// fixtures listing the osv mode do not depend on readdir order.
//
//   osv-adapter.mjs build <scripts/build words…> --osv-base DIR [--compat=osv]

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BUILD_SUBDIR, detectLibgccDir } from './common.mjs';
import { OSV_REF, moduleEnv, translateWords, writeSiteCustomize } from './oracle.mjs';

function main(argv) {
  if (argv[0] !== 'build') {
    console.error('usage: osv-adapter.mjs build <words…> --osv-base DIR [--compat=osv]');
    return 2;
  }
  let base = process.cwd();
  let compat = 'default';
  const words = [];
  for (let i = 1; i < argv.length; i++) {
    if (argv[i] === '--osv-base') base = path.resolve(argv[++i]);
    else if (argv[i].startsWith('--compat=')) compat = argv[i].slice('--compat='.length);
    else words.push(argv[i]);
  }
  const t = translateWords(words);
  if (t.error) {
    console.error(t.error);
    return t.exit;
  }
  const build = path.join(base, BUILD_SUBDIR);
  fs.mkdirSync(path.join(build, 'module'), { recursive: true });
  const env = moduleEnv({ baseEnv: process.env, base, build, fsType: t.fsType, words, libgccDir: detectLibgccDir() });
  let siteDir = null;
  if (compat !== 'osv') {
    siteDir = fs.mkdtempSync(path.join(os.tmpdir(), 'osv-adapter-site-'));
    writeSiteCustomize(siteDir);
    env.PYTHONPATH = siteDir;
  }
  try {
    const r = spawnSync('python3', [path.join(OSV_REF, 'scripts', 'module.py'), ...t.moduleArgs], {
      cwd: base,
      env,
      stdio: 'inherit',
    });
    return r.status ?? 1;
  } finally {
    if (siteDir) fs.rmSync(siteDir, { recursive: true, force: true });
  }
}

process.exitCode = main(process.argv.slice(2));
