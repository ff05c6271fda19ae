/** The Nx e2e suite (test/e2e/nxSuite.ts) on Nx 21 (the oldest major in the peer range), in its own workspace. */
// @ts-expect-error -- plain ESM helper shared with the benchmark
import { NX_MATRIX } from '../../tools/nxws/workspace.mjs';
import { nxSuite, type NxVersions } from './nxSuite.js';

nxSuite((NX_MATRIX as NxVersions[]).find((v) => v.nx.startsWith('21.')) as NxVersions, { boot: false });
