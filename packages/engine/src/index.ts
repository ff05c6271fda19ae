/** @osv-build/engine — public API. One folder per pipeline stage; each exports through its index. */
export * from './errors/index.js';
export * from './fsutil/index.js';
export * from './config/index.js';
export * from './evaluate/index.js';
export * from './graph/index.js';
export * from './build/index.js';
export * from './manifest/index.js';
export * from './image/index.js';
export * from './layers/index.js';
export * from './report/index.js';
export * from './hash/index.js';
export * from './cache/index.js';
export * from './pipeline/index.js';
export * from './watch/index.js';
export * from './run/index.js';
export { KERNEL_BUILD_FILES, placePrebuiltKernel, type PlacedKernel } from './kernel/prebuilt.js';
export * from './kernel/index.js';
export { ENGINE_VERSION } from './version.js';
