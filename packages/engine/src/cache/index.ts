export { LocalCache, CorruptEntryError, type CacheEntryStats } from './local.js';
export { withLock } from './lock.js';
export { INLINE_BLOB_MAX, RemoteCache, remoteCacheConfig, type RemoteCacheConfig, type RemoteCacheMode, type RemoteCacheStats } from './remote.js';
