import { readdirSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { basename, join, resolve } from 'node:path';

import { defaultLogger, type Logger } from '../logger';
import { expandPath, type Env } from './expand-path';
import { rejectUnknownKeys } from '../engine/request';
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
  /**
   * How a model found in a folder was chosen: 'default' (one of {@link DEFAULT_MODEL_FILES}), else 'only' (the
   * folder's only `.gguf` file) or 'newest' (the most recently pulled, i.e. modified, of several). Absent for a
   * file named directly.
   */
  chosen?: 'default' | 'only' | 'newest';
  /** The folder's other `.gguf` files, when `chosen` is 'newest'. */
  others?: string[];
}

/** A folder where several models are equally recent: which one to use cannot be told. */
export interface AmbiguousFolder {
  source: ModelPathSource;
  folder: string;
  /** The equally recent models. */
  models: string[];
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
  /** Folders holding several equally recent models (no model is taken from them). */
  ambiguous: AmbiguousFolder[];
  /** True when the explicit `modelPath` option names nothing usable: the search stopped there. */
  explicitMissing: boolean;
}

export interface ResolveModelPathOptions {
  /** Default: `process.env` (TEA_MODEL_PATH, APPDIR, and variables in paths). */
  env?: Env;
  /** Default: `os.homedir()`. */
  homeDir?: string;
  /** Default: warnings to stderr. */
  logger?: Logger;
}

/** A `.gguf` file in a model folder. */
export interface ModelFile {
  path: string;
  size: number;
  /** Modification time (ms since the epoch): when `tea-llama pull` finished it. */
  mtimeMs: number;
}

/** The `.gguf` files of a folder (not `.partial` downloads), newest first; none when it cannot be read. */
export function ggufFilesIn(dir: string): ModelFile[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const files: ModelFile[] = [];
  for (const name of names) {
    if (!/\.gguf$/i.test(name)) continue;
    try {
      const st = statSync(join(dir, name));
      if (st.isFile()) files.push({ path: join(dir, name), size: st.size, mtimeMs: st.mtimeMs });
    } catch {
      // Gone since readdir: not a candidate.
    }
  }
  return files.sort((a, b) => b.mtimeMs - a.mtimeMs || a.path.localeCompare(b.path));
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
 * 3. `$APPDIR/usr/share/models/`, then 4. `~/.cache/tea/models/`.
 *
 * A path set in 1 or 2 may be a file or a folder. A folder (3, 4, or one set in 1 or 2) gives one of
 * {@link DEFAULT_MODEL_FILES} (in that order); without them, its only `.gguf` file, or else the most recently
 * pulled (modified) one, with a warning naming the others. Several equally recent models are ambiguous: none is
 * taken, and the result lists them. An explicit `modelPath` option that names nothing usable ends the search (no
 * other model replaces it: `explicitMissing`). Each candidate that is set but missing is logged as a warning;
 * the result says which source won and lists every place searched.
 */
export function resolveModelPath(
  settings: { modelPath?: string; sources?: Record<string, SettingSource> } = {},
  options: ResolveModelPathOptions = {},
): ModelPathResolution {
  rejectUnknownKeys(options, ['env', 'homeDir', 'logger'], 'resolveModelPath() options');
  const env = options.env ?? process.env;
  const home = options.homeDir ?? homedir();
  const logger = options.logger ?? defaultLogger;
  const searched: ModelPathCandidate[] = [];
  const skipped: string[] = [];
  const ambiguous: AmbiguousFolder[] = [];

  const log = (warn: boolean, message: string) => (warn ? logger.warn(message) : logger.debug(message));

  /** Looks for the default models in a folder, then for its only or newest model; returns the one found. */
  const tryFolder = (source: ModelPathSource, dir: string): string | null => {
    for (const name of DEFAULT_MODEL_FILES) {
      const file = join(dir, name);
      const state = stateOf(file);
      if (state === 'file') {
        searched.push({ source, path: file, state: 'file', chosen: 'default' });
        return file;
      }
      searched.push({ source, path: file, state: state === 'missing' ? 'missing' : 'not-a-file' });
    }
    const files = ggufFilesIn(dir);
    if (files.length === 0) return null;
    if (files.length === 1) {
      searched.push({ source, path: files[0].path, state: 'file', chosen: 'only' });
      logger.info(`${files[0].path} is the only model in ${dir}`);
      return files[0].path;
    }
    const newest = files.filter((f) => f.mtimeMs === files[0].mtimeMs);
    if (newest.length > 1) {
      ambiguous.push({ source, folder: dir, models: newest.map((f) => f.path) });
      logger.warn(`${dir} holds ${files.length} models and ${newest.map((f) => basename(f.path)).join(', ')} are equally recent: none is taken`);
      return null;
    }
    const others = files.slice(1).map((f) => f.path);
    searched.push({ source, path: files[0].path, state: 'file', chosen: 'newest', others });
    logger.warn(
      `using ${files[0].path}, the most recently pulled of ${files.length} models in ${dir} ` +
        `(others: ${others.map((f) => basename(f)).join(', ')}); set TEA_MODEL_PATH or llm.model_path to choose`,
    );
    return files[0].path;
  };

  /** Tries a path that was set: a file, or a folder (see tryFolder). */
  const tryPath = (source: ModelPathSource, path: string, label: string): string | null => {
    const state = stateOf(path);
    if (state === 'dir') {
      const before = ambiguous.length;
      const found = tryFolder(source, path);
      if (!found && ambiguous.length === before) log(true, `${label} is a folder without a .gguf model: ${path}`);
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
    if (path) {
      logger.info(`model ${path} (from ${source})`);
      return { path, source, searched, skipped, ambiguous, explicitMissing: false };
    }
    // An explicit option that names nothing usable is not replaced by another model.
    if (source === 'option' && fromSettings) return { path: null, source: null, searched, skipped, ambiguous, explicitMissing: true };
    for (const miss of searched.filter((c) => c.source === source && (source === 'APPDIR' || source === 'cache'))) logger.debug(`no model at ${miss.path}`);
  }
  return { path: null, source: null, searched, skipped, ambiguous, explicitMissing: false };
}

/** The places a resolution looked, one per line, for error messages. */
export function describeSearch(resolution: ModelPathResolution): string {
  const lines = resolution.searched.map((c) => `  ${c.source}: ${c.path} (${c.state === 'missing' ? 'missing' : c.state})`);
  for (const a of resolution.ambiguous) lines.push(`  ${a.source}: ${a.folder} holds equally recent models, none taken: ${a.models.join(', ')}`);
  for (const s of resolution.skipped) lines.push(`  ${s}`);
  return lines.join('\n');
}
