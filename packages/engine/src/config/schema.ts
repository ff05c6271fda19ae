/**
 * Shape checks for config.json and include files, with Ajv (JSON Schema), mapped back to
 * file:line:column through the JSON syntax tree. Module entries are checked when a module is
 * looked up, as OSv does: an unused broken entry never fails a build.
 */
import { createRequire } from 'node:module';
import type { Ajv as AjvClass, ErrorObject, ValidateFunction } from 'ajv';
import { OsvbError } from '../errors/index.js';
import { locationOf, type JsonDocument } from './json.js';

// Ajv is loaded and the schemas compiled only when a config is actually checked: a cached
// (no-op) build never pays for it.
const require = createRequire(import.meta.url);
let ajvInstance: AjvClass | undefined;
function ajv(): AjvClass {
  if (!ajvInstance) {
    const { Ajv } = require('ajv') as typeof import('ajv');
    ajvInstance = new Ajv({ allErrors: false, strict: true, strictRequired: false });
  }
  return ajvInstance;
}
function lazy(schema: object): () => ValidateFunction {
  let fn: ValidateFunction | undefined;
  return () => (fn ??= ajv().compile(schema));
}

const stringList = { type: 'array', items: { type: 'string' } } as const;

const validateConfigDoc = lazy({
  type: 'object',
  required: ['modules'],
  properties: {
    modules: {
      type: 'object',
      properties: { repositories: stringList, include: stringList },
    },
    default: stringList,
  },
});

const validateIncludeDoc = lazy({
  type: 'object',
  properties: { repositories: stringList, include: stringList },
});

const validateEntry = lazy({
  type: 'object',
  required: ['type', 'path'],
  properties: {
    type: { type: 'string' },
    path: { type: 'string' },
    name: { type: 'string' },
    branch: { type: 'string' },
  },
  allOf: [
    { if: { properties: { type: { not: { const: 'direct-dir' } } } }, then: { required: ['name'] } },
    { if: { properties: { type: { const: 'git' } } }, then: { required: ['branch'] } },
  ],
});

function describe(err: ErrorObject): { path: Array<string | number>; text: string } {
  const path = err.instancePath
    .split('/')
    .slice(1)
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'))
    .map((s) => (/^\d+$/.test(s) ? Number(s) : s));
  const at = path.length ? `"${path.join('.')}"` : 'the document';
  let text: string;
  switch (err.keyword) {
    case 'required':
      text = `${at} needs the key "${String(err.params['missingProperty'])}"`;
      break;
    case 'type':
      text = `${at} must be ${err.params['type'] === 'array' ? 'a list' : `a ${String(err.params['type'])}`}`;
      break;
    default:
      text = `${at} ${err.message ?? 'is invalid'}`;
  }
  return { path, text };
}

function check(get: () => ValidateFunction, value: unknown, doc: JsonDocument, base: Array<string | number>, prefix: string): void {
  const fn = get();
  if (fn(value)) return;
  const err = fn.errors?.find((e) => e.keyword !== 'if') ?? fn.errors?.[0];
  if (!err) return;
  const { path, text } = describe(err);
  throw new OsvbError('OSVB_CONFIG_SCHEMA', `${prefix}${text}`, { location: locationOf(doc, [...base, ...path]) });
}

export function checkConfigDocument(doc: JsonDocument): void {
  check(validateConfigDoc, doc.value, doc, [], '');
}

export function checkIncludeDocument(doc: JsonDocument): void {
  check(validateIncludeDoc, doc.value, doc, [], 'include file: ');
}

export const MODULE_TYPES: readonly string[] = ['direct-dir', 'dir', 'git', 'svn'];

export function checkModuleEntry(name: string, value: unknown, doc: JsonDocument, base: Array<string | number>): void {
  // An unknown type first: the keys it would need ("name", …) are beside the point then.
  const type = (value as { type?: unknown } | null)?.type;
  if (typeof type === 'string' && !MODULE_TYPES.includes(type)) {
    throw new OsvbError('OSVB_CONFIG_SCHEMA', `module "${name}": ${type} is unknown type (known: ${MODULE_TYPES.join(', ')})`, {
      location: locationOf(doc, [...base, 'type']),
      hint: 'fix the "type" of the module entry',
    });
  }
  check(validateEntry, value, doc, base, `module "${name}": `);
}
