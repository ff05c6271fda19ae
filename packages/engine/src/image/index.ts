export { generateOsvOutputs, writeOsvOutputs, type OsvOutputs, type OsvOutputsInput } from './osvOutputs.js';
