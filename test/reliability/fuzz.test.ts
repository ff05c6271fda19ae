/**
 * Fuzzing with fast-check: manifests, config.json, include files, image specs, module names and
 * NAME=value words. Every case must either be accepted or fail with an OsvbError that has a
 * code (and, for files, the file and a line) — never another exception, never a hang. A smaller
 * number of fuzzed manifests go through the real CLI to check that nothing is written outside
 * the build path and the cache.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { expandManifestEntries, isOsvbError, loadOsvConfig, parseBuildWords, parseImageSpec, parseManifest, stageA } from '@osv-build/engine';
import { listFiles, osvb, tempDir, writeTree } from '../helpers/cli.js';
import { count, recordFigures } from './summary.js';

const root = tempDir('osvb-fuzz-');
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

const CASES = count(10_000, 1_000);

/** Characters that matter to the parsers, mixed with anything. */
const special = fc.constantFrom(':', ' ', '\t', '/', '*', '**', '&', '->', '${', '}', '$', '%', '%(', ')s', '..', '\\', '"', '#', '[', ']', ',', '=', '!', '-', '.', '\n', '\r', '\0', 'é', '${MODULE_DIR}', '${OSV_BASE}');
const messy = fc.array(fc.oneof(special, fc.string({ maxLength: 6 }), fc.string({ unit: 'grapheme', maxLength: 3 })), { maxLength: 24 }).map((a) => a.join(''));

/** Manifest lines: mostly well-formed `guest: host` with hostile parts, some pure noise. */
const pathPart = fc.oneof(fc.constantFrom('a', 'data', 'x.txt', '..', '.', '**', '*', '&', 'a.txt', 'b', 'é'), fc.string({ maxLength: 4 }));
const guest = fc.array(pathPart, { minLength: 1, maxLength: 4 }).map((p) => '/' + p.join('/'));
const host = fc.tuple(fc.constantFrom('${MODULE_DIR}/', '${MODULE_DIR}/data/', '/nonexistent-osvb/', '', '../', '->', '${OSV_BASE}/', '%(libgcc_s_dir)s/'), fc.array(pathPart, { maxLength: 3 })).map(([pre, p]) => pre + p.join('/'));
const manifestLine = fc.oneof({ weight: 3, arbitrary: fc.tuple(guest, host).map(([g, h]) => `${g}: ${h}`) }, { weight: 1, arbitrary: messy });

interface Outcome {
  ok: number;
  clean: number;
  failures: string[];
}

/** Run one case: fine, or an OsvbError with a code (and a location when `needsLocation`). */
function judge(o: Outcome, what: string, fn: () => unknown, needsLocation = false): void {
  try {
    fn();
    o.ok++;
  } catch (e) {
    if (isOsvbError(e) && /^OSVB_[A-Z_]+$/.test(e.code) && (!needsLocation || (e.location?.file && (e.location.line ?? 0) >= 0))) {
      o.clean++;
      return;
    }
    if (o.failures.length < 5) o.failures.push(`${what}: ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`);
  }
}

function run(scenario: string, arb: fc.Arbitrary<unknown>, check: (v: never, o: Outcome) => void): void {
  const o: Outcome = { ok: 0, clean: 0, failures: [] };
  const started = Date.now();
  fc.assert(
    fc.property(arb, (v) => {
      check(v as never, o);
    }),
    { numRuns: CASES, seed: 424242 },
  );
  recordFigures({ scenario: `fuzz: ${scenario}`, runs: CASES, failures: o.failures.length, note: `${o.ok} accepted, ${o.clean} clean errors, ${Date.now() - started} ms` });
  expect(o.failures).toEqual([]);
}

describe('fuzzing: only clear errors', () => {
  it('manifests (stage A, parse, expansion)', () => {
    const dir = path.join(root, 'manifest');
    writeTree(dir, { 'a/x.txt': 'x', 'a/b/y.txt': 'y', 'link-target': 't' });
    fs.symlinkSync('link-target', path.join(dir, 'l'));
    run('usr.manifest lines', fc.array(manifestLine, { maxLength: 8 }), (lines: string[], o) => {
      judge(
        o,
        JSON.stringify(lines),
        () => {
          const text = stageA({ file: 'usr.manifest', lines, variables: { MODULE_DIR: dir, OSV_BASE: dir }, libgccSDir: '/lib', kind: 'module' });
          const entries = parseManifest(text, 'usr.manifest');
          expandManifestEntries(entries, { cwd: dir, walkOrder: 'sorted', defines: { libgcc_s_dir: '/lib' }, file: 'usr.manifest' });
        },
        true,
      );
    });
  });

  it('config.json and include files', () => {
    const dir = path.join(root, 'config');
    fs.mkdirSync(dir, { recursive: true });
    const value = fc.oneof(messy, fc.integer(), fc.constant(null), fc.boolean(), fc.array(messy, { maxLength: 3 }));
    const entry = fc.oneof(
      fc.record({ type: fc.constantFrom('direct-dir', 'git', 'svn', 'dir', 'bogus'), path: messy }, { requiredKeys: [] }),
      fc.dictionary(messy, value, { maxKeys: 3 }),
      value,
    );
    const doc = fc.oneof(
      fc.record({ modules: fc.dictionary(fc.oneof(messy, fc.constantFrom('repositories', 'include')), entry, { maxKeys: 4 }), default: fc.oneof(fc.array(messy, { maxLength: 3 }), value) }, { requiredKeys: [] }),
      value,
    );
    const text = fc.oneof(doc.map((d) => JSON.stringify(d)), messy, doc.map((d) => JSON.stringify(d).slice(0, -1)));
    run('config.json + include', fc.tuple(text, text, fc.array(messy, { maxLength: 3 })), ([configText, includeText, names]: [string, string, string[]], o) => {
      fs.writeFileSync(path.join(dir, 'config.json'), configText.startsWith('{"modules"') ? configText.replace('{"modules":{', '{"modules":{"include":["inc.json"],') : configText);
      fs.writeFileSync(path.join(dir, 'inc.json'), includeText);
      judge(
        o,
        configText,
        () => {
          const config = loadOsvConfig({ osvBase: dir, buildPath: path.join(dir, 'build'), env: { OSV_BASE: dir } });
          for (const n of names) {
            try {
              config.locate(n);
            } catch (e) {
              if (!isOsvbError(e)) throw e;
            }
          }
        },
        false,
      );
    });
  });

  it('image specs and module names', () => {
    run('image specs', fc.tuple(messy, fc.array(messy, { maxLength: 3 })), ([spec, defaults]: [string, string[]], o) => {
      judge(o, spec, () => parseImageSpec(spec, { imageConfigFor: (n) => (n === 'default' ? '/x/images/default.py' : undefined), defaults }));
    });
  });

  it('NAME=value words', () => {
    const word = fc.oneof(messy, fc.tuple(fc.constantFrom('image', 'modules', 'fs', 'usrskel', 'export', 'export_dir', 'mode', 'arch', 'oci', 'NAME', ''), messy).map(([k, v]) => `${k}=${v}`), fc.constantFrom('-j', '-j4', '-j0', '--append-manifest', '-jx'));
    run('build words', fc.array(word, { maxLength: 6 }), (words: string[], o) => {
      judge(o, JSON.stringify(words), () => parseBuildWords(words));
    });
  });

  it('fuzzed module manifests through the CLI write nothing outside the build path and the cache', async () => {
    const builds = count(200, 25);
    const base = path.join(root, 'cli');
    writeTree(base, {
      'config.json': JSON.stringify({ modules: { repositories: ['${OSV_BASE}/modules'] } }),
      'usr.manifest.skel': '[manifest]\n',
      'usr_rofs.manifest.skel': '[manifest]\n',
      'bootfs.manifest.skel': '[manifest]\n',
      'modules/m/module.py': 'from osv.modules import api\n',
      'modules/m/data/a.txt': 'a\n',
    });
    const before = listFiles(root).filter((f) => !f.startsWith('cli/build/') && !f.startsWith('cli/.osvb/'));
    const samples = fc.sample(fc.array(manifestLine, { maxLength: 6 }), { numRuns: builds, seed: 7 });
    let failures = 0;
    let clean = 0;
    const problems: string[] = [];
    for (const lines of samples) {
      fs.writeFileSync(path.join(base, 'modules/m/usr.manifest'), lines.join('\n'));
      const res = await osvb(['build', 'image=m', 'fs=rofs', 'export=all', '--osv-base', base], { env: { OSVB_NO_MEMO: '1' } });
      const stray = listFiles(root).filter((f) => !f.startsWith('cli/build/') && !f.startsWith('cli/.osvb/') && !before.includes(f) && f !== 'cli/modules/m/usr.manifest');
      const errorOk = res.exitCode === 0 || (res.exitCode === 2 && /^error\[OSVB_[A-Z_]+\]/m.test(res.stderr) && !/\n\s+at /.test(res.stderr));
      if (res.exitCode !== 0) clean++;
      if (!errorOk || stray.length > 0) {
        failures++;
        if (problems.length < 3) problems.push(`${JSON.stringify(lines)} → exit ${res.exitCode}, stray ${stray.join(',')}\n${res.stderr}`);
      }
    }
    recordFigures({ scenario: 'fuzz: manifests through osvb build (writes checked)', runs: builds, failures, note: `${builds - clean} built, ${clean} rejected cleanly` });
    expect(builds - clean).toBeGreaterThan(0);
    expect(problems).toEqual([]);
  }, 600_000);
});
