// tea-llama/ai-sdk with the real `ai` package: generateText, streamText (with abort), embedMany, on the local
// backend and through the API backend against the vendored llama-server.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { embed, embedMany, generateObject, generateText, streamObject, streamText, tool } from 'ai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';

import { ApiLlmBackend, LocalLlmBackend, type LlmBackend } from '../lib';
import { createTeaLlama } from '../lib/adapters/ai-sdk';
import { startLlamaServer, type LlamaServer } from './support/llama-server';
import { haveModel, modelPath, repoRoot, STORIES } from './support/models';

const run = haveModel(STORIES) ? describe : describe.skip;
const messages = [{ role: 'user' as const, content: 'Tell me a story about a cat.' }];
// The tool suite renders with llama.cpp's Functionary v3.2 template (its tool-call markup and grammar) on both backends.
const FUNCTIONARY = join(repoRoot, 'vendor', 'llama.cpp', 'models', 'templates', 'meetkai-functionary-medium-v3.2.jinja');
const Person = z.object({ name: z.string().max(20), age: z.number().int(), pet: z.enum(['cat', 'dog']) }).strict();
const weather = { type: 'function' as const, function: { name: 'get_weather', description: 'The weather of a city', parameters: { type: 'object', properties: { city: { type: 'string', maxLength: 12 } }, required: ['city'], additionalProperties: false } } };

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

    it('generateObject and streamObject with a zod schema: objects that validate, over seeds', async () => {
      const teaLlama = createTeaLlama({ backend });
      for (let seed = 1; seed <= 3; seed++) {
        const { object } = await generateObject({ model: teaLlama(), schema: Person, prompt: 'Who are you?', seed, temperature: 1, maxOutputTokens: 256 });
        expect(Person.safeParse(object).success, JSON.stringify(object)).toBe(true);
      }
      // The same JSON as the backend's own responseFormat call at temperature 0.
      const schema = (await import('zod')).z.toJSONSchema(Person);
      const expected = await backend.chat([{ role: 'user', content: 'Who are you?' }], { responseFormat: { type: 'json_schema', json_schema: { name: 'response', schema } }, temperature: 0, maxTokens: 256 });
      const greedy = await generateObject({ model: teaLlama(), schema: Person, prompt: 'Who are you?', temperature: 0, maxOutputTokens: 256 });
      expect(greedy.object).toEqual(expected.parsed);
      const streamed = streamObject({ model: teaLlama(), schema: Person, prompt: 'Who are you?', temperature: 0, maxOutputTokens: 256 });
      let text = '';
      let deltas = 0;
      for await (const delta of streamed.textStream) {
        text += delta;
        deltas++;
      }
      expect(await streamed.object).toEqual(greedy.object);
      expect(JSON.parse(text)).toEqual(greedy.object);
      expect(deltas).toBeGreaterThan(1);
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

function toolSuite(name: string, open: () => Promise<{ backend: LlmBackend; close: () => Promise<void> }>) {
  run(`tea-llama/ai-sdk tools on the ${name} backend (Functionary v3.2 template)`, () => {
    let backend: LlmBackend;
    let close: () => Promise<void>;
    beforeAll(async () => {
      ({ backend, close } = await open());
    });
    afterAll(async () => {
      await close?.();
    });

    it('a tool call round trip with generateText: the call, the tool run with its arguments, the answer', async () => {
      const teaLlama = createTeaLlama({ backend });
      const question = [{ role: 'user' as const, content: 'What is the weather in Paris?' }];
      const expected = await backend.chat(question, { tools: [weather], toolChoice: 'required', temperature: 0, maxTokens: 60 });
      const tools = { get_weather: tool({ description: 'The weather of a city', inputSchema: z.object({ city: z.string().max(12) }).strict() }) };
      const first = await generateText({ model: teaLlama(), messages: question, tools, toolChoice: 'required', temperature: 0, maxOutputTokens: 60 });
      const calls = first.toolCalls;
      expect(calls.length).toBeGreaterThan(0);
      expect(calls.map((c) => ({ name: c.toolName, arguments: JSON.stringify(c.input) }))).toEqual(
        expected.toolCalls!.map((c) => ({ name: c.function.name, arguments: JSON.stringify(JSON.parse(c.function.arguments)) })),
      );
      // stories260K never ends its calls by itself: maxOutputTokens cuts them ('length'), and the AI SDK runs
      // tools only after 'tool-calls' or 'stop', so the program runs them and sends the results back itself.
      expect(first.finishReason).toBe(expected.finishReason === 'tool_calls' ? 'tool-calls' : expected.finishReason);
      // Streamed: the same calls, as tool-input deltas and tool calls (never markup as text).
      const streamed = streamText({ model: teaLlama(), messages: question, tools, toolChoice: 'required', temperature: 0, maxOutputTokens: 60 });
      let text = '';
      let inputDeltas = 0;
      for await (const part of streamed.fullStream) {
        if (part.type === 'text-delta') text += part.text;
        if (part.type === 'tool-input-delta') inputDeltas++;
      }
      expect((await streamed.toolCalls).map((c) => JSON.stringify(c.input))).toEqual(calls.map((c) => JSON.stringify(c.input)));
      expect(inputDeltas).toBeGreaterThan(calls.length);
      expect(text).not.toContain('>>>');
      // llama-server's Functionary parser refuses stories260K's plain answer (a 500, "does not match the expected
      // peg-native format"), so the answer step runs on the local backend only.
      if (backend.kind !== 'local') return;
      const results = calls.map((c) => ({ type: 'tool-result' as const, toolCallId: c.toolCallId, toolName: c.toolName, output: { type: 'json' as const, value: { sky: 'sunny', city: (c.input as { city: string }).city } } }));
      const result = await generateText({
        model: teaLlama(),
        messages: [...question, ...first.response.messages, { role: 'tool', content: results }],
        tools,
        toolChoice: 'none',
        temperature: 0,
        maxOutputTokens: 60,
      });
      expect(result.toolCalls).toEqual([]);
      // The answer is the backend's own to the same conversation: the calls, then their results as tool messages.
      const answer = await backend.chat(
        [
          ...question,
          { role: 'assistant', content: first.text, toolCalls: calls.map((c) => ({ id: c.toolCallId, type: 'function' as const, function: { name: c.toolName, arguments: JSON.stringify(c.input) } })) },
          ...calls.map((c) => ({ role: 'tool', toolCallId: c.toolCallId, content: JSON.stringify({ sky: 'sunny', city: (c.input as { city: string }).city }) })),
        ],
        { tools: [weather], toolChoice: 'none', temperature: 0, maxTokens: 60 },
      );
      expect(result.text).toBe(answer.text);

    });
  });
}

toolSuite('local', async () => {
  const backend = new LocalLlmBackend({ modelPath: modelPath(STORIES), chatFormat: readFileSync(FUNCTIONARY, 'utf8'), contextSize: 4096, threads: 2 });
  return { backend, close: () => backend.dispose() };
});

toolSuite('API (llama-server --jinja)', async () => {
  const server: LlamaServer = await startLlamaServer(modelPath(STORIES), ['-c', '4096', '-np', '1', '--jinja', '--chat-template-file', FUNCTIONARY]);
  const backend = new ApiLlmBackend({ baseUrl: server.baseUrl, maxRetries: 0 });
  return {
    backend,
    close: async () => {
      await backend.dispose();
      await server.stop();
    },
  };
});
