#!/usr/bin/env node
// The clone's `npm install` step (the packed package has no install script: see scripts/pack-manifest.mjs):
// use a binary that loads (a matching prebuild, or an earlier local build); otherwise build the addon from
// source. Asking for a particular build forces a source build: TEA_BUILD_FROM_SOURCE=1, a TEA_BACKEND other
// than cpu, TEA_CPU_PROFILE or TEA_CMAKE_ARGS.
//
// A source build needs cmake-js and node-addon-api, which are optional peer dependencies (what sharp does): a
// user whose platform has a prebuild never installs them. A clone has them as devDependencies. When they are
// missing, this says which command installs them and builds.
import { spawnSync } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);

/** The command that builds the addon from source in a project that depends on tea-llama. */
const SOURCE_BUILD_COMMAND = 'npm install --save-dev cmake-js node-addon-api && npm explore tea-llama -- npm run build:native';

function binaryLoads() {
  try {
    require('node-gyp-build')(root);
    return true;
  } catch {
    return false;
  }
}

/** The build-from-source peers that cannot be resolved from the package's folder. */
function missingBuildTools() {
  return ['cmake-js', 'node-addon-api'].filter((name) => {
    try {
      require.resolve(`${name}/package.json`, { paths: [root] });
      return false;
    } catch {
      return true;
    }
  });
}

const env = process.env;
const forced =
  env.TEA_BUILD_FROM_SOURCE === '1' || (env.TEA_BACKEND && env.TEA_BACKEND !== 'cpu') || !!env.TEA_CPU_PROFILE || !!env.TEA_CMAKE_ARGS;
if (!forced && binaryLoads()) {
  console.error('[tea-llama] using the existing native binary');
  process.exit(0);
}
const missing = missingBuildTools();
if (missing.length > 0) {
  const why = forced ? 'a source build was requested' : `no prebuilt binary matches ${process.platform}-${process.arch}`;
  console.error(
    `[tea-llama] ${why}, and building from source needs ${missing.join(' and ')} (optional peer dependencies).\n` +
      `[tea-llama] Build it with: ${SOURCE_BUILD_COMMAND}\n` +
      '[tea-llama] (also needs git, CMake >= 3.19 and a C++17 compiler; see the README, Building from source)',
  );
  process.exit(1);
}
const result = spawnSync(process.execPath, [join(root, 'scripts', 'build-native.mjs')], { cwd: root, stdio: 'inherit' });
process.exit(result.status ?? 1);
