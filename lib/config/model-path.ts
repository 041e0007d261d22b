import { statSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';

import { defaultLogger, type Logger } from '../logger';
import { expandPath, type Env } from './expand-path';
import type { SettingSource } from './schema';

/** The default models, in the order they are looked for: Phi-4-mini first, then Gemma 3n. */
export const DEFAULT_MODEL_FILES: readonly string[] = Object.freeze([
  'microsoft_Phi-4-mini-instruct-Q3_K_S.gguf',
  'gemma-3n-E4B-it-Q4_K_M.gguf',
]);

/**
 * Which candidate a model path came from: the explicit `modelPath` option, `TEA_MODEL_PATH`, `llm.model_path`
 * from a settings file, `$APPDIR/usr/share/models`, or `~/.cache/tea/models`.
 */
export type ModelPathSource = 'option' | 'TEA_MODEL_PATH' | 'settings' | 'APPDIR' | 'cache';

export interface ModelPathCandidate {
  source: ModelPathSource;
  path: string;
  /** 'file' when it is a file (the winner), 'missing' when nothing is there, 'not-a-file' for something else. */
  state: 'file' | 'missing' | 'not-a-file';
}

export interface ModelPathResolution {
  /** The model file, or null when no candidate exists. */
  path: string | null;
  /** Which candidate won, or null. */
  source: ModelPathSource | null;
  /** Every path looked at, in order (up to and including the winner). */
  searched: ModelPathCandidate[];
  /** Sources that were not looked at because they are not set, e.g. "TEA_MODEL_PATH is not set". */
  skipped: string[];
}

export interface ResolveModelPathOptions {
  /** Default: `process.env` (TEA_MODEL_PATH, APPDIR, and variables in paths). */
  env?: Env;
  /** Default: `os.homedir()`. */
  homeDir?: string;
  /** Default: warnings to stderr. */
  logger?: Logger;
}

function stateOf(path: string): 'file' | 'dir' | 'missing' | 'not-a-file' {
  try {
    const s = statSync(path);
    return s.isFile() ? 'file' : s.isDirectory() ? 'dir' : 'not-a-file';
  } catch {
    return 'missing';
  }
}

/**
 * Finds the model file, trying in order:
 * 1. `TEA_MODEL_PATH` (when `settings.modelPath` was given explicitly, that comes first, see the precedence table);
 * 2. `settings.modelPath` (`llm.model_path`; `~` and `$VARS` expanded);
 * 3. `$APPDIR/usr/share/models/`, then 4. `~/.cache/tea/models/`, each searched for {@link DEFAULT_MODEL_FILES}.
 * A path set in 1 or 2 may also be a folder, searched for the default models. Each candidate that is set but
 * missing is logged as a warning; the result says which source won and lists every place searched.
 */
export function resolveModelPath(
  settings: { modelPath?: string; sources?: Record<string, SettingSource> } = {},
  options: ResolveModelPathOptions = {},
): ModelPathResolution {
  const env = options.env ?? process.env;
  const home = options.homeDir ?? homedir();
  const logger = options.logger ?? defaultLogger;
  const searched: ModelPathCandidate[] = [];
  const skipped: string[] = [];

  const log = (warn: boolean, message: string) => (warn ? logger.warn(message) : logger.debug(message));

  /** Looks for the default models in a folder; returns the first found. */
  const tryFolder = (source: ModelPathSource, dir: string): string | null => {
    for (const name of DEFAULT_MODEL_FILES) {
      const file = join(dir, name);
      const state = stateOf(file);
      searched.push({ source, path: file, state: state === 'file' ? 'file' : state === 'missing' ? 'missing' : 'not-a-file' });
      if (state === 'file') return file;
    }
    return null;
  };

  /** Tries a path that was set: a file, or a folder holding a default model. */
  const tryPath = (source: ModelPathSource, path: string, label: string): string | null => {
    const state = stateOf(path);
    if (state === 'dir') {
      const found = tryFolder(source, path);
      if (!found) log(true, `${label} is a folder without ${DEFAULT_MODEL_FILES.join(' or ')}: ${path}`);
      return found;
    }
    searched.push({ source, path, state: state === 'file' ? 'file' : state === 'missing' ? 'missing' : 'not-a-file' });
    if (state === 'file') return path;
    log(true, `${label} ${state === 'missing' ? 'does not exist' : 'is not a file'}: ${path}`);
    return null;
  };

  const candidates: Array<() => [ModelPathSource, string | null]> = [];
  const fromEnv = env.TEA_MODEL_PATH?.trim();
  candidates.push(() => {
    if (!fromEnv) {
      skipped.push('TEA_MODEL_PATH is not set');
      return ['TEA_MODEL_PATH', null];
    }
    return ['TEA_MODEL_PATH', tryPath('TEA_MODEL_PATH', resolve(expandPath(fromEnv, env, home)), 'TEA_MODEL_PATH')];
  });
  const explicit = settings.sources?.modelPath === 'explicit';
  const fromSettings = settings.modelPath?.trim();
  const settingsCandidate = (): [ModelPathSource, string | null] => {
    const source: ModelPathSource = explicit ? 'option' : 'settings';
    if (!fromSettings) {
      skipped.push('llm.model_path is not set');
      return [source, null];
    }
    const label = explicit ? 'the modelPath option' : 'llm.model_path';
    return [source, tryPath(source, resolve(expandPath(fromSettings, env, home)), label)];
  };
  if (explicit) candidates.unshift(settingsCandidate);
  else candidates.push(settingsCandidate);
  candidates.push(() => {
    if (!env.APPDIR) {
      skipped.push('APPDIR is not set');
      return ['APPDIR', null];
    }
    return ['APPDIR', tryFolder('APPDIR', join(env.APPDIR, 'usr', 'share', 'models'))];
  });
  candidates.push(() => ['cache', tryFolder('cache', join(home, '.cache', 'tea', 'models'))]);

  for (const candidate of candidates) {
    const [source, path] = candidate();
    if (!path) {
      for (const miss of searched.filter((c) => c.source === source && (source === 'APPDIR' || source === 'cache'))) {
        logger.debug(`no model at ${miss.path}`);
      }
    } else {
      logger.info(`model ${path} (from ${source})`);
      return { path, source, searched, skipped };
    }
  }
  return { path: null, source: null, searched, skipped };
}

/** The places a resolution looked, one per line, for error messages. */
export function describeSearch(resolution: ModelPathResolution): string {
  const lines = resolution.searched.map((c) => `  ${c.source}: ${c.path} (${c.state === 'missing' ? 'missing' : c.state})`);
  for (const s of resolution.skipped) lines.push(`  ${s}`);
  return lines.join('\n');
}
