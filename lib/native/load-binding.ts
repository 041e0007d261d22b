import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

import { LlamaError } from '../errors';
import type { NativeBackendReport, NativeBinding } from './binding-types';

const LOG_LEVELS = { none: 0, error: 1, warn: 2, info: 3, debug: 4 } as const;
export type LogLevel = keyof typeof LOG_LEVELS;

/** GPU backends a prebuild can carry as separate modules (GPU packages `@tea-llama/<platform>-<arch>-<gpu>`). */
const GPU_BACKENDS = ['cuda', 'vulkan', 'metal', 'hip', 'sycl'] as const;

export interface NativeInfo extends NativeBackendReport {
  /** The addon file that was loaded. */
  addonPath: string;
  /** True when it came from prebuilds/ rather than a local source build. */
  prebuild: boolean;
  /** The GPU selection in force (TEA_GPU): 'auto', 'none', or one backend name. */
  gpu: string;
}

let binding: NativeBinding | undefined;
let info: NativeInfo | undefined;

/** The package root: the nearest folder up from here whose package.json is tea-llama's. */
export function packageRoot(): string {
  let dir = __dirname;
  for (;;) {
    const manifest = join(dir, 'package.json');
    if (existsSync(manifest)) {
      try {
        if (JSON.parse(readFileSync(manifest, 'utf8')).name === 'tea-llama') return dir;
      } catch {
        // not ours; keep looking
      }
    }
    const parent = dirname(dir);
    if (parent === dir) throw new LlamaError('ERR_NATIVE_LOAD', 'cannot find the tea-llama package root');
    dir = parent;
  }
}

/** Folders of installed GPU packages, searched for backend modules after the addon's own folder. */
function gpuPackageDirs(): string[] {
  const dirs: string[] = [];
  for (const gpu of GPU_BACKENDS) {
    try {
      dirs.push(dirname(require.resolve(`@tea-llama/${process.platform}-${process.arch}-${gpu}/package.json`)));
    } catch {
      // not installed
    }
  }
  return dirs;
}

/**
 * Loads the addon once per process (per worker thread): a matching prebuild, else the local build
 * (PREBUILDS_ONLY=1: never the local build). Then the backend modules of a prebuild: the best CPU variant this
 * machine can execute, and GPU backends per TEA_GPU ('auto' default, 'none', or 'cuda' | 'vulkan' | 'metal' ...).
 */
export function getBinding(): NativeBinding {
  if (binding) return binding;
  const root = packageRoot();
  const gpu = (process.env.TEA_GPU ?? 'auto').toLowerCase();
  if (gpu !== 'auto' && gpu !== 'none' && !(GPU_BACKENDS as readonly string[]).includes(gpu)) {
    throw new LlamaError('ERR_INVALID_ARGUMENT', `TEA_GPU must be auto, none or one of ${GPU_BACKENDS.join(', ')} (got '${gpu}')`);
  }
  let addonPath: string;
  let loaded: NativeBinding;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const nodeGypBuild = require('node-gyp-build') as { resolve(dir: string): string };
    addonPath = nodeGypBuild.resolve(root);
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    loaded = require(addonPath) as NativeBinding;
  } catch (error) {
    throw new LlamaError(
      'ERR_NATIVE_LOAD',
      `tea-llama's native addon could not be loaded (${(error as Error).message}). ` +
        'Reinstall the package, or build it from source: `npm install --save-dev cmake-js node-addon-api && npm explore tea-llama -- npm run build:native` (in a clone of the repository: `npm run build:native`; see README).',
      { cause: error },
    );
  }
  const level = (process.env.TEA_LLAMA_LOG ?? 'none').toLowerCase();
  loaded.setLogLevel(LOG_LEVELS[level as LogLevel] ?? 0);
  const report = loaded.loadBackends([dirname(addonPath), ...gpuPackageDirs()], gpu, process.env.TEA_CPU_VARIANT ?? '');
  if (report.dynamic && !report.cpuVariant) {
    const which = process.env.TEA_CPU_VARIANT ? `the CPU variant '${process.env.TEA_CPU_VARIANT}'` : 'no CPU backend';
    throw new LlamaError('ERR_NATIVE_LOAD', `${which} in ${dirname(addonPath)} cannot run on this machine`);
  }
  if (gpu !== 'auto' && gpu !== 'none' && report.dynamic && !report.gpuLoaded.some((name) => name.toLowerCase() === gpu)) {
    const why = report.gpuFailed.join('; ') || `no ${gpu} backend module installed (see README, GPU backends)`;
    throw new LlamaError('ERR_BACKEND_UNAVAILABLE', `TEA_GPU=${gpu} was requested but could not be used: ${why}`);
  }
  info = { ...report, addonPath, prebuild: /[\\/]prebuilds[\\/]/.test(addonPath), gpu };
  binding = loaded;
  return binding;
}

/** Which addon file loaded, whether it is a prebuild, and the CPU variant, GPU backends and devices in use. */
export function nativeInfo(): NativeInfo {
  getBinding();
  return info as NativeInfo;
}

/** Routes llama.cpp's own log lines at or above `level` to stderr (default 'none'; env TEA_LLAMA_LOG). */
export function setLogLevel(level: LogLevel): void {
  if (!(typeof level === 'string' && Object.hasOwn(LOG_LEVELS, level))) throw new LlamaError('ERR_INVALID_ARGUMENT', `log level must be one of ${Object.keys(LOG_LEVELS).join(', ')}`);
  getBinding().setLogLevel(LOG_LEVELS[level]);
}
