// node-llama-cpp, installed on demand into a temporary folder from the npm registry: never a dependency of
// tea-llama. Only the package and its prebuilt CPU binary package for this platform are installed:
//   --omit=optional   skips the CUDA/Vulkan binary packages (hundreds of MB) listed as optional dependencies;
//                     the CPU package is named explicitly instead;
//   --ignore-scripts  skips its postinstall, which would fall back to downloading and building llama.cpp;
//   NODE_LLAMA_CPP_SKIP_DOWNLOAD=true  the package's own switch for the same, in case anything runs it.
// At run time worker.mjs calls getLlama({ gpu: false, build: 'never', skipDownload: true }): the prebuilt
// binary or an error, never a build.
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const NLC_VERSION = '3.22.1';

function binaryPackage() {
  const platform = { linux: 'linux', darwin: 'mac', win32: 'win' }[process.platform];
  if (!platform) return undefined;
  if (process.platform === 'darwin' && process.arch === 'arm64') return '@node-llama-cpp/mac-arm64-metal';
  return `@node-llama-cpp/${platform}-${process.arch}`;
}

function installedVersion(dir, name) {
  try {
    return JSON.parse(readFileSync(join(dir, 'node_modules', name, 'package.json'), 'utf8')).version;
  } catch {
    return undefined;
  }
}

/**
 * Returns the folder holding node_modules/node-llama-cpp@NLC_VERSION, installing it there first if needed.
 * The default folder is reused by later runs (it lives in the OS temporary folder).
 */
export async function ensureNodeLlamaCpp({ dir = join(tmpdir(), `tea-llama-bench-node-llama-cpp-${NLC_VERSION}`), log = () => {} } = {}) {
  const binary = binaryPackage();
  if (!binary) throw new Error(`node-llama-cpp ships no prebuilt binary for ${process.platform}-${process.arch}`);
  if (installedVersion(dir, 'node-llama-cpp') === NLC_VERSION && installedVersion(dir, binary) === NLC_VERSION) return dir;
  mkdirSync(dir, { recursive: true });
  log(`installing node-llama-cpp@${NLC_VERSION} and ${binary} into ${dir}`);
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  const args = [
    'install', '--prefix', dir, '--no-save', '--omit=optional', '--ignore-scripts', '--no-audit', '--no-fund', '--loglevel=error',
    `node-llama-cpp@${NLC_VERSION}`, `${binary}@${NLC_VERSION}`,
  ];
  await new Promise((resolve, reject) => {
    execFile(npm, args, { env: { ...process.env, NODE_LLAMA_CPP_SKIP_DOWNLOAD: 'true' }, maxBuffer: 16 * 2 ** 20, shell: process.platform === 'win32' }, (error, _out, stderr) =>
      error ? reject(new Error(`npm install of node-llama-cpp failed: ${error.message}\n${stderr.slice(-2000)}`)) : resolve(),
    );
  });
  if (!existsSync(join(dir, 'node_modules', binary))) throw new Error(`${binary} was not installed into ${dir}`);
  return dir;
}
