export { watchBuild, describeCycle, type WatchOptions, type WatchCycle } from './watch.js';
