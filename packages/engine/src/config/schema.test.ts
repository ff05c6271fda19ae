import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SHAPES_FOR_TEST } from './schema.js';

// Values near the shapes: the schemas' keys with values of every JSON kind.
const leaf = fc.oneof(fc.constantFrom('direct-dir', 'git', 'dir', 'svn', 'x', ''), fc.integer(), fc.boolean(), fc.constant(null));
const list = fc.oneof(fc.array(fc.string({ maxLength: 3 }), { maxLength: 3 }), fc.array(leaf, { maxLength: 3 }));
const value = fc.oneof(leaf, list, fc.dictionary(fc.constantFrom('repositories', 'include'), fc.oneof(list, leaf)));
const keys = fc.constantFrom('modules', 'default', 'repositories', 'include', 'type', 'path', 'name', 'branch', 'other');
const doc = fc.oneof(fc.dictionary(keys, value, { maxKeys: 6 }), value);

describe('config shape predicates', () => {
  for (const [name, { quick, ajv }] of Object.entries(SHAPES_FOR_TEST)) {
    it(`${name}: the plain predicate agrees with the Ajv schema`, () => {
      fc.assert(
        fc.property(doc, (v) => {
          expect(quick(v)).toBe(ajv()(v));
        }),
        { numRuns: 3000 },
      );
    });
  }
  it('typical documents are accepted', () => {
    expect(SHAPES_FOR_TEST.config.quick({ modules: { repositories: ['a'], x: { type: 'direct-dir', path: 'p' } }, default: ['x'] })).toBe(true);
    expect(SHAPES_FOR_TEST.entry.quick({ type: 'git', path: 'p', name: 'n', branch: 'b' })).toBe(true);
    expect(SHAPES_FOR_TEST.entry.quick({ type: 'git', path: 'p', name: 'n' })).toBe(false);
  });
});
