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
import { resolveSettings } from './config/settings';
import { LlamaError, toLlamaError } from './errors';
import { defaultLogger, type Logger } from './logger';
import { getBinding } from './native/load-binding';

export interface CreateLlmBackendOptions extends LlmSettingsInput {
  /** A YAML settings file; only its `llm` block is read. */
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
}

/** Runtime context when passing already resolved settings. */
export type CreateLlmBackendContext = Pick<CreateLlmBackendOptions, 'env' | 'homeDir' | 'logger' | 'freeMemory' | 'onLoadProgress'>;

function isResolved(value: unknown): value is LlmSettings {
  return typeof value === 'object' && value !== null && typeof (value as LlmSettings).sources === 'object';
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
    baseUrl: settings.api.baseUrl!,
    apiKey: settings.api.apiKey ?? '',
    model: settings.api.model,
    timeoutMs: settings.api.timeout * 1000,
  });
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
 * Builds the backend the settings ask for, resolving them first (explicit > environment > YAML > defaults)
 * unless they are already resolved (the result of {@link resolveSettings}):
 * - `backend: local`: a {@link LocalLlmBackend} when a model resolves (see {@link resolveModelPath}) and loads;
 *   otherwise, when an API is configured (`llm.api.base_url` / `LLM_API_BASE`), an {@link ApiLlmBackend}, with the
 *   reason logged as a warning; otherwise ERR_NO_BACKEND naming every place searched.
 * - `backend: api`: an {@link ApiLlmBackend} (ERR_SETTINGS_INVALID without a base URL).
 * - `backend: mock`: a {@link MockLlmBackend}.
 * The backend's `kind` says which it is.
 *
 * @throws SettingsError (ERR_SETTINGS_INVALID) for bad settings, before anything is loaded; ERR_NO_BACKEND.
 */
export async function createLlmBackend(settings?: CreateLlmBackendOptions): Promise<LlmBackend>;
export async function createLlmBackend(settings: LlmSettings, context?: CreateLlmBackendContext): Promise<LlmBackend>;
export async function createLlmBackend(
  input: CreateLlmBackendOptions | LlmSettings = {},
  context: CreateLlmBackendContext = {},
): Promise<LlmBackend> {
  let settings: LlmSettings;
  let runtime: CreateLlmBackendContext;
  if (isResolved(input)) {
    settings = input;
    runtime = context;
  } else {
    if (typeof input !== 'object' || input === null) throw new LlamaError('ERR_INVALID_ARGUMENT', 'settings must be an object');
    const { settingsFile, env, homeDir, logger, freeMemory, onLoadProgress, ...explicit } = input;
    runtime = { env, homeDir, logger, freeMemory, onLoadProgress };
    settings = await resolveSettings({ settings: explicit, file: settingsFile, env, homeDir });
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
    logger.info(`backend: api at ${displayUrl(settings.api.baseUrl)} (from ${chosenBy('backend')})`);
    return apiBackend(settings, logger);
  }

  // backend: local, falling back to the API.
  const resolution = resolveModelPath(settings, { env, homeDir: runtime.homeDir, logger });
  let reason: string;
  let cause: unknown;
  if (resolution.path === null) {
    reason = `no model found; looked in:\n${describeSearch(resolution)}`;
  } else {
    const local = new LocalLlmBackend({
      ...common(settings, logger),
      modelPath: resolution.path,
      contextSize: settings.contextSize,
      threads: settings.threads,
      gpuLayers: settings.gpuLayers,
      chatFormat: settings.chatFormat,
      embedding: settings.embedding,
      freeMemory: runtime.freeMemory,
      onLoadProgress: runtime.onLoadProgress,
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
      cause = e;
      const invalid = e.code === 'ERR_MODEL_INVALID' || e.code === 'ERR_MODEL_VOCAB_ONLY';
      const what = invalid ? 'file invalid' : e.code === 'ERR_MODEL_NOT_FOUND' ? 'no model found' : 'load failed';
      reason = `${what}: ${resolution.path} (from ${resolution.source}): ${e.code}: ${e.message}`;
    }
  }
  if (settings.api.baseUrl) {
    logger.warn(`local model unavailable (${reason}); using the API at ${displayUrl(settings.api.baseUrl)} instead`);
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
