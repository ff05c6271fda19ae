/**
 * The kernel node against a small OSv-like source tree, with real make and gcc: a top-level
 * Makefile with config (conf/Makefile), stage1 and the link, compiling with -MD into
 * build/$(mode).$(arch) with build/<mode> and build/last links, including conf/*.mk and
 * modules/bsd_zfs/zfs.mk, producing loader.img (objects + a bootfs blob made by a script that
 * writes a .d file, as mkbootfs.py does) and libenviron.so. The Makefile counts its runs
 * (../makes.log, at every parse) and compiles (../compiles.log).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { LocalCache, RemoteCache } from '../cache/index.js';
import type { BuildEvent } from '../report/index.js';
import { useTempDirs } from '../testing/index.js';
import { startRemoteCache, type RemoteCacheServer } from '../../../../test/helpers/remoteCache.js';
import { execFileSync } from 'node:child_process';
import { explainKernel, isOsvSourceTree, kernelMakeWords, runKernelNode, type KernelNodeInput, type KernelNodeResult } from './index.js';
import { parseDepText } from './evidence.js';
import { mentions } from './tree.js';

const T = '\t';

const TREE: Record<string, string> = {
  Makefile: `# A small OSv-like kernel Makefile.
.SUFFIXES:
.SECONDARY:
.DELETE_ON_ERROR:
$(shell echo make >> ../makes.log)
include conf/base.mk
mode=release
ifeq (,$(wildcard conf/$(mode).mk))
    $(error unsupported mode $(mode))
endif
include conf/$(mode).mk
ifndef ARCH
    ARCH := x64
endif
arch := $(ARCH)
out = build/$(mode).$(arch)
outlink = build/$(mode)
outlink2 = build/last
include modules/bsd_zfs/zfs.mk
ifeq (,$(wildcard $(out)/gen/config/kernel_conf.mk))
    $(shell make -f conf/Makefile config 1>/dev/null)
endif
include $(out)/gen/config/kernel_conf.mk

CC = gcc
CXX = g++
COMMON = -O1 -Iinclude -isystem $(out)/gen/include -DZFS_LEVEL=$(zfs_level) -DCONF_LEVEL=$(conf_level) $(conf_opt) -MD -MT $@ -MP
objects = loader.o core/a.o core/b.o arch/x64/boot.o
-include $(KERNEL_EXTRA_MK)

all: $(out)/loader.img $(out)/libenviron.so $(out)/tools/mount/mount-fs.so links
.PHONY: all

stage1: $(objects:%=$(out)/%) links
.PHONY: stage1

links:
${T}@ln -nsf $(notdir $(out)) $(outlink)
${T}@ln -nsf $(notdir $(out)) $(outlink2)
.PHONY: links

include $(shell test -d $(out) && find $(out) -name '*.d')

$(out)/%.o: %.c
${T}@mkdir -p $(dir $@)
${T}@echo cc >> ../compiles.log
${T}@echo "  CC $<"
${T}@$(CC) $(COMMON) -c -o $@ $<

$(out)/%.o: %.cc
${T}@mkdir -p $(dir $@)
${T}@echo cc >> ../compiles.log
${T}@echo "  CXX $<"
${T}@$(CXX) $(COMMON) -c -o $@ $<

$(out)/libenviron.so: libc/environ.c
${T}@mkdir -p $(dir $@)
${T}@echo cc >> ../compiles.log
${T}@echo "  CC libenviron.so"
${T}@$(CC) $(COMMON) -fPIC -shared -o $@ $<

$(out)/tools/mount/mount-fs.so: tools/mount/mount.c
${T}@mkdir -p $(dir $@)
${T}@echo cc >> ../compiles.log
${T}@$(CC) $(COMMON) -fPIC -shared -o $@ $<

$(out)/loader.elf: $(objects:%=$(out)/%) arch/x64/loader.ld
${T}@echo "  LINK loader.elf"
${T}@ld -r -T arch/x64/loader.ld -o $@ $(objects:%=$(out)/%)

$(out)/loader-stripped.elf: $(out)/loader.elf
${T}@objcopy --strip-debug $< $@

bootfs_manifest ?= bootfs.manifest.skel
bootfs_manifest_dep = $(out)/bootfs_manifest.last
.PHONY: phony
$(bootfs_manifest_dep): phony
${T}@if [ '$(shell cat $(bootfs_manifest_dep) 2>&1)' != '$(bootfs_manifest)' ]; then echo -n $(bootfs_manifest) > $(bootfs_manifest_dep); fi

$(out)/bootfs.bin: scripts/mkbootfs.sh $(bootfs_manifest) $(bootfs_manifest_dep) $(out)/libenviron.so
${T}@echo "  MKBOOTFS $@"
${T}@sh scripts/mkbootfs.sh $(bootfs_manifest) $(out)

$(out)/loader.img: $(out)/loader-stripped.elf $(out)/bootfs.bin
${T}@cat $^ > $@
${T}@if [ -f ../edit-during-build ]; then echo '/* edited during the build */' >> core/b.c; rm ../edit-during-build; fi
`,
  'conf/Makefile': `$(shell echo make >> ../makes.log)
mode=release
ifndef ARCH
    ARCH := x64
endif
arch := $(ARCH)
out = build/$(mode).$(arch)
config: $(out)/gen/config/kernel_conf.mk $(out)/gen/include/osv/kcfg.h
.PHONY: config
$(out)/.config: conf/base.mk conf/$(mode).mk
${T}@mkdir -p $(out)
${T}@grep '^conf_' conf/base.mk > $@
$(out)/gen/config/kernel_conf.mk: $(out)/.config
${T}@mkdir -p $(dir $@)
${T}@cp $< $@
$(out)/gen/include/osv/kcfg.h: $(out)/.config
${T}@mkdir -p $(dir $@)
${T}@sed 's/^conf_\\([a-z_]*\\)=\\(.*\\)/#define CONF_\\1 \\2/' $< > $@
`,
  'conf/base.mk': 'conf_level=1\nconf_tracing=0\n',
  'conf/release.mk': 'conf_opt = -DNDEBUG\n',
  'modules/bsd_zfs/zfs.mk': 'zfs_level = 1\n',
  'loader.cc': '#include <osv/kcfg.h>\nextern "C" int core_a(void);\nextern "C" int loader_main(void) { return core_a() + CONF_level; }\n',
  'core/a.c': '#include <string.h>\n#include "osv/util.h"\n#define S(x) #x\n#define STR(x) S(x)\nconst char zfs_tag[] = "zfs-level-" STR(ZFS_LEVEL);\n#ifdef EXTRA_LEVEL\nconst char extra_tag[] = "extra-level-" STR(EXTRA_LEVEL);\n#endif\nint core_a(void) { return UTIL_VALUE + (int)strlen(zfs_tag); }\n',
  'core/b.c': '#include "osv/util.h"\nint core_b(void) { return UTIL_VALUE * 2; }\n',
  'include/osv/util.h': '#define UTIL_VALUE 7\n',
  'arch/x64/boot.c': 'int boot_entry(void) { return 1; }\n',
  'arch/x64/loader.ld': 'SECTIONS { .text : { *(.text*) } .data : { *(.data*) *(.rodata*) } }\n',
  'libc/environ.c': 'char *env_value = "environ-1";\n',
  'tools/mount/mount.c': 'int mount_fs(void) { return 0; }\n',
  'scripts/mkbootfs.sh': `# usage: mkbootfs.sh MANIFEST OUTDIR — concatenate the manifest's host files (relative to OUTDIR)
m="$1"; out="$2"; olddir=$(pwd)
cd "$out" || exit 1
: > bootfs.bin
printf 'bootfs.bin: \\\\\\n' > bootfs.bin.d
sed -e '/^\\[manifest\\]/d' -e 's/^[^:]*: *//' "$olddir/$m" | while read -r host; do
  [ -n "$host" ] || continue
  cat "$host" >> bootfs.bin
  printf '\\t%s \\\\\\n' "$host" >> bootfs.bin.d
done
printf '\\n\\n' >> bootfs.bin.d
`,
  'bootfs.manifest.skel': '[manifest]\n/libenviron.so: libenviron.so\n',
  'bootfs_empty.manifest.skel': '[manifest]\n',
  'README.md': '# a synthetic OSv-like tree\n',
  'config.json': JSON.stringify({ modules: { repositories: ['${OSV_BASE}/apps', '${OSV_BASE}/modules'] }, default: ['hello'] }, null, 2),
  'apps/hello/Makefile': `module: hello.so\nhello.so: hello.c\n${T}gcc -shared -fPIC -o $@ $<\n`,
  'apps/hello/hello.c': 'int main(void) { return 0; }\n',
  'apps/hello/usr.manifest': '/hello.so: ${MODULE_DIR}/hello.so\n',
  'apps/hello/data.txt': 'hello data 1\n',
  'modules/libgreet/Makefile': `module: libgreet.so\nlibgreet.so: greet.c\n${T}gcc -shared -fPIC -o $@ $<\n`,
  'modules/libgreet/greet.c': 'int greet(void) { return 1; }\n',
};

const tmp = useTempDirs('osvb-kernel-', 'all');
const servers: RemoteCacheServer[] = [];
afterAll(async () => {
  for (const s of servers) await s.stop();
});

interface Checkout {
  root: string;
  base: string;
}

function checkout(root = tmp()): Checkout {
  const base = path.join(root, 'osv');
  for (const [rel, text] of Object.entries(TREE)) {
    const p = path.join(base, rel);
    fs.mkdirSync(path.dirname(p), { recursive: true });
    fs.writeFileSync(p, text);
  }
  return { root, base };
}

function lines(file: string): number {
  return fs.existsSync(file) ? fs.readFileSync(file, 'utf8').split('\n').filter(Boolean).length : 0;
}

const ENV: Record<string, string> = Object.fromEntries(Object.entries(process.env).filter((e): e is [string, string] => typeof e[1] === 'string'));

interface Run {
  res: KernelNodeResult;
  makes: number;
  compiles: number;
  events: BuildEvent[];
}

/** Files' mtimes are kept > 2 s in the past so stat fingerprints are trusted (as they are after a real edit). */
function age(dir: string, seconds = 30): void {
  const t = new Date(Date.now() - seconds * 1000);
  const walk = (d: string): void => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      if (!e.isSymbolicLink()) fs.utimesSync(p, t, t);
    }
    fs.utimesSync(d, t, t);
  };
  walk(dir);
}

/** Edit a file as a user would: new content, an mtime now (newer than any build). */
function edit(c: Checkout, rel: string, text: string): void {
  fs.writeFileSync(path.join(c.base, rel), text);
}

let lastEnd = 0;

async function run(c: Checkout, cacheDir: string, extra: Partial<KernelNodeInput> = {}): Promise<Run> {
  // Outputs younger than 2 s are not trusted by their stats (as in every osvb stat check); a
  // real next build comes later than that.
  const wait = lastEnd + 2100 - Date.now();
  if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  const makesBefore = lines(path.join(c.root, 'makes.log'));
  const compilesBefore = lines(path.join(c.root, 'compiles.log'));
  const events: BuildEvent[] = [];
  const res = await runKernelNode({
    osvBase: c.base,
    makeWords: ['mode=release'],
    fs: 'rofs',
    bootfsManifest: 'bootfs.manifest.skel',
    env: ENV,
    cache: new LocalCache(cacheDir),
    reporter: (e) => events.push(e),
    jobs: '2',
    moduleDirs: [path.join(c.base, 'modules/libgreet')],
    ...extra,
  });
  await res.uploads;
  lastEnd = Date.now();
  return { res, makes: lines(path.join(c.root, 'makes.log')) - makesBefore, compiles: lines(path.join(c.root, 'compiles.log')) - compilesBefore, events };
}

function explain(c: Checkout, cacheDir: string): ReturnType<typeof explainKernel> {
  return explainKernel({ osvBase: c.base, makeWords: ['mode=release'], fs: 'rofs', bootfsManifest: 'bootfs.manifest.skel', env: ENV, cache: new LocalCache(cacheDir), moduleDirs: [path.join(c.base, 'modules/libgreet')] });
}

function loader(c: Checkout): Buffer {
  return fs.readFileSync(path.join(c.base, 'build/release/loader.img'));
}

describe('isOsvSourceTree and the make words', () => {
  it('recognises a kernel source tree, not a tree of modules', () => {
    const c = checkout();
    expect(isOsvSourceTree(c.base)).toBe(true);
    fs.rmSync(path.join(c.base, 'loader.cc'));
    expect(isOsvSourceTree(c.base)).toBe(false);
    expect(isOsvSourceTree(path.join(c.base, 'apps'))).toBe(false);
  });

  it('passes make what scripts/build passes it', () => {
    expect(kernelMakeWords(['image=hello', 'fs=rofs', 'mode=debug', '-j4', 'conf_preempt=0', 'check', '--create-disk', 'usrskel=x', 'modules=a', '-j', '3', 'export=all', 'oci=/tmp/o'])).toEqual([
      'mode=debug',
      '-j4',
      'conf_preempt=0',
      '-j',
      '3',
      'export=all',
    ]);
  });

  it('parses dependency files and names directories in makefile text', () => {
    const d = parseDepText('build/x/a.o: a.c include/a\\ b.h \\\n /usr/include/stdio.h\ninclude/a\\ b.h:\n');
    expect(d.targets).toEqual(['build/x/a.o', 'include/a b.h']);
    expect(d.prereqs).toEqual(['a.c', 'include/a b.h', '/usr/include/stdio.h']);
    expect(mentions('bootfs_dep += $(out)/modules/libext/libext.so', 'modules/libext')).toBe(true);
    expect(mentions('modules/libext2/x', 'modules/libext')).toBe(false);
    expect(mentions('include apps/*/x.mk', 'apps/hello')).toBe(true);
  });
});

describe('the kernel node: build directory, toolchain, foreign objects, edits during make', () => {
  // Each test its own cache: their trees are the same, and a restore would not exercise make.
  let cacheDir = '';
  beforeEach(() => {
    cacheDir = path.join(tmp(), 'cache');
  });

  it('merges a real build/<mode> directory (the engine made it early) into the out dir and links it', async () => {
    const c = checkout();
    fs.mkdirSync(path.join(c.base, 'build/release'), { recursive: true });
    fs.writeFileSync(path.join(c.base, 'build/release/usr.manifest'), '[manifest]\n');
    age(c.base);
    const r = await run(c, cacheDir);
    expect(r.res.status).toBe('built');
    expect(fs.lstatSync(path.join(c.base, 'build/release')).isSymbolicLink()).toBe(true);
    expect(fs.readFileSync(path.join(c.base, 'build/release.x64/usr.manifest'), 'utf8')).toBe('[manifest]\n');
    expect(r.res.outputs).not.toContain('usr.manifest');
  });

  it('copies loader.img and the skeleton files into a build path elsewhere', async () => {
    const c = checkout();
    age(c.base);
    const elsewhere = path.join(c.root, 'out');
    const r = await run(c, cacheDir, { buildPath: elsewhere });
    expect(r.res.loaderImg).toBe(path.join(elsewhere, 'loader.img'));
    expect(fs.readFileSync(path.join(elsewhere, 'loader.img')).equals(fs.readFileSync(path.join(c.base, 'build/release.x64/loader.img')))).toBe(true);
    expect(fs.existsSync(path.join(elsewhere, 'libenviron.so'))).toBe(true);
  });

  it('a different compiler (a wrapper first on PATH) is a different key and a full rebuild', async () => {
    const c = checkout();
    age(c.base);
    const first = await run(c, cacheDir);
    expect(first.res.status).not.toBe('up-to-date');
    const bin = path.join(c.root, 'bin');
    fs.mkdirSync(bin);
    const real = execFileSync('sh', ['-c', 'command -v gcc'], { encoding: 'utf8' }).trim();
    fs.writeFileSync(path.join(bin, 'gcc'), `#!/bin/sh\nexec '${real}' "$@"\n`, { mode: 0o755 });
    const env = { ...ENV, PATH: `${bin}:${ENV['PATH'] ?? ''}` };
    const ex = await explainKernel({ osvBase: c.base, makeWords: ['mode=release'], fs: 'rofs', bootfsManifest: 'bootfs.manifest.skel', env, cache: new LocalCache(cacheDir), moduleDirs: [path.join(c.base, 'modules/libgreet')] });
    expect(ex.verdict).toBe('rebuild');
    expect(ex.reasons).toContain('toolchain changed: gcc');
    const r = await run(c, cacheDir, { env });
    expect(r.res.status).toBe('built');
    expect(r.res.build?.kind).toBe('full');
    expect(r.res.key).not.toBe(first.res.key);
  });

  it('objects rebuilt by hand with other settings since the last kernel make: make -B', async () => {
    const c = checkout();
    age(c.base);
    await run(c, cacheDir);
    fs.writeFileSync(path.join(c.base, 'core/b.c'), TREE['core/b.c'] + '/* touched */\n');
    execFileSync('make', ['mode=release', 'conf_opt=-DBY_HAND=1', 'stage1'], { cwd: c.base, stdio: 'ignore' });
    fs.writeFileSync(path.join(c.base, 'core/a.c'), TREE['core/a.c'] + '/* edited */\n');
    const r = await run(c, cacheDir);
    expect(r.res.status).toBe('built');
    expect(r.res.build?.kind).toBe('full');
    expect(r.res.build?.reason).toMatch(/changed outside osvb/);
  });

  it('a tree with .osvb-path-sensitive keys its absolute path: another checkout does not share the kernel', async () => {
    const x = checkout();
    const y = checkout();
    for (const c of [x, y]) {
      fs.writeFileSync(path.join(c.base, '.osvb-path-sensitive'), '');
      age(c.base);
    }
    expect((await run(x, cacheDir)).res.status).toBe('built');
    const r = await run(y, cacheDir);
    expect(r.res.status).toBe('built');
    expect((await explain(y, cacheDir)).verdict).toBe('up-to-date');
  });

  it('a makefile read from outside the tree (MAKEFILE_LIST) is an input: editing it rebuilds with make -B', async () => {
    const c = checkout();
    age(c.base);
    const mk = path.join(c.root, 'extra.mk');
    fs.writeFileSync(mk, 'COMMON += -DEXTRA_LEVEL=3\n');
    const env = { ...ENV, KERNEL_EXTRA_MK: mk };
    const first = await run(c, cacheDir, { env });
    expect(first.res.status).toBe('built');
    expect(loader(c).includes(Buffer.from('extra-level-3'))).toBe(true);
    expect((await run(c, cacheDir, { env })).res.status).toBe('up-to-date');
    fs.writeFileSync(mk, 'COMMON += -DEXTRA_LEVEL=4\n');
    const r = await run(c, cacheDir, { env });
    expect(r.res.status).toBe('built');
    expect(r.res.build?.kind).toBe('full');
    expect(r.res.build?.reason).toContain(mk);
    expect(loader(c).includes(Buffer.from('extra-level-4'))).toBe(true);
  });

  it('a source edited while make runs: the result is not cached, and the next build runs make', async () => {
    const c = checkout();
    age(c.base);
    fs.writeFileSync(path.join(c.root, 'edit-during-build'), '');
    const r = await run(c, cacheDir);
    expect(r.res.status).toBe('built');
    expect(r.res.cached).toBe(false);
    expect(r.events.some((e) => e.type === 'warning' && /core\/b\.c changed while make ran/.test(e.text))).toBe(true);
    const next = await run(c, cacheDir);
    expect(next.res.status).toBe('built');
    expect(next.res.cached).toBe(true);
    expect(next.compiles).toBe(1);
    const again = await run(c, cacheDir);
    expect(again.res.status).toBe('up-to-date');
  });
});

describe('the kernel node (real make and gcc)', () => {
  const cacheDir = path.join(tmp(), 'cache');
  const a = checkout();
  age(a.base);
  let first: Run;

  it('builds first, with loader.img at the build path (build/release → release.x64)', async () => {
    first = await run(a, cacheDir);
    expect(first.res.status).toBe('built');
    expect(first.res.build?.kind).toBe('fresh');
    expect(first.compiles).toBe(6);
    expect(fs.readlinkSync(path.join(a.base, 'build/release'))).toBe('release.x64');
    expect(fs.readlinkSync(path.join(a.base, 'build/last'))).toBe('release.x64');
    expect(first.res.loaderImg).toBe(path.join(a.base, 'build/release/loader.img'));
    expect(loader(a).includes(Buffer.from('zfs-level-1'))).toBe(true);
    expect(first.res.outputs).toEqual(expect.arrayContaining(['loader.img', 'loader.elf', 'loader-stripped.elf', 'libenviron.so', 'tools/mount/mount-fs.so', 'gen/include/osv/kcfg.h', '.config']));
    expect(first.res.outputs.some((o) => o.endsWith('.o') || o.endsWith('.d'))).toBe(false);
    const stages = first.events.filter((e) => e.type === 'log' && /^kernel: (config|stage1|link) done/.test(e.text));
    expect(stages).toHaveLength(3);
    expect(first.events.some((e) => e.type === 'module-built' && e.name === 'kernel')).toBe(true);
  });

  it('is up to date the second time: make does not run', async () => {
    const r = await run(a, cacheDir);
    expect(r.res.status).toBe('up-to-date');
    expect(r.res.key).toBe(first.res.key);
    expect(r.makes).toBe(0);
    expect((await explain(a, cacheDir)).verdict).toBe('up-to-date');
  });

  it('rebuilds incrementally for a kernel source, and a header', async () => {
    edit(a, 'core/a.c', TREE['core/a.c'] + 'int core_a2(void) { return 2; }\n');
    const ex = await explain(a, cacheDir);
    expect(ex.verdict).toBe('rebuild');
    expect(ex.reasons).toContain('input file changed: core/a.c');
    expect(ex.build?.kind).toBe('incremental');
    const r = await run(a, cacheDir);
    expect(r.res.status).toBe('built');
    expect(r.res.build?.kind).toBe('incremental');
    expect(r.compiles).toBe(1);
    expect(r.res.key).not.toBe(first.res.key);

    edit(a, 'include/osv/util.h', '#define UTIL_VALUE 8\n');
    const h = await run(a, cacheDir);
    expect(h.res.status).toBe('built');
    expect(h.res.build?.kind).toBe('incremental');
    expect(h.compiles).toBe(2); // core/a.c and core/b.c include it
  });

  it('rebuilds with make -B for a file the Makefile includes (make itself would miss it)', async () => {
    edit(a, 'modules/bsd_zfs/zfs.mk', 'zfs_level = 2\n');
    const r = await run(a, cacheDir);
    expect(r.res.status).toBe('built');
    expect(r.res.build?.kind).toBe('full');
    expect(r.res.build?.reason).toMatch(/modules\/bsd_zfs\/zfs\.mk/);
    expect(loader(a).includes(Buffer.from('zfs-level-2'))).toBe(true);
    expect(r.compiles).toBe(6);
  });

  it('does not rebuild for an app or an image module; runs make without compiling for a file nothing refers to', async () => {
    edit(a, 'apps/hello/hello.c', 'int main(void) { return 1; }\n');
    fs.writeFileSync(path.join(a.base, 'apps/hello/new.c'), 'int x;\n');
    edit(a, 'modules/libgreet/greet.c', 'int greet(void) { return 2; }\n');
    const r = await run(a, cacheDir);
    expect(r.res.status).toBe('up-to-date');
    expect(r.makes).toBe(0);

    // A module joining the image (its directory leaves the static set) or leaving it: the key
    // changes with the set, but make's objects are still good.
    const joined = await run(a, cacheDir, { moduleDirs: [] });
    expect(joined.res.status).toBe('built');
    expect(joined.res.build?.kind).toBe('incremental');
    expect(joined.compiles).toBe(0);
    const left = await run(a, cacheDir);
    expect(left.res.status).toBe('restored');

    const before = loader(a);
    edit(a, 'README.md', '# changed\n');
    const d = await run(a, cacheDir);
    expect(d.res.status).toBe('built');
    expect(d.res.build?.kind).toBe('incremental');
    expect(d.compiles).toBe(0);
    expect(loader(a).equals(before)).toBe(true);
  });

  it('a second checkout at another path with the same cache restores: no make, no compiler, identical bytes', async () => {
    const b = checkout();
    for (const [rel, text] of [
      ['core/a.c', TREE['core/a.c'] + 'int core_a2(void) { return 2; }\n'],
      ['include/osv/util.h', '#define UTIL_VALUE 8\n'],
      ['modules/bsd_zfs/zfs.mk', 'zfs_level = 2\n'],
      ['README.md', '# changed\n'],
    ] as const) fs.writeFileSync(path.join(b.base, rel), text);
    age(b.base);
    expect(b.base).not.toBe(a.base);
    const ex = await explain(b, cacheDir);
    expect(ex.verdict, ex.reasons.join('\n')).toBe('restore');
    const r = await run(b, cacheDir);
    expect(r.res.status).toBe('restored');
    expect(r.makes).toBe(0);
    expect(r.compiles).toBe(0);
    expect(loader(b).equals(loader(a))).toBe(true);
    expect(fs.readFileSync(path.join(b.base, 'build/release/libenviron.so')).equals(fs.readFileSync(path.join(a.base, 'build/release/libenviron.so')))).toBe(true);
    expect(fs.readlinkSync(path.join(b.base, 'build/last'))).toBe('release.x64');
    // And then it is up to date there.
    const again = await run(b, cacheDir);
    expect(again.res.status).toBe('up-to-date');
    // Editing a source after a restore builds everything (no objects there), correctly.
    edit(b, 'core/b.c', TREE['core/b.c'] + 'int core_b2(void) { return 3; }\n');
    const built = await run(b, cacheDir);
    expect(built.res.status).toBe('built');
    expect(built.res.build?.kind).toBe('fresh');
    expect(built.compiles).toBe(6);
  });

  it('a corrupt cache blob is detected: the kernel is built and the blob replaced', async () => {
    const c = checkout();
    for (const [rel, text] of [
      ['core/a.c', TREE['core/a.c'] + 'int core_a2(void) { return 2; }\n'],
      ['include/osv/util.h', '#define UTIL_VALUE 8\n'],
      ['modules/bsd_zfs/zfs.mk', 'zfs_level = 2\n'],
      ['README.md', '# changed\n'],
    ] as const) fs.writeFileSync(path.join(c.base, rel), text);
    age(c.base);
    const img = loader(a);
    const cache = new LocalCache(cacheDir);
    const { digestBytes, initHashing } = await import('../hash/index.js');
    await initHashing();
    const d = digestBytes(img);
    const blob = path.join(cacheDir, 'cas', d.slice(0, 2), d);
    expect(fs.existsSync(blob)).toBe(true);
    fs.chmodSync(blob, 0o644);
    const bad = Buffer.from(img);
    bad[100] = (bad[100] as number) ^ 0xff;
    fs.writeFileSync(blob, bad);
    const r = await run(c, cacheDir);
    expect(r.events.some((e) => e.type === 'warning' && /corrupt/.test(e.text))).toBe(true);
    expect(r.res.status).toBe('built');
    expect(r.compiles).toBe(6);
    expect(loader(c).equals(img)).toBe(true);
    expect(cache.readBlob(d)?.equals(img)).toBe(true);
  });

  it('ramfs: the generated bootfs manifest and the app files it maps are inputs; other app files are not', async () => {
    const r0 = await run(a, cacheDir, ramfs('1'));
    expect(r0.res.status).toBe('built');
    expect(loader(a).includes(Buffer.from('hello data 1'))).toBe(true);
    const up = await run(a, cacheDir, ramfs('1'));
    expect(up.res.status).toBe('up-to-date');
    edit(a, 'apps/hello/hello.c', 'int main(void) { return 3; }\n');
    expect((await run(a, cacheDir, ramfs('1'))).res.status).toBe('up-to-date');
    edit(a, 'apps/hello/data.txt', 'hello data 2\n');
    const r = await run(a, cacheDir, ramfs('1'));
    expect(r.res.status).toBe('built');
    expect(r.res.build?.kind).toBe('incremental');
    expect(r.compiles).toBe(0);
    expect(loader(a).includes(Buffer.from('hello data 2'))).toBe(true);
    // A different generated manifest is a different kernel.
    const m = await run(a, cacheDir, ramfs('2'));
    expect(m.res.status).toBe('built');
    expect(m.res.key).not.toBe(r.res.key);
    // Back to the first manifest: restored from the cache.
    const back = await run(a, cacheDir, ramfs('1'));
    expect(back.res.status).toBe('restored');
    expect(back.makes).toBe(0);
  });

  function ramfs(tag: string): Partial<KernelNodeInput> {
    return {
      fs: 'ramfs',
      bootfsManifest: 'build/release.x64/usr.manifest',
      bootfsManifestText: `[manifest]\n/libenviron.so: libenviron.so\n/data.txt: ../../apps/hello/data.txt\n# ${tag}\n`,
    };
  }

  it('a changed make word rebuilds with make -B', async () => {
    const r = await run(a, cacheDir, { makeWords: ['mode=release', 'conf_opt=-DEXTRA=1'] });
    expect(r.res.status).toBe('built');
    expect(r.res.build?.kind).toBe('full');
    const back = await run(a, cacheDir);
    expect(back.res.status).toBe('restored');
  });

  it('a fresh local cache and a warm remote cache restore the kernel', async () => {
    const server = await startRemoteCache();
    servers.push(server);
    const warn: string[] = [];
    const remote = (): RemoteCache => new RemoteCache({ url: server.url, token: server.token, mode: 'read-write' }, (t) => warn.push(t));
    const cacheA = path.join(tmp(), 'cache-a');
    const cacheB = path.join(tmp(), 'cache-b');
    const x = checkout();
    age(x.base);
    const built = await run(x, cacheA, { remote: remote() });
    expect(built.res.status).toBe('built');
    expect(server.files().some((f) => f.includes('osvb-ac-kernel-'))).toBe(true);
    const y = checkout();
    age(y.base);
    const r = await run(y, cacheB, { remote: remote() });
    expect(warn).toEqual([]);
    expect(r.res.status).toBe('restored');
    expect(r.res.fromRemote).toBe(true);
    expect(r.makes).toBe(0);
    expect(r.compiles).toBe(0);
    expect(loader(y).equals(loader(x))).toBe(true);
  });
});
