import { readFile } from 'node:fs/promises';
import { availableParallelism, homedir } from 'node:os';
import { resolve } from 'node:path';

import { parseDocument } from 'yaml';

import { LlamaError } from '../errors';
import { yamlToData } from '../yaml-data';
import { collectEnvSettings } from './env';
import { expandPath, type Env } from './expand-path';
import { rejectUnknownKeys } from '../engine/request';
import {
  checkTree,
  describeValue,
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
  /** Explicit settings (camelCase): they win over the environment, the YAML layer and the defaults. Default: none. */
  options?: LlmSettingsInput;
  /**
   * The YAML layer as an object: the settings a host application already parsed from its own YAML
   * (`{ llm: { backend, model_path, n_ctx, … }, …its other blocks }`). Only `llm` is read, with the same checks
   * and messages as a file. Default: none. At most one of `settings`, `file` and `yaml`.
   */
  settings?: Record<string, unknown>;
  /** The YAML layer from a settings file; only its `llm` block is read. Default: none. */
  file?: string;
  /** The YAML layer from YAML text (pass an object you already parsed as `settings`). Default: none. */
  yaml?: string;
  /** Default: `process.env`. */
  env?: Env;
  /** For `~` in paths. Default: `os.homedir()`. */
  homeDir?: string;
}

const RESOLVE_KEYS = ['options', 'settings', 'file', 'yaml', 'env', 'homeDir'];

/** The explicit (camelCase) option names of the settings: `backend`, …, `api`. */
export const SETTING_OPTION_NAMES: readonly string[] = [...new Set(SETTING_KEYS.map((k) => k.option.split('.')[0]))];
const API_OPTION_NAMES = SETTING_KEYS.filter((k) => k.option.startsWith('api.')).map((k) => k.option.slice(4));

/**
 * Rejects unknown keys in explicit settings (top level and `api`): ERR_INVALID_ARGUMENT naming the key and the
 * nearest known one. `extra` are other option names the caller accepts alongside the settings.
 */
export function rejectUnknownSettingOptions(where: string, options: object, extra: readonly string[] = []): void {
  rejectUnknownKeys(options, [...SETTING_OPTION_NAMES, ...extra], where);
  const api = (options as { api?: unknown }).api;
  if (typeof api === 'object' && api !== null && !Array.isArray(api)) rejectUnknownKeys(api, API_OPTION_NAMES, `${where}.api`);
}

/** Values by option path from the root of a parsed settings document (its `llm` block), recording problems. */
function collectRoot(root: unknown, issues: SettingsIssue[]): Map<string, unknown> {
  if (root === null || root === undefined) return new Map();
  if (typeof root !== 'object' || Array.isArray(root)) {
    issues.push({ path: '(top level)', expected: 'a mapping with an `llm` block', found: Array.isArray(root) ? 'a list' : typeof root });
    return new Map();
  }
  const llm = (root as Record<string, unknown>).llm;
  if (llm === undefined || llm === null) return new Map();
  return checkTree(llm, (k) => k.yaml, 'llm', issues);
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
  const data = yamlToData(doc);
  if (data.problem !== undefined) {
    issues.push({ path: 'the document', expected: 'valid YAML within the limits', found: data.problem });
    return new Map();
  }
  return collectRoot(data.value, issues);
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
 * Resolves the settings from, in order of precedence: explicit `options` > environment (LLM_*) > the YAML layer
 * (`settings`, a `file` or `yaml` text: its `llm` block) > defaults. Every source is checked before anything is
 * returned, and every problem is reported at once. `modelPath` and `cacheDir` have `~` and `$VARS` expanded.
 *
 * @throws SettingsError (ERR_SETTINGS_INVALID) for invalid values and unknown keys in the YAML layer or the
 *   environment; LlamaError ERR_INVALID_ARGUMENT for an unknown key of `options` or of this function's options.
 */
export async function resolveSettings(options: ResolveSettingsOptions = {}): Promise<LlmSettings> {
  if (typeof options !== 'object' || options === null) throw new LlamaError('ERR_INVALID_ARGUMENT', 'resolveSettings: options must be an object');
  rejectUnknownKeys(options, RESOLVE_KEYS, 'resolveSettings() options');
  const layers = (['settings', 'file', 'yaml'] as const).filter((k) => options[k] !== undefined);
  if (layers.length > 1) throw new LlamaError('ERR_INVALID_ARGUMENT', `resolveSettings: give one YAML layer, not ${layers.join(' and ')}`);
  if (options.yaml !== undefined && typeof options.yaml !== 'string') {
    throw new LlamaError('ERR_INVALID_ARGUMENT', `resolveSettings: yaml must be YAML text (got ${describeValue(options.yaml)}); pass an object you already parsed as settings`);
  }
  if (options.file !== undefined && typeof options.file !== 'string') throw new LlamaError('ERR_INVALID_ARGUMENT', `resolveSettings: file must be a path (got ${describeValue(options.file)})`);
  if (options.settings !== undefined && (typeof options.settings !== 'object' || options.settings === null || Array.isArray(options.settings))) {
    throw new LlamaError('ERR_INVALID_ARGUMENT', `resolveSettings: settings must be the parsed settings document, a mapping with an llm block (got ${describeValue(options.settings)})`);
  }
  if (options.options !== undefined) {
    if (typeof options.options !== 'object' || options.options === null || Array.isArray(options.options)) {
      throw new LlamaError('ERR_INVALID_ARGUMENT', `resolveSettings: options.options must be an object of settings (got ${describeValue(options.options)})`);
    }
    rejectUnknownSettingOptions('resolveSettings() options.options', options.options);
  }
  const env = options.env ?? process.env;
  const home = options.homeDir ?? homedir();
  const issues: SettingsIssue[] = [];
  const sources: string[] = [];

  let yaml = new Map<string, unknown>();
  if (layers.length === 1) {
    const where = options.file !== undefined ? resolve(options.file) : options.settings !== undefined ? 'the settings object' : 'settings YAML';
    const before = issues.length;
    if (options.settings !== undefined) yaml = collectRoot(options.settings, issues);
    else yaml = collectYaml(options.yaml ?? (await readSettingsText(where)), issues);
    if (issues.length > before) sources.push(where);
  }
  let before = issues.length;
  const fromEnv = collectEnvSettings(env, issues);
  if (issues.length > before) sources.push('the environment');
  before = issues.length;
  const explicit = options.options === undefined ? new Map<string, unknown>() : checkTree(options.options, (k) => k.option, 'options', issues);
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
    // With RPC servers, every layer goes to them unless n_gpu_layers says otherwise.
    gpuLayers: input.gpuLayers ?? (input.rpcServers !== undefined ? -1 : 0),
    rpcServers: input.rpcServers === undefined ? [] : [input.rpcServers].flat(),
    chatFormat: input.chatFormat,
    embedding: input.embedding ?? false,
    draftModel: input.draftModel === undefined ? undefined : expand(input.draftModel),
    draftMax: input.draftMax,
    draftMin: input.draftMin,
    draftNgram: input.draftNgram ?? false,
    ...(input.lora !== undefined && input.lora.length > 0
      ? { lora: (input.lora as { path: string; scale: number }[]).map((l) => ({ path: expand(l.path), scale: l.scale })) }
      : {}),
    temperature: input.temperature ?? 0.7,
    maxTokens: input.maxTokens ?? 100,
    topP: input.topP,
    enableCache: input.enableCache ?? false,
    cacheDir: expand(input.cacheDir ?? DEFAULT_CACHE_DIR),
    api: {
      baseUrl: typeof input.api?.baseUrl === 'string' ? input.api.baseUrl : input.api?.baseUrl?.[0],
      endpoints: input.api?.baseUrl === undefined ? undefined : [input.api.baseUrl].flat(),
      apiKey: input.api?.apiKey,
      model: input.api?.model,
      timeout: input.api?.timeout ?? DEFAULT_API_TIMEOUT,
      compat: input.api?.compat,
    },
    sources: from,
  };
}
