/**
 * `osvb build` in an OSv source tree: the kernel make is a node of the build (run as
 * scripts/build runs it, before the modules), usr.img is written from its loader.img, and the
 * image boots. The tree is small and synthetic — its Makefile compiles a few files with real gcc
 * and, instead of linking a kernel (six minutes of C++), makes loader.img from the prebuilt one
 * (../shared/osv-kernel) with the compiled objects' digest in the boot sector's unused bytes,
 * so a kernel source edit changes loader.img — and still boots. The real kernel goes through
 * the same node in `npm run test:kernel`.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { osvb, tempDir, writeTree } from '../helpers/cli.js';
import { missingFor, SHARED_KERNEL } from '../helpers/tools.js';

const skip = missingFor('e2e/kernel.test.ts', ['kernel', 'qemu', 'qemu-img']);
const T = '\t';

/** An OSv-like source tree (Makefile + conf/Makefile + loader.cc + arch/) with one native app. */
function sourceTree(root: string, counter: string): string {
  const base = path.join(root, 'osv');
  writeTree(base, {
    Makefile: `$(shell echo make >> ${counter})
mode=release
arch=x64
out = build/$(mode).$(arch)
CFLAGS = -O1 -Iinclude -MD -MP
objects = $(out)/loader.o $(out)/core/sched.o
all: $(out)/loader.img $(out)/libenviron.so links
stage1: $(objects) links
links:
${T}@ln -nsf $(notdir $(out)) build/$(mode)
${T}@ln -nsf $(notdir $(out)) build/last
.PHONY: all stage1 links
-include $(objects:.o=.d)
$(out)/%.o: %.c
${T}@mkdir -p $(dir $@)
${T}gcc $(CFLAGS) -c -o $@ $<
$(out)/libenviron.so: libc/environ.c
${T}@mkdir -p $(dir $@)
${T}gcc -O1 -fPIC -shared -o $@ $<
# The prebuilt loader, with the objects' digest in bytes 0x1b0..0x1b7 (unused by the boot code).
$(out)/loader.img: $(objects) ${SHARED_KERNEL}/loader.img
${T}cp ${SHARED_KERNEL}/loader.img $@.tmp
${T}chmod u+w $@.tmp
${T}cat $(objects) | sha256sum | head -c 8 | dd of=$@.tmp bs=1 seek=432 conv=notrunc status=none
${T}mv $@.tmp $@
`,
    'conf/Makefile': 'config:\n\t@true\n.PHONY: config\n',
    'loader.c': '#include "osv/sched.h"\nint loader_main(void) { return sched_init(); }\n',
    'loader.cc': '// (detected as an OSv source tree by this file; the build compiles loader.c)\n',
    'arch/x64/README': 'x64\n',
    'core/sched.c': '#include "osv/sched.h"\nint sched_init(void) { return SCHED_SLICE; }\n',
    'include/osv/sched.h': '#define SCHED_SLICE 10\nint sched_init(void);\n',
    'libc/environ.c': 'char *osv_environ_marker = "environ";\n',
    'config.json': JSON.stringify({ modules: { repositories: ['${OSV_BASE}/apps'] }, default: [] }),
    'usr_rofs.manifest.skel': '[manifest]\n/libenviron.so: libenviron.so\n/etc/fstab: ../../static/etc/fstab_rofs\n/dev: ../../static\n/proc: ../../static\n/tmp: ../../static\n',
    'bootfs_empty.manifest.skel': '[manifest]\n',
    'bootfs.manifest.skel': '[manifest]\n',
    'static/etc/fstab_rofs': '/dev/vblk0.1 /        rofs     defaults 0 0\nnone         /dev     devfs    defaults 0 0\nnone         /proc    procfs   defaults 0 0\nnone         /tmp     ramfs    defaults 0 0\n',
    'apps/greet/Makefile': 'module: greet.so\ngreet.so: greet.c\n\tgcc -fPIC -shared -O1 -o $@ $<\n',
    'apps/greet/greet.c': '#include <stdio.h>\nint main(void) { puts("greetings from a kernel built by osvb"); return 0; }\n',
    'apps/greet/.gitignore': 'greet.so\n',
    'apps/greet/usr.manifest': '[manifest]\n/greet.so: ${MODULE_DIR}/greet.so\n',
    'apps/greet/module.py': "from osv.modules import api\ndefault = api.run('/greet.so')\n",
  });
  fs.mkdirSync(path.join(base, 'static/dev'), { recursive: true });
  return base;
}

const count = (file: string): number => (fs.existsSync(file) ? fs.readFileSync(file, 'utf8').split('\n').filter(Boolean).length : 0);

describe.skipIf(skip !== undefined)('the kernel of an OSv source tree as a node of osvb build', () => {
  const dirs: string[] = [];
  afterAll(() => {
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
  });

  it('builds the kernel, writes usr.img that boots, keeps the kernel when only an app changes, and restores it in another checkout', async () => {
    const root = tempDir('osvb-kernel-e2e-');
    dirs.push(root);
    const counter = path.join(root, 'makes.log');
    const cache = path.join(root, 'cache');
    const a = sourceTree(path.join(root, 'a'), counter);
    const words = ['build', 'image=greet', 'fs=rofs', '--cache-dir', cache];

    const first = await osvb(words, { cwd: a });
    expect(first.exitCode, first.stderr).toBe(0);
    expect(first.stderr).toMatch(/kernel built/);
    expect(first.stderr).toMatch(/outputs in build\/release:\n(.*\n)*  usr\.img +[\d.]+ MiB  written \(qcow2, \d+ MiB disk\)/);
    const makes = count(counter);
    expect(makes).toBeGreaterThanOrEqual(2); // stage1 and the link (and config)
    const run = await osvb(['run', '-c', '1', '-m', '256M', '--no-network', '--timeout', '90'], { cwd: a });
    expect(run.exitCode, run.stderr + run.stdout).toBe(0);
    expect(run.stdout).toContain('greetings from a kernel built by osvb');

    // An app edit: the kernel node is up to date (no kernel make), usr.img follows the app.
    fs.writeFileSync(path.join(a, 'apps/greet/greet.c'), '#include <stdio.h>\nint main(void) { puts("edited greetings"); return 0; }\n');
    const app = await osvb(words, { cwd: a });
    expect(app.exitCode, app.stderr).toBe(0);
    expect(count(counter)).toBe(makes);
    expect(app.stderr).toMatch(/  usr\.img +[\d.]+ MiB  updated \(qcow2, \d+ MiB disk, \d+ bytes written\)/);

    // A kernel header edit: explained, then rebuilt; loader.img changes.
    const loaderBefore = fs.readFileSync(path.join(a, 'build/release/loader.img'));
    fs.writeFileSync(path.join(a, 'include/osv/sched.h'), '#define SCHED_SLICE 20\nint sched_init(void);\n');
    const why = await osvb(['explain', 'kernel', 'image=greet', 'fs=rofs', '--cache-dir', cache], { cwd: a });
    expect(why.exitCode, why.stderr).toBe(0);
    expect(why.stdout).toMatch(/kernel: will be built/);
    expect(why.stdout).toContain('include/osv/sched.h');
    const kernelEdit = await osvb(words, { cwd: a });
    expect(kernelEdit.exitCode, kernelEdit.stderr).toBe(0);
    expect(count(counter)).toBeGreaterThan(makes);
    expect(fs.readFileSync(path.join(a, 'build/release/loader.img')).equals(loaderBefore)).toBe(false);

    // Another checkout at another path, same cache: the kernel is restored, no kernel make runs.
    const b = sourceTree(path.join(root, 'b'), counter);
    fs.writeFileSync(path.join(b, 'include/osv/sched.h'), '#define SCHED_SLICE 20\nint sched_init(void);\n');
    fs.writeFileSync(path.join(b, 'apps/greet/greet.c'), '#include <stdio.h>\nint main(void) { puts("edited greetings"); return 0; }\n');
    const before = count(counter);
    const other = await osvb(words, { cwd: b });
    expect(other.exitCode, other.stderr).toBe(0);
    expect(other.stderr).toMatch(/kernel restored from the cache/);
    expect(count(counter)).toBe(before);
    expect(fs.readFileSync(path.join(b, 'build/release/loader.img')).equals(fs.readFileSync(path.join(a, 'build/release/loader.img')))).toBe(true);
    const boot = await osvb(['run', '-c', '1', '-m', '256M', '--no-network', '--timeout', '90'], { cwd: b });
    expect(boot.exitCode, boot.stderr + boot.stdout).toBe(0);
    expect(boot.stdout).toContain('edited greetings');
  }, 400_000);
});
