// tea-llama/ai-sdk with the real `ai` package: generateText, streamText (with abort), embedMany, on the local
// backend and through the API backend against the vendored llama-server.
import { embed, embedMany, generateObject, generateText, streamText } from 'ai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';

import { ApiLlmBackend, LocalLlmBackend, type LlmBackend } from '../lib';
import { createTeaLlama } from '../lib/adapters/ai-sdk';
import { startLlamaServer, type LlamaServer } from './support/llama-server';
import { haveModel, modelPath, STORIES } from './support/models';

const run = haveModel(STORIES) ? describe : describe.skip;
const messages = [{ role: 'user' as const, content: 'Tell me a story about a cat.' }];

function suite(name: string, open: () => Promise<{ backend: LlmBackend; close: () => Promise<void> }>) {
  run(`tea-llama/ai-sdk on the ${name} backend`, () => {
    let backend: LlmBackend;
    let close: () => Promise<void>;
    beforeAll(async () => {
      ({ backend, close } = await open());
    });
    afterAll(async () => {
      await close?.();
    });

    it('generateText: the backend chat() text, usage and finish reason', async () => {
      const teaLlama = createTeaLlama({ backend });
      const expected = await backend.chat(messages, { maxTokens: 40, temperature: 0 });
      const result = await generateText({ model: teaLlama(), messages, maxOutputTokens: 40, temperature: 0 });
      expect(result.text).toBe(expected.text);
      expect(result.finishReason).toBe('length');
      expect(result.usage.outputTokens).toBe(40);
      expect(result.usage.inputTokens).toBe(expected.promptTokens);
      const withSystem = await generateText({ model: teaLlama.languageModel(backend.model), system: 'Be brief.', prompt: 'Hello', maxOutputTokens: 8, temperature: 0 });
      expect(withSystem.text).toBe((await backend.chat([{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hello' }], { maxTokens: 8, temperature: 0 })).text);
    });

    it('streamText: deltas that concatenate to the same text; abort stops the generation', async () => {
      const teaLlama = createTeaLlama({ backend });
      const expected = await backend.chat(messages, { maxTokens: 48, temperature: 0 });
      const result = streamText({ model: teaLlama(), messages, maxOutputTokens: 48, temperature: 0 });
      let text = '';
      let deltas = 0;
      for await (const delta of result.textStream) {
        text += delta;
        deltas++;
      }
      expect(text).toBe(expected.text);
      expect(deltas).toBeGreaterThan(5);
      expect(await result.finishReason).toBe('length');
      expect((await result.usage).outputTokens).toBe(48);

      const controller = new AbortController();
      const aborted = streamText({ model: teaLlama(), messages, maxOutputTokens: 1500, temperature: 0, abortSignal: controller.signal, onError: () => undefined });
      let got = '';
      const started = performance.now();
      try {
        for await (const delta of aborted.textStream) {
          got += delta;
          if (got.length > 10) controller.abort();
        }
      } catch (error) {
        expect((error as Error).name).toMatch(/Abort/);
      }
      expect(got.length).toBeGreaterThan(10);
      // stories260K stops long before 1,500 tokens only when aborted: the prefix is the greedy text's.
      expect(expected.text.startsWith(got) || got.startsWith(expected.text)).toBe(true);
      expect(performance.now() - started).toBeLessThan(30_000);
    });

    it('embed and embedMany: the backend embed() vectors', async () => {
      const teaLlama = createTeaLlama({ backend });
      const values = ['a cat sat on the mat', 'the dog ran'];
      const expected = await backend.embed(values);
      const many = await embedMany({ model: teaLlama.embeddingModel(), values });
      many.embeddings.forEach((e, i) => expect(e).toEqual(Array.from(expected[i]!)));
      const one = await embed({ model: teaLlama.embeddingModel(), value: values[1]! });
      const alone = await backend.embed(values[1]!);
      expect(one.embedding).toEqual(Array.from(alone));
    });

    it('refuses what it cannot do yet (JSON mode) with a typed error instead of ignoring it', async () => {
      const teaLlama = createTeaLlama({ backend });
      const error = await generateObject({ model: teaLlama(), schema: z.object({ name: z.string() }), prompt: 'A cat' }).catch((e: unknown) => e);
      expect(String((error as Error).message)).toMatch(/responseFormat json .* not supported yet/);
      expect(() => teaLlama('another-model')).toThrow(/serves/);
    });
  });
}

suite('local', async () => {
  const backend = new LocalLlmBackend({ modelPath: modelPath(STORIES), contextSize: 2048, threads: 2 });
  return { backend, close: () => backend.dispose() };
});

suite('API (llama-server)', async () => {
  const server: LlamaServer = await startLlamaServer(modelPath(STORIES), ['--embeddings', '--pooling', 'mean', '-c', '2048', '-ub', '512', '-b', '512', '-np', '1']);
  const backend = new ApiLlmBackend({ baseUrl: server.baseUrl, maxRetries: 0 });
  return {
    backend,
    close: async () => {
      await backend.dispose();
      await server.stop();
    },
  };
});
