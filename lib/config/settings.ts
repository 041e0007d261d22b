import { readFile } from 'node:fs/promises';
import { availableParallelism, homedir } from 'node:os';
import { resolve } from 'node:path';

import { parseDocument } from 'yaml';

import { LlamaError } from '../errors';
import { collectEnvSettings } from './env';
import { expandPath, type Env } from './expand-path';
import {
  checkTree,
  SETTING_KEYS,
  SettingsError,
  toInput,
  type LlmSettings,
  type LlmSettingsInput,
  type SettingSource,
  type SettingsIssue,
} from './schema';

/** Default folder of the response cache. */
export const DEFAULT_CACHE_DIR = '~/.cache/tea/responses';

/** Default API timeout, in seconds. */
export const DEFAULT_API_TIMEOUT = 60;

export interface ResolveSettingsOptions {
  /** Explicit settings (camelCase): they win over the environment, the file and the defaults. */
  settings?: LlmSettingsInput;
  /** A YAML settings file; only its `llm` block is read. */
  file?: string;
  /** YAML text to read instead of a file. */
  yaml?: string;
  /** Default: `process.env`. */
  env?: Env;
  /** For `~` in paths. Default: `os.homedir()`. */
  homeDir?: string;
}

/** Values by option path from YAML text, recording problems. */
function collectYaml(text: string, issues: SettingsIssue[]): Map<string, unknown> {
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    for (const error of doc.errors) {
      const at = error.linePos?.[0];
      issues.push({
        path: at ? `line ${at.line}, column ${at.col}` : 'the document',
        expected: 'valid YAML',
        found: error.message.split('\n')[0],
      });
    }
    return new Map();
  }
  const root: unknown = doc.toJS();
  if (root === null || root === undefined) return new Map();
  if (typeof root !== 'object' || Array.isArray(root)) {
    issues.push({ path: '(top level)', expected: 'a mapping with an `llm` block', found: Array.isArray(root) ? 'a list' : typeof root });
    return new Map();
  }
  const llm = (root as Record<string, unknown>).llm;
  if (llm === undefined || llm === null) return new Map();
  return checkTree(llm, (k) => k.yaml, 'llm', issues);
}

/**
 * Parses the `llm` block of a YAML settings text (other top-level blocks are ignored) into explicit-style
 * settings. Paths are returned as written (not expanded).
 *
 * @throws SettingsError (ERR_SETTINGS_INVALID) listing every problem: key path, what was expected, what was
 *   found, and the likely key for a misspelt one.
 */
export function parseSettingsYaml(text: string, source = 'settings YAML'): LlmSettingsInput {
  if (typeof text !== 'string') throw new LlamaError('ERR_INVALID_ARGUMENT', 'text must be a string');
  const issues: SettingsIssue[] = [];
  const values = collectYaml(text, issues);
  if (issues.length > 0) throw new SettingsError(source, issues);
  return toInput(values);
}

async function readSettingsText(file: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'unreadable';
    throw new SettingsError(file, [{ path: file, expected: 'a readable YAML file', found: code === 'ENOENT' ? 'no such file' : code }]);
  }
}

/**
 * Resolves the settings from, in order of precedence: explicit settings > environment (LLM_*) > YAML `llm`
 * block > defaults. Every source is checked before anything is returned, and every problem is reported at once.
 * `modelPath` and `cacheDir` have `~` and `$VARS` expanded.
 *
 * @throws SettingsError (ERR_SETTINGS_INVALID)
 */
export async function resolveSettings(options: ResolveSettingsOptions = {}): Promise<LlmSettings> {
  if (typeof options !== 'object' || options === null) throw new LlamaError('ERR_INVALID_ARGUMENT', 'options must be an object');
  const env = options.env ?? process.env;
  const home = options.homeDir ?? homedir();
  const issues: SettingsIssue[] = [];
  const sources: string[] = [];

  let yaml = new Map<string, unknown>();
  if (options.yaml !== undefined || options.file !== undefined) {
    const where = options.file !== undefined ? resolve(options.file) : 'settings YAML';
    const text = options.yaml ?? (await readSettingsText(where));
    const before = issues.length;
    yaml = collectYaml(text, issues);
    if (issues.length > before) sources.push(where);
  }
  let before = issues.length;
  const fromEnv = collectEnvSettings(env, issues);
  if (issues.length > before) sources.push('the environment');
  before = issues.length;
  const explicit = options.settings === undefined ? new Map<string, unknown>() : checkTree(options.settings, (k) => k.option, 'options', issues);
  if (issues.length > before) sources.push('the options');
  if (issues.length > 0) throw new SettingsError(sources.join(' and '), issues);

  const values = new Map<string, unknown>();
  const from: Record<string, SettingSource> = {};
  for (const key of SETTING_KEYS) {
    for (const [layer, source] of [
      [explicit, 'explicit'],
      [fromEnv, 'env'],
      [yaml, 'yaml'],
    ] as const) {
      if (layer.has(key.option)) {
        values.set(key.option, layer.get(key.option));
        from[key.option] = source;
        break;
      }
    }
    from[key.option] ??= 'default';
  }
  const input = toInput(values);
  const expand = (p: string) => resolve(expandPath(p, env, home));
  return {
    backend: input.backend ?? 'local',
    modelPath: input.modelPath === undefined ? undefined : expand(input.modelPath),
    contextSize: input.contextSize,
    threads: input.threads ?? availableParallelism(),
    gpuLayers: input.gpuLayers ?? 0,
    chatFormat: input.chatFormat,
    embedding: input.embedding ?? false,
    temperature: input.temperature ?? 0.7,
    maxTokens: input.maxTokens ?? 100,
    topP: input.topP,
    enableCache: input.enableCache ?? false,
    cacheDir: expand(input.cacheDir ?? DEFAULT_CACHE_DIR),
    api: {
      baseUrl: input.api?.baseUrl,
      apiKey: input.api?.apiKey,
      model: input.api?.model,
      timeout: input.api?.timeout ?? DEFAULT_API_TIMEOUT,
    },
    sources: from,
  };
}
