import { statSync } from 'node:fs';

import { ApiLlmBackend } from './backends/api-backend';
import type { BackendCommonOptions } from './backends/base-backend';
import { displayUrl } from './backends/http-client';
import type { LlmBackend } from './backends/llm-backend';
import { LocalLlmBackend } from './backends/local-backend';
import { MockLlmBackend } from './backends/mock-backend';
import { ResponseCache } from './backends/response-cache';
import type { Env } from './config/expand-path';
import { describeSearch, resolveModelPath } from './config/model-path';
import { suggestKey, SettingsError, type LlmSettings, type LlmSettingsInput } from './config/schema';
import { rejectUnknownKeys } from './engine/request';
import { rejectUnknownSettingOptions, resolveSettings } from './config/settings';
import { LlamaError, toLlamaError } from './errors';
import { defaultLogger, type Logger } from './logger';
import { getBinding } from './native/load-binding';

export interface CreateLlmBackendOptions extends LlmSettingsInput {
  /**
   * The settings your application already parsed from its own YAML: `{ llm: { backend, model_path, n_ctx, … },
   * …your other blocks }`. Only `llm` is read, with the same checks, precedence (the YAML layer, below the
   * environment and these options) and messages as a settings file. Default: none.
   */
  settings?: Record<string, unknown>;
  /** A YAML settings file; only its `llm` block is read. Default: none. At most one of `settings` and `settingsFile`. */
  settingsFile?: string;
  /** Default: `process.env`. */
  env?: Env;
  /** For `~` in paths. Default: `os.homedir()`. */
  homeDir?: string;
  /** Default: warnings to stderr. */
  logger?: Logger;
  /** Memory, in bytes, the auto-configured context must fit in. Default: `os.freemem()`. */
  freeMemory?: number;
  /** Receives the local model load's progress, 0…1 (ends with 1), e.g. for a progress bar. */
  onLoadProgress?: (progress: number) => void;
  /** Requests a local model runs at once (see `LoadModelOptions.sequences`; `tea-llama serve --parallel`). Default 4. */
  sequences?: number;
}

/** Runtime context when passing already resolved settings, or a host's parsed settings document. */
export type CreateLlmBackendContext = Pick<CreateLlmBackendOptions, 'env' | 'homeDir' | 'logger' | 'freeMemory' | 'onLoadProgress' | 'sequences'>;

const CONTEXT_KEYS = ['env', 'homeDir', 'logger', 'freeMemory', 'onLoadProgress', 'sequences'];
const OPTION_KEYS = ['settings', 'settingsFile', ...CONTEXT_KEYS];

function isResolved(value: unknown): value is LlmSettings {
  return typeof value === 'object' && value !== null && typeof (value as LlmSettings).sources === 'object';
}

/** A host's parsed settings document, passed as it is: `{ llm: { … } }`. */
function isHostSettings(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && Object.prototype.hasOwnProperty.call(value, 'llm');
}

function common(settings: LlmSettings, logger: Logger): BackendCommonOptions {
  return {
    logger,
    defaults: { maxTokens: settings.maxTokens, temperature: settings.temperature, topP: settings.topP },
    cache: settings.enableCache ? new ResponseCache(settings.cacheDir) : undefined,
  };
}

function apiBackend(settings: LlmSettings, logger: Logger): ApiLlmBackend {
  return new ApiLlmBackend({
    ...common(settings, logger),
    // Settings resolved by an older resolveSettings() (or built by hand) may have baseUrl without endpoints.
    baseUrl: settings.api.endpoints ?? settings.api.baseUrl!,
    apiKey: settings.api.apiKey ?? '',
    model: settings.api.model,
    timeoutMs: settings.api.timeout * 1000,
    compat: settings.api.compat,
  });
}

/** The configured API server(s), for log lines. */
function apiWhere(settings: LlmSettings): string {
  return (settings.api.endpoints ?? [settings.api.baseUrl!]).map((u) => displayUrl(u)).join(', ');
}

/** chat_format must be a built-in template name or a Jinja template. */
function checkChatFormat(settings: LlmSettings): void {
  const format = settings.chatFormat;
  if (format === undefined || format.includes('{{') || format.includes('{%')) return;
  const names = getBinding().builtinChatTemplates();
  if (!names.includes(format)) {
    const path = settings.sources.chatFormat === 'explicit' ? 'options.chatFormat' : 'llm.chat_format';
    throw new SettingsError(path === 'llm.chat_format' ? 'the settings' : 'the options', [
      {
        path,
        expected: 'a built-in chat template name (builtinChatTemplates()) or a Jinja template',
        found: JSON.stringify(format),
        suggestion: suggestKey(format, names),
      },
    ]);
  }
}

/**
 * Builds the backend the settings ask for. Three forms:
 * - `createLlmBackend(options)`: camelCase options (see {@link CreateLlmBackendOptions}), with the YAML layer from
 *   `settings` (a parsed settings document) or `settingsFile`;
 * - `createLlmBackend(hostSettings, context?)`: the settings document a host application parsed from its YAML,
 *   as it is (`{ llm: { backend, model_path, … }, …other blocks }`; recognised by its `llm` key), the same as
 *   `createLlmBackend({ settings: hostSettings, ...context })`;
 * - `createLlmBackend(resolved, context?)`: settings already resolved by {@link resolveSettings}.
 *
 * Settings are resolved explicit options > environment > YAML layer > defaults, every layer checked first:
 * - `backend: local`: a {@link LocalLlmBackend} when a model resolves (see {@link resolveModelPath}) and loads;
 *   otherwise, when an API is configured (`llm.api.base_url` / `LLM_API_BASE`), an {@link ApiLlmBackend}, with the
 *   reason logged as a warning; otherwise ERR_NO_BACKEND naming every place searched.
 * - `backend: api`: an {@link ApiLlmBackend} (ERR_SETTINGS_INVALID without a base URL).
 * - `backend: mock`: a {@link MockLlmBackend}.
 * The backend's `kind` says which it is.
 *
 * @throws SettingsError (ERR_SETTINGS_INVALID) for bad settings, before anything is loaded; ERR_NO_BACKEND.
 */
export async function createLlmBackend(options?: CreateLlmBackendOptions): Promise<LlmBackend>;
export async function createLlmBackend(settings: LlmSettings | Record<string, unknown>, context?: CreateLlmBackendContext): Promise<LlmBackend>;
export async function createLlmBackend(
  input: CreateLlmBackendOptions | LlmSettings | Record<string, unknown> = {},
  context: CreateLlmBackendContext = {},
): Promise<LlmBackend> {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw new LlamaError('ERR_INVALID_ARGUMENT', 'createLlmBackend: expected an options object, a settings document with an llm block, or resolved settings');
  }
  if (typeof context !== 'object' || context === null) throw new LlamaError('ERR_INVALID_ARGUMENT', 'createLlmBackend: context must be an object');
  rejectUnknownKeys(context, CONTEXT_KEYS, 'createLlmBackend() context');
  let settings: LlmSettings;
  let runtime: CreateLlmBackendContext;
  if (isResolved(input)) {
    settings = input;
    runtime = context;
  } else if (isHostSettings(input)) {
    runtime = context;
    settings = await resolveSettings({ settings: input, env: context.env, homeDir: context.homeDir });
  } else {
    if (Object.keys(context).length > 0) throw new LlamaError('ERR_INVALID_ARGUMENT', 'createLlmBackend: a context goes with resolved settings or a settings document; put these keys in the options');
    rejectUnknownSettingOptions('createLlmBackend() options', input, OPTION_KEYS);
    const { settings: host, settingsFile, env, homeDir, logger, freeMemory, onLoadProgress, sequences, ...explicit } = input as CreateLlmBackendOptions;
    if (host !== undefined && settingsFile !== undefined) throw new LlamaError('ERR_INVALID_ARGUMENT', 'createLlmBackend: give settings or settingsFile, not both');
    runtime = { env, homeDir, logger, freeMemory, onLoadProgress, sequences };
    settings = await resolveSettings({
      options: explicit,
      ...(host !== undefined ? { settings: host } : {}),
      ...(settingsFile !== undefined ? { file: settingsFile } : {}),
      env,
      homeDir,
    });
  }
  const logger = runtime.logger ?? defaultLogger;
  const env = runtime.env ?? process.env;
  const chosenBy = (key: string) => (settings.sources[key] === 'default' ? 'the default' : `${settings.sources[key]} settings`);

  if (settings.backend === 'mock') {
    logger.info(`backend: mock (from ${chosenBy('backend')})`);
    return new MockLlmBackend(common(settings, logger));
  }
  if (settings.backend === 'api') {
    if (!settings.api.baseUrl) {
      throw new SettingsError('the settings', [
        { path: 'llm.api.base_url (or LLM_API_BASE)', expected: 'an http:// or https:// URL when the backend is api', found: 'nothing' },
      ]);
    }
    // A server drafts with its own model and settings (llama-server --spec-type, -md): none can be sent per request.
    const draft = (['draftModel', 'draftMax', 'draftMin', 'draftNgram'] as const).find((k) => settings.sources[k] !== undefined && settings.sources[k] !== 'default');
    if (draft) {
      throw new SettingsError('the settings', [
        { path: draft, expected: 'speculative decoding settings only with the local backend (an API server drafts as it was started: llama-server --spec-type, -md)', found: String(settings[draft]) },
      ]);
    }
    if (settings.lora !== undefined) {
      throw new SettingsError('the settings', [
        { path: 'lora', expected: 'LoRA adapters only with the local backend (an API server loads them as it was started: llama-server --lora)', found: 'a list' },
      ]);
    }
    logger.info(`backend: api at ${apiWhere(settings)} (from ${chosenBy('backend')})`);
    return apiBackend(settings, logger);
  }

  // backend: local, falling back to the API.
  const resolution = resolveModelPath(settings, { env, ...(runtime.homeDir !== undefined ? { homeDir: runtime.homeDir } : {}), logger });
  let reason: string;
  let cause: unknown;
  if (resolution.explicitMissing) {
    // An explicit model path is a request for that model: never replaced by another model or the API.
    const asked = resolution.searched.find((c) => c.source === 'option')?.path ?? settings.modelPath;
    const found = resolution.ambiguous.length > 0 ? `: it holds several equally recent models (${resolution.ambiguous[0].models.join(', ')})` : '';
    throw new LlamaError('ERR_MODEL_NOT_FOUND', `model file not found: ${asked} (the modelPath option)${found}`);
  }
  // Adapters asked for by name are a request for them, as an explicit model path: never quietly left out.
  const missingLora = settings.lora?.find((l) => !statSync(l.path, { throwIfNoEntry: false })?.isFile());
  if (missingLora) throw new LlamaError('ERR_MODEL_NOT_FOUND', `LoRA adapter file not found: ${missingLora.path} (the lora setting)`);
  if (resolution.path === null) {
    reason = `no model found; looked in:\n${describeSearch(resolution)}`;
  } else {
    const local = new LocalLlmBackend({
      ...common(settings, logger),
      modelPath: resolution.path,
      contextSize: settings.contextSize,
      threads: settings.threads,
      gpuLayers: settings.gpuLayers,
      ...(settings.rpcServers?.length ? { rpcServers: settings.rpcServers } : {}),
      chatFormat: settings.chatFormat,
      embedding: settings.embedding,
      ...(settings.draftModel !== undefined ? { draftModel: settings.draftModel } : {}),
      ...(settings.draftMax !== undefined ? { draftMax: settings.draftMax } : {}),
      ...(settings.draftMin !== undefined ? { draftMin: settings.draftMin } : {}),
      ...(settings.draftNgram ? { draftNgram: true } : {}),
      ...(settings.lora !== undefined ? { lora: settings.lora } : {}),
      freeMemory: runtime.freeMemory,
      onLoadProgress: runtime.onLoadProgress,
      sequences: runtime.sequences,
    });
    try {
      checkChatFormat(settings);
      await local.load();
      logger.info(`backend: local, ${resolution.path} (from ${resolution.source})`);
      return local;
    } catch (error) {
      await local.dispose();
      if (error instanceof SettingsError) throw error;
      const e = toLlamaError(error);
      // A draft model or an adapter unlike the model is a mistake in the settings, not a reason to answer from elsewhere.
      if (e.code === 'ERR_DRAFT_INCOMPATIBLE' || e.code === 'ERR_LORA_INVALID') throw e;
      cause = e;
      const invalid = e.code === 'ERR_MODEL_INVALID' || e.code === 'ERR_MODEL_VOCAB_ONLY';
      const what = invalid ? 'file invalid' : e.code === 'ERR_MODEL_NOT_FOUND' ? 'no model found' : 'load failed';
      reason = `${what}: ${resolution.path} (from ${resolution.source}): ${e.code}: ${e.message}`;
    }
  }
  if (settings.api.baseUrl) {
    logger.warn(`local model unavailable (${reason}); using the API at ${apiWhere(settings)} instead`);
    return apiBackend(settings, logger);
  }
  throw new LlamaError(
    'ERR_NO_BACKEND',
    `no LLM backend available: the local model cannot be used (${reason})\n` +
      'and no API is configured. Set TEA_MODEL_PATH or llm.model_path to a GGUF model, ' +
      'or LLM_API_BASE or llm.api.base_url to an OpenAI-compatible server.',
    { cause },
  );
}
