/**
 * Early cutoff, end to end with real make and gcc: a module whose key changed only through what
 * its make cannot act on (files only osv-build reads, required modules' keys) is not rebuilt
 * when make's own up-to-date answer says so — and always is when make reads what changed.
 * Builds are counted as real `make module` runs through a logging wrapper; make's question
 * (`make -pq`) is counted apart.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { makeWrapper, osvb, readMakeLog, tempDir, writeTree } from '../helpers/cli.js';

const API = 'from osv.modules import api\n';
const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

/**
 * lib: a C library with a header. reader: requires lib, compiles against lib's header and
 * names it as a prerequisite. blind: requires lib, reads nothing of it. gen: generates its own
 * usr.manifest from usr.manifest.in. cat: its Makefile reads its own usr.manifest.
 */
function makeTree(root: string): void {
  writeTree(root, {
    'config.json': JSON.stringify({ modules: { repositories: ['${OSV_BASE}/modules'] } }),
    'usr.manifest.skel': '[manifest]\n',
    'bootfs.manifest.skel': '[manifest]\n',
    'usr_rofs.manifest.skel': '[manifest]\n',
    'images/img.py': API + "for m in ['reader', 'blind', 'gen', 'cat']:\n    api.require(m)\nrun = []\n",
    'modules/lib/Makefile': 'module: liblib.so\nliblib.so: lib.c lib.h\n\t$(CC) -fPIC -shared -o $@ lib.c\n',
    'modules/lib/lib.c': '#include "lib.h"\nint lib(void) { return LIB_VALUE; }\n',
    'modules/lib/lib.h': '#define LIB_VALUE 1\n',
    'modules/lib/.gitignore': '*.so\n',
    'modules/lib/usr.manifest': '/liblib.so: ${MODULE_DIR}/liblib.so\n',
    'modules/reader/module.py': API + "api.require('lib')\n",
    'modules/reader/Makefile':
      'LIB = $(OSV_BASE)/modules/lib\nmodule: reader.so\nreader.so: reader.c $(LIB)/lib.h\n\t$(CC) -fPIC -shared -I$(LIB) -o $@ reader.c\n',
    'modules/reader/reader.c': '#include "lib.h"\nint reader(void) { return LIB_VALUE; }\n',
    'modules/reader/.gitignore': '*.so\n',
    'modules/reader/usr.manifest': '/reader.so: ${MODULE_DIR}/reader.so\n',
    'modules/blind/module.py': API + "api.require('lib')\n",
    'modules/blind/Makefile': 'module: blind.so\nblind.so: blind.c\n\t$(CC) -fPIC -shared -o $@ blind.c\n',
    'modules/blind/blind.c': 'int blind(void) { return 7; }\n',
    'modules/blind/.gitignore': '*.so\n',
    'modules/blind/usr.manifest': '/blind.so: ${MODULE_DIR}/blind.so\n',
    'modules/gen/Makefile': 'module: usr.manifest\nusr.manifest: usr.manifest.in\n\tsed s/@NAME@/gen/ usr.manifest.in > usr.manifest\n',
    'modules/gen/usr.manifest.in': '/@NAME@.txt: ${MODULE_DIR}/usr.manifest.in\n',
    'modules/gen/.gitignore': 'usr.manifest\n',
    'modules/cat/Makefile': 'module: copy.txt\ncopy.txt: usr.manifest\n\tcp usr.manifest copy.txt\n',
    'modules/cat/usr.manifest': '/copy.txt: ${MODULE_DIR}/copy.txt\n',
    'modules/cat/.gitignore': 'copy.txt\n',
  });
}

describe('early cutoff', () => {
  const root = tempDir();
  dirs.push(root);
  const base = path.join(root, 'osv');
  makeTree(base);
  const log = path.join(root, 'make.log');
  const wrapper = makeWrapper(root, log);
  const usr = (): string => fs.readFileSync(path.join(base, 'build/release/usr.manifest'), 'utf8');
  const rofs = (): Buffer => fs.readFileSync(path.join(base, 'build/release/rofs.img'));

  /** Modules whose `make module` ran, and those make was only asked about. */
  const build = async (): Promise<{ built: string[]; asked: string[]; stderr: string }> => {
    fs.rmSync(log, { force: true });
    const res = await osvb(['build', 'image=img', 'fs=rofs', '--osv-base', base, '-v'], { path: wrapper });
    expect(res.exitCode, res.stderr).toBe(0);
    const runs = readMakeLog(log);
    const name = (c: { cwd: string }): string => path.basename(c.cwd);
    return {
      built: runs.filter((r) => !r.args.startsWith('-pq')).map(name).sort(),
      asked: runs.filter((r) => r.args.startsWith('-pq')).map(name).sort(),
      stderr: res.stderr,
    };
  };
  const explain = async (name: string): Promise<string> => {
    const res = await osvb(['explain', name, 'image=img', 'fs=rofs', '--osv-base', base]);
    expect(res.exitCode, res.stderr).toBe(0);
    return res.stdout;
  };
  const edit = (rel: string, text: string): void => fs.appendFileSync(path.join(base, rel), text);

  it('cold: every module', async () => {
    expect((await build()).built).toEqual(['blind', 'cat', 'gen', 'lib', 'reader']);
  });

  it('a line appended to the usr.manifest of a Makefile module with dependents: no make module anywhere; the image has the line', async () => {
    const before = rofs();
    edit('modules/lib/usr.manifest', '/lib-copy.c: ${MODULE_DIR}/lib.c\n');
    const r = await build();
    expect(r.built).toEqual([]);
    expect(usr()).toContain(`/lib-copy.c: ${base}/modules/lib/lib.c`);
    expect(rofs()).not.toEqual(before);
    const why = await explain('lib');
    expect(why).toContain('last build: skipped by early cutoff');
    expect(why).toContain('usr.manifest changed');
  });

  it('the same edit again: make is not even asked (its kept answer still holds)', async () => {
    edit('modules/lib/usr.manifest', '/lib-copy2.c: ${MODULE_DIR}/lib.c\n');
    // Said before the build, without running make.
    expect(await explain('blind')).toContain("make will not run: it will be skipped by early cutoff: only required module lib changed, and make's up-to-date answer");
    const r = await build();
    expect(r.built).toEqual([]);
    expect(r.asked).toEqual([]);
    expect(usr()).toContain('/lib-copy2.c:');
    expect(await explain('blind')).toContain('still holds');
  });

  it('a Makefile that reads its own usr.manifest is rebuilt when it changes', async () => {
    edit('modules/cat/usr.manifest', '# a comment\n');
    const r = await build();
    expect(r.built).toEqual(['cat']);
    expect(fs.readFileSync(path.join(base, 'modules/cat/copy.txt'), 'utf8')).toContain('# a comment');
  });

  it('a Makefile that generates its own usr.manifest: rebuilt when its template changes, the image follows', async () => {
    fs.writeFileSync(path.join(base, 'modules/gen/usr.manifest.in'), '/@NAME@-renamed.txt: ${MODULE_DIR}/usr.manifest.in\n');
    const r = await build();
    expect(r.built).toEqual(['gen']);
    expect(usr()).toContain('/gen-renamed.txt:');
  });

  it('a required module rebuilt with byte-identical outputs: its dependents are not rebuilt; explain says why', async () => {
    const so = path.join(base, 'modules/lib/liblib.so');
    const bytes = fs.readFileSync(so);
    edit('modules/lib/lib.c', '/* a comment: the same object code */\n');
    const r = await build();
    expect(r.built).toEqual(['lib']);
    expect(fs.readFileSync(so)).toEqual(bytes);
    const why = await explain('blind');
    expect(why).toContain('last build: skipped by early cutoff');
    expect(why).toContain('required module lib changed');
    expect(why).toContain('byte-identical');
    expect(r.stderr).toContain('blind: skipped by early cutoff');
  });

  it('a header of the required module that the dependent reads changed: the dependent is rebuilt, with the new value', async () => {
    fs.writeFileSync(path.join(base, 'modules/lib/lib.h'), '#define LIB_VALUE 2\n');
    const r = await build();
    expect(r.built).toEqual(['lib', 'reader']);
    const why = await explain('reader');
    expect(why).toContain('last build: built');
  });

  it("a required module's output changed that the dependent does not read: only make's answer, no rebuild", async () => {
    edit('modules/lib/lib.c', 'int lib2(void) { return 3; }\n');
    const r = await build();
    expect(r.built).toEqual(['lib']);
    // reader names lib.h, not liblib.so: its make remakes nothing.
    expect(await explain('reader')).toContain('skipped by early cutoff');
  });

  it('a source of a dependent still rebuilds it', async () => {
    edit('modules/blind/blind.c', 'int blind2(void) { return 8; }\n');
    expect((await build()).built).toEqual(['blind']);
  });

  it('a clean checkout of the same sources computes the same keys and restores the cut-off results', async () => {
    const res = await osvb(['build', 'image=img', 'fs=rofs', '--osv-base', base], { path: wrapper });
    expect(res.exitCode).toBe(0);
    for (const so of ['modules/blind/blind.so', 'modules/reader/reader.so']) fs.rmSync(path.join(base, so));
    fs.rmSync(log, { force: true });
    const again = await osvb(['build', 'image=img', 'fs=rofs', '--osv-base', base], { path: wrapper });
    expect(again.exitCode).toBe(0);
    expect(readMakeLog(log)).toEqual([]);
    expect(fs.existsSync(path.join(base, 'modules/blind/blind.so'))).toBe(true);
  });
});

describe('a dependent that links against the required module', () => {
  it("is not relinked when the library was rebuilt byte-identical (make is asked with -o), and is when its bytes change", async () => {
    const root = tempDir();
    dirs.push(root);
    const base = path.join(root, 'osv');
    makeTree(base);
    fs.writeFileSync(path.join(base, 'images/img.py'), API + "api.require('linker')\nrun = []\n");
    writeTree(base, {
      'modules/linker/module.py': API + "api.require('lib')\n",
      'modules/linker/Makefile':
        'LIB = $(OSV_BASE)/modules/lib\nmodule: linker.so\nlinker.so: linker.c $(LIB)/liblib.so\n\t$(CC) -fPIC -shared -o $@ linker.c -L$(LIB) -llib\n',
      'modules/linker/linker.c': 'int lib(void);\nint linker(void) { return lib(); }\n',
      'modules/linker/.gitignore': '*.so\n',
    });
    const log = path.join(root, 'make.log');
    const wrapper = makeWrapper(root, log);
    const run = async (): Promise<Array<{ cwd: string; args: string }>> => {
      fs.rmSync(log, { force: true });
      const res = await osvb(['build', 'image=img', '--osv-base', base], { path: wrapper });
      expect(res.exitCode, res.stderr).toBe(0);
      return readMakeLog(log);
    };
    await run();
    const so = path.join(base, 'modules/lib/liblib.so');
    const bytes = fs.readFileSync(so);
    // A comment: lib's make runs again (its source changed), its library comes out byte-identical.
    fs.appendFileSync(path.join(base, 'modules/lib/lib.c'), '/* comment */\n');
    const runs = await run();
    expect(fs.readFileSync(so)).toEqual(bytes);
    expect(runs.filter((r) => !r.args.startsWith('-pq')).map((r) => path.basename(r.cwd))).toEqual(['lib']);
    const asked = runs.find((r) => path.basename(r.cwd) === 'linker');
    expect(asked?.args).toContain(`-o ${so}`);
    const why = await osvb(['explain', 'linker', 'image=img', '--osv-base', base]);
    expect(why.stdout).toContain('skipped by early cutoff');
    expect(why.stdout).toContain('the outputs of lib are byte-identical');
    // New code in the library: its bytes change, the dependent that names it is relinked.
    fs.appendFileSync(path.join(base, 'modules/lib/lib.c'), 'int more(void) { return 5; }\n');
    const again = await run();
    expect(again.filter((r) => !r.args.startsWith('-pq')).map((r) => path.basename(r.cwd))).toEqual(['lib', 'linker']);
  });
});

describe('early cutoff is not taken for an impure Makefile', () => {
  it('a Makefile that runs $(shell …) while it is read is built when a required module changes', async () => {
    const root = tempDir();
    dirs.push(root);
    const base = path.join(root, 'osv');
    makeTree(base);
    // blind now lists lib's directory while make reads its Makefile.
    fs.writeFileSync(
      path.join(base, 'modules/blind/Makefile'),
      'LIBFILES := $(shell ls $(OSV_BASE)/modules/lib)\nmodule: blind.so\nblind.so: blind.c\n\t$(CC) -fPIC -shared -o $@ blind.c\n',
    );
    const log = path.join(root, 'make.log');
    const wrapper = makeWrapper(root, log);
    const run = async (): Promise<string[]> => {
      fs.rmSync(log, { force: true });
      const res = await osvb(['build', 'image=img', '--osv-base', base], { path: wrapper });
      expect(res.exitCode, res.stderr).toBe(0);
      return readMakeLog(log).map((c) => `${path.basename(c.cwd)}${c.args.startsWith('-pq') ? '?' : ''}`).sort();
    };
    await run();
    fs.appendFileSync(path.join(base, 'modules/lib/usr.manifest'), '# changed\n');
    // lib and reader: make asked, nothing to remake; blind: never asked, built.
    expect(await run()).toEqual(['blind', 'lib?', 'reader?']);
  });
});
