// Which Nx versions @osv-build/nx works with, and the check every entry point (plugin, executors,
// generators) runs when Nx loads it: an Nx outside the range gets one line naming the range and
// the version found, not a stack trace from deep inside Nx. Plain CommonJS, no dependencies.
'use strict';
const fs = require('node:fs');
const path = require('node:path');

/** Majors from MIN to below MAX (the package.json peerDependencies say the same). */
const MIN = 21;
const MAX = 25;
const RANGE = `>=${MIN} <${MAX}`;

function readNxPackage(file) {
  try {
    const pkg = JSON.parse(fs.readFileSync(file, 'utf8'));
    return pkg && pkg.name === 'nx' && typeof pkg.version === 'string' ? { version: pkg.version, dir: path.dirname(file) } : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The Nx that is running: the package holding the main module (Nx's CLI, plugin worker or task
 * runner), else the `nx` this package resolves; undefined when there is none (plain node).
 */
function runningNx() {
  const main = require.main && require.main.filename;
  if (main) {
    for (let dir = path.dirname(main); ; dir = path.dirname(dir)) {
      const found = readNxPackage(path.join(dir, 'package.json'));
      if (found) return found;
      if (path.basename(dir) === 'node_modules' || path.dirname(dir) === dir) break;
    }
  }
  try {
    return readNxPackage(require.resolve('nx/package.json', { paths: [__dirname] }));
  } catch {
    return undefined;
  }
}

/** The message for an Nx version outside the range, or undefined when it is inside (or unknown). */
function unsupportedNx(version) {
  const major = Number(/^(\d+)\./.exec(version)?.[1]);
  if (!Number.isInteger(major) || (major >= MIN && major < MAX)) return undefined;
  return `@osv-build/nx works with Nx ${RANGE} (nx and @nx/devkit 21.x to 24.x); this workspace runs Nx ${version}: install a supported nx and @nx/devkit`;
}

let verdict;
/** Throws when the running Nx is outside the range (looked up once per process). */
function assertSupportedNx() {
  if (verdict === undefined) {
    const nx = runningNx();
    verdict = (nx && unsupportedNx(nx.version)) || '';
  }
  if (!verdict) return;
  const err = new Error(verdict);
  // Nx prints the message; a stack from here would only point at this file.
  err.stack = verdict;
  throw err;
}

module.exports = { NX_RANGE: RANGE, NX_MIN_MAJOR: MIN, NX_MAX_MAJOR: MAX, unsupportedNx, assertSupportedNx };
