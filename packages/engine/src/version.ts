/** The engine version; part of every cache key, so a new engine never reuses old results. */
export const ENGINE_VERSION = '0.1.0';
