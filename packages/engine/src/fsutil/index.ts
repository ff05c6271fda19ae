export * from './pypath.js';
export * from './walk.js';
export * from './atomic.js';
export * from './lazy.js';
export * from './stat.js';
