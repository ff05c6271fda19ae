import { describe, expect, it } from 'vitest';
import { ModuleGraph, type GraphNodeInput } from '../graph/index.js';
import { scheduleGraph, type NodeOutcome } from './schedule.js';

/** Lets other queued work run: a few turns of the event loop, no timers. */
async function turns(n: number): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}

interface Rig {
  run: (name: string) => Promise<void>;
  events: string[];
  started: string[];
  maxActive: () => number;
}

/** A fake build: counts concurrent runs, logs start/end, fails the named modules. */
function rig(opts: { fail?: string[]; turns?: Record<string, number> } = {}): Rig {
  const events: string[] = [];
  const started: string[] = [];
  let active = 0;
  let max = 0;
  return {
    events,
    started,
    maxActive: () => max,
    run: async (name) => {
      started.push(name);
      events.push(`start:${name}`);
      active++;
      max = Math.max(max, active);
      try {
        await turns(opts.turns?.[name] ?? 3);
        if (opts.fail?.includes(name)) throw new Error(`${name} failed`);
      } finally {
        active--;
        events.push(`end:${name}`);
      }
    },
  };
}

const graphOf = (nodes: Array<[string, string[]]>) => new ModuleGraph(nodes.map(([name, requires]): GraphNodeInput => ({ name, requires })));
const independent = (n: number) => graphOf(Array.from({ length: n }, (_, i): [string, string[]] => [`m${i}`, []]));
const statuses = (outcomes: Map<string, NodeOutcome>) => Object.fromEntries([...outcomes].map(([k, v]) => [k, v.status]));

describe('scheduleGraph', () => {
  it('starts a module only after every module it requires has finished', async () => {
    const g = graphOf([
      ['libz', []],
      ['openssl', ['libz']],
      ['libtools', []],
      ['api', ['openssl', 'libtools']],
      ['gui', ['api']],
      ['httpserver', ['api', 'gui']],
      ['lone', []],
    ]);
    const r = rig({ turns: { libz: 5, libtools: 1, lone: 8 } });
    const out = await scheduleGraph(g, g.order, r.run, { jobs: 4, keepGoing: false });
    expect(statuses(out)).toEqual({ libz: 'done', openssl: 'done', libtools: 'done', api: 'done', gui: 'done', httpserver: 'done', lone: 'done' });
    expect([...r.started].sort()).toEqual([...g.order].sort());
    for (const name of g.order) {
      const start = r.events.indexOf(`start:${name}`);
      for (const dep of g.dependenciesOf(name)) expect(r.events.indexOf(`end:${dep}`), `${dep} before ${name}`).toBeLessThan(start);
    }
    expect(r.maxActive()).toBeGreaterThan(1);
  });

  it('runs at most `jobs` builds at once, and uses that many', async () => {
    for (const jobs of [1, 2, 3, 5]) {
      const r = rig();
      const g = independent(9);
      const out = await scheduleGraph(g, g.order, r.run, { jobs, keepGoing: false });
      expect(r.maxActive(), `jobs=${jobs}`).toBe(jobs);
      expect([...out.values()].every((o) => o.status === 'done')).toBe(true);
      expect(r.started).toHaveLength(9);
    }
  });

  it('treats jobs < 1 as 1', async () => {
    const r = rig();
    const g = independent(4);
    await scheduleGraph(g, g.order, r.run, { jobs: 0, keepGoing: false });
    expect(r.maxActive()).toBe(1);
    expect(r.started).toHaveLength(4);
  });

  it('starts nothing new after the first failure; the failure keeps its error', async () => {
    const r = rig({ fail: ['m0'] });
    const g = independent(4);
    const out = await scheduleGraph(g, g.order, r.run, { jobs: 1, keepGoing: false });
    expect(r.started).toEqual(['m0']);
    const m0 = out.get('m0');
    expect(m0?.status).toBe('failed');
    expect(((m0 as { error: unknown }).error as Error).message).toBe('m0 failed');
    for (const n of ['m1', 'm2', 'm3']) expect(out.get(n)).toEqual({ status: 'skipped', reason: 'an earlier build failed' });
  });

  it('lets builds already running finish after a failure', async () => {
    const r = rig({ fail: ['m0'], turns: { m0: 1, m1: 6 } });
    const g = independent(5);
    const out = await scheduleGraph(g, g.order, r.run, { jobs: 2, keepGoing: false });
    expect(r.started).toEqual(['m0', 'm1']);
    expect(statuses(out)).toEqual({ m0: 'failed', m1: 'done', m2: 'skipped', m3: 'skipped', m4: 'skipped' });
    expect(r.events).toContain('end:m1');
  });

  it('skips the dependents of a failed module, transitively, naming the dependency', async () => {
    const g = graphOf([
      ['a', []],
      ['b', ['a']],
      ['c', ['b']],
      ['d', []],
    ]);
    const r = rig({ fail: ['a'], turns: { a: 1, d: 6 } });
    const out = await scheduleGraph(g, g.order, r.run, { jobs: 2, keepGoing: false });
    expect(out.get('a')?.status).toBe('failed');
    expect(out.get('b')).toEqual({ status: 'skipped', reason: 'a did not build' });
    expect(out.get('c')).toEqual({ status: 'skipped', reason: 'b did not build' });
    expect(out.get('d')?.status).toBe('done');
    expect(r.started).not.toContain('b');
    expect(r.started).not.toContain('c');
  });

  it('with keepGoing, builds everything that does not depend on a failure', async () => {
    const g = graphOf([
      ['a', []],
      ['b', ['a']],
      ['c', []],
      ['d', ['c']],
      ['e', []],
    ]);
    const r = rig({ fail: ['a', 'c'], turns: { a: 1 } });
    const out = await scheduleGraph(g, g.order, r.run, { jobs: 1, keepGoing: true });
    expect(statuses(out)).toEqual({ a: 'failed', b: 'skipped', c: 'failed', d: 'skipped', e: 'done' });
    expect([...r.started].sort()).toEqual(['a', 'c', 'e']);
    expect(out.get('d')).toEqual({ status: 'skipped', reason: 'c did not build' });
  });

  it('runs only the named modules; the others count as done and do not block', async () => {
    const g = graphOf([
      ['nomake', []],
      ['x', ['nomake']],
      ['y', []],
      ['z', ['x', 'y']],
    ]);
    const r = rig();
    const out = await scheduleGraph(g, ['x', 'z'], r.run, { jobs: 2, keepGoing: false });
    expect(r.started).toEqual(['x', 'z']);
    expect(statuses(out)).toEqual({ nomake: 'done', x: 'done', y: 'done', z: 'done' });
  });

  it('skips a named module whose unnamed dependency sits behind a failure', async () => {
    const g = graphOf([
      ['f', []],
      ['mid', ['f']],
      ['top', ['mid']],
    ]);
    const r = rig({ fail: ['f'] });
    const out = await scheduleGraph(g, ['f', 'top'], r.run, { jobs: 2, keepGoing: true });
    expect(statuses(out)).toEqual({ f: 'failed', mid: 'skipped', top: 'skipped' });
    expect(r.started).toEqual(['f']);
  });

  it('returns an empty map for an empty graph', async () => {
    const out = await scheduleGraph(new ModuleGraph([]), [], async () => {}, { jobs: 2, keepGoing: false });
    expect(out.size).toBe(0);
  });
});
