// tea-llama/langchain with the real @langchain/core: the chat model's invoke and stream, the LLM, Embeddings, over
// a real stories260K model; answers equal to the backend's own calls.
import { HumanMessage, SystemMessage } from '@langchain/core/messages';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';

import { LocalLlmBackend } from '../lib';
import { ChatTeaLlama, TeaLlama, TeaLlamaEmbeddings } from '../lib/adapters/langchain';
import { haveModel, modelPath, STORIES } from './support/models';

const run = haveModel(STORIES) ? describe : describe.skip;

run('tea-llama/langchain', () => {
  let backend: LocalLlmBackend;
  beforeAll(async () => {
    backend = new LocalLlmBackend({ modelPath: modelPath(STORIES), contextSize: 2048, threads: 2 });
    await backend.load();
  });
  afterAll(async () => {
    await backend?.dispose();
  });

  it('ChatTeaLlama.invoke: the backend chat() text, with usage and finish reason', async () => {
    const chat = new ChatTeaLlama({ backend, temperature: 0, maxTokens: 40 });
    const expected = await backend.chat([{ role: 'system', content: 'You tell stories.' }, { role: 'user', content: 'A story about a frog.' }], { maxTokens: 40, temperature: 0 });
    const reply = await chat.invoke([new SystemMessage('You tell stories.'), new HumanMessage('A story about a frog.')]);
    expect(reply.content).toBe(expected.text);
    expect(reply.usage_metadata).toEqual({ input_tokens: expected.promptTokens, output_tokens: 40, total_tokens: expected.promptTokens + 40 });
    expect(reply.response_metadata).toMatchObject({ finish_reason: 'length', model_name: STORIES });
    // Call options win over the constructor's.
    const short = await chat.invoke('Hello', { maxTokens: 5 });
    expect(short.usage_metadata?.output_tokens).toBe(5);
  });

  it('ChatTeaLlama.stream: chunks that concatenate to the invoke text, usage on the last', async () => {
    const chat = new ChatTeaLlama({ backend, temperature: 0, maxTokens: 48 });
    const whole = await chat.invoke('Tell me about a dog.');
    let text = '';
    let chunks = 0;
    let last;
    for await (const chunk of await chat.stream('Tell me about a dog.')) {
      text += chunk.content as string;
      chunks++;
      last = chunk;
    }
    expect(text).toBe(whole.content);
    expect(chunks).toBeGreaterThan(5);
    expect(last?.usage_metadata?.output_tokens).toBe(48);

    // An aborted stream stops the generation.
    const controller = new AbortController();
    let got = '';
    const error = await (async () => {
      for await (const chunk of await chat.stream('Tell me about a dog.', { signal: controller.signal, maxTokens: 1500 })) {
        got += chunk.content as string;
        if (got.length > 10) controller.abort();
      }
    })().catch((e: unknown) => e);
    expect(got.length).toBeGreaterThan(10);
    expect(String((error as Error)?.message ?? error)).toMatch(/abort/i);
  });

  it('TeaLlama (LLM): invoke and stream of a raw prompt, as the backend call()', async () => {
    const llm = new TeaLlama({ backend, temperature: 0, maxTokens: 32 });
    const expected = await backend.call({ prompt: 'Once upon a time', maxTokens: 32, temperature: 0 });
    expect(await llm.invoke('Once upon a time')).toBe(expected.text);
    let text = '';
    for await (const chunk of await llm.stream('Once upon a time')) text += chunk;
    expect(text).toBe(expected.text);
  });

  it('TeaLlamaEmbeddings: embedDocuments and embedQuery as embed()', async () => {
    const embeddings = new TeaLlamaEmbeddings({ backend });
    const docs = ['a frog on a log', 'a dog in the fog'];
    const expected = await backend.embed(docs);
    const got = await embeddings.embedDocuments(docs);
    got.forEach((v, i) => expect(v).toEqual(Array.from(expected[i]!)));
    expect(await embeddings.embedQuery(docs[0]!)).toEqual(Array.from(await backend.embed(docs[0]!)));
    expect(await embeddings.embedDocuments([])).toEqual([]);
  });

  it('bindTools and withStructuredOutput say they are not supported yet instead of ignoring the tools', async () => {
    const chat = new ChatTeaLlama({ backend, temperature: 0 });
    expect(() => chat.bindTools()).toThrow(/bindTools is not supported yet/);
    const structured = (() => {
      try {
        return chat.withStructuredOutput(z.object({ name: z.string() }));
      } catch (error) {
        return error;
      }
    })();
    const outcome = structured instanceof Error ? structured : await (structured as { invoke(x: string): Promise<unknown> }).invoke('A cat').catch((e: unknown) => e);
    expect(String((outcome as Error).message)).toMatch(/not supported yet/);
  });
});
