export { generateOsvOutputs, writeOsvOutputs, type OsvOutputs, type OsvOutputsInput } from './osvOutputs.js';
export * from './rofs/index.js';
export * from './bootfs/index.js';
export * from './export/index.js';
export * from './oci/index.js';
export * from './disk/index.js';
