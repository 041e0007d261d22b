import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { ApiLlmBackend, LocalLlmBackend, type LlmResult } from '../lib';
import { captureLogger } from './support/capture-logger';
import { startLlamaServer, type LlamaServer } from './support/llama-server';
import { haveModel, modelPath, STORIES } from './support/models';

const PROMPTS = ['Once upon a time', 'The little dog', 'Lily and Ben went to the park. They'];
const TEXTS = ['Once upon a time there was a cat.', 'The sun was hot.', 'Lily liked her red ball very much.'];
const CHAT = [{ role: 'user', content: 'Tell me about the park.' }];

interface ServerCompletion {
  content: string;
  tokens_predicted: number;
  tokens_evaluated: number;
}

function maxDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
  return worst;
}

function norm(v: Float32Array): number {
  return Math.sqrt(v.reduce((s, x) => s + x * x, 0));
}

// The API backend against llama-server built from the vendored llama.cpp, and the local backend on the same
// model next to it: at temperature 0 both are greedy, so they must produce the same text.
describe.runIf(haveModel(STORIES))('ApiLlmBackend against llama-server, and parity with LocalLlmBackend', () => {
  let server: LlamaServer;
  let embeddingServer: LlamaServer;
  let api: ApiLlmBackend;
  let embeddingApi: ApiLlmBackend;
  let local: LocalLlmBackend;

  beforeAll(async () => {
    [server, embeddingServer] = await Promise.all([
      startLlamaServer(modelPath(STORIES), ['-c', '512', '-np', '1']),
      startLlamaServer(modelPath(STORIES), ['--embeddings', '--pooling', 'mean', '-c', '512', '-ub', '512', '-b', '512', '-np', '1']),
    ]);
    api = new ApiLlmBackend({ baseUrl: server.baseUrl, apiKey: '', logger: captureLogger() });
    embeddingApi = new ApiLlmBackend({ baseUrl: `${embeddingServer.baseUrl}/v1`, apiKey: '', logger: captureLogger() });
    local = new LocalLlmBackend({ modelPath: modelPath(STORIES), threads: 2, contextSize: 512, logger: captureLogger() });
  });
  afterAll(async () => {
    await Promise.all([api?.dispose(), embeddingApi?.dispose(), local?.dispose()]);
    await Promise.all([server?.stop(), embeddingServer?.stop()]);
  });

  it('call(): the completion llama-server computes, with its token counts and timings', async () => {
    const r = await api.call({ prompt: PROMPTS[0], maxTokens: 48, temperature: 0 });
    const reference = await server.post<ServerCompletion>('/completion', { prompt: PROMPTS[0], n_predict: 48, temperature: 0 });
    expect(r.content.length).toBeGreaterThan(20);
    expect(r.content).toBe(reference.content);
    expect(r).toMatchObject({
      backend: 'api',
      cached: false,
      finishReason: 'length',
      completionTokens: 48,
      promptTokens: reference.tokens_evaluated,
      tokensUsed: reference.tokens_evaluated + 48,
    });
    expect(r.model).toContain('stories260K');
    expect(r.timings.totalMs).toBeGreaterThan(0);
    expect(r.timings.tokensPerSecond).toBeGreaterThan(0);
  });

  it('greedy call() through the local and the API backend returns the same text', async () => {
    for (const prompt of PROMPTS) {
      const params = { prompt, maxTokens: 64, temperature: 0 };
      const [fromApi, fromLocal] = [await api.call(params), await local.call(params)];
      expect(fromApi.content.length).toBeGreaterThan(20);
      expect(fromLocal.content).toBe(fromApi.content);
      expect(fromLocal.completionTokens).toBe(fromApi.completionTokens);
      expect(fromLocal.promptTokens).toBe(fromApi.promptTokens);
      expect(fromLocal.finishReason).toBe(fromApi.finishReason);
      expect(fromLocal.backend).toBe('local');
    }
  });

  it('stop strings end both backends at the same place, never in the output', async () => {
    const whole = (await local.call({ prompt: PROMPTS[0], maxTokens: 64, temperature: 0 })).content;
    const stop = whole.slice(30, 36);
    const [a, l] = [
      await api.call({ prompt: PROMPTS[0], maxTokens: 64, temperature: 0, stop }),
      await local.call({ prompt: PROMPTS[0], maxTokens: 64, temperature: 0, stop }),
    ];
    expect(a.content).toBe(whole.slice(0, whole.indexOf(stop)));
    expect(l.content).toBe(a.content);
    expect(a.finishReason).toBe('stop');
  });

  it('chat(): the chat completion, equal to the local backend with the same (chatml) template', async () => {
    const fromApi = await api.chat(CHAT, { maxTokens: 40, temperature: 0 });
    const raw = await server.post<{ choices: Array<{ message: { content: string } }>; usage: { prompt_tokens: number } }>(
      '/v1/chat/completions',
      { messages: CHAT, max_tokens: 40, temperature: 0 },
    );
    expect(fromApi.content.length).toBeGreaterThan(10);
    expect(fromApi.content).toBe(raw.choices[0].message.content);
    expect(fromApi.promptTokens).toBe(raw.usage.prompt_tokens);
    // stories260K has no chat template: llama-server uses chatml, as the local backend's auto-configuration does.
    const fromLocal = await local.chat(CHAT, { maxTokens: 40, temperature: 0 });
    expect(local.config?.chatFormat).toBe('chatml');
    expect(fromLocal.content).toBe(fromApi.content);
    expect(fromLocal.promptTokens).toBe(fromApi.promptTokens);
  });

  it('stream() and streamChat(): chunks (callback and for-await) add up to the non-streamed result', async () => {
    const params = { prompt: PROMPTS[1], maxTokens: 60, temperature: 0 };
    const whole = await api.call(params);
    const chunks: string[] = [];
    const streamed = await api.stream(params, (c) => chunks.push(c));
    expect(chunks.length).toBeGreaterThan(10);
    expect(chunks.join('')).toBe(whole.content);
    expect(streamed).toMatchObject({ content: whole.content, completionTokens: 60, promptTokens: whole.promptTokens, finishReason: 'length' });
    expect(streamed.timings.firstTokenMs).toBeGreaterThan(0);

    for (const backend of [api, local]) {
      const stream = backend.streamChat(CHAT, undefined, { maxTokens: 40, temperature: 0 });
      let text = '';
      for await (const chunk of stream) text += chunk;
      const result: LlmResult = await stream;
      expect(result.content).toBe(text);
      expect(text).toBe((await api.chat(CHAT, { maxTokens: 40, temperature: 0 })).content);
    }
  });

  it('leaving a for-await loop early or aborting stops the stream with what arrived', async () => {
    for (const backend of [api, local]) {
      const stream = backend.stream({ prompt: PROMPTS[0], maxTokens: 400, temperature: 0 });
      const seen: string[] = [];
      for await (const chunk of stream) {
        seen.push(chunk);
        if (seen.length === 3) break;
      }
      const result = await stream.result;
      expect(result.finishReason, backend.kind).toBe('abort');
      expect(result.content.startsWith(seen.join('')), backend.kind).toBe(true);
      expect(result.completionTokens, backend.kind).toBeLessThan(400);

      const controller = new AbortController();
      const got: string[] = [];
      const aborted = await backend.stream({ prompt: PROMPTS[0], maxTokens: 400, temperature: 0, signal: controller.signal }, (c) => {
        got.push(c);
        if (got.length === 2) controller.abort();
      });
      expect(aborted.finishReason, backend.kind).toBe('abort');
      expect(aborted.content.startsWith(got.slice(0, 2).join('')), backend.kind).toBe(true);
      expect(aborted.content.length, backend.kind).toBeLessThan(200);
    }
    // Both serve the next call normally.
    const [a, l] = [await api.call({ prompt: 'Hello', maxTokens: 4, temperature: 0 }), await local.call({ prompt: 'Hello', maxTokens: 4, temperature: 0 })];
    expect(a.content).toBe(l.content);
  });

  it('embed(): unit vectors from a server started with --embeddings, equal to the local ones', async () => {
    const one = await embeddingApi.embed(TEXTS[0]);
    const many = await embeddingApi.embed(TEXTS);
    const mine = await local.embed(TEXTS);
    expect(one).toBeInstanceOf(Float32Array);
    expect(one.length).toBe(64);
    expect(many).toHaveLength(3);
    expect(Math.abs(norm(many[1]) - 1)).toBeLessThan(1e-5);
    expect(maxDiff(one, many[0])).toBeLessThan(1e-5);
    expect(maxDiff(many[0], many[1])).toBeGreaterThan(1e-3);
    for (let i = 0; i < TEXTS.length; i++) expect(maxDiff(many[i], mine[i])).toBeLessThan(1e-4);
    expect(await embeddingApi.embed([])).toEqual([]);
    // The completion server was not started with --embeddings: a typed error, not a crash.
    await expect(api.embed('x')).rejects.toMatchObject({ code: 'ERR_API_HTTP', message: expect.stringContaining('501') });
  });

  it('healthCheck(): ok from /health while the server runs, not ok once it stopped', async () => {
    const extra = await startLlamaServer(modelPath(STORIES), ['-c', '128', '-np', '1']);
    const backend = new ApiLlmBackend({ baseUrl: extra.baseUrl, apiKey: '', timeoutMs: 5000 });
    try {
      const up = await backend.healthCheck();
      expect(up).toMatchObject({ ok: true, backend: 'api', detail: 'GET /health: 200' });
      await extra.stop();
      const down = await backend.healthCheck();
      expect(down.ok).toBe(false);
      expect(down.detail).toContain('ERR_API_CONNECTION');
    } finally {
      await extra.stop();
      await backend.dispose();
    }
    expect(await local.healthCheck()).toMatchObject({ ok: true, backend: 'local', model: 'stories260K.gguf' });
  });
});
