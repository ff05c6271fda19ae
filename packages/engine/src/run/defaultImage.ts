/** The image `osvb run` boots when none is named: the one `osvb build` writes with the same words and options. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { OsvbError } from '../errors/index.js';
import { resolveBuild } from '../pipeline/index.js';

export interface DefaultImageOptions {
  /** scripts/build words (`mode=debug`, `fs=rofs`, …): only the build path depends on them. */
  words: readonly string[];
  osvBase?: string;
  buildPath?: string;
  env?: Readonly<Record<string, string | undefined>>;
}

/**
 * `<build path>/usr.img`, else `<build path>/usr.raw` when only that exists — the build path
 * resolved exactly as `osvb build` resolves it ($OSV_BASE, $OSV_BUILD_PATH, `build/<mode>`),
 * without evaluating anything (and without looking for gcc).
 */
export function defaultRunImage(opts: DefaultImageOptions): string {
  let buildPath: string;
  try {
    ({ buildPath } = resolveBuild({
      words: opts.words,
      ...(opts.osvBase !== undefined ? { osvBase: opts.osvBase } : {}),
      ...(opts.buildPath !== undefined ? { buildPath: opts.buildPath } : {}),
      ...(opts.env ? { env: opts.env } : {}),
      libgccSDir: '',
    }));
  } catch (e) {
    if (e instanceof OsvbError && e.code === 'OSVB_CONFIG_MISSING') {
      throw new OsvbError(e.code, `${e.message}, so there is no default image`, {
        hint: 'name the image (osvb run IMAGE), or run in an OSv base (or pass --osv-base DIR)',
      });
    }
    throw e;
  }
  const img = path.join(buildPath, 'usr.img');
  const raw = path.join(buildPath, 'usr.raw');
  if (fs.existsSync(img) || !fs.existsSync(raw)) {
    if (!fs.existsSync(img)) {
      throw new OsvbError('OSVB_RUN_IMAGE', `${img}: no such image (nor usr.raw beside it)`, {
        hint: 'build it first (osvb build fs=rofs --kernel DIR, with the same words and options), or name an image: osvb run IMAGE',
      });
    }
    return img;
  }
  return raw;
}
