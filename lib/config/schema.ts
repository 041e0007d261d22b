import { nearestKey } from '../engine/request';
import { LlamaError } from '../errors';
import { redactUrl } from '../redact';
import { isRpcEndpoint } from '../rpc';
import type { BackendKind } from '../backends/llm-backend';

/** Explicit settings (camelCase). Every field is optional; see {@link SETTING_KEYS} for defaults. */
export interface LlmSettingsInput {
  /** `llm.backend`, `LLM_BACKEND`. Default 'local'. */
  backend?: BackendKind;
  /** `llm.model_path` (`~` and `$VARS` expanded): a GGUF file, or a folder holding one of the default models. */
  modelPath?: string;
  /** `llm.n_ctx`. Default: auto-configured from the model (see getModelInfo). */
  contextSize?: number;
  /** `llm.n_threads`. Default: every core. */
  threads?: number;
  /** `llm.n_gpu_layers`. Default 0. */
  gpuLayers?: number;
  /** `llm.chat_format`: a llama.cpp built-in template name or a Jinja string. Default: the model's own. */
  chatFormat?: string;
  /**
   * `llm.rpc_servers`, `LLM_RPC_SERVERS`: llama.cpp rpc-servers (`host:port`, a list, or comma-separated) that hold
   * the local model's offloaded layers. Default: none.
   */
  rpcServers?: string | string[];
  /** `llm.embedding`: create the embedding context with the model. Default false (on first embed()). */
  embedding?: boolean;
  /** `llm.draft_model` (`~` and `$VARS` expanded): a draft GGUF for speculative decoding (`LoadModelOptions.draftModel`). Default: none. */
  draftModel?: string;
  /** `llm.draft_max`: most tokens drafted per step (`LoadModelOptions.draftMax`). */
  draftMax?: number;
  /** `llm.draft_min`: fewest tokens of a draft model's draft (`LoadModelOptions.draftMin`). Default 0. */
  draftMin?: number;
  /** `llm.draft_ngram`: prompt-lookup n-gram drafting (`LoadModelOptions.draftNgram`). Default false. */
  draftNgram?: boolean;
  /**
   * `llm.lora` (paths `~` and `$VARS` expanded): LoRA adapters loaded with the local model, each a path (scale 1) or
   * `{ path, scale }`; the default set of its requests (`LoadModelOptions.lora`, llama-server's `--lora-scaled`).
   * Default: none.
   */
  lora?: (string | { path: string; scale?: number })[];
  /** `llm.temperature`, `LLM_TEMPERATURE`. Default 0.7. */
  temperature?: number;
  /** `llm.max_tokens`, `LLM_MAX_TOKENS`. Default 100. */
  maxTokens?: number;
  /** `llm.top_p`, `LLM_TOP_P`. Default: the engine's own. */
  topP?: number;
  /** `llm.enable_cache`, `LLM_ENABLE_CACHE`. Default false. */
  enableCache?: boolean;
  /** `llm.cache_dir`, `LLM_CACHE_DIR`. Default `~/.cache/tea/responses`. */
  cacheDir?: string;
  api?: {
    /**
     * `llm.api.base_url`, `LLM_API_BASE`: one server, or a list of servers of the same model (YAML list, array, or
     * comma-separated in the variable), which the API backend balances and fails over between. No default: without
     * it there is no API backend.
     */
    baseUrl?: string | string[];
    /** `llm.api.api_key`, `LLM_API_KEY`. Default: none. */
    apiKey?: string;
    /** `llm.api.model`, `LLM_MODEL`. Default: none (the server's own). */
    model?: string;
    /** `llm.api.timeout`, `LLM_TIMEOUT`, in seconds. Default 60. */
    timeout?: number;
    /**
     * `llm.api.compat`, `LLM_API_COMPAT`: the request fields the server takes, 'llama-server' or 'openai'
     * (`ApiLlmBackendOptions.compat`). Default 'openai' for api.openai.com, else 'llama-server'.
     */
    compat?: 'llama-server' | 'openai';
  };
}

/** Where a setting's value came from. */
export type SettingSource = 'explicit' | 'env' | 'yaml' | 'default';

/** Fully resolved settings: what {@link createLlmBackend} builds a backend from. */
export interface LlmSettings {
  backend: BackendKind;
  modelPath?: string;
  contextSize?: number;
  threads: number;
  gpuLayers: number;
  /** Empty when there are none. */
  rpcServers: string[];
  chatFormat?: string;
  embedding: boolean;
  /** Speculative decoding of the local model: absent when not asked for. */
  draftModel?: string;
  draftMax?: number;
  draftMin?: number;
  draftNgram: boolean;
  /** The local model's LoRA adapters and their scales: absent when none are asked for. */
  lora?: { path: string; scale: number }[];
  temperature: number;
  maxTokens: number;
  topP?: number;
  enableCache: boolean;
  cacheDir: string;
  /** `baseUrl` is the first server; `endpoints` all of them (one or more), when `base_url` is set. */
  api: { baseUrl?: string; endpoints?: string[]; apiKey?: string; model?: string; timeout: number; compat?: 'llama-server' | 'openai' };
  /** Where each value came from, by option path ('backend', 'api.baseUrl', ...). */
  sources: Record<string, SettingSource>;
}

type Kind =
  | { type: 'enum'; values: readonly string[] }
  | { type: 'int'; min: number; max: number }
  | { type: 'number'; min: number; max: number; exclusiveMin?: boolean }
  | { type: 'bool' }
  | { type: 'string' }
  | { type: 'url' }
  | { type: 'urls' }
  | { type: 'endpoints' }
  | { type: 'loras' };

export interface SettingKey {
  /** Path in explicit options, e.g. 'api.baseUrl'. */
  option: string;
  /** Path in the YAML `llm` block, e.g. 'api.base_url'. */
  yaml: string;
  /** Environment variable, if any. */
  env?: string;
  kind: Kind;
  /** Never echo the value (API keys). */
  secret?: boolean;
}

/** Every setting, its YAML key, its environment variable and its type. */
export const SETTING_KEYS: readonly SettingKey[] = Object.freeze([
  { option: 'backend', yaml: 'backend', env: 'LLM_BACKEND', kind: { type: 'enum', values: ['local', 'api', 'mock'] } },
  { option: 'modelPath', yaml: 'model_path', kind: { type: 'string' } },
  { option: 'contextSize', yaml: 'n_ctx', kind: { type: 'int', min: 1, max: 2 ** 24 } },
  { option: 'threads', yaml: 'n_threads', kind: { type: 'int', min: 1, max: 1024 } },
  { option: 'gpuLayers', yaml: 'n_gpu_layers', kind: { type: 'int', min: -1, max: 100000 } },
  { option: 'chatFormat', yaml: 'chat_format', kind: { type: 'string' } },
  { option: 'rpcServers', yaml: 'rpc_servers', env: 'LLM_RPC_SERVERS', kind: { type: 'endpoints' } },
  { option: 'embedding', yaml: 'embedding', kind: { type: 'bool' } },
  { option: 'draftModel', yaml: 'draft_model', kind: { type: 'string' } },
  { option: 'draftMax', yaml: 'draft_max', kind: { type: 'int', min: 1, max: 1024 } },
  { option: 'draftMin', yaml: 'draft_min', kind: { type: 'int', min: 0, max: 1024 } },
  { option: 'draftNgram', yaml: 'draft_ngram', kind: { type: 'bool' } },
  { option: 'lora', yaml: 'lora', kind: { type: 'loras' } },
  { option: 'temperature', yaml: 'temperature', env: 'LLM_TEMPERATURE', kind: { type: 'number', min: 0, max: 100 } },
  { option: 'maxTokens', yaml: 'max_tokens', env: 'LLM_MAX_TOKENS', kind: { type: 'int', min: 1, max: 2 ** 31 - 1 } },
  { option: 'topP', yaml: 'top_p', env: 'LLM_TOP_P', kind: { type: 'number', min: 0, max: 1 } },
  { option: 'enableCache', yaml: 'enable_cache', env: 'LLM_ENABLE_CACHE', kind: { type: 'bool' } },
  { option: 'cacheDir', yaml: 'cache_dir', env: 'LLM_CACHE_DIR', kind: { type: 'string' } },
  { option: 'api.baseUrl', yaml: 'api.base_url', env: 'LLM_API_BASE', kind: { type: 'urls' } },
  { option: 'api.apiKey', yaml: 'api.api_key', env: 'LLM_API_KEY', kind: { type: 'string' }, secret: true },
  { option: 'api.model', yaml: 'api.model', env: 'LLM_MODEL', kind: { type: 'string' } },
  { option: 'api.timeout', yaml: 'api.timeout', env: 'LLM_TIMEOUT', kind: { type: 'number', min: 0, max: 2 ** 31 / 1000, exclusiveMin: true } },
  { option: 'api.compat', yaml: 'api.compat', env: 'LLM_API_COMPAT', kind: { type: 'enum', values: ['llama-server', 'openai'] } },
] satisfies SettingKey[]);

/** One problem in a settings source. */
export interface SettingsIssue {
  /** Where: `llm.n_ctx` (YAML), `LLM_TEMPERATURE` (environment), `options.contextSize` (explicit). */
  path: string;
  expected: string;
  found: string;
  /** A likely intended key, for an unknown one. */
  suggestion?: string;
}

/** ERR_SETTINGS_INVALID, with every problem found (a bad source never yields a half-configured backend). */
export class SettingsError extends LlamaError {
  readonly issues: SettingsIssue[];

  constructor(where: string, issues: SettingsIssue[]) {
    const lines = issues.map(
      (i) => `  ${i.path}: expected ${i.expected}, got ${i.found}${i.suggestion ? `; did you mean "${i.suggestion}"?` : ''}`,
    );
    super('ERR_SETTINGS_INVALID', `invalid settings in ${where}:\n${lines.join('\n')}`);
    this.name = 'SettingsError';
    this.issues = issues;
  }
}

export function expectedText(kind: Kind): string {
  switch (kind.type) {
    case 'enum':
      return `one of ${kind.values.map((v) => JSON.stringify(v)).join(', ')}`;
    case 'int':
      return `an integer from ${kind.min} to ${kind.max}`;
    case 'number':
      return kind.exclusiveMin ? `a number above ${kind.min}` : `a number from ${kind.min} to ${kind.max}`;
    case 'bool':
      return 'true or false';
    case 'string':
      return 'a non-empty string';
    case 'url':
      return 'an http:// or https:// URL';
    case 'urls':
      return 'an http:// or https:// URL, or a non-empty list of them';
    case 'endpoints':
      return '"host:port" RPC servers (a list, or separated by commas)';
    case 'loras':
      return 'a list of LoRA adapters, each a path or { path, scale }';
  }
}

/** Describes a found value for a message; secrets are described by type only. */
export function describeValue(value: unknown, secret = false): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'an empty value (null)';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  if (secret) return typeof value === 'string' ? `a string of ${value.length} characters` : `a ${typeof value}`;
  if (typeof value === 'string') return JSON.stringify(value.length > 60 ? `${value.slice(0, 60)}…` : value);
  return `${String(value)} (${typeof value})`;
}

/** Checks a typed value (YAML or explicit); returns the value or undefined after recording an issue. */
export function checkValue(key: SettingKey, value: unknown, path: string, issues: SettingsIssue[]): unknown {
  const kind = key.kind;
  const bad = () => {
    // A URL is shown without its credentials or secret query parameters.
    const shown = (kind.type === 'url' || kind.type === 'urls') && typeof value === 'string' ? redactUrl(value) : value;
    issues.push({ path, expected: expectedText(kind), found: describeValue(shown, key.secret) });
    return undefined;
  };
  switch (kind.type) {
    case 'enum':
      return typeof value === 'string' && kind.values.includes(value) ? value : bad();
    case 'int':
      return typeof value === 'number' && Number.isInteger(value) && value >= kind.min && value <= kind.max ? value : bad();
    case 'number':
      return typeof value === 'number' &&
        Number.isFinite(value) &&
        (kind.exclusiveMin ? value > kind.min : value >= kind.min) &&
        value <= kind.max
        ? value
        : bad();
    case 'bool':
      return typeof value === 'boolean' ? value : bad();
    case 'string':
      return typeof value === 'string' && value.trim().length > 0 ? value : bad();
    case 'url':
      return typeof value === 'string' ? (httpUrl(value) ?? bad()) : bad();
    case 'endpoints': {
      const list = typeof value === 'string' ? value.split(',').map((v) => v.trim()) : value;
      if (!Array.isArray(list) || list.length === 0) return bad();
      return list.every(isRpcEndpoint) ? list : bad();
    }
    case 'loras':
      return checkLoras(value, path, issues) ?? (Array.isArray(value) ? undefined : bad());
    case 'urls': {
      if (typeof value === 'string') return httpUrl(value) ?? bad();
      if (!Array.isArray(value) || value.length === 0) return bad();
      const urls = value.map((v) => (typeof v === 'string' ? httpUrl(v) : undefined));
      const wrong = urls.findIndex((u) => u === undefined);
      if (wrong < 0) return urls.length === 1 ? urls[0] : urls;
      const item = value[wrong];
      issues.push({ path: `${path}[${wrong}]`, expected: expectedText({ type: 'url' }), found: describeValue(typeof item === 'string' ? redactUrl(item) : item) });
      return undefined;
    }
  }
}

/** LoRA scales as loadModel takes them. */
const MAX_LORA_SCALE = 1e6;

/** A `lora` list as `{ path, scale }` entries; undefined (and an issue per bad entry) when it has problems. */
function checkLoras(value: unknown, path: string, issues: SettingsIssue[]): { path: string; scale: number }[] | undefined {
  if (!Array.isArray(value)) return undefined;
  const before = issues.length;
  const out = value.map((item: unknown, i) => {
    const where = `${path}[${i}]`;
    if (typeof item === 'string') {
      if (item.trim() === '') issues.push({ path: where, expected: 'a path to a LoRA adapter', found: describeValue(item) });
      return { path: item, scale: 1 };
    }
    if (typeof item !== 'object' || item === null || Array.isArray(item)) {
      issues.push({ path: where, expected: 'a path or { path, scale }', found: describeValue(item) });
      return { path: '', scale: 1 };
    }
    const entry = item as Record<string, unknown>;
    for (const key of Object.keys(entry).filter((k) => k !== 'path' && k !== 'scale')) {
      issues.push({ path: `${where}.${key}`, expected: 'one of the known keys (path, scale)', found: 'an unknown key', suggestion: suggestKey(key, ['path', 'scale']) });
    }
    if (typeof entry.path !== 'string' || entry.path.trim() === '') issues.push({ path: `${where}.path`, expected: 'a path to a LoRA adapter', found: describeValue(entry.path) });
    const scale = entry.scale ?? 1;
    if (typeof scale !== 'number' || !Number.isFinite(scale) || Math.abs(scale) > MAX_LORA_SCALE) {
      issues.push({ path: `${where}.scale`, expected: `a number from ${-MAX_LORA_SCALE} to ${MAX_LORA_SCALE}`, found: describeValue(scale) });
    }
    return { path: entry.path as string, scale: scale as number };
  });
  return issues.length > before ? undefined : out;
}

/** The URL without trailing slashes when it is http(s), else undefined. */
function httpUrl(value: string): string | undefined {
  try {
    const u = new URL(value);
    return u.protocol === 'http:' || u.protocol === 'https:' ? value.replace(/\/+$/, '') : undefined;
  } catch {
    return undefined;
  }
}

/** An environment variable's text as a message shows it: `'hot'` (secrets by length only). */
function envText(text: string, secret = false): string {
  if (secret) return `a value of ${text.length} characters`;
  return `'${text.length > 60 ? `${text.slice(0, 60)}…` : text}'`;
}

/**
 * Parses an environment variable's text into the key's type; undefined (and an issue) when it does not parse.
 * Issues name the variable and quote its text: `LLM_TEMPERATURE: expected a number, got 'hot'`.
 */
export function parseEnvValue(key: SettingKey, text: string, issues: SettingsIssue[]): unknown {
  const path = key.env!;
  const kind = key.kind;
  const bad = (expected: string) => {
    issues.push({ path, expected, found: envText(kind.type === 'url' || kind.type === 'urls' ? redactUrl(text) : text, key.secret) });
    return undefined;
  };
  if (kind.type === 'int' || kind.type === 'number') {
    if (!/^\s*[-+]?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?\s*$/i.test(text)) return bad(kind.type === 'int' ? 'an integer' : 'a number');
    const n = Number(text);
    const discard: SettingsIssue[] = [];
    return checkValue(key, n, path, discard) === undefined ? bad(expectedText(kind)) : n;
  }
  if (kind.type === 'bool') {
    const word = text.trim().toLowerCase();
    if (['1', 'true', 'yes', 'on'].includes(word)) return true;
    if (['0', 'false', 'no', 'off'].includes(word)) return false;
    return bad('one of 1, 0, true, false, yes, no, on, off');
  }
  if (kind.type === 'urls' && text.includes(',')) {
    // Several servers: LLM_API_BASE=http://a:8080,http://b:8080
    const parts = text.split(',').map((t) => t.trim());
    const value = parts.every((t) => t !== '') ? checkValue(key, parts, path, []) : undefined;
    return value === undefined ? bad('http:// or https:// URLs separated by commas') : value;
  }
  const discard: SettingsIssue[] = [];
  const value = checkValue(key, kind.type === 'enum' ? text.trim().toLowerCase() : text, path, discard);
  return value === undefined ? bad(expectedText(kind)) : value;
}

/**
 * The known key closest to `unknown`: the same letters in another case or separator style (`enable-cache`,
 * `modelPath` for `model_path`), else a likely misspelling ({@link nearestKey}, the request model's rule).
 */
export function suggestKey(unknown: string, known: readonly string[]): string | undefined {
  const squash = (s: string) => s.toLowerCase().replace(/[-_\s]/g, '');
  return known.find((k) => squash(k) === squash(unknown)) ?? nearestKey(unknown, known);
}

/**
 * Validates a nested settings object whose keys are `pick(key)` paths (YAML snake_case or option camelCase).
 * Returns the values by option path; records unknown keys (with suggestions) and bad values.
 */
export function checkTree(
  tree: unknown,
  pick: (key: SettingKey) => string,
  prefix: string,
  issues: SettingsIssue[],
): Map<string, unknown> {
  const values = new Map<string, unknown>();
  const walk = (node: unknown, path: string[]) => {
    const where = [prefix, ...path].filter(Boolean).join('.');
    if (typeof node !== 'object' || node === null || Array.isArray(node)) {
      issues.push({ path: where, expected: 'a mapping of settings', found: describeValue(node) });
      return;
    }
    const here = SETTING_KEYS.filter((k) => pick(k).split('.').slice(0, -1).join('.') === path.join('.'));
    const groups = new Set(
      SETTING_KEYS.map((k) => pick(k).split('.'))
        .filter((parts) => parts.length > path.length + 1 && parts.slice(0, path.length).join('.') === path.join('.'))
        .map((parts) => parts[path.length]),
    );
    const names = [...here.map((k) => pick(k).split('.').at(-1)!), ...groups];
    for (const [name, value] of Object.entries(node as Record<string, unknown>)) {
      if (groups.has(name)) {
        if (value !== undefined && value !== null) walk(value, [...path, name]);
        continue;
      }
      const key = here.find((k) => pick(k).split('.').at(-1) === name);
      const keyPath = [where, name].filter(Boolean).join('.');
      if (!key) {
        issues.push({
          path: keyPath,
          expected: `one of the known keys (${names.join(', ')})`,
          found: 'an unknown key',
          suggestion: suggestKey(name, names),
        });
        continue;
      }
      // An empty YAML value (`n_ctx:`) means "not set", as does undefined in explicit options.
      if (value === undefined || value === null) continue;
      const checked = checkValue(key, value, keyPath, issues);
      if (checked !== undefined) values.set(key.option, checked);
    }
  };
  walk(tree, []);
  return values;
}

/** Turns values by option path ('api.baseUrl') into a nested settings object. */
export function toInput(values: Map<string, unknown>): LlmSettingsInput {
  const out: Record<string, unknown> = {};
  for (const [path, value] of values) {
    const parts = path.split('.');
    let node = out;
    for (const part of parts.slice(0, -1)) node = (node[part] ??= {}) as Record<string, unknown>;
    node[parts.at(-1)!] = value;
  }
  return out as LlmSettingsInput;
}
