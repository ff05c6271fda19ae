/**
 * `nx g @osv-build/nx:init` (also run by `nx add @osv-build/nx`): register the plugin in nx.json.
 * Idempotent: an existing registration is left as it is.
 */
import { formatFiles, readNxJson, updateNxJson, type Tree } from '@nx/devkit';

export interface InitGeneratorOptions {
  /** OSv bases (workspace-relative) to turn into projects; default: every config.json with "modules". */
  bases?: string[];
  /** Name of the image project (default "image"). */
  imageName?: string;
  /** `osvb build` words of the image project. */
  words?: string[];
  skipFormat?: boolean;
}

const PLUGIN = '@osv-build/nx';

export default async function initGenerator(tree: Tree, options: InitGeneratorOptions): Promise<void> {
  const nxJson = readNxJson(tree) ?? {};
  const plugins = nxJson.plugins ?? [];
  const registered = plugins.some((p) => (typeof p === 'string' ? p : p.plugin) === PLUGIN);
  if (!registered) {
    const pluginOptions: Record<string, unknown> = {};
    if (options.bases?.length) pluginOptions['bases'] = options.bases;
    if (options.imageName || options.words?.length) pluginOptions['images'] = { [options.imageName ?? 'image']: { words: options.words ?? [] } };
    plugins.push(Object.keys(pluginOptions).length ? { plugin: PLUGIN, options: pluginOptions } : PLUGIN);
    nxJson.plugins = plugins;
    updateNxJson(tree, nxJson);
  }
  if (!options.skipFormat) await formatFiles(tree);
}
