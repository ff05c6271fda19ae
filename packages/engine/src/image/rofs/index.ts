export {
  buildRofsTree,
  readRofsTree,
  readRofsManifest,
  checkRofsTree,
  rofsDir,
  rofsFileFrom,
  rofsTextProblem,
  ROFS_MAX_NAME,
  type RofsTree,
  type RofsNode,
  type RofsDir,
  type RofsFile,
  type RofsLink,
  type RofsOrigin,
  type RofsTreeOptions,
  type RofsStripOptions,
} from './tree.js';
export type { RofsSourceSignature } from './statBatch.js';
export { layoutRofs, type RofsLayout, type RofsLayoutFile } from './layout.js';
export { writeRofsImage, writeRofsImageFromManifest, defaultLayoutPath, type RofsCopier, type RofsWriteOptions, type RofsWriteStats } from './writer.js';
export { nativeCopier } from './nativeCopy.js';
export { RofsImage, listRofs, readRofsFile, extractRofs, type RofsSource, type RofsEntry, type RofsEntryKind, type RofsSuperblock } from './reader.js';
export { readLayoutDependencies, type LayoutDependencies } from './layoutFile.js';
