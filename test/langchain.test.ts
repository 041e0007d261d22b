// tea-llama/langchain with the real @langchain/core: the chat model's invoke and stream, the LLM, Embeddings, over
// a real stories260K model; answers equal to the backend's own calls.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { AIMessageChunk, HumanMessage, SystemMessage, ToolMessage, type AIMessage } from '@langchain/core/messages';
import { tool } from '@langchain/core/tools';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';

import { LocalLlmBackend } from '../lib';
import { ChatTeaLlama, TeaLlama, TeaLlamaEmbeddings } from '../lib/adapters/langchain';
import { haveModel, modelPath, repoRoot, STORIES } from './support/models';

const run = haveModel(STORIES) ? describe : describe.skip;

const FUNCTIONARY = join(repoRoot, 'vendor', 'llama.cpp', 'models', 'templates', 'meetkai-functionary-medium-v3.2.jinja');
const WEATHER = {
  type: 'function' as const,
  function: {
    name: 'get_weather',
    description: 'The weather of a city',
    parameters: { type: 'object', properties: { city: { type: 'string', maxLength: 12 } }, required: ['city'], additionalProperties: false },
  },
};
const Person = z.object({ name: z.string().max(20), age: z.number().int(), pet: z.enum(['cat', 'dog']) }).strict();

run('tea-llama/langchain', () => {
  let backend: LocalLlmBackend;
  // Tools render with llama.cpp's Functionary v3.2 template (its tool-call markup and grammar).
  let functionary: LocalLlmBackend;
  beforeAll(async () => {
    backend = new LocalLlmBackend({ modelPath: modelPath(STORIES), contextSize: 2048, threads: 2 });
    functionary = new LocalLlmBackend({ modelPath: modelPath(STORIES), chatFormat: readFileSync(FUNCTIONARY, 'utf8'), contextSize: 4096, threads: 2 });
    await backend.load();
  });
  afterAll(async () => {
    await backend?.dispose();
    await functionary?.dispose();
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

  it('bindTools: the calls as tool_calls, streamed as tool_call_chunks; a ToolMessage round trip gets the answer', async () => {
    const question = 'What is the weather in Paris?';
    const expected = await functionary.chat([{ role: 'user', content: question }], { tools: [WEATHER], toolChoice: 'required', temperature: 0, maxTokens: 60 });
    const whole = expected.toolCalls!.map((c) => ({ name: c.function.name, args: JSON.parse(c.function.arguments) }));
    expect(whole.length).toBeGreaterThan(0);
    const chat = new ChatTeaLlama({ backend: functionary, temperature: 0, maxTokens: 60 });
    const withTools = chat.bindTools([WEATHER], { tool_choice: 'any' });
    const reply = (await withTools.invoke(question)) as AIMessage;
    expect(reply.tool_calls?.map((c) => ({ name: c.name, args: c.args }))).toEqual(whole);
    expect(reply.tool_calls!.every((c) => c.id?.startsWith('call_'))).toBe(true);
    expect(reply.content).toBe(expected.text);
    // A LangChain tool with a zod schema converts to the same function.
    const weather = tool(async ({ city }: { city: string }) => `sunny in ${city}`, {
      name: 'get_weather',
      description: 'The weather of a city',
      schema: z.object({ city: z.string().max(12) }).strict(),
    });
    const viaTool = (await chat.bindTools([weather], { tool_choice: 'any' }).invoke(question)) as AIMessage;
    expect(viaTool.tool_calls?.[0]?.name).toBe('get_weather');
    expect(typeof viaTool.tool_calls?.[0]?.args.city).toBe('string');

    // Streamed: chunks that concatenate to the same calls, no markup as content.
    let merged: AIMessageChunk | undefined;
    for await (const chunk of await withTools.stream(question)) merged = merged ? merged.concat(chunk) : chunk;
    expect(merged!.tool_calls?.map((c) => ({ name: c.name, args: c.args }))).toEqual(whole);
    expect(String(merged!.content)).not.toContain('>>>');

    // The round trip: the reply, then one ToolMessage per call, then the answer (no call).
    const results = await Promise.all(reply.tool_calls!.map(async (c) => new ToolMessage({ tool_call_id: c.id!, content: await weather.invoke(c.args as { city: string }) })));
    const answer = await chat.bindTools([WEATHER], { tool_choice: 'none' }).invoke([new HumanMessage(question), reply, ...results]);
    const local = await functionary.chat(
      [
        { role: 'user', content: question },
        { role: 'assistant', content: expected.text, toolCalls: reply.tool_calls!.map((c) => ({ id: c.id!, type: 'function' as const, function: { name: c.name, arguments: JSON.stringify(c.args) } })) },
        ...reply.tool_calls!.map((c, i) => ({ role: 'tool', toolCallId: c.id!, content: String(results[i]!.content) })),
      ],
      { tools: [WEATHER], toolChoice: 'none', temperature: 0, maxTokens: 60 },
    );
    expect((answer as AIMessage).tool_calls ?? []).toEqual([]);
    expect(answer.content).toBe(local.text);
  });

  it('withStructuredOutput: a zod schema gives objects that validate, over seeds; includeRaw and jsonMode', async () => {
    for (let seed = 1; seed <= 3; seed++) {
      const chat = new ChatTeaLlama({ backend, temperature: 1, seed, maxTokens: 256 });
      const person = await chat.withStructuredOutput(Person).invoke('Who are you?');
      expect(Person.safeParse(person).success, JSON.stringify(person)).toBe(true);
    }
    const chat = new ChatTeaLlama({ backend, temperature: 0, maxTokens: 256 });
    const { raw, parsed } = await chat.withStructuredOutput(Person, { includeRaw: true, name: 'person' }).invoke('Who are you?');
    expect(JSON.parse(String(raw.content))).toEqual(parsed);
    const expected = await backend.chat([{ role: 'user', content: 'Who are you?' }], {
      responseFormat: { type: 'json_schema', json_schema: { name: 'person', schema: z.toJSONSchema(Person) } }, temperature: 0, maxTokens: 256,
    });
    expect(parsed).toEqual(expected.parsed);
    // A JSON Schema object works as well, and jsonMode asks for any JSON object.
    const viaJsonSchema = await chat.withStructuredOutput(z.toJSONSchema(Person) as Record<string, unknown>).invoke('Who are you?');
    expect(Person.safeParse(viaJsonSchema).success).toBe(true);
    const any = await new ChatTeaLlama({ backend, temperature: 0, maxTokens: 64 }).withStructuredOutput(z.object({}).passthrough(), { method: 'jsonMode', includeRaw: true }).invoke('Who are you?');
    expect(String(any.raw.content).trimStart().startsWith('{')).toBe(true);
  });
});
