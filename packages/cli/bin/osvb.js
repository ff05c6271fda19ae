#!/usr/bin/env node
// The bundled CLI (dist/osvb.mjs) starts faster; dist/main.js is the same code unbundled.
let cli;
try {
  cli = await import('../dist/osvb.mjs');
} catch (e) {
  if (e?.code !== 'ERR_MODULE_NOT_FOUND') throw e;
  cli = await import('../dist/main.js');
}
process.exitCode = await cli.main(process.argv.slice(2));
