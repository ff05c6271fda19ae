/**
 * JSON files read with positions kept, so every error can name file, line and column.
 * jsonc-parser (Microsoft's, used by VS Code) gives a syntax tree with offsets; comments and
 * trailing commas are rejected because OSv reads these files with Python's strict `json`.
 */
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import type { Node as JsonNode, ParseError } from 'jsonc-parser';

// Loaded on first use: a cached build never parses config.json.
const require = createRequire(import.meta.url);
let jsoncModule: typeof import('jsonc-parser') | undefined;
function jsonc(): typeof import('jsonc-parser') {
  return (jsoncModule ??= require('jsonc-parser') as typeof import('jsonc-parser'));
}
import { OsvbError, lineColumnAt, type OsvbErrorCode, type SourceLocation } from '../errors/index.js';

export type { JsonNode };

export interface JsonDocument {
  file: string;
  text: string;
  root: JsonNode;
  value: unknown;
}

export function readJsonDocument(file: string, missingCode: OsvbErrorCode, what: string): JsonDocument {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new OsvbError(missingCode, `cannot read ${what} ${file}: ${err.code === 'ENOENT' ? 'no such file' : err.message}`, {
      location: { file },
    });
  }
  return parseJsonDocument(file, text);
}

export function parseJsonDocument(file: string, text: string): JsonDocument {
  // Strict JSON (what OSv's Python `json` reads) parses natively; the syntax tree for error
  // locations is made only when an error needs one (jsonc-parser takes ~25 ms to load).
  let value: unknown;
  let parsed = false;
  try {
    value = JSON.parse(text);
    parsed = true;
  } catch {
    /* described with file, line and column below */
  }
  if (parsed) {
    let root: JsonNode | undefined;
    return {
      file,
      text,
      value,
      get root(): JsonNode {
        return (root ??= jsonc().parseTree(text, [], { disallowComments: true, allowTrailingComma: false, allowEmptyContent: false }) as JsonNode);
      },
    };
  }
  const errors: ParseError[] = [];
  const root = jsonc().parseTree(text, errors, { disallowComments: true, allowTrailingComma: false, allowEmptyContent: false });
  const first = errors[0];
  if (first || !root) {
    const offset = first?.offset ?? 0;
    const { line, column } = lineColumnAt(text, offset);
    const what = first ? describeParseError(first.error) : 'empty file';
    throw new OsvbError('OSVB_CONFIG_SYNTAX', `invalid JSON: ${what}`, { location: { file, line, column } });
  }
  return { file, text, root, value: jsonc().getNodeValue(root) };
}

function describeParseError(code: number): string {
  const name = jsonc().printParseErrorCode(code as Parameters<ReturnType<typeof jsonc>['printParseErrorCode']>[0]);
  const words: Record<string, string> = {
    InvalidSymbol: 'unexpected character',
    InvalidNumberFormat: 'invalid number',
    PropertyNameExpected: 'expected a property name in double quotes',
    ValueExpected: 'expected a value',
    ColonExpected: "expected ':'",
    CommaExpected: "expected ','",
    CloseBraceExpected: "expected '}'",
    CloseBracketExpected: "expected ']'",
    EndOfFileExpected: 'unexpected content after the end of the document',
    InvalidCommentToken: 'comments are not allowed in JSON',
    UnexpectedEndOfComment: 'comments are not allowed in JSON',
    UnexpectedEndOfString: 'unterminated string',
    UnexpectedEndOfNumber: 'invalid number',
    InvalidUnicode: 'invalid unicode escape',
    InvalidEscapeCharacter: 'invalid escape character',
    InvalidCharacter: 'invalid character in string',
  };
  return words[name] ?? name;
}

/** Location of the value at a JSON path (or the closest existing parent). */
export function locationOf(doc: JsonDocument, jsonPath: ReadonlyArray<string | number>): SourceLocation {
  let p = [...jsonPath];
  for (;;) {
    const node = jsonc().findNodeAtLocation(doc.root, p);
    if (node) {
      const { line, column } = lineColumnAt(doc.text, node.offset);
      return { file: doc.file, line, column };
    }
    if (p.length === 0) return { file: doc.file };
    p = p.slice(0, -1);
  }
}
