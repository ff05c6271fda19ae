/** The Nx e2e suite (test/e2e/nxSuite.ts) on the default Nx of the matrix (22.7), with the QEMU boot. */
// @ts-expect-error -- plain ESM helper shared with the benchmark
import { NX_MATRIX } from '../../tools/nxws/workspace.mjs';
import { nxSuite, type NxVersions } from './nxSuite.js';

nxSuite((NX_MATRIX as NxVersions[])[0] as NxVersions, { boot: true });
