import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import {
  ApiLlmBackend,
  createLlmBackend,
  DEFAULT_MODEL_FILES,
  LlamaError,
  LocalLlmBackend,
  MockLlmBackend,
  resolveSettings,
  SettingsError,
  type LlmBackend,
} from '../lib';
import { captureLogger } from './support/capture-logger';
import { startLlamaServer, type LlamaServer } from './support/llama-server';
import { haveModel, modelPath, STORIES } from './support/models';

const PARAMS = { prompt: 'Once upon a time', maxTokens: 24, temperature: 0 };

function sandbox() {
  const root = mkdtempSync(join(tmpdir(), 'tea-create-'));
  const home = join(root, 'home');
  const appdir = join(root, 'AppDir');
  mkdirSync(home, { recursive: true });
  return { root, home, appdir };
}

describe('createLlmBackend without a model or a server', () => {
  it('nothing configured: ERR_NO_BACKEND naming every place searched', async () => {
    const { root, home, appdir } = sandbox();
    const file = join(root, 'settings.yaml');
    writeFileSync(file, 'llm:\n  model_path: ~/models/missing.gguf\n');
    let error: LlamaError | undefined;
    try {
      await createLlmBackend({ settingsFile: file, env: { APPDIR: appdir }, homeDir: home, logger: captureLogger() });
    } catch (e) {
      error = e as LlamaError;
    }
    expect(error).toBeInstanceOf(LlamaError);
    expect(error!.code).toBe('ERR_NO_BACKEND');
    const places = [
      join(home, 'models', 'missing.gguf'),
      ...DEFAULT_MODEL_FILES.map((f) => join(appdir, 'usr', 'share', 'models', f)),
      ...DEFAULT_MODEL_FILES.map((f) => join(home, '.cache', 'tea', 'models', f)),
    ];
    for (const place of places) expect(error!.message).toContain(place);
    expect(error!.message).toContain('TEA_MODEL_PATH is not set');
    expect(error!.message).toContain('LLM_API_BASE');
  });

  it('backend: mock and backend: api need no model; api without a URL is a settings error', async () => {
    const { home } = sandbox();
    const logger = captureLogger();
    const mock = await createLlmBackend({ env: { LLM_BACKEND: 'mock' }, homeDir: home, logger });
    expect(mock).toBeInstanceOf(MockLlmBackend);
    expect(mock.kind).toBe('mock');
    expect((await mock.call({ prompt: 'hi' })).backend).toBe('mock');
    const api = await createLlmBackend({ backend: 'api', env: { LLM_API_BASE: 'http://127.0.0.1:9/v1', LLM_TIMEOUT: '1.5' }, homeDir: home, logger });
    expect(api).toBeInstanceOf(ApiLlmBackend);
    expect((api as ApiLlmBackend).apiBase).toBe('http://127.0.0.1:9/v1');
    await expect(createLlmBackend({ backend: 'api', env: {}, homeDir: home, logger })).rejects.toMatchObject({
      code: 'ERR_SETTINGS_INVALID',
      message: expect.stringContaining('llm.api.base_url'),
    });
  });

  it("takes the host's parsed settings: as { settings } with options, or as they are", async () => {
    const { home } = sandbox();
    const host = { app: { name: 'my-app', model_path: 42 }, llm: { backend: 'api', api: { base_url: 'http://127.0.0.1:9/v1', timeout: 2 } } };
    const logger = captureLogger();
    const wrapped = await createLlmBackend({ settings: host, env: {}, homeDir: home, logger });
    expect(wrapped).toBeInstanceOf(ApiLlmBackend);
    expect((wrapped as ApiLlmBackend).apiBase).toBe('http://127.0.0.1:9/v1');
    const bare = await createLlmBackend(host, { env: {}, homeDir: home, logger });
    expect(bare).toBeInstanceOf(ApiLlmBackend);
    expect((bare as ApiLlmBackend).apiBase).toBe('http://127.0.0.1:9/v1');
    // Explicit options and the environment win over the host's settings, key by key.
    expect(await createLlmBackend({ settings: host, backend: 'mock', env: {}, homeDir: home, logger })).toBeInstanceOf(MockLlmBackend);
    expect(await createLlmBackend(host, { env: { LLM_BACKEND: 'mock' }, homeDir: home, logger })).toBeInstanceOf(MockLlmBackend);
    // The same checks and messages as a file.
    const bad = await createLlmBackend({ llm: { n_cxt: 512 } }, { env: {}, logger }).catch((e: unknown) => e);
    expect(bad).toBeInstanceOf(SettingsError);
    expect((bad as SettingsError).message).toBe(
      'invalid settings in the settings object:\n  llm.n_cxt: expected one of the known keys (backend, model_path, n_ctx, n_threads, n_gpu_layers, chat_format, rpc_servers, embedding, draft_model, draft_max, draft_min, draft_ngram, lora, temperature, max_tokens, top_p, enable_cache, cache_dir, api), got an unknown key; did you mean "n_ctx"?',
    );
  });

  it('options are strict: an unknown key is ERR_INVALID_ARGUMENT naming it and the nearest known key', async () => {
    const cases: Array<[unknown[], string]> = [
      [[{ contxtSize: 512 }], "unknown option 'contxtSize' in createLlmBackend() options (did you mean 'contextSize'?)"],
      [[{ settingFile: 'settings.yaml' }], "unknown option 'settingFile' in createLlmBackend() options (did you mean 'settingsFile'?)"],
      [[{ maxToken: 5 }], "(did you mean 'maxTokens'?)"],
      [[{ api: { baseURL: 'http://x' } }], "unknown option 'baseURL' in createLlmBackend() options.api (did you mean 'baseUrl'?)"],
      [[{ settings: { llm: {} }, settingsFile: 'x.yaml' }], 'createLlmBackend: give settings or settingsFile, not both'],
      [[{ llm: {} }, { loger: console }], "unknown option 'loger' in createLlmBackend() context (did you mean 'logger'?)"],
      [['settings.yaml'], 'createLlmBackend: expected an options object'],
    ];
    for (const [args, message] of cases) {
      const error = await (createLlmBackend as (...a: unknown[]) => Promise<unknown>)(...args).catch((e: unknown) => e);
      expect(error, message).toMatchObject({ code: 'ERR_INVALID_ARGUMENT', message: expect.stringContaining(message) });
    }
  });

  it('an explicit modelPath that does not exist is ERR_MODEL_NOT_FOUND naming it, never another model or the API', async () => {
    const { root, home } = sandbox();
    const missing = join(root, 'no-such-model.gguf');
    const error = await createLlmBackend({ modelPath: missing, env: { LLM_API_BASE: 'http://127.0.0.1:9/v1' }, homeDir: home, logger: captureLogger() }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'ERR_MODEL_NOT_FOUND', message: `model file not found: ${missing} (the modelPath option)` });
  });

  it('a bad settings file never yields a backend, and nothing is loaded', async () => {
    const { root, home } = sandbox();
    const file = join(root, 'bad.yaml');
    writeFileSync(file, `llm:\n  backend: local\n  model_path: ${modelPath(STORIES)}\n  n_ctx: lots\n`);
    const logger = captureLogger();
    await expect(createLlmBackend({ settingsFile: file, env: {}, homeDir: home, logger })).rejects.toBeInstanceOf(SettingsError);
    expect(logger.lines).toEqual([]);
  });
});

describe.runIf(haveModel(STORIES))('createLlmBackend: local, with the API as the fallback', () => {
  let server: LlamaServer;
  const backends: LlmBackend[] = [];

  beforeAll(async () => {
    server = await startLlamaServer(modelPath(STORIES), ['-c', '512', '-np', '1']);
  });
  afterAll(async () => {
    await Promise.all(backends.map((b) => b.dispose()));
    await server?.stop();
  });

  function keep(backend: LlmBackend): LlmBackend {
    backends.push(backend);
    return backend;
  }

  it('a model that resolves and loads gives the local backend', async () => {
    const { home } = sandbox();
    const logger = captureLogger();
    const backend = keep(await createLlmBackend({ threads: 2, env: { TEA_MODEL_PATH: modelPath(STORIES), LLM_API_BASE: server.baseUrl }, homeDir: home, logger }));
    expect(backend).toBeInstanceOf(LocalLlmBackend);
    expect(backend.kind).toBe('local');
    expect((backend as LocalLlmBackend).loaded).toBe(true);
    expect(logger.text('info')).toContain('(from TEA_MODEL_PATH)');
    expect(logger.text('warn')).toBe('');
    expect((await backend.call(PARAMS)).backend).toBe('local');
  });

  it('no model found and an API configured: the API answers, and the reason is logged', async () => {
    const { home, appdir } = sandbox();
    const logger = captureLogger();
    const backend = keep(await createLlmBackend({ env: { APPDIR: appdir, LLM_API_BASE: server.baseUrl }, homeDir: home, logger }));
    expect(backend.kind).toBe('api');
    const r = await backend.call(PARAMS);
    expect(r.backend).toBe('api');
    expect(r.content).toBe((await server.post<{ content: string }>('/completion', { prompt: PARAMS.prompt, n_predict: 24, temperature: 0 })).content);
    const warning = logger.text('warn');
    expect(warning).toContain('local model unavailable (no model found');
    expect(warning).toContain(join(home, '.cache', 'tea', 'models', DEFAULT_MODEL_FILES[0]));
    // The URL as configured (nothing in it to redact), not a normalized form.
    expect(warning).toContain(`using the API at ${server.baseUrl} instead`);
  });

  it('a corrupt model and an API configured: the API answers, "file invalid" is logged', async () => {
    const { root, home } = sandbox();
    const corrupt = join(root, 'corrupt.gguf');
    writeFileSync(corrupt, readFileSync(modelPath(STORIES)).subarray(0, 4096));
    const logger = captureLogger();
    const backend = keep(await createLlmBackend({ env: { TEA_MODEL_PATH: corrupt, LLM_API_BASE: server.baseUrl }, homeDir: home, logger }));
    expect(backend.kind).toBe('api');
    expect((await backend.call(PARAMS)).content.length).toBeGreaterThan(10);
    expect(logger.text('warn')).toMatch(/local model unavailable \(file invalid: .*corrupt\.gguf \(from TEA_MODEL_PATH\): ERR_MODEL_INVALID/);
  });

  it('a model that fails to load (not found, invalid) and no API: ERR_NO_BACKEND with the load error as cause', async () => {
    const { root, home } = sandbox();
    const corrupt = join(root, 'corrupt.gguf');
    writeFileSync(corrupt, 'GGUF but not really');
    const error = await createLlmBackend({ env: { TEA_MODEL_PATH: corrupt }, homeDir: home, logger: captureLogger() }).catch((e: LlamaError) => e);
    expect(error).toMatchObject({ code: 'ERR_NO_BACKEND', cause: { code: 'ERR_MODEL_INVALID' } });
    expect((error as LlamaError).message).toContain('file invalid');
  });

  it('an unknown chat_format is a settings error with a suggestion, before any load', async () => {
    const { home } = sandbox();
    const logger = captureLogger();
    const error = await createLlmBackend({ chatFormat: 'chatm', env: { TEA_MODEL_PATH: modelPath(STORIES) }, homeDir: home, logger }).catch((e) => e);
    expect(error).toBeInstanceOf(SettingsError);
    expect((error as SettingsError).issues[0]).toMatchObject({ path: 'options.chatFormat', suggestion: 'chatml' });
    expect(logger.text()).not.toContain('loading');
  });

  it('env settings reach the backend: sampling defaults and the on-disk cache', async () => {
    const { root, home } = sandbox();
    const cacheDir = join(root, 'cache');
    const env = { TEA_MODEL_PATH: modelPath(STORIES), LLM_MAX_TOKENS: '9', LLM_TEMPERATURE: '0', LLM_ENABLE_CACHE: 'true', LLM_CACHE_DIR: cacheDir };
    const backend = keep(await createLlmBackend({ threads: 2, contextSize: 256, env, homeDir: home, logger: captureLogger() }));
    const first = await backend.call({ prompt: 'The little dog' });
    expect(first).toMatchObject({ completionTokens: 9, cached: false });
    expect(await backend.call({ prompt: 'The little dog' })).toMatchObject({ content: first.content, cached: true });
    const entries = readdirSync(cacheDir, { recursive: true }).map(String).filter((f) => f.endsWith('.json'));
    expect(entries).toHaveLength(1);
    expect(readFileSync(join(cacheDir, entries[0]), 'utf8')).toContain(JSON.stringify(first.content));
  });

  it('nothing configured: the only model in ~/.cache/tea/models is used, whatever its name', async () => {
    const { home } = sandbox();
    const cache = join(home, '.cache', 'tea', 'models');
    mkdirSync(cache, { recursive: true });
    copyFileSync(modelPath(STORIES), join(cache, 'my-pulled-model.gguf'));
    const logger = captureLogger();
    const backend = keep(await createLlmBackend({ threads: 2, contextSize: 256, env: {}, homeDir: home, logger }));
    expect(backend.kind).toBe('local');
    expect(backend.model).toBe('my-pulled-model.gguf');
    expect(logger.text('info')).toContain(`${join(cache, 'my-pulled-model.gguf')} is the only model in ${cache}`);
    expect((await backend.call(PARAMS)).content).toMatch(/^, there was a little girl/);
  });

  it('accepts settings already resolved by resolveSettings()', async () => {
    const { home } = sandbox();
    const env = { LLM_BACKEND: 'api', LLM_API_BASE: server.baseUrl, LLM_API_KEY: 'sk-unused-by-llama-server' };
    const settings = await resolveSettings({ env, homeDir: home });
    const backend = keep(await createLlmBackend(settings, { env, logger: captureLogger() }));
    expect(backend.kind).toBe('api');
    expect((await backend.call(PARAMS)).backend).toBe('api');
  });
});
