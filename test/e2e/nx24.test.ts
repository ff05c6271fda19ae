/** The Nx e2e suite (test/e2e/nxSuite.ts) on Nx 24 (the newest major), in its own workspace. */
// @ts-expect-error -- plain ESM helper shared with the benchmark
import { NX_MATRIX } from '../../tools/nxws/workspace.mjs';
import { nxSuite, type NxVersions } from './nxSuite.js';

nxSuite((NX_MATRIX as NxVersions[]).find((v) => v.nx.startsWith('24.')) as NxVersions, { boot: false });
