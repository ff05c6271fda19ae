export { stageA, type StageAInput } from './stageA.js';
export { parseManifest, isSkippedLine, type ManifestEntry } from './parse.js';
export { compilePattern, matchesPattern, checkPattern, hasInnerStarStar, type PatternMode } from './pattern.js';
export { expandFileMap, type FileMapOptions } from './filemap.js';
export { applyDefines, unsymlink, expandEntry, expandManifestEntries, classifyHost, type ExpandedEntry, type ExpandOptions, type EntryKind, type LinkReadObserver } from './expand.js';
export { readManifestLines, decodeManifestText } from './text.js';
export { expandFileMapCached, type FileMapCacheStore, type FileMapCacheEntry } from './filemapCache.js';
