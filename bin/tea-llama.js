#!/usr/bin/env node
'use strict';
// The `tea-llama` command: the CLI is compiled TypeScript in dist/cjs/cli (npm run build:ts).
let cli;
try {
  cli = require('../dist/cjs/cli/main.js');
} catch (error) {
  if (error && error.code === 'MODULE_NOT_FOUND' && String(error.message).includes('cli/main.js')) {
    process.stderr.write('tea-llama: the package is not built: run `npm run build:ts` in its folder\n');
    process.exit(1);
  }
  throw error;
}
cli.run();
