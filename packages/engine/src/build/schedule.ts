/**
 * DAG scheduling of module builds on p-limit: a module starts when every module it requires
 * has finished, up to `jobs` at once. After the first failure nothing new starts (unless
 * keepGoing), running builds finish, and every failure is reported.
 */
import pLimit from 'p-limit';
import type { ModuleGraph } from '../graph/index.js';

export interface ScheduleOptions {
  jobs: number;
  keepGoing: boolean;
}

export type NodeOutcome = { status: 'done' } | { status: 'failed'; error: unknown } | { status: 'skipped'; reason: string };

export async function scheduleGraph(
  graph: ModuleGraph,
  names: readonly string[],
  run: (name: string) => Promise<void>,
  opts: ScheduleOptions,
): Promise<Map<string, NodeOutcome>> {
  const limit = pLimit(Math.max(1, opts.jobs));
  const outcomes = new Map<string, NodeOutcome>();
  const promises = new Map<string, Promise<NodeOutcome>>();
  let stopped = false;
  const wanted = new Set(names);

  const nodeFor = (name: string): Promise<NodeOutcome> => {
    let p = promises.get(name);
    if (p) return p;
    p = (async (): Promise<NodeOutcome> => {
      const deps = graph.dependenciesOf(name);
      const results = await Promise.all(deps.map((d) => nodeFor(d)));
      const badDep = deps.find((_d, i) => results[i]?.status !== 'done');
      if (badDep !== undefined) return { status: 'skipped', reason: `${badDep} did not build` };
      if (!wanted.has(name)) return { status: 'done' };
      return limit(async (): Promise<NodeOutcome> => {
        if (stopped) return { status: 'skipped', reason: 'an earlier build failed' };
        try {
          await run(name);
          return { status: 'done' };
        } catch (error) {
          if (!opts.keepGoing) stopped = true;
          return { status: 'failed', error };
        }
      });
    })();
    promises.set(name, p);
    return p;
  };

  const all = graph.order.map((n) => nodeFor(n).then((o) => outcomes.set(n, o)));
  await Promise.all(all);
  return outcomes;
}
