export { LocalCache, CorruptEntryError, type CacheEntryStats } from './local.js';
export { withLock } from './lock.js';
export { RemoteCache, remoteCacheConfig, type RemoteCacheConfig, type RemoteCacheMode, type RemoteCacheStats } from './remote.js';
