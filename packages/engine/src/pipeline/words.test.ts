import { describe, expect, it } from 'vitest';
import { OsvbError } from '../errors/index.js';
import { parseBuildWords } from './words.js';
import { error } from '../testing/index.js';

const p = (...words: string[]) => parseBuildWords(words);


describe('parseBuildWords (scripts/build, §4.7)', () => {
  it('case 61: no words', () => {
    const w = p();
    expect(w.spec).toBe('!default');
    expect(w.fs).toBe('zfs');
    expect(w.kernelBootfsManifest).toBe('bootfs.manifest.skel');
    expect(w.usrSkel).toBe('default');
    expect(w.noRequired).toBe(false);
    expect(w.appendManifest).toBe(false);
    expect(w.jobs).toBeUndefined();
    expect(w.mode).toBe('release');
    expect(w.arch).toBeUndefined();
    expect(w.exportMode).toBe('none');
    expect(w.exportDir).toBeUndefined();
    expect(w.vars).toEqual({});
    expect(w.exported).toEqual([]);
    expect(w.ignored).toEqual([]);
  });

  it('case 62: modules= is passed verbatim (defaults apply) and wins over image=', () => {
    expect(p('modules=native-example').spec).toBe('native-example');
    expect(p('image=a,b.fg', 'modules=c').spec).toBe('c');
    expect(p('modules=c', 'image=a').spec).toBe('c');
    expect(p('image=a,b.fg').spec).toBe('!a,b.fg');
  });

  it('the default image is uush for arch=aarch64', () => {
    expect(p('arch=aarch64').spec).toBe('!uush');
    expect(p('arch=aarch64').arch).toBe('aarch64');
    expect(p('arch=x64').spec).toBe('!default');
  });

  it('case 63: fs= chooses the skeletons and adds libext for ext', () => {
    const rofs = p('fs=rofs', 'image=x');
    expect([rofs.spec, rofs.usrSkel, rofs.kernelBootfsManifest, rofs.fs]).toEqual(['!x', 'usr_rofs.manifest.skel', 'bootfs_empty.manifest.skel', 'rofs']);
    const ext = p('fs=ext', 'image=x');
    expect([ext.spec, ext.usrSkel, ext.kernelBootfsManifest]).toEqual(['!x,libext', 'usr_ext.manifest.skel', 'bootfs_ext.manifest.skel']);
    const ramfs = p('fs=ramfs', 'image=x');
    expect(ramfs.usrSkel).toBe('usr_ramfs.manifest.skel');
    expect(ramfs.kernelBootfsManifest).toMatch(/(^|\/)usr\.manifest$/);
    for (const fs of ['rofs_with_zfs', 'virtiofs'] as const) {
      const w = p(`fs=${fs}`, 'image=x');
      expect([w.spec, w.usrSkel, w.kernelBootfsManifest], fs).toEqual(['!x', 'usr_rofs.manifest.skel', 'bootfs_empty.manifest.skel']);
    }
    const rwe = p('fs=rofs_with_ext', 'image=x');
    expect([rwe.spec, rwe.usrSkel, rwe.kernelBootfsManifest]).toEqual(['!x,libext', 'usr_rofs.manifest.skel', 'bootfs_empty.manifest.skel']);
    expect(p('fs=ext').spec).toBe('!default,libext');
    expect(p('fs=ext', 'modules=a,b').spec).toBe('a,b,libext');
  });

  it('case 64: --append-manifest turns exactly !default into empty', () => {
    expect(p('--append-manifest').spec).toBe('empty');
    expect(p('--append-manifest').appendManifest).toBe(true);
    expect(p('--append-manifest', 'image=x').spec).toBe('!x');
    expect(p('--append-manifest', 'image=default').spec).toBe('empty');
    expect(p('--append-manifest', 'modules=!default').spec).toBe('empty');
    expect(p('--append-manifest', 'modules=default').spec).toBe('default');
    expect(p('--append-manifest', 'fs=ext').spec).toBe('empty,libext');
  });

  it('case 65: export=selected means --no-required; export=all does not', () => {
    const sel = p('export=selected', 'image=x');
    expect(sel.noRequired).toBe(true);
    expect(sel.exportMode).toBe('selected');
    const all = p('export=all', 'export_dir=/tmp/out');
    expect(all.noRequired).toBe(false);
    expect(all.exportMode).toBe('all');
    expect(all.exportDir).toBe('/tmp/out');
    expect(p('export=none').exportMode).toBe('none');
    const e = error(() => p('export=some'));
    expect(e.code).toBe('OSVB_USAGE');
    expect(e.message).toContain('export=some');
  });

  it('case 65: usrskel= overrides the fs choice unless empty', () => {
    expect(p('usrskel=none', 'fs=rofs', 'image=x').usrSkel).toBe('none');
    expect(p('fs=rofs', 'usrskel=my.skel').usrSkel).toBe('my.skel');
    expect(p('usrskel=', 'fs=rofs').usrSkel).toBe('usr_rofs.manifest.skel');
  });

  it('case 65: -j forms; the last one wins', () => {
    expect(p('-j', 'image=x').jobs).toBe('-');
    expect(p('-j', 'image=x').spec).toBe('!x');
    expect(p('-j', '8').jobs).toBe('8');
    expect(p('-j', '8', 'image=x').spec).toBe('!x');
    expect(p('-j4').jobs).toBe('4');
    expect(p('-j4', '-j').jobs).toBe('-');
    expect(p('-j', '-j12').jobs).toBe('12');
    expect(p('-j').jobs).toBe('-');
    // A number only counts right after a bare -j.
    expect(() => p('-j4', '8')).toThrow(OsvbError);
  });

  it('case 65: check builds the tests image', () => {
    expect(p('check').spec).toBe('!tests');
    expect(p('check').vars).toEqual({ image: 'tests' });
    // Like a word image=tests: the last one wins.
    expect(p('check', 'image=y').spec).toBe('!y');
    expect(p('image=y', 'check').spec).toBe('!tests');
  });

  it('case 65: an unknown fs is OSVB_UNKNOWN_FS', () => {
    const e = error(() => p('fs=btrfs'));
    expect(e.code).toBe('OSVB_UNKNOWN_FS');
    expect(e.message).toBe('Unknown filesystem "btrfs"');
    expect(e.exitCode).toBe(2);
  });

  it('collects every NAME=value word (last wins) and exports all but image/modules/fs/usrskel, in order', () => {
    const w = p('JAVA_VERSION=10', 'image=x', 'conf_zfs=openzfs', 'fs=rofs', 'mode=debug', 'usrskel=none', 'export=selected', 'modules=m', 'A=1', 'A=2', 'X=a b=c');
    expect(w.vars).toEqual({
      JAVA_VERSION: '10',
      image: 'x',
      conf_zfs: 'openzfs',
      fs: 'rofs',
      mode: 'debug',
      usrskel: 'none',
      export: 'selected',
      modules: 'm',
      A: '2',
      X: 'a b=c',
    });
    expect(w.exported).toEqual([
      ['JAVA_VERSION', '10'],
      ['conf_zfs', 'openzfs'],
      ['mode', 'debug'],
      ['export', 'selected'],
      ['A', '1'],
      ['A', '2'],
      ['X', 'a b=c'],
    ]);
    expect(w.mode).toBe('debug');
    expect(p('image=a', 'image=b').spec).toBe('!b');
    expect(p('E=').vars).toEqual({ E: '' });
  });

  it('takes --create-disk and the disk size; records the zfs disk flags as ignored', () => {
    const w = p('--create-disk', '--create-zfs-disk', '--use-openzfs', 'image=x');
    expect(w.ignored).toEqual(['--create-zfs-disk', '--use-openzfs']);
    expect(w.createDisk).toBe(true);
    expect(w.fsSize).toBe(512 * 1024 * 1024);
    expect(p('image=x').createDisk).toBe(false);
    // scripts/build: fs_size wins over fs_size_mb, and is rounded down to a multiple of 512.
    expect(p('fs_size_mb=64').fsSize).toBe(64 * 1024 * 1024);
    expect(p('fs_size_mb=64', 'fs_size=1000')).toMatchObject({ fsSize: 512, fsSizeWarning: expect.stringContaining('1000') });
    // Both still reach make, as scripts/build passes them on.
    expect(p('fs_size_mb=64').exported).toEqual([['fs_size_mb', '64']]);
  });

  it('rejects what osvb cannot honour with OSVB_USAGE', () => {
    for (const words of [['clean'], ['bogus'], ['-jx'], ['-j-'], ['--foo=bar'], ['=x'], ['1A=x'], ['A-B=x']]) {
      const e = error(() => parseBuildWords(words));
      expect(e.code, words.join(' ')).toBe('OSVB_USAGE');
      expect(e.exitCode).toBe(2);
    }
  });

  it('warns about a NAME=value one or two edits from a word it knows, and still passes it to make', () => {
    const w = p('imgae=hello', 'fs=rofs');
    expect(w.warnings).toEqual(['"imgae=hello": did you mean image=? (imgae= is not a word osvb knows; like scripts/build, it passes it on to make)']);
    expect(w.exported).toContainEqual(['imgae', 'hello']);
    expect(w.spec).toBe('!default');
    expect(p('modles=x').warnings[0]).toContain('did you mean modules=?');
    expect(p('fs_sise_mb=64').warnings[0]).toContain('did you mean fs_size_mb=?');
    expect(p('fss=rofs').warnings[0]).toContain('did you mean fs=?');
    // Make variables of modules are not typos.
    expect(p('JAVA_VERSION=17', 'CC=gcc', 'ARCH=x64', 'conf_preempt=0', 'export_dir=/x', 'image=a').warnings).toEqual([]);
  });

  it('-j0 is a usage error, not make\'s help text', () => {
    for (const words of [['-j0'], ['-j', '0'], ['-j00']]) expect(error(() => parseBuildWords(words)).message).toContain('at least one job');
  });
});
