// Benchmark scenarios.
//
// A scenario is one row per tree in the results table. The harness (run.mjs)
// gives every tool (osvb, OSv's module.py) its own working copy of the tree
// and, for each scenario:
//
//   1. calls `setup(ctx)` once per tool              (not timed)
//   2. for run i = 0 … runs-1, alternating which tool goes first:
//        calls `beforeRun(ctx, i)`                    (not timed)
//        times one build                              (timed)
//
// `ctx` is the tool's context:
//   ctx.tool         'osvb' | 'osv'
//   ctx.tree         the tree descriptor: { name, n, image, edits: { cFile, dataFile, modulePy } }
//                    (edit paths are relative to the tree root)
//   ctx.dir          the working copy (absolute)
//   ctx.reset(opts)  replace the working copy with a pristine one; also empties the
//                    osvb cache unless opts.keepCache
//   ctx.build()      one untimed build (throws if it fails)
//   ctx.append(rel, text)   append text to a file of the working copy
//   ctx.touch(rel, secs)    set a file's mtime to (its current mtime + secs), content unchanged
//
// To add a scenario, add an entry here; `--scenarios name,…` selects entries.

/** Fresh copy, then one untimed build: the state a developer is in after a build. */
function warm(ctx) {
  ctx.reset();
  ctx.build();
}

export const SCENARIOS = [
  {
    name: 'cold',
    description: 'fresh copy of the tree before every run, empty osvb cache',
    beforeRun: (ctx) => ctx.reset(),
  },
  {
    name: 'unchanged',
    description: 'build again with nothing changed',
    setup: warm,
  },
  {
    name: 'c-touch',
    description: "one C file's mtime bumped, content unchanged",
    setup: warm,
    beforeRun: (ctx, i) => ctx.touch(ctx.tree.edits.cFile, 10 * (i + 1)),
  },
  {
    name: 'c-edit',
    description: 'one C file changed (a comment appended)',
    setup: warm,
    beforeRun: (ctx, i) => ctx.append(ctx.tree.edits.cFile, `/* bench edit ${i} */\n`),
  },
  {
    name: 'data-edit',
    description: 'one data file (pulled in by /**) changed',
    setup: warm,
    beforeRun: (ctx, i) => ctx.append(ctx.tree.edits.dataFile, `bench edit ${i}\n`),
  },
  {
    name: 'modpy-edit',
    description: 'one module.py changed (a new global)',
    setup: warm,
    beforeRun: (ctx, i) => ctx.append(ctx.tree.edits.modulePy, `\n_bench_edit = ${i}\n`),
  },
  {
    name: 'fresh-cached',
    description: 'fresh copy of the tree before every run, osvb cache kept (CI with a cache)',
    setup: warm,
    beforeRun: (ctx) => ctx.reset({ keepCache: true }),
  },
];
