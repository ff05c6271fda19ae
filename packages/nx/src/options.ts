/**
 * The plugin's options (nx.json `plugins[].options`), checked by hand against this shape so a
 * misspelt key is named in the error (as esbuild does), not silently ignored.
 */
export interface ImageOptions {
  /**
   * `osvb build` words: image=…, fs=…, mode=…, export=…, NAME=value, … (default: none, i.e.
   * image=default). Relative export_dir= and oci= paths are taken from the OSv base.
   */
  words?: string[];
  /**
   * A prebuilt OSv kernel (a kernel build's output directory, or a loader.img), relative to the
   * workspace root: the image target also writes usr.img, and a `run` target boots it.
   */
  kernel?: string;
  /** usr.img as qcow2 (default) or raw (usr.raw). */
  imageFormat?: 'qcow2' | 'raw';
}

export interface OsvNxPluginOptions {
  /** Workspace-relative OSv bases to turn into projects (default: every config.json with a "modules" map). */
  bases?: string[];
  /** Prefix of module project names (default: none; module projects are named after their module). */
  projectPrefix?: string;
  /** Name of the module and image build targets (default "build"). */
  buildTargetName?: string;
  /** Image projects: project name → image options (default: one project "image" with no words); one per base. */
  images?: Record<string, ImageOptions>;
  /** osv-build's cache directory (default: $OSVB_CACHE_DIR, else <base>/.osvb/cache). */
  cacheDir?: string;
  /**
   * Each module an Nx task of its own (default false): the image target depends on its modules'
   * build targets (`dependsOn: ['^build']`) and only assembles the image, so Nx caches (and Nx
   * Agents distribute) module builds one by one. Default: the image task builds its modules itself.
   */
  moduleTasks?: boolean;
}

export interface NormalizedOptions {
  bases: string[] | undefined;
  projectPrefix: string;
  buildTargetName: string;
  images: Array<{ name: string; words: string[]; kernel?: string; imageFormat?: 'qcow2' | 'raw' }>;
  cacheDir: string | undefined;
  moduleTasks: boolean;
}

const KEYS = ['bases', 'projectPrefix', 'buildTargetName', 'images', 'cacheDir', 'moduleTasks'];
const IMAGE_KEYS = ['words', 'kernel', 'imageFormat'];

function fail(message: string): never {
  throw new Error(`@osv-build/nx: invalid options in nx.json: ${message}`);
}

function stringArray(v: unknown, where: string): string[] {
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) fail(`"${where}" must be an array of strings`);
  return v as string[];
}

function optionalString(v: unknown, where: string): string | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'string' || v === '') fail(`"${where}" must be a non-empty string`);
  return v;
}

export function normalizeOptions(raw: unknown): NormalizedOptions {
  const o = (raw ?? {}) as Record<string, unknown>;
  if (typeof o !== 'object' || Array.isArray(o)) fail('options must be an object');
  for (const k of Object.keys(o)) if (!KEYS.includes(k)) fail(`unknown option "${k}" (known: ${KEYS.join(', ')})`);
  const images: NormalizedOptions['images'] = [];
  const rawImages = o['images'] ?? { image: {} };
  if (typeof rawImages !== 'object' || rawImages === null || Array.isArray(rawImages)) fail('"images" must be an object: project name → { words }');
  for (const [name, v] of Object.entries(rawImages as Record<string, unknown>)) {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) fail(`"images.${name}" must be an object`);
    const io = v as Record<string, unknown>;
    for (const k of Object.keys(io)) if (!IMAGE_KEYS.includes(k)) fail(`unknown option "images.${name}.${k}" (known: ${IMAGE_KEYS.join(', ')})`);
    const kernel = optionalString(io['kernel'], `images.${name}.kernel`);
    const format = io['imageFormat'];
    if (format !== undefined && format !== 'qcow2' && format !== 'raw') fail(`"images.${name}.imageFormat" must be "qcow2" or "raw"`);
    images.push({
      name,
      words: io['words'] === undefined ? [] : stringArray(io['words'], `images.${name}.words`),
      ...(kernel ? { kernel } : {}),
      ...(format ? { imageFormat: format } : {}),
    });
  }
  const moduleTasks = o['moduleTasks'];
  if (moduleTasks !== undefined && typeof moduleTasks !== 'boolean') fail('"moduleTasks" must be true or false');
  const prefix = o['projectPrefix'];
  if (prefix !== undefined && typeof prefix !== 'string') fail('"projectPrefix" must be a string');
  return {
    bases: o['bases'] === undefined ? undefined : stringArray(o['bases'], 'bases'),
    projectPrefix: (prefix as string | undefined) ?? '',
    buildTargetName: optionalString(o['buildTargetName'], 'buildTargetName') ?? 'build',
    images,
    cacheDir: optionalString(o['cacheDir'], 'cacheDir'),
    moduleTasks: moduleTasks ?? false,
  };
}
