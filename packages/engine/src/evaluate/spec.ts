/**
 * Image specs (`image=…` / `modules=…` after scripts/build's rewriting): `!` drops config
 * defaults, `images/<spec>.py` selects image-config mode, otherwise a comma-separated module
 * list with `name.runconfig` and `-name` items (spec §4.2–4.3). Pure.
 */
import { OsvbError } from '../errors/index.js';
import type { EvaluationSpec } from './types.js';

export interface ParsedImageSpec {
  spec: EvaluationSpec;
  /** Items as written (OSv's `selected_modules`, used by `--no-required`); empty for image configs. */
  selected: string[];
  noDefaults: boolean;
  /** The name after `!`, e.g. `default`. */
  name: string;
}

export interface ParseSpecOptions {
  /** `images/<name>.py` for a name, or undefined when it does not exist. */
  imageConfigFor(name: string): string | undefined;
  defaults: string[] | undefined;
}

export function parseImageSpec(raw: string, opts: ParseSpecOptions): ParsedImageSpec {
  if (raw === '') {
    throw new OsvbError('OSVB_IMAGE_SPEC', 'the image spec is empty', {
      hint: 'give image=NAME (an images/NAME.py config) or a module list such as image=mod1,mod2.runconfig',
    });
  }
  const noDefaults = raw.startsWith('!');
  const name = noDefaults ? raw.slice(1) : raw;
  const imageFile = opts.imageConfigFor(name);
  if (imageFile !== undefined) {
    return { spec: { kind: 'image', file: imageFile }, selected: [], noDefaults, name };
  }
  const selected = name.split(',');
  selected.forEach((item, i) => {
    if (item === '' || item === '-') {
      throw new OsvbError('OSVB_IMAGE_SPEC', `image spec "${raw}": item ${i + 1} is empty`, {
        hint: 'module lists are comma-separated names without empty items, e.g. a,b.fg,-c',
      });
    }
  });
  const moduleOf = (item: string): string => item.split('.', 1)[0] as string;
  const disabled = new Set(selected.filter((s) => s.startsWith('-')).map((s) => s.slice(1)));
  let names = [...(!noDefaults && opts.defaults ? opts.defaults : []), ...selected].filter((n) => !n.startsWith('-'));
  for (const d of disabled) {
    if (!names.some((n) => n === d || moduleOf(n) === d)) {
      throw new OsvbError('OSVB_IMAGE_SPEC', `Attempt to disable module ${d} but not enabled`, {
        hint: `"-${d}" removes a module that the config defaults or the list itself would add`,
      });
    }
  }
  names = names.filter((n) => !disabled.has(n) && !disabled.has(moduleOf(n)));
  const items = names.map((n) => {
    const dot = n.indexOf('.');
    return dot < 0 ? { name: n, config: null } : { name: n.slice(0, dot), config: n.slice(dot + 1) };
  });
  return { spec: { kind: 'modules', items }, selected, noDefaults, name };
}
