/**
 * The toolchain's identity for the kernel key: what OSv's Makefile compiles, links and strips
 * with, by content.
 *
 * - Programs the Makefile and its recipes run, found on PATH as make would find them
 *   (`$(CROSS_PREFIX)gcc`, `g++`, `ld.bfd`, `strip`, `objcopy`, plain `g++` (HOST_CXX),
 *   `objcopy`, `readelf`, `c++filt`, `python3`, `make`), and the compiler's own parts
 *   (`cc1`, `cc1plus`, `as`, `collect2`, `lto-wrapper` from `-print-prog-name`): each by the
 *   digest of its file (links resolved). The compilers also by resolved path and `-dumpfullversion
 *   -dumpmachine`, binutils by `--version`.
 * - Libraries the link takes by name from the compiler's search path, as the Makefile asks for
 *   them (`-print-file-name=libstdc++.a`, `libgcc.a`, `libgcc_eh.a`, `libstdc++.so`,
 *   `libgcc_s.so.1`, `libboost_system{,-mt}.{a,so}`): by content.
 * - Host packages whose files the make reads without a record (see dpkgVersions): by version.
 * - Headers (the C and C++ library's, Boost's, every other one): not here. The compiler lists
 *   every header it read in the `.d` files the kernel make writes; those outside the tree enter
 *   the key as recorded inputs by content (see key.ts). That is exact where a package identity
 *   (`dpkg-query -W 'libboost*-dev'`) is not: it also sees a header replaced by hand, works off
 *   Debian, and does not change when an unused package is upgraded.
 *
 * Running the compiler costs tens of milliseconds, so what it said is remembered in the cache
 * directory against the stat of the programs it was asked about; a no-op build stats files.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { childProcess, findOnPath, writeFileAtomic } from '../fsutil/index.js';
import type { StatCache } from '../hash/index.js';

export interface ToolchainProbe {
  /** Stat signature of the probed compilers and PATH: the probe holds while they are equal. */
  id: string;
  /** name → absolute, links resolved (programs and libraries that exist). */
  files: Record<string, string>;
  /** Version strings (`gcc: 12.2.0 x86_64-linux-gnu`, `ld.bfd: GNU ld … 2.40`). */
  versions: Record<string, string>;
}

export interface ToolchainIdentity {
  /** Sorted plain data for the key: name → `digest` (compilers: `path digest`), versions. */
  identity: Record<string, string>;
  /** Absolute files the identity was computed from (their stats fingerprint it). */
  files: string[];
}

const PROBE_VERSION = 3;

function run(cmd: string, args: string[], env: Record<string, string>): string | undefined {
  try {
    return childProcess().execFileSync(cmd, args, { encoding: 'utf8', env, stdio: ['ignore', 'pipe', 'ignore'], timeout: 20_000 }).trim();
  } catch {
    return undefined;
  }
}

function real(p: string | undefined): string | undefined {
  if (!p || !path.isAbsolute(p)) return undefined;
  try {
    const r = fs.realpathSync(p);
    return fs.statSync(r).isFile() ? r : undefined;
  } catch {
    return undefined;
  }
}

function statId(p: string | undefined): string {
  if (!p) return '-';
  const st = fs.statSync(p, { throwIfNoEntry: false });
  return st ? `${p}:${st.size}:${st.mtimeMs}:${st.ino}` : `${p}:-`;
}

/** The program names the kernel make runs, for a CROSS_PREFIX. */
function programs(crossPrefix: string): Record<string, string> {
  return {
    gcc: `${crossPrefix}gcc`,
    'g++': `${crossPrefix}g++`,
    'host-g++': 'g++',
    'ld.bfd': `${crossPrefix}ld.bfd`,
    strip: `${crossPrefix}strip`,
    objcopy: `${crossPrefix}objcopy`,
    'host-objcopy': 'objcopy',
    readelf: 'readelf',
    'c++filt': 'c++filt',
    python3: 'python3',
    make: 'make',
    // kbuild (OSv's config step) generates its parser with them.
    bison: 'bison',
    flex: 'flex',
  };
}

function probeId(env: Record<string, string>, crossPrefix: string): string {
  const pathVar = env['PATH'];
  const progs = programs(crossPrefix);
  return [PROBE_VERSION, pathVar ?? '', crossPrefix, statId(findOnPath(progs.gcc as string, pathVar)), statId(findOnPath(progs['g++'] as string, pathVar)), statId(DPKG_STATUS)].join('\n');
}

export function probeToolchain(env: Record<string, string>, crossPrefix: string): ToolchainProbe {
  const pathVar = env['PATH'];
  const files: Record<string, string> = {};
  const versions: Record<string, string> = {};
  for (const [name, prog] of Object.entries(programs(crossPrefix))) {
    const f = real(findOnPath(prog, pathVar));
    if (f) files[name] = f;
  }
  const gcc = files['gcc'];
  const gxx = files['g++'];
  // -print-prog-name answers a bare name for a program the driver runs from PATH (as, ld).
  const prog = (printed: string | undefined): string | undefined => real(printed && !printed.includes('/') ? findOnPath(printed, pathVar) : printed);
  if (gcc) {
    for (const p of ['cc1', 'as', 'collect2', 'lto-wrapper', 'ld']) {
      const f = prog(run(gcc, [`-print-prog-name=${p}`], env));
      if (f) files[`gcc/${p}`] = f;
    }
    const v = [run(gcc, ['-dumpfullversion'], env), run(gcc, ['-dumpmachine'], env)].filter(Boolean).join(' ');
    if (v) versions['gcc'] = v;
    const libgcc = real(run(gcc, ['-print-libgcc-file-name'], env));
    if (libgcc) files['lib/libgcc.a'] = libgcc;
    for (const lib of ['libgcc_eh.a', 'libgcc_s.so.1', 'libboost_system.a', 'libboost_system-mt.a', 'libboost_system.so', 'libboost_system-mt.so', 'crtbeginS.o', 'crtendS.o', 'Scrt1.o', 'crti.o', 'crtn.o', 'libc.so.6', 'libc.so', 'libc_nonshared.a', 'libm.so.6']) {
      const f = real(run(gcc, [`-print-file-name=${lib}`], env));
      if (f) files[`lib/${lib}`] = f;
    }
  }
  if (gxx) {
    const f = prog(run(gxx, ['-print-prog-name=cc1plus'], env));
    if (f) files['g++/cc1plus'] = f;
    const v = [run(gxx, ['-dumpfullversion'], env), run(gxx, ['-dumpmachine'], env)].filter(Boolean).join(' ');
    if (v) versions['g++'] = v;
    for (const lib of ['libstdc++.a', 'libstdc++.so']) {
      const l = real(run(gxx, [`-print-file-name=${lib}`], env));
      if (l) files[`lib/${lib}`] = l;
    }
  }
  for (const tool of ['ld.bfd', 'strip', 'objcopy', 'python3', 'make', 'bison', 'flex']) {
    const f = files[tool];
    const v = f ? run(f, ['--version'], env) : undefined;
    if (v) versions[tool] = v.split('\n')[0] as string;
  }
  Object.assign(versions, dpkgVersions());
  return { id: probeId(env, crossPrefix), files, versions };
}

const DPKG_STATUS = '/var/lib/dpkg/status';
/**
 * A backstop for what the kernel make reads without a `.d` record: helper programs compiled and
 * run on the host (gen-ctype-data prints the host C library's ctype tables; kbuild's conf;
 * the compiler-flag probes) read the C library's and kernel's headers and run against the C
 * library. On a Debian-like system the versions of those packages count.
 */
const DPKG_PACKAGES = /^(libc6|libc6-dev|linux-libc-dev|libstdc\+\+-[0-9]+-dev|libgcc-[0-9]+-dev)$/;

export function dpkgVersions(statusFile = DPKG_STATUS): Record<string, string> {
  let text: string;
  try {
    text = fs.readFileSync(statusFile, 'utf8');
  } catch {
    return {};
  }
  const out: Record<string, string> = {};
  for (const stanza of text.split(/\n\n+/)) {
    const name = /^Package: (.+)$/m.exec(stanza)?.[1];
    if (!name || !DPKG_PACKAGES.test(name)) continue;
    if (!/^Status: .* installed$/m.test(stanza)) continue;
    const arch = /^Architecture: (.+)$/m.exec(stanza)?.[1] ?? '';
    const version = /^Version: (.+)$/m.exec(stanza)?.[1] ?? '';
    out[`dpkg:${name}:${arch}`] = version;
  }
  return out;
}

/** The probe, from `cacheFile` while the compilers and PATH are as they were. */
export function probeToolchainCached(env: Record<string, string>, crossPrefix: string, cacheFile: string): ToolchainProbe {
  const id = probeId(env, crossPrefix);
  try {
    const c = JSON.parse(fs.readFileSync(cacheFile, 'utf8')) as ToolchainProbe;
    if (c.id === id && c.files && c.versions) return c;
  } catch {
    /* not probed yet */
  }
  const p = probeToolchain(env, crossPrefix);
  try {
    fs.mkdirSync(path.dirname(cacheFile), { recursive: true });
    writeFileAtomic(cacheFile, JSON.stringify(p));
  } catch {
    /* a read-only cache: probed again next time */
  }
  return p;
}

/** The identity: every probed file by digest (stat cache), compilers by path too, plus versions. */
export function toolchainIdentity(probe: ToolchainProbe, statCache: StatCache): ToolchainIdentity {
  const identity: Record<string, string> = {};
  const files: string[] = [];
  for (const name of Object.keys(probe.files).sort()) {
    const f = probe.files[name] as string;
    let d: string;
    try {
      d = statCache.digest(f);
    } catch {
      d = 'missing';
    }
    files.push(f);
    identity[name] = name === 'gcc' || name === 'g++' || name === 'host-g++' ? `${f} ${d}` : d;
  }
  for (const [name, v] of Object.entries(probe.versions)) identity[`version:${name}`] = v;
  return { identity, files };
}
