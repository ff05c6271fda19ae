/**
 * Typed events the engine emits; reporters (CLI, Nx executor) turn them into text.
 */
export type { BuildEvent, BuildOutputFile, Reporter } from './events.js';
import type { Reporter } from './events.js';

export const silentReporter: Reporter = () => {};
export { textReporter, jsonReporter, liveTerminal, progressMode, startLine, describeSpec, type ProgressMode, type TextReporterOptions } from './text.js';
