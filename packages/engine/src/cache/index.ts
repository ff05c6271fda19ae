export { LocalCache, CorruptEntryError, type CacheEntryStats } from './local.js';
export { withLock } from './lock.js';
