import { describe, expect, it } from 'vitest';
import { OsvbError } from '../errors/index.js';
import { ModuleGraph } from './index.js';

// §3.5's example: defaults [d1], spec a,b; a requires c; b requires c and d1 → order d1, c, a, b.
const example = () =>
  new ModuleGraph([
    { name: 'd1', requires: [] },
    { name: 'c', requires: [] },
    { name: 'a', requires: ['c'] },
    { name: 'b', requires: ['c', 'd1'] },
  ]);

describe('ModuleGraph', () => {
  it('keeps the given (OSv) order', () => {
    expect(example().order).toEqual(['d1', 'c', 'a', 'b']);
  });

  it('knows direct dependencies and dependents', () => {
    const g = example();
    expect(g.dependenciesOf('b')).toEqual(['c', 'd1']);
    expect(g.dependenciesOf('c')).toEqual([]);
    expect(g.dependentsOf('c')).toEqual(['a', 'b']);
    expect(g.dependentsOf('d1')).toEqual(['b']);
    expect(g.dependentsOf('b')).toEqual([]);
    expect(g.has('a')).toBe(true);
    expect(g.has('zzz')).toBe(false);
    expect(g.dependenciesOf('zzz')).toEqual([]);
  });

  it('drops requires of modules outside the graph, self-requires and repeats', () => {
    const g = new ModuleGraph([
      { name: 'x', requires: [] },
      { name: 'y', requires: ['x', 'late-java-base', 'y', 'x'] },
    ]);
    expect(g.dependenciesOf('y')).toEqual(['x']);
    expect(g.dependentsOf('x')).toEqual(['y']);
  });

  it('lists transitive dependents in module order', () => {
    const g = new ModuleGraph([
      { name: 'base', requires: [] },
      { name: 'mid2', requires: ['base'] },
      { name: 'other', requires: [] },
      { name: 'mid1', requires: ['base'] },
      { name: 'top', requires: ['mid1', 'mid2'] },
    ]);
    expect(g.transitiveDependentsOf('base')).toEqual(['mid2', 'mid1', 'top']);
    expect(g.transitiveDependentsOf('mid1')).toEqual(['top']);
    expect(g.transitiveDependentsOf('other')).toEqual([]);
    expect(g.transitiveDependentsOf('top')).toEqual([]);
  });

  it('rejects a require cycle and prints it', () => {
    let err: unknown;
    try {
      new ModuleGraph([
        { name: 'ok', requires: [] },
        { name: 'rec1', requires: ['ok', 'rec2'] },
        { name: 'rec2', requires: ['rec3'] },
        { name: 'rec3', requires: ['rec1'] },
      ]);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(OsvbError);
    expect((err as OsvbError).code).toBe('OSVB_RECURSIVE_REQUIRE');
    expect((err as OsvbError).message).toBe('require cycle: rec1 -> rec2 -> rec3 -> rec1');
  });

  it('accepts a diamond (shared dependencies are not cycles) and an empty graph', () => {
    expect(() => example()).not.toThrow();
    expect(new ModuleGraph([]).order).toEqual([]);
  });
});
