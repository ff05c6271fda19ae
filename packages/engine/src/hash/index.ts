export { initHashing, digestBytes, digestString, digestValue, digestFile, canonicalJson, type Digest } from './digest.js';
export { StatCache, signatureOf, type FileSignature } from './statCache.js';
export { listModuleInputs, type InputFile, type ListedInputs } from './inputs.js';
