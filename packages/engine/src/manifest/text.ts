/** Reading manifest files the way Python does (UTF-8, universal newlines), with clear errors. */
import * as fs from 'node:fs';
import { OsvbError } from '../errors/index.js';
import { splitUniversalLines } from '../fsutil/index.js';

const utf8 = new TextDecoder('utf-8', { fatal: true });

export function decodeManifestText(file: string, bytes: Uint8Array): string {
  try {
    return utf8.decode(bytes);
  } catch {
    throw new OsvbError('OSVB_MANIFEST_ENCODING', 'manifest is not valid UTF-8 text', { location: { file } });
  }
}

export function readManifestLines(file: string): string[] {
  return splitUniversalLines(decodeManifestText(file, fs.readFileSync(file)));
}
