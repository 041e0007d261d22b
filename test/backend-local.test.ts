import { existsSync, mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

import { LocalLlmBackend, ResponseCache, loadModel } from '../lib';
import { captureLogger } from './support/capture-logger';
import { haveModel, modelPath, STORIES } from './support/models';

describe.runIf(haveModel(STORIES))('LocalLlmBackend on stories260K', () => {
  it('loads lazily, once, however many callers arrive together', async () => {
    const logger = captureLogger();
    await using backend = new LocalLlmBackend({ modelPath: modelPath(STORIES), threads: 2, logger });
    expect(backend.kind).toBe('local');
    expect(backend.model).toBe('stories260K.gguf');
    expect(backend.loaded).toBe(false);
    expect(backend.loadCount).toBe(0);
    expect(logger.lines).toEqual([]);

    const params = { prompt: 'Once upon a time', maxTokens: 20, temperature: 0 };
    const results = await Promise.all([
      backend.call(params),
      backend.call(params),
      backend.chat([{ role: 'user', content: 'hi' }], { maxTokens: 5, temperature: 0 }),
      backend.embed('a cat'),
      backend.healthCheck(),
      backend.load(),
    ]);
    expect(backend.loadCount).toBe(1);
    expect(logger.lines.filter((l) => l.message.startsWith('loading '))).toHaveLength(1);
    expect(backend.loaded).toBe(true);
    expect(results[0].content).toBe(results[1].content);
    expect(results[0].completionTokens).toBe(20);
    expect(await backend.load()).toBe(results[5]);
    // Auto-configured: stories260K is trained for 2048 tokens, below the 4096 of its family.
    expect(backend.config).toMatchObject({ contextSize: 2048, contextSource: 'trained', family: 'other', chatFormat: 'chatml' });
  });

  it('a failed load is reported to every waiting caller and retried by the next call', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tea-local-'));
    const missing = join(dir, 'later.gguf');
    await using backend = new LocalLlmBackend({ modelPath: missing, logger: captureLogger() });
    const errors = await Promise.allSettled([backend.call({ prompt: 'x' }), backend.call({ prompt: 'y' })]);
    expect(errors.map((e) => e.status === 'rejected' && e.reason.code)).toEqual(['ERR_MODEL_NOT_FOUND', 'ERR_MODEL_NOT_FOUND']);
    expect(backend.loadCount).toBe(1);
    expect(await backend.healthCheck()).toMatchObject({ ok: false, backend: 'local' });
    expect(backend.loadCount).toBe(2);
  });

  it('applies sampling defaults: maxTokens 100 unless the backend or the call says otherwise', async () => {
    await using plain = new LocalLlmBackend({ modelPath: modelPath(STORIES), threads: 2, contextSize: 512, logger: captureLogger() });
    const long = await plain.call({ prompt: 'Once upon a time', temperature: 0 });
    await using short = new LocalLlmBackend({
      modelPath: modelPath(STORIES),
      threads: 2,
      contextSize: 512,
      defaults: { maxTokens: 7, temperature: 0 },
      logger: captureLogger(),
    });
    const seven = await short.call({ prompt: 'Once upon a time' });
    expect(seven).toMatchObject({ completionTokens: 7, finishReason: 'length' });
    expect(long.content.startsWith(seven.content)).toBe(true);
    expect(long.completionTokens).toBeGreaterThan(7);
    expect(long.completionTokens).toBeLessThanOrEqual(100);
    expect((await short.call({ prompt: 'Once upon a time', maxTokens: 3 })).completionTokens).toBe(3);
    // One request model for Model and backends: -1 means until the context is full, 0 generates nothing.
    expect(await short.call({ prompt: 'x', maxTokens: 0 })).toMatchObject({ completionTokens: 0, finishReason: 'length', text: '' });
    await expect(short.call({ prompt: 'x', maxTokens: -2 })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    await expect(short.call({ prompt: 'x', maxToken: 3 } as never)).rejects.toThrow(/did you mean 'maxTokens'/);
    await expect(short.call({ prompt: 42 as unknown as string })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    await expect(short.chat([{ role: 'user' }] as never)).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
  });

  it('chat uses the configured chat_format over the auto-configured one', async () => {
    const messages = [{ role: 'user', content: 'Hello there' }];
    await using chatml = new LocalLlmBackend({ modelPath: modelPath(STORIES), threads: 2, contextSize: 256, logger: captureLogger() });
    await using llama2 = new LocalLlmBackend({ modelPath: modelPath(STORIES), threads: 2, contextSize: 256, chatFormat: 'llama2', logger: captureLogger() });
    const a = await chatml.chat(messages, { maxTokens: 4, temperature: 0 });
    const b = await llama2.chat(messages, { maxTokens: 4, temperature: 0 });
    // The prompts differ, so the prompt token counts do; each equals the template rendered by the model itself.
    await using model = await loadModel(modelPath(STORIES), { contextSize: 256 });
    expect(a.promptTokens).toBe(model.tokenize(await model.applyChatTemplate(messages, { template: 'chatml' })).length);
    expect(b.promptTokens).toBe(model.tokenize(await model.applyChatTemplate(messages, { template: 'llama2' })).length);
    expect(a.promptTokens).not.toBe(b.promptTokens);
  });

  it('embedding: true prepares embeddings at load; vectors are the same either way', async () => {
    await using eager = new LocalLlmBackend({ modelPath: modelPath(STORIES), threads: 2, embedding: true, logger: captureLogger() });
    await using lazy = new LocalLlmBackend({ modelPath: modelPath(STORIES), threads: 2, logger: captureLogger() });
    await eager.load();
    const [e, l] = [await eager.embed(['one cat', 'two dogs']), await lazy.embed(['one cat', 'two dogs'])];
    expect(e).toHaveLength(2);
    expect(Array.from(e[1])).toEqual(Array.from(l[1]));
    expect(await eager.embed([])).toEqual([]);
  });

  it('dispose: aborts, refuses later calls, and also works while the model is loading', async () => {
    const backend = new LocalLlmBackend({ modelPath: modelPath(STORIES), threads: 2, logger: captureLogger() });
    const loading = backend.load();
    await backend.dispose();
    await expect(loading).rejects.toMatchObject({ code: 'ERR_DISPOSED' });
    await expect(backend.call({ prompt: 'x' })).rejects.toMatchObject({ code: 'ERR_DISPOSED' });
    await expect(backend.embed('x')).rejects.toMatchObject({ code: 'ERR_DISPOSED' });
    expect((await backend.healthCheck()).ok).toBe(false);
    await backend.dispose(); // idempotent
  });

  it('response cache: a repeated call is served from disk with cached: true, across backend instances', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tea-cache-'));
    const options = { modelPath: modelPath(STORIES), threads: 2, contextSize: 512, logger: captureLogger() };
    const params = { prompt: 'The little dog', maxTokens: 24, temperature: 0 };
    await using first = new LocalLlmBackend({ ...options, cache: new ResponseCache(dir) });
    const miss = await first.call(params);
    expect(miss.cached).toBe(false);
    const files = readdirSync(dir, { recursive: true }).filter((f) => String(f).endsWith('.json'));
    expect(files).toHaveLength(1);

    await using second = new LocalLlmBackend({ ...options, cache: new ResponseCache(dir) });
    const hit = await second.call(params);
    expect(hit).toMatchObject({ cached: true, content: miss.content, completionTokens: miss.completionTokens, backend: 'local' });
    expect(second.loaded).toBe(false); // answered without loading the model

    const chunks: string[] = [];
    const streamedHit = await second.stream(params, (c) => chunks.push(c));
    expect(streamedHit.cached).toBe(true);
    expect(chunks.join('')).toBe(miss.content);

    // Any sampling difference is another entry.
    expect((await second.call({ ...params, maxTokens: 23 })).cached).toBe(false);
    expect((await second.call({ ...params, temperature: 0.5, seed: 1 })).cached).toBe(false);
    // An aborted result is not stored.
    await second.call({ ...params, prompt: 'Abort me', signal: AbortSignal.timeout(0) }).catch(() => undefined);
    const controller = new AbortController();
    const aborted = await second.stream({ ...params, prompt: 'Abort me too', maxTokens: 200, signal: controller.signal }, () => controller.abort());
    expect(aborted.finishReason).toBe('abort');
    expect((await second.call({ ...params, prompt: 'Abort me too', maxTokens: 200 })).cached).toBe(false);
    expect(existsSync(dir)).toBe(true);
  });
});
