#!/usr/bin/env node
// Builds the addon (and optionally llama.cpp's reference tools) from source with cmake-js.
//
//   node scripts/build-native.mjs [--tools] [--if-missing] [--dynamic]
//
//   --dynamic  the prebuild layout (TEA_DYNAMIC_BACKENDS) into build/prebuild: see scripts/prebuild.mjs
//
// Environment (all optional):
//   TEA_BACKEND      cpu (default) | cuda | vulkan | metal
//   TEA_CPU_PROFILE  portable (default) | native | custom      (see CMakeLists.txt)
//   TEA_CMAKE_ARGS   extra CMake definitions, e.g. "-DGGML_AVX512=ON -DGGML_CUDA_F16=ON"
//   LLAMA_CPP_DIR    your own llama.cpp checkout instead of the pinned vendor/llama.cpp
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { fetchLlamaCpp } from './fetch-llama-cpp.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const args = new Set(process.argv.slice(2));
const withTools = args.has('--tools');
const dynamic = args.has('--dynamic');
const outDir = dynamic ? join('build', 'prebuild') : 'build';
const exe = process.platform === 'win32' ? '.exe' : '';
const addonPath = join(root, outDir, 'Release', 'tea_llama.node');
const toolPaths = ['llama-server', 'llama-bench', 'llama-quantize', 'llama-completion', 'llama-tokenize', 'tea_core_tests'].map((t) =>
  join(root, 'build', 'tools', t + exe),
);

// llama.cpp's rpc-server comes with every build (tea-llama rpc-server); in the prebuild layout it sits beside the addon.
const rpcServerPath = join(root, outDir, dynamic ? 'Release' : 'tools', 'ggml-rpc-server' + exe);
if (args.has('--if-missing') && existsSync(addonPath) && existsSync(rpcServerPath) && (!withTools || toolPaths.every((p) => existsSync(p)))) {
  process.exit(0);
}

const backendFlags = {
  cpu: [],
  cuda: ['-DGGML_CUDA=ON'],
  vulkan: ['-DGGML_VULKAN=ON'],
  metal: ['-DGGML_METAL=ON', '-DGGML_METAL_EMBED_LIBRARY=ON'],
};
const backend = (process.env.TEA_BACKEND || 'cpu').toLowerCase();
if (!backendFlags[backend]) {
  console.error(`[tea-llama] TEA_BACKEND must be one of ${Object.keys(backendFlags).join(', ')} (got '${backend}')`);
  process.exit(1);
}

let source;
try {
  source = fetchLlamaCpp();
} catch (err) {
  console.error(`[tea-llama] ${err.message}`);
  process.exit(1);
}

const defines = [
  `-DTEA_LLAMA_CPP_DIR=${source}`,
  `-DTEA_BUILD_TOOLS=${withTools && !dynamic ? 'ON' : 'OFF'}`,
  `-DTEA_DYNAMIC_BACKENDS=${dynamic ? 'ON' : 'OFF'}`,
  `-DTEA_CPU_PROFILE=${process.env.TEA_CPU_PROFILE || 'portable'}`,
  ...backendFlags[backend],
  ...(process.env.TEA_CMAKE_ARGS || '').split(/\s+/).filter(Boolean),
];
// cmake-js takes CMake definitions as --CDNAME=VALUE. `configure` then `build` rather than `compile`: compile
// skips configuring an existing tree (ignoring changed options) and wipes the tree when a build fails.
const cmakeDefines = defines.map((d) => `--CD${d.replace(/^-D/, '')}`);
const cmakeJs = join(dirname(createRequire(import.meta.url).resolve('cmake-js/package.json')), 'bin', 'cmake-js');

console.error(`[tea-llama] building from source (backend ${backend}${dynamic ? ', prebuild layout' : ''}${withTools ? ', with llama.cpp tools' : ''})`);
const started = Date.now();
const env = {
  ...process.env,
  CMAKE_BUILD_PARALLEL_LEVEL: process.env.CMAKE_BUILD_PARALLEL_LEVEL || String(availableParallelism()),
  // ccache keys on absolute paths: relative to the checkout, clones in other folders share cached objects.
  CCACHE_BASEDIR: process.env.CCACHE_BASEDIR || root,
};
const run = (command, extra) =>
  spawnSync(process.execPath, [cmakeJs, command, '--out', outDir, ...extra], { cwd: root, stdio: 'inherit', env }).status;
const status = run('configure', cmakeDefines) || run('build', []);
if (status !== 0) {
  console.error('[tea-llama] native build failed; see the CMake output above. README.md lists what each backend needs.');
  process.exit(status ?? 1);
}
console.error(`[tea-llama] native build done in ${((Date.now() - started) / 1000).toFixed(0)} s`);
