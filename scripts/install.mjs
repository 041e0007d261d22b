#!/usr/bin/env node
// `npm install` step: use a binary that loads (a matching prebuild, or an earlier local build); otherwise build
// the addon from source. Asking for a particular build forces a source build: TEA_BUILD_FROM_SOURCE=1, a
// TEA_BACKEND other than cpu, TEA_CPU_PROFILE or TEA_CMAKE_ARGS.
import { spawnSync } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);

function binaryLoads() {
  try {
    require('node-gyp-build')(root);
    return true;
  } catch {
    return false;
  }
}

const env = process.env;
const forced =
  env.TEA_BUILD_FROM_SOURCE === '1' || (env.TEA_BACKEND && env.TEA_BACKEND !== 'cpu') || !!env.TEA_CPU_PROFILE || !!env.TEA_CMAKE_ARGS;
if (!forced && binaryLoads()) {
  console.error('[tea-llama] using the existing native binary');
  process.exit(0);
}
const result = spawnSync(process.execPath, [join(root, 'scripts', 'build-native.mjs')], { cwd: root, stdio: 'inherit' });
process.exit(result.status ?? 1);
