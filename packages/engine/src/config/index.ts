export { loadOsvConfig, type OsvConfig, type LocatedModule, type ModuleEntry, type LoadConfigOptions } from './config.js';
export { ensureModuleDir, fetchCommand } from './fetch.js';
export { parseJsonDocument, readJsonDocument, locationOf, type JsonDocument } from './json.js';
