/**
 * What the image stage depended on, for the "nothing to do" memo (noopMemo.ts). rofs.img's
 * layout record already lists everything building the image looked at: every regular file's
 * source (with the stat signature it was trusted by), and the tree build's reads — directories
 * a `/**` walk listed, path kinds, links read, `.so` files stripped, the strip program, the
 * build directory's real path. Each becomes a stat signature in the memo; the image and its
 * record themselves too, so an image changed by anything else is rebuilt. Anything the record
 * cannot vouch for (a source too fresh to trust, no tree reads) leaves no memo.
 */
import * as path from 'node:path';
import { defaultLayoutPath, readLayoutDependencies } from '../image/index.js';
import { findOnPath } from '../fsutil/index.js';
import type { DependencyRecorder } from './noopMemo.js';
import type { ImageStageResult } from './images.js';

export interface ImageDependencyInput {
  osvBase: string;
  buildPath: string;
  env: Readonly<Record<string, string>>;
  images: ImageStageResult;
  /** A kernel took part in the build (prebuilt or an OSv source tree's). */
  kernel: boolean;
}

/** Add the image stage's dependencies to `deps`, or fail it with the reason none can be recorded. */
export function recordImageDependencies(deps: DependencyRecorder, input: ImageDependencyInput): void {
  const { images } = input;
  // The kernel node's inputs (a source tree, a prebuilt directory) are not fingerprinted here.
  if (input.kernel) return deps.fail('a kernel is part of the build');
  if (images.exported || images.oci || images.disk) return deps.fail('export and OCI outputs are not fingerprinted');
  if (!images.rofs) return;
  if (!images.rofs.written) return deps.fail('rofs.img was not written');
  // BUILD/fstab and what it was made from.
  deps.add(path.join(input.buildPath, 'fstab'), false);
  for (const name of ['fstab', 'fstab_ext', 'fstab_rofs']) deps.add(path.join(input.osvBase, 'static', 'etc', name));
  const image = path.join(input.buildPath, 'rofs.img');
  const layout = defaultLayoutPath(image);
  deps.add(image, false);
  // Replaced whole (temp file + rename), never edited in place: trusted at any age.
  deps.add(layout, false, true);
  const rec = readLayoutDependencies(layout);
  if (!rec) return deps.fail('rofs.img has no layout record');
  if (!rec.tree) return deps.fail("rofs.img's layout record has no tree reads");
  for (const [source, signature] of rec.sources) {
    if (signature === null) return deps.fail(`${source} is too fresh to trust`);
    deps.add(source, true);
  }
  const { reads, seen } = rec.tree;
  for (let i = 0; i < reads.length; i++) {
    const key = reads[i] as string;
    const was = seen[i] as string;
    const p = key.slice(2);
    switch (key[0]) {
      case 'D':
      case 'C':
        // A listing or a stripped .so vouched for by a signature; '' = too fresh for that.
        if (was.startsWith('|')) return deps.fail(`${p} is too fresh to trust`);
        deps.add(p, true);
        break;
      case 'S':
      case 'E':
        deps.add(p, true);
        break;
      case 'L':
      case 'R':
        deps.add(p, false);
        break;
      case 'P': {
        // The strip program, as PATH finds it (PATH itself is part of the memo's environment).
        const program = p.includes('/') ? path.resolve(input.buildPath, p) : findOnPath(p, input.env['PATH']);
        if (program) deps.add(program, true);
        break;
      }
      case 'Q':
        // The build directory's real path. Not recorded itself (its mtime moves whenever a file
        // in it is replaced): re-pointing it or an ancestor would change the identity (inode)
        // of the files recorded in it (usr.manifest, rofs.img, the layout record).
        break;
      default:
        return deps.fail(`unknown read ${key}`);
    }
  }
}
