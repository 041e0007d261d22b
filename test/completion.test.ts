import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { loadModel, type LlamaModel } from '../lib';
import { startLlamaServer, type LlamaServer } from './support/llama-server';
import { haveModel, modelPath, STORIES } from './support/models';

const PROMPTS = ['Once upon a time', 'The little dog', 'Lily and Ben went to the park. They'];

interface ServerCompletion {
  content: string;
  tokens_predicted: number;
  tokens_evaluated: number;
  stop_type: string;
}

describe.runIf(haveModel(STORIES))('completion on stories260K', () => {
  let model: LlamaModel;
  let server: LlamaServer;

  beforeAll(async () => {
    [model, server] = await Promise.all([
      loadModel(modelPath(STORIES), { contextSize: 512, threads: 2 }),
      startLlamaServer(modelPath(STORIES), ['-c', '512', '-np', '1']),
    ]);
  });
  afterAll(async () => {
    await model?.dispose();
    await server?.stop();
  });

  it('greedy output equals llama-server /completion at temperature 0', async () => {
    for (const prompt of PROMPTS) {
      const reference = await server.post<ServerCompletion>('/completion', {
        prompt,
        n_predict: 96,
        temperature: 0,
        repeat_penalty: 1,
        cache_prompt: false,
      });
      const ours = await model.complete(prompt, { maxTokens: 96, temperature: 0 });
      expect(reference.content.length).toBeGreaterThan(20);
      expect(ours.text).toBe(reference.content);
      expect(ours.completionTokens).toBe(reference.tokens_predicted);
      expect(ours.promptTokens).toBe(reference.tokens_evaluated);
      expect(ours.finishReason).toBe(reference.stop_type === 'limit' ? 'length' : 'stop');
    }
  });

  it('greedy output with a repeat penalty equals llama-server too', async () => {
    const body = { prompt: PROMPTS[0], n_predict: 96, temperature: 0, repeat_penalty: 1.3, repeat_last_n: 64, cache_prompt: false };
    const reference = await server.post<ServerCompletion>('/completion', body);
    const ours = await model.complete(PROMPTS[0], { maxTokens: 96, temperature: 0, repeatPenalty: 1.3, repeatLastN: 64 });
    expect(ours.text).toBe(reference.content);
  });

  it('streams chunks that concatenate to exactly the non-streamed text', async () => {
    const whole = await model.complete(PROMPTS[1], { maxTokens: 80, temperature: 0 });
    const chunks: string[] = [];
    const viaCallback = await model.complete(PROMPTS[1], { maxTokens: 80, temperature: 0, onChunk: (c) => chunks.push(c) });
    // stories260K makes thousands of tokens per second: tokens less than 1 ms apart arrive merged, so fewer chunks
    // than tokens, but still a stream.
    expect(chunks.length).toBeGreaterThan(1);
    expect(chunks.length).toBeLessThanOrEqual(viaCallback.completionTokens);
    expect(chunks.join('')).toBe(whole.text);
    expect(viaCallback.text).toBe(whole.text);

    const stream = model.stream(PROMPTS[1], { maxTokens: 80, temperature: 0 });
    let iterated = '';
    for await (const chunk of stream) iterated += chunk;
    expect(iterated).toBe(whole.text);
    expect((await stream.result).text).toBe(whole.text);
  });

  it('reuses the KV cache for a shared prompt prefix without changing the output', async () => {
    const first = await model.complete(PROMPTS[2], { maxTokens: 40, temperature: 0 });
    const again = await model.complete(PROMPTS[2], { maxTokens: 40, temperature: 0 });
    expect(again.reusedPromptTokens).toBe(again.promptTokens - 1);
    expect(again.text).toBe(first.text);
  });

  it('ends at a stop string, never emitting it, even when it spans tokens', async () => {
    const whole = (await model.complete(PROMPTS[0], { maxTokens: 96, temperature: 0 })).text;
    // Slices of the greedy text: 7 characters span several of this 512-token vocabulary's short tokens, so
    // most start inside one token and end inside another.
    const stops = [0.2, 0.45, 0.7].map((f) => whole.slice(Math.floor(whole.length * f), Math.floor(whole.length * f) + 7));
    stops.push(' was');
    for (const stop of stops) {
      const at = whole.indexOf(stop);
      expect(at).toBeGreaterThan(0);
      const chunks: string[] = [];
      const result = await model.complete(PROMPTS[0], { maxTokens: 96, temperature: 0, stop: [stop, 'zzzz-never'], onChunk: (c) => chunks.push(c) });
      expect(result.text).toBe(whole.slice(0, at));
      expect(result.finishReason).toBe('stop');
      expect(chunks.join('')).toBe(result.text);
      expect(chunks.join('')).not.toContain(stop);
    }
  });

  it('honours maxTokens and seeds: same seed same text, sampled text differs from greedy', async () => {
    const a = await model.complete(PROMPTS[0], { maxTokens: 30, temperature: 1, seed: 42 });
    const b = await model.complete(PROMPTS[0], { maxTokens: 30, temperature: 1, seed: 42 });
    const c = await model.complete(PROMPTS[0], { maxTokens: 30, temperature: 1.5, topK: 0, topP: 1, minP: 0, seed: 7 });
    expect(a.completionTokens).toBeLessThanOrEqual(30);
    expect(a.text).toBe(b.text);
    expect(c.text).not.toBe(a.text);
    const n = await model.complete(PROMPTS[0], { maxTokens: 5, temperature: 0 });
    expect(n.completionTokens).toBe(5);
    expect(n.finishReason).toBe('length');
  });

  it('reports timings', async () => {
    const r = await model.complete(PROMPTS[0], { maxTokens: 50, temperature: 0 });
    expect(r.timings.generationMs).toBeGreaterThan(0);
    expect(r.timings.tokensPerSecond).toBeGreaterThan(0);
    expect(r.timings.firstTokenMs).toBeGreaterThan(0);
  });

  it('runs concurrent calls one after another, each equal to the call run alone', async () => {
    const alone = await Promise.all(PROMPTS.map((p) => model.complete(p, { maxTokens: 40, temperature: 0 })));
    const together = await Promise.all(
      PROMPTS.flatMap((p) => [model.complete(p, { maxTokens: 40, temperature: 0 }), model.complete(p, { maxTokens: 40, temperature: 0 })]),
    );
    together.forEach((r, i) => expect(r.text).toBe(alone[Math.floor(i / 2)].text));
  });
});

describe.runIf(haveModel(STORIES))('flashAttention option', () => {
  it("'off' gives llama-server -fa off's greedy text; 'on' gives the default's; a bad value is ERR_INVALID_ARGUMENT", async () => {
    const server = await startLlamaServer(modelPath(STORIES), ['-c', '512', '-np', '1', '-fa', 'off']);
    try {
      await using off = await loadModel(modelPath(STORIES), { contextSize: 512, threads: 2, flashAttention: 'off' });
      await using on = await loadModel(modelPath(STORIES), { contextSize: 512, threads: 2, flashAttention: 'on' });
      await using auto = await loadModel(modelPath(STORIES), { contextSize: 512, threads: 2 });
      for (const prompt of PROMPTS) {
        const reference = await server.post<ServerCompletion>('/completion', { prompt, n_predict: 64, temperature: 0, repeat_penalty: 1, cache_prompt: false });
        expect((await off.complete(prompt, { maxTokens: 64, temperature: 0 })).text).toBe(reference.content);
        expect((await on.complete(prompt, { maxTokens: 64, temperature: 0 })).text).toBe((await auto.complete(prompt, { maxTokens: 64, temperature: 0 })).text);
      }
      // The greedy texts of this small model are the same either way; the embeddings show which graph ran: the
      // plain attention differs from the flash kernel in the last digits, and on a CPU 'auto' means flash.
      const text = 'Once upon a time there was a little dog who liked to play in the park';
      const [a, f, n] = [await auto.embed(text), await off.embed(text), await on.embed(text)];
      const maxDiff = (x: Float32Array, y: Float32Array) => x.reduce((m, v, i) => Math.max(m, Math.abs(v - y[i]!)), 0);
      expect(maxDiff(a, f)).toBeGreaterThan(0);
      expect(maxDiff(a, f)).toBeLessThan(1e-2);
      expect(maxDiff(a, n)).toBe(0);
    } finally {
      await server.stop();
    }
    await expect(loadModel(modelPath(STORIES), { flashAttention: 'yes' as 'on' })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
  });
});
