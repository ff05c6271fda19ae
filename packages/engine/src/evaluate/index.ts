export * from './types.js';
export { parseImageSpec, type ParsedImageSpec, type ParseSpecOptions } from './spec.js';
export { PythonWorker, WORKER_SCRIPT, workerErrorToOsvb, type WorkerHandlers, type WorkerOptions } from './worker.js';
export { resolveInterpreter } from './interpreter.js';
