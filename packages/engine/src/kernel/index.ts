/** The OSv kernel: built from an OSv source tree as one cached node, or prebuilt (`--kernel`). */
export { isOsvSourceTree, kernelMakeWords, parseKernelWords, defaultMakefile, type KernelWords } from './detect.js';
export {
  runKernelNode,
  explainKernel,
  isDeliverable,
  KERNEL_NAMESPACE,
  KERNEL_K1_NAMESPACE,
  type KernelNodeInput,
  type KernelNodeResult,
  type KernelExplanation,
  type ExplainKernelInput,
  type KernelBuildKind,
} from './node.js';
export type { KernelProgress, KernelStage } from './make.js';
export type { KernelKeyInputs, Extras as KernelExtras } from './key.js';
export { KERNEL_BUILD_FILES, placePrebuiltKernel, type PlacedKernel } from './prebuilt.js';
