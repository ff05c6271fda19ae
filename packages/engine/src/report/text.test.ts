/** The kernel build's progress as a reporter prints it: plain lines for logs, a live line on a terminal. */
import { describe, expect, it } from 'vitest';
import { describeSpec, textReporter } from './text.js';

/** A sink that records what a terminal would receive. */
function terminal(): { stream: NodeJS.WriteStream; text: () => string } {
  let out = '';
  const stream = { isTTY: true, write: (s: string) => ((out += s), true) } as unknown as NodeJS.WriteStream;
  return { stream, text: () => out };
}

const progress = (state: 'start' | 'running' | 'done', elapsedMs: number, compiles = 0) =>
  ({ type: 'kernel-progress', stage: 'stage1', state, elapsedMs, lines: 0, compiles }) as const;

describe('kernel progress', () => {
  it('plain lines without a terminal: start, heartbeat, done with elapsed time', () => {
    const lines: string[] = [];
    const r = textReporter({ verbose: false, write: (s) => lines.push(s) });
    r(progress('start', 0));
    r(progress('running', 150_000, 412));
    r(progress('done', 361_000, 980));
    r({ type: 'kernel-done', status: 'built', key: 'k', durationMs: 377_800, build: 'fresh', reason: 'no objects in the build directory' });
    expect(lines).toEqual([
      'kernel: stage1…',
      'kernel: stage1 running for 2m30s (412 compiles so far)',
      'kernel: stage1 done in 6m01s (980 compiles)',
      'kernel built (fresh: no objects in the build directory) in 6m18s',
    ]);
  });

  it('on a terminal: one redrawn status line, cleared before other output, a plain line when the stage ends', async () => {
    const lines: string[] = [];
    const tty = terminal();
    const r = textReporter({ verbose: false, write: (s) => lines.push(s), live: tty.stream });
    r(progress('start', 0));
    expect(tty.text()).toBe('\r\x1b[Kkernel: stage1 0.0s');
    await new Promise((res) => setTimeout(res, 1100)); // redrawn with the time gone by
    expect(tty.text()).toMatch(/\r\x1b\[Kkernel: stage1 1\.\ds$/);
    r({ type: 'warning', text: 'something' });
    expect(tty.text().endsWith('\r\x1b[K')).toBe(true); // cleared before the warning
    r(progress('running', 30_000, 7));
    expect(tty.text()).toMatch(/kernel: stage1 30\.\ds \(7 compiles\)$/);
    r(progress('done', 31_000, 9));
    expect(lines).toEqual(['warning: something', 'kernel: stage1 done in 31.0s (9 compiles)']);
    expect(tty.text().endsWith('\r\x1b[K')).toBe(true); // no status line left behind
  });
});

describe('the first line of a build', () => {
  it('says what is built in words, not in module.py spec syntax', () => {
    expect(describeSpec('!default')).toBe('image default');
    expect(describeSpec('!hello,banner.quiet')).toBe('modules hello,banner.quiet');
    expect(describeSpec('empty')).toBe('image empty');
    expect(describeSpec('my-app')).toBe("modules my-app and config.json's defaults");
  });
});

describe('module progress', () => {
  it('on a terminal: modules done/total, the ones in make and the elapsed time, redrawn; gone at the end', () => {
    const lines: string[] = [];
    const tty = terminal();
    const r = textReporter({ verbose: false, write: (s) => lines.push(s), live: tty.stream });
    r({ type: 'modules-planned', withMakefile: 3 });
    r({ type: 'module-restored', name: 'a', durationMs: 1, upToDate: true });
    r({ type: 'module-start', name: 'b' });
    expect(tty.text()).toMatch(/\r\x1b\[K\[1\/3\] making b 0\.0s$/);
    r({ type: 'module-start', name: 'c' });
    expect(tty.text()).toMatch(/\[1\/3\] making b, c 0\.0s$/);
    r({ type: 'module-built', name: 'b', durationMs: 10 });
    expect(tty.text()).toMatch(/\[2\/3\] making c 0\.0s$/);
    r({ type: 'module-built', name: 'c', durationMs: 10 });
    expect(tty.text().endsWith('\r\x1b[K')).toBe(true);
    r({ type: 'done', ok: true, durationMs: 20, modules: 3, built: 2, restored: 1, upToDate: 1, failed: 0, evaluationCached: true });
    expect(lines).toEqual(['built b (0.01s)', 'built c (0.01s)', '3 modules: 1 up to date, 0 restored, 2 built in 0.02s']);
  });

  it('without a terminal: a heartbeat line names the modules still in make', async () => {
    const lines: string[] = [];
    const r = textReporter({ verbose: false, write: (s) => lines.push(s), heartbeatMs: 50 });
    r({ type: 'modules-planned', withMakefile: 2 });
    r({ type: 'module-start', name: 'slow' });
    await new Promise((res) => setTimeout(res, 130));
    r({ type: 'module-built', name: 'slow', durationMs: 130 });
    const beats = lines.filter((l) => l.startsWith('still making slow'));
    expect(beats.length).toBeGreaterThanOrEqual(1);
    expect(beats[0]).toMatch(/^still making slow \(0\.\ds, 0\/2 modules done\)$/);
    const n = lines.length;
    await new Promise((res) => setTimeout(res, 120));
    expect(lines.length).toBe(n); // no heartbeat once nothing is in make
  });

  it('--progress=none: warnings and failures only', () => {
    const lines: string[] = [];
    const r = textReporter({ verbose: false, write: (s) => lines.push(s), quiet: true });
    r({ type: 'start', osvBase: '/b', buildPath: '/b/build/release', spec: '!default' });
    r({ type: 'module-start', name: 'a' });
    r({ type: 'module-built', name: 'a', durationMs: 1 });
    r({ type: 'warning', text: 'w' });
    r({ type: 'outputs', buildPath: '/b/build/release', files: [{ path: '/b/build/release/cmdline', bytes: 3, state: 'written' }] });
    r({ type: 'done', ok: true, durationMs: 2, modules: 1, built: 1, restored: 0, failed: 0, evaluationCached: true });
    expect(lines).toEqual(['warning: w']);
  });
});

describe('the closing lines', () => {
  it('name the build path (relative to the working directory when inside it), the images with sizes and what happened', () => {
    const lines: string[] = [];
    const r = textReporter({ verbose: false, write: (s) => lines.push(s), cwd: '/w' });
    const b = '/w/osv/build/release';
    r({
      type: 'outputs',
      buildPath: b,
      files: [
        { path: `${b}/usr.manifest`, bytes: 900, state: 'written' },
        { path: `${b}/bootfs.manifest`, bytes: 100, state: 'unchanged' },
        { path: `${b}/cmdline`, bytes: 10, state: 'unchanged' },
        { path: `${b}/rofs.img`, bytes: 3 * 1024 * 1024 + 300 * 1024, state: 'updated' },
        { path: `${b}/usr.img`, bytes: 9 * 1024 * 1024, state: 'unchanged', detail: 'qcow2, 64 MiB disk' },
        { path: '/elsewhere/oci', state: 'updated', detail: 'OCI layout, 4 layers' },
      ],
    });
    r({ type: 'done', ok: true, durationMs: 2, modules: 1, built: 1, restored: 0, failed: 0, evaluationCached: true });
    expect(lines).toEqual([
      '1 module: 0 restored, 1 built in 0.00s',
      'outputs in osv/build/release:',
      '  usr.manifest, bootfs.manifest, cmdline (1 changed)',
      '  rofs.img          3.3 MiB  updated',
      '  usr.img           9.0 MiB  unchanged (qcow2, 64 MiB disk)',
      '  /elsewhere/oci             updated (OCI layout, 4 layers)',
    ]);
  });
});
