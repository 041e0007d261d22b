import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

import { LlamaError } from '../errors';
import type { NativeBinding } from './binding-types';

const LOG_LEVELS = { none: 0, error: 1, warn: 2, info: 3, debug: 4 } as const;
export type LogLevel = keyof typeof LOG_LEVELS;

let binding: NativeBinding | undefined;

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

/** Loads the addon once per process (per worker thread): a matching prebuild, else the local build. */
export function getBinding(): NativeBinding {
  if (binding) return binding;
  const root = packageRoot();
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const load = require('node-gyp-build') as (dir: string) => NativeBinding;
    binding = load(root);
  } catch (error) {
    throw new LlamaError(
      'ERR_NATIVE_LOAD',
      `tea-llama's native addon could not be loaded (${(error as Error).message}). ` +
        'Reinstall the package, or build it from source with `npm run build:native` (see README).',
      { cause: error },
    );
  }
  const level = (process.env.TEA_LLAMA_LOG ?? 'none').toLowerCase();
  binding.setLogLevel(LOG_LEVELS[level as LogLevel] ?? 0);
  return binding;
}

/** Routes llama.cpp's own log lines at or above `level` to stderr (default 'none'; env TEA_LLAMA_LOG). */
export function setLogLevel(level: LogLevel): void {
  if (!(level in LOG_LEVELS)) throw new LlamaError('ERR_INVALID_ARGUMENT', `log level must be one of ${Object.keys(LOG_LEVELS).join(', ')}`);
  getBinding().setLogLevel(LOG_LEVELS[level]);
}
