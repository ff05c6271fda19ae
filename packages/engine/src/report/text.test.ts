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
