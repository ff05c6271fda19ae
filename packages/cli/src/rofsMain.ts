/**
 * `osvb rofs …` on its own: the bin loads this (bundled as dist/osvb-rofs.mjs, a third of the
 * full CLI) for the rofs command, which is run once per image by OSv-style Makefiles and scripts,
 * where the start-up is a visible part of the time.
 */
import { reportingErrors } from './reporting.js';
import { runRofs } from './rofs.js';

export async function main(argv: string[]): Promise<number> {
  return reportingErrors(argv, () => runRofs(argv.slice(1)));
}
