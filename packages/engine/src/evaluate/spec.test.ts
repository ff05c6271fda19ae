import { describe, expect, it } from 'vitest';
import { OsvbError } from '../errors/index.js';
import { parseImageSpec, type ParseSpecOptions } from './spec.js';
import { error } from '../testing/index.js';

const images: Record<string, string> = { default: '/osv/images/default.py', empty: '/osv/images/empty.py', 'a,,b': '/osv/images/a,,b.py' };
const asked: string[] = [];
const opts: ParseSpecOptions = {
  imageConfigFor: (name) => {
    asked.push(name);
    return images[name];
  },
  defaults: ['d1'],
};

const items = (raw: string, o: Partial<ParseSpecOptions> = {}) => {
  const r = parseImageSpec(raw, { ...opts, ...o });
  if (r.spec.kind !== 'modules') throw new Error('expected a module list');
  return r.spec.items.map((i) => (i.config === null ? i.name : `${i.name}.${i.config}`));
};


describe('parseImageSpec (§4.2–4.3)', () => {
  it('an images/<name>.py file selects image-config mode, with or without !', () => {
    asked.length = 0;
    expect(parseImageSpec('!default', opts)).toEqual({
      spec: { kind: 'image', file: '/osv/images/default.py' },
      selected: [],
      noDefaults: true,
      name: 'default',
    });
    expect(asked).toEqual(['default']);
    expect(parseImageSpec('empty', opts)).toEqual({ spec: { kind: 'image', file: '/osv/images/empty.py' }, selected: [], noDefaults: false, name: 'empty' });
  });

  it('checks for an image file before splitting the list', () => {
    expect(parseImageSpec('!a,,b', opts).spec).toEqual({ kind: 'image', file: '/osv/images/a,,b.py' });
  });

  it('case 37: a module list gets the config defaults first', () => {
    const r = parseImageSpec('a,b', opts);
    expect(r.spec).toEqual({
      kind: 'modules',
      items: [
        { name: 'd1', config: null },
        { name: 'a', config: null },
        { name: 'b', config: null },
      ],
    });
    expect(r.selected).toEqual(['a', 'b']);
    expect(r.noDefaults).toBe(false);
    expect(r.name).toBe('a,b');
  });

  it('case 38: ! drops the defaults', () => {
    const r = parseImageSpec('!a,b', opts);
    expect(items('!a,b')).toEqual(['a', 'b']);
    expect(r.noDefaults).toBe(true);
    expect(r.name).toBe('a,b');
    expect(r.selected).toEqual(['a', 'b']);
  });

  it('no defaults in config means none', () => {
    expect(items('a', { defaults: undefined })).toEqual(['a']);
    expect(items('a', { defaults: [] })).toEqual(['a']);
    expect(items('a', { defaults: ['x', 'y.fg'] })).toEqual(['x', 'y.fg', 'a']);
  });

  it('cases 39–43: name.config splits at the first dot; an empty config is kept', () => {
    const r = parseImageSpec('!a.fg,c,a.fg.x,a.', opts);
    expect(r.spec).toEqual({
      kind: 'modules',
      items: [
        { name: 'a', config: 'fg' },
        { name: 'c', config: null },
        { name: 'a', config: 'fg.x' },
        { name: 'a', config: '' },
      ],
    });
    expect(r.selected).toEqual(['a.fg', 'c', 'a.fg.x', 'a.']);
  });

  it('keeps repeated items (require_running decides about them)', () => {
    expect(items('!a,a.fg,a')).toEqual(['a', 'a.fg', 'a']);
    expect(items('d1,a')).toEqual(['d1', 'd1', 'a']);
  });

  it('case 44 (deliberate difference): -x removes x, from the defaults or the list', () => {
    expect(items('a,-d1')).toEqual(['a']);
    expect(items('!a,-a')).toEqual([]);
    expect(items('-b,a,b,c')).toEqual(['d1', 'a', 'c']);
    expect(parseImageSpec('a,-d1', opts).selected).toEqual(['a', '-d1']);
  });

  it('-x also removes x.config items', () => {
    expect(items('!a.fg,b,-a')).toEqual(['b']);
    expect(items('!a.fg,a,b,-a.fg')).toEqual(['a', 'b']);
  });

  it('-x fails only when x was never enabled', () => {
    const e = error(() => parseImageSpec('!a,-zzz', opts));
    expect(e.code).toBe('OSVB_IMAGE_SPEC');
    expect(e.message).toBe('Attempt to disable module zzz but not enabled');
    // With ! the config defaults are not enabled either.
    expect(error(() => parseImageSpec('!a,-d1', opts)).message).toBe('Attempt to disable module d1 but not enabled');
    // Disabling twice is fine; disabling a disabled item's name is not enabling it.
    expect(items('a,-a,-a')).toEqual(['d1']);
    expect(error(() => parseImageSpec('!-a', opts)).message).toBe('Attempt to disable module a but not enabled');
  });

  it('case 45: empty items and empty specs are OSVB_IMAGE_SPEC', () => {
    for (const raw of ['', '!', '!a,,c', 'a,', ',a', 'a,-', '-']) {
      const e = error(() => parseImageSpec(raw, opts));
      expect(e.code, raw).toBe('OSVB_IMAGE_SPEC');
      expect(e.exitCode).toBe(2);
    }
    expect(error(() => parseImageSpec('!a,,b,c', { ...opts, imageConfigFor: () => undefined })).message).toContain('item 2');
  });
});
