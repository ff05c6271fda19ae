/**
 * `osvb manifest`: the fully expanded guest → host list of a build's usr (or bootfs)
 * manifest, as OSv's image tools see it (defines, `/**`, `/&/`, symlink resolution).
 */
import type { WalkOrder } from '../fsutil/index.js';
import { expandManifestEntries, parseManifest, type ExpandedEntry } from '../manifest/index.js';

export function expandGeneratedManifest(text: string, file: string, buildPath: string, libgccSDir: string, walkOrder: WalkOrder): ExpandedEntry[] {
  return expandManifestEntries(parseManifest(text, file), {
    cwd: buildPath,
    walkOrder,
    defines: { libgcc_s_dir: libgccSDir },
    file,
  });
}
