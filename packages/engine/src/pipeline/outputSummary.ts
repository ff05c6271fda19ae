/** What a build leaves in the build path, for the closing lines of the CLI and the Nx executor. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { BuildOutputFile } from '../report/index.js';
import type { ImageStageResult } from './images.js';

/** The outputs users look for: OSv's text outputs, rofs.img, usr.img, an export or OCI directory. */
const TEXT_OUTPUTS = ['usr.manifest', 'bootfs.manifest', 'cmdline'];

function sizeOf(file: string): number | undefined {
  try {
    return fs.statSync(file).size;
  } catch {
    return undefined;
  }
}

export function summarizeOutputs(buildPath: string, written: readonly string[], images: ImageStageResult): BuildOutputFile[] {
  const files: BuildOutputFile[] = [];
  const changed = new Set(written.map((f) => path.resolve(f)));
  for (const name of TEXT_OUTPUTS) {
    const file = path.resolve(buildPath, name);
    const bytes = sizeOf(file);
    if (bytes !== undefined) files.push({ path: file, bytes, state: changed.has(file) ? 'written' : 'unchanged' });
  }
  const rofs = images.rofs;
  if (rofs?.written) {
    const file = path.resolve(buildPath, 'rofs.img');
    const bytes = sizeOf(file);
    const state = rofs.bytesWritten === 0 ? 'unchanged' : rofs.mode === 'in-place' ? 'updated' : 'written';
    if (bytes !== undefined) files.push({ path: file, bytes, state });
  }
  const disk = images.disk;
  if (disk) {
    const bytes = sizeOf(disk.file);
    const state = disk.mode === 'unchanged' ? 'unchanged' : disk.mode === 'in-place' ? 'updated' : 'written';
    const format = /\.raw$/.test(disk.file) ? 'raw' : 'qcow2';
    const wrote = disk.mode === 'in-place' ? `, ${disk.bytesWritten} bytes written` : '';
    if (bytes !== undefined) files.push({ path: path.resolve(disk.file), bytes, state, detail: `${format}, ${Math.round(disk.plan.virtualSize / (1024 * 1024))} MiB disk${wrote}` });
  }
  if (images.exported) files.push({ path: images.exported.dir, state: images.exported.changed ? 'updated' : 'unchanged', detail: 'export directory' });
  if (images.oci) {
    files.push({ path: images.oci.dir, state: images.oci.layersWritten ? 'updated' : 'unchanged', detail: `OCI layout, ${images.oci.layersWritten + images.oci.layersReused} layers` });
  }
  return files;
}
