import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

import { LlamaError, parseSettingsYaml, resolveSettings, settingsFromEnv, SettingsError, SETTING_KEYS } from '../lib';
import { repoRoot } from './support/models';

const dir = mkdtempSync(join(tmpdir(), 'tea-settings-'));
const home = join(dir, 'home');

async function problem(work: Promise<unknown> | (() => unknown)): Promise<SettingsError> {
  try {
    await (typeof work === 'function' ? work() : work);
  } catch (error) {
    expect(error).toBeInstanceOf(SettingsError);
    expect(error).toBeInstanceOf(LlamaError);
    expect((error as LlamaError).code).toBe('ERR_SETTINGS_INVALID');
    return error as SettingsError;
  }
  throw new Error('expected a SettingsError');
}

const FULL = `
# Other parts of the application's settings: not ours, never read.
app:
  name: tea
  whatever: [1, 2, 3]
  model_path: 42
llm:
  backend: local
  model_path: ~/models/phi.gguf
  n_ctx: 8192
  n_threads: 3
  n_gpu_layers: -1
  rpc_servers: [10.0.0.5:50052, "gpu-box:50052"]
  chat_format: chatml
  embedding: true
  draft_model: ~/models/phi-draft.gguf
  draft_max: 8
  draft_min: 2
  draft_ngram: true
  lora: [~/models/phi-lora.gguf, { path: $CACHE_ROOT/style.gguf, scale: 0.5 }]
  temperature: 0.2
  max_tokens: 256
  top_p: 0.9
  enable_cache: true
  cache_dir: $CACHE_ROOT/responses
  api:
    base_url: http://127.0.0.1:8080/v1/
    api_key: sk-from-yaml
    model: phi-4-mini
    timeout: 12.5
    compat: openai
ui:
  theme: dark
`;

describe('settings', () => {
  it('reads a valid file: only the llm block, paths expanded, every key mapped', async () => {
    const file = join(dir, 'settings.yaml');
    writeFileSync(file, FULL);
    const s = await resolveSettings({ file, env: { CACHE_ROOT: '/var/cache/tea' }, homeDir: home });
    expect(s).toEqual({
      backend: 'local',
      modelPath: join(home, 'models', 'phi.gguf'),
      contextSize: 8192,
      threads: 3,
      gpuLayers: -1,
      rpcServers: ['10.0.0.5:50052', 'gpu-box:50052'],
      chatFormat: 'chatml',
      embedding: true,
      draftModel: join(home, 'models', 'phi-draft.gguf'),
      draftMax: 8,
      draftMin: 2,
      draftNgram: true,
      lora: [
        { path: join(home, 'models', 'phi-lora.gguf'), scale: 1 },
        { path: '/var/cache/tea/style.gguf', scale: 0.5 },
      ],
      temperature: 0.2,
      maxTokens: 256,
      topP: 0.9,
      enableCache: true,
      cacheDir: '/var/cache/tea/responses',
      api: { baseUrl: 'http://127.0.0.1:8080/v1', endpoints: ['http://127.0.0.1:8080/v1'], apiKey: 'sk-from-yaml', model: 'phi-4-mini', timeout: 12.5, compat: 'openai' },
      sources: expect.any(Object),
    });
    expect(Object.values(s.sources).every((source) => source === 'yaml')).toBe(true);
    expect(Object.keys(s.sources).sort()).toEqual(SETTING_KEYS.map((k) => k.option).sort());
  });

  it('has defaults for everything, and an empty file or llm block is valid', async () => {
    for (const yaml of ['', 'other: 1\n', 'llm:\n', 'llm: {}\n']) {
      const s = await resolveSettings({ yaml, env: {}, homeDir: home });
      expect(s, JSON.stringify(yaml)).toMatchObject({
        backend: 'local',
        threads: availableParallelism(),
        gpuLayers: 0,
        embedding: false,
        temperature: 0.7,
        maxTokens: 100,
        enableCache: false,
        cacheDir: join(home, '.cache', 'tea', 'responses'),
        api: { timeout: 60 },
      });
      expect(s.modelPath).toBeUndefined();
      expect(s.contextSize).toBeUndefined();
      expect(s.api.baseUrl).toBeUndefined();
      expect(Object.values(s.sources).every((source) => source === 'default')).toBe(true);
    }
  });

  it('rejects each invalid value with its key path, what was expected and what was found', async () => {
    const cases: Array<[string, string, RegExp, RegExp]> = [
      ['backend: remote', 'llm.backend', /one of "local", "api", "mock"/, /"remote"/],
      ['n_ctx: big', 'llm.n_ctx', /an integer from 1 to 16777216/, /"big"/],
      ['n_ctx: 0', 'llm.n_ctx', /an integer from 1/, /0 \(number\)/],
      ['n_ctx: 1.5', 'llm.n_ctx', /an integer/, /1.5/],
      ['n_ctx: "4096"', 'llm.n_ctx', /an integer/, /"4096"/],
      ['n_threads: 0', 'llm.n_threads', /an integer from 1 to 1024/, /0/],
      ['n_gpu_layers: -2', 'llm.n_gpu_layers', /an integer from -1/, /-2/],
      ['embedding: maybe', 'llm.embedding', /true or false/, /"maybe"/],
      ['temperature: -0.1', 'llm.temperature', /a number from 0 to 100/, /-0.1/],
      ['top_p: 2', 'llm.top_p', /a number from 0 to 1/, /2/],
      ['max_tokens: 0', 'llm.max_tokens', /an integer from 1/, /0/],
      ['enable_cache: 1', 'llm.enable_cache', /true or false/, /1 \(number\)/],
      ['cache_dir: ""', 'llm.cache_dir', /a non-empty string/, /""/],
      ['model_path: [a, b]', 'llm.model_path', /a non-empty string/, /a list/],
      ['chat_format: 7', 'llm.chat_format', /a non-empty string/, /7/],
      ['api: { base_url: "ftp://host" }', 'llm.api.base_url', /an http:\/\/ or https:\/\/ URL/, /"ftp:\/\/host"/],
      ['api: { base_url: "localhost:8080" }', 'llm.api.base_url', /URL/, /"localhost:8080"/],
      ['api: { timeout: 0 }', 'llm.api.timeout', /a number above 0/, /0/],
      ['api: { model: { name: x } }', 'llm.api.model', /a non-empty string/, /a mapping/],
      ['api: just-a-string', 'llm.api', /a mapping of settings/, /"just-a-string"/],
    ];
    for (const [line, path, expected, found] of cases) {
      const error = await problem(resolveSettings({ yaml: `llm:\n  ${line}\n`, env: {}, homeDir: home }));
      expect(error.issues, line).toHaveLength(1);
      expect(error.issues[0].path, line).toBe(path);
      expect(error.issues[0].expected, line).toMatch(expected);
      expect(error.issues[0].found, line).toMatch(found);
      expect(error.message, line).toContain(`${path}: expected ${error.issues[0].expected}, got ${error.issues[0].found}`);
    }
    const notAMapping = await problem(resolveSettings({ yaml: 'llm: [1, 2]', env: {} }));
    expect(notAMapping.issues[0]).toMatchObject({ path: 'llm', found: 'a list' });
  });

  it('never echoes an API key in a validation message', async () => {
    const error = await problem(resolveSettings({ yaml: 'llm:\n  api:\n    api_key: [sk-secret-123]\n', env: {} }));
    expect(error.issues[0]).toMatchObject({ path: 'llm.api.api_key', found: 'a list' });
    const keyError = await problem(() => parseSettingsYaml('llm: { api: { api_key: 12345678 } }'));
    expect(keyError.message).not.toContain('12345678');
    expect(keyError.issues[0].found).toBe('a number');
  });

  it('reports an unknown key with the key it probably meant', async () => {
    const yaml = `llm:
  n_cxt: 2048
  modelPath: /m.gguf
  temprature: 0.1
  enable-cache: true
  api:
    base_ur: http://x
    apikey: k
  frobnicate: true
`;
    const error = await problem(resolveSettings({ yaml, env: {} }));
    expect(error.issues.map((i) => [i.path, i.suggestion])).toEqual([
      ['llm.n_cxt', 'n_ctx'],
      ['llm.modelPath', 'model_path'],
      ['llm.temprature', 'temperature'],
      ['llm.enable-cache', 'enable_cache'],
      ['llm.api.base_ur', 'base_url'],
      ['llm.api.apikey', 'api_key'],
      ['llm.frobnicate', undefined],
    ]);
    expect(error.message).toContain('llm.n_cxt: expected one of the known keys');
    expect(error.message).toContain('got an unknown key; did you mean "n_ctx"?');
  });

  it('explicit options are strict: an unknown key is ERR_INVALID_ARGUMENT naming it and the nearest known key', async () => {
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ options: { contextsize: 10 } }, "unknown option 'contextsize' in resolveSettings() options.options (did you mean 'contextSize'?)"],
      [{ options: { contxtSize: undefined } }, "(did you mean 'contextSize'?)"],
      [{ options: { api: { baseURL: 'http://x' } } }, "unknown option 'baseURL' in resolveSettings() options.options.api (did you mean 'baseUrl'?)"],
      [{ setings: {} }, "unknown option 'setings' in resolveSettings() options (did you mean 'settings'?)"],
      [{ yaml: { llm: {} } }, 'resolveSettings: yaml must be YAML text (got a mapping); pass an object you already parsed as settings'],
      [{ yaml: 'llm: {}', settings: { llm: {} } }, 'resolveSettings: give one YAML layer, not settings and yaml'],
      [{ settings: [1] }, 'resolveSettings: settings must be the parsed settings document'],
    ];
    for (const [options, message] of cases) {
      const error = await resolveSettings({ env: {}, ...options } as never).catch((e: unknown) => e);
      expect(error, message).toBeInstanceOf(LlamaError);
      expect(error, message).toMatchObject({ code: 'ERR_INVALID_ARGUMENT', message: expect.stringContaining(message) });
    }
  });

  it('takes the settings a host already parsed from its own YAML, with the checks and messages of a file', async () => {
    const { parse } = await import('yaml');
    const host = parse(FULL) as Record<string, unknown>;
    const fromObject = await resolveSettings({ settings: host, env: { CACHE_ROOT: '/var/cache/tea' }, homeDir: home });
    const fromText = await resolveSettings({ yaml: FULL, env: { CACHE_ROOT: '/var/cache/tea' }, homeDir: home });
    expect(fromObject).toEqual(fromText);
    expect(fromObject.sources.contextSize).toBe('yaml');
    // Same precedence as a file: explicit > environment > the host's settings.
    const layered = await resolveSettings({ settings: host, env: { LLM_MAX_TOKENS: '7' }, options: { temperature: 0 }, homeDir: home });
    expect(layered).toMatchObject({ temperature: 0, maxTokens: 7, topP: 0.9 });
    // Same messages as a file, under the name "the settings object".
    const bad = await problem(resolveSettings({ settings: { app: { x: 1 }, llm: { n_cxt: 512, temperature: 'hot' } }, env: {} }));
    const asFile = await problem(resolveSettings({ yaml: 'app: { x: 1 }\nllm: { n_cxt: 512, temperature: hot }\n', env: {} }));
    expect(bad.issues).toEqual(asFile.issues);
    expect(bad.message).toBe(asFile.message.replace('settings YAML', 'the settings object'));
    expect(bad.message).toContain('llm.n_cxt: expected one of the known keys');
  });

  it('reports YAML syntax errors with their line, and an unreadable file', async () => {
    const syntax = await problem(resolveSettings({ yaml: 'llm:\n  n_ctx: 1\n  n_ctx: 2\n', env: {} }));
    expect(syntax.issues[0].path).toMatch(/^line 3/);
    const broken = await problem(resolveSettings({ yaml: 'llm:\n  api: {base_url: "x"\n', env: {} }));
    expect(broken.issues[0].expected).toBe('valid YAML');
    const missing = await problem(resolveSettings({ file: join(dir, 'nope.yaml'), env: {} }));
    expect(missing.message).toContain('nope.yaml');
    expect(missing.issues[0].found).toBe('no such file');
  });

  it('reports every problem of every source at once', async () => {
    const error = await problem(
      resolveSettings({ yaml: 'llm:\n  n_ctx: -1\n  backend: cloud\n', env: { LLM_MAX_TOKENS: 'lots' }, options: { topP: 5 } }),
    );
    expect(error.issues.map((i) => i.path)).toEqual(['llm.n_ctx', 'llm.backend', 'LLM_MAX_TOKENS', 'options.topP']);
  });

  it('reads every LLM_* variable, parsing numbers and booleans; an empty one is unset', () => {
    const env = {
      LLM_BACKEND: 'API',
      LLM_MODEL: 'qwen',
      LLM_API_KEY: 'k',
      LLM_API_BASE: 'https://example.test/v1',
      LLM_TEMPERATURE: '0.25',
      LLM_MAX_TOKENS: '64',
      LLM_TOP_P: '.5',
      LLM_TIMEOUT: '2.5',
      LLM_ENABLE_CACHE: 'yes',
      LLM_CACHE_DIR: '/tmp/c',
    };
    expect(settingsFromEnv(env)).toEqual({
      backend: 'api',
      temperature: 0.25,
      maxTokens: 64,
      topP: 0.5,
      enableCache: true,
      cacheDir: '/tmp/c',
      api: { baseUrl: 'https://example.test/v1', apiKey: 'k', model: 'qwen', timeout: 2.5 },
    });
    expect(settingsFromEnv({ LLM_ENABLE_CACHE: 'off', LLM_BACKEND: '' })).toEqual({ enableCache: false });
    // Each variable's own text in the message, never a parse artefact such as NaN.
    for (const [name, value, line] of [
      ['LLM_TEMPERATURE', 'hot', "LLM_TEMPERATURE: expected a number, got 'hot'"],
      ['LLM_MAX_TOKENS', '1.5', "LLM_MAX_TOKENS: expected an integer from 1 to 2147483647, got '1.5'"],
      ['LLM_MAX_TOKENS', '12abc', "LLM_MAX_TOKENS: expected an integer, got '12abc'"],
      ['LLM_TOP_P', '1.5', "LLM_TOP_P: expected a number from 0 to 1, got '1.5'"],
      ['LLM_TIMEOUT', '-1', "LLM_TIMEOUT: expected a number above 0, got '-1'"],
      ['LLM_ENABLE_CACHE', 'sometimes', "LLM_ENABLE_CACHE: expected one of 1, 0, true, false, yes, no, on, off, got 'sometimes'"],
      ['LLM_BACKEND', 'cloud', 'LLM_BACKEND: expected one of "local", "api", "mock", got \'cloud\''],
      ['LLM_API_BASE', 'not a url', "LLM_API_BASE: expected an http:// or https:// URL, or a non-empty list of them, got 'not a url'"],
    ]) {
      let error: unknown;
      try {
        settingsFromEnv({ [name]: value });
      } catch (e) {
        error = e;
      }
      expect(error, `${name}=${value}`).toBeInstanceOf(SettingsError);
      expect((error as SettingsError).issues[0].path).toBe(name);
      expect((error as SettingsError).message).toBe(`invalid settings in the environment:\n  ${line}`);
      expect((error as SettingsError).message).not.toContain('NaN');
    }
  });

  it('precedence: explicit options > environment > YAML > defaults, key by key', async () => {
    const yaml = 'llm:\n  temperature: 0.1\n  max_tokens: 11\n  top_p: 0.3\n  api:\n    base_url: http://yaml.test\n    model: from-yaml\n';
    const env = { LLM_TEMPERATURE: '0.2', LLM_MAX_TOKENS: '22', LLM_API_BASE: 'http://env.test' };
    const s = await resolveSettings({ yaml, env, options: { temperature: 0.3, api: { baseUrl: 'http://explicit.test' } } });
    expect(s.temperature).toBe(0.3); // explicit over env and YAML
    expect(s.maxTokens).toBe(22); // env over YAML
    expect(s.topP).toBe(0.3); // YAML over the default
    expect(s.api).toMatchObject({ baseUrl: 'http://explicit.test', model: 'from-yaml', timeout: 60 });
    expect(s.backend).toBe('local'); // default
    expect(s.sources).toMatchObject({
      temperature: 'explicit',
      maxTokens: 'env',
      topP: 'yaml',
      backend: 'default',
      'api.baseUrl': 'explicit',
      'api.model': 'yaml',
      'api.timeout': 'default',
    });
    // An explicit undefined is "not set", not an override.
    expect((await resolveSettings({ yaml, env, options: { temperature: undefined } })).temperature).toBe(0.2);
  });

  it('the README\'s YAML example is valid and means what it says', async () => {
    const readme = readFileSync(join(repoRoot, 'README.md'), 'utf8');
    const yaml = /```yaml\n([\s\S]*?)```/.exec(readme)![1];
    const s = await resolveSettings({ yaml, env: {}, homeDir: home });
    expect(s).toMatchObject({
      backend: 'local',
      modelPath: join(home, 'models', 'stories260K.gguf'),
      contextSize: 2048,
      threads: 2,
      chatFormat: 'chatml',
      temperature: 0.2,
      maxTokens: 256,
      api: { baseUrl: 'http://127.0.0.1:8080/v1', model: 'phi-4-mini', timeout: 30 },
    });
  });
});
