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

// The same shapes as plain predicates: a valid document (the usual case) is accepted without
// loading Ajv and compiling its schemas (over 0.1 s of a build that evaluates module.py files);
// an invalid one is described by Ajv, exactly as before.
type Json = unknown;
const isObject = (v: Json): v is Record<string, Json> => typeof v === 'object' && v !== null && !Array.isArray(v);
const has = (o: Record<string, Json>, k: string): boolean => Object.prototype.hasOwnProperty.call(o, k);
const isStringList = (v: Json): boolean => Array.isArray(v) && v.every((x) => typeof x === 'string');
const optional = (o: Record<string, Json>, k: string, ok: (v: Json) => boolean): boolean => !has(o, k) || ok(o[k]);

function isIncludeShape(v: Json): boolean {
  return isObject(v) && optional(v, 'repositories', isStringList) && optional(v, 'include', isStringList);
}

function isConfigShape(v: Json): boolean {
  return isObject(v) && has(v, 'modules') && isIncludeShape(v['modules']) && optional(v, 'default', isStringList);
}

function isEntryShape(v: Json): boolean {
  if (!isObject(v) || !has(v, 'type') || !has(v, 'path')) return false;
  const str = (x: Json): boolean => typeof x === 'string';
  if (!['type', 'path', 'name', 'branch'].every((k) => optional(v, k, str))) return false;
  if (v['type'] !== 'direct-dir' && !has(v, 'name')) return false;
  return v['type'] !== 'git' || has(v, 'branch');
}

const quick = new Map<() => ValidateFunction, (v: Json) => boolean>([
  [validateConfigDoc, isConfigShape],
  [validateIncludeDoc, isIncludeShape],
  [validateEntry, isEntryShape],
]);

function check(get: () => ValidateFunction, value: unknown, doc: JsonDocument, base: Array<string | number>, prefix: string): void {
  if (quick.get(get)?.(value)) return;
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

/** For tests: each shape as a plain predicate and as the Ajv schema it must agree with. */
export const SHAPES_FOR_TEST = {
  config: { quick: isConfigShape, ajv: validateConfigDoc },
  include: { quick: isIncludeShape, ajv: validateIncludeDoc },
  entry: { quick: isEntryShape, ajv: validateEntry },
} as const;
