import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import {
  ApiLlmBackend,
  createLlmActions,
  loadModel,
  LlamaError,
  LocalLlmBackend,
  silentLogger,
  type ChatMessage,
  type GenerationDelta,
  type LlamaModel,
  type LlmBackend,
  type ToolDefinition,
} from '../lib';
import { startLlamaServer, type LlamaServer } from './support/llama-server';
import { haveModel, modelPath, repoRoot, STORIES } from './support/models';

// Constrained output, tool calls and reasoning on stories260K, with llama.cpp's own templates given as text, against
// llama-server --jinja for the same inputs.

const templatePath = (name: string) => join(repoRoot, 'vendor', 'llama.cpp', 'models', 'templates', `${name}.jinja`);
const template = (name: string) => readFileSync(templatePath(name), 'utf8');

const PERSON = {
  type: 'object',
  properties: { name: { type: 'string', maxLength: 20 }, age: { type: 'integer' }, pet: { enum: ['cat', 'dog'] } },
  required: ['name', 'age', 'pet'],
  additionalProperties: false,
} as const;

/** The PERSON schema, checked by hand: every field, its type and bounds, nothing else. */
function isPerson(value: unknown): boolean {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const v = value as Record<string, unknown>;
  return (
    Object.keys(v).sort().join() === 'age,name,pet' &&
    typeof v.name === 'string' && [...v.name].length <= 20 &&
    Number.isInteger(v.age) &&
    (v.pet === 'cat' || v.pet === 'dog')
  );
}

const WEATHER: ToolDefinition = {
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'The weather of a city',
    parameters: { type: 'object', properties: { city: { type: 'string', maxLength: 12 } }, required: ['city'], additionalProperties: false },
  },
};

async function code(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(LlamaError);
    return (error as LlamaError).code;
  }
  return 'resolved';
}

describe.runIf(haveModel(STORIES))('structured output on stories260K', () => {
  let model: LlamaModel;
  let server: LlamaServer;
  const functionary = template('meetkai-functionary-medium-v3.2');

  beforeAll(async () => {
    [model, server] = await Promise.all([
      loadModel(modelPath(STORIES), { contextSize: 4096, threads: 2 }),
      startLlamaServer(modelPath(STORIES), ['-c', '4096', '-np', '1', '--jinja', '--chat-template-file', templatePath('meetkai-functionary-medium-v3.2')]),
    ]);
  }, 90_000);
  afterAll(async () => {
    await model?.dispose();
    await server?.stop();
  });

  it('jsonSchema output always parses and validates, sampled over many seeds', async () => {
    for (let seed = 1; seed <= 16; seed++) {
      const r = await model.complete('Once upon a time', { jsonSchema: PERSON, seed, temperature: 1, maxTokens: 256 });
      expect(r.finishReason, r.text).toBe('stop');
      expect(r.parsed).toEqual(JSON.parse(r.text));
      expect(isPerson(r.parsed), r.text).toBe(true);
    }
  });

  it('responseFormat json_schema and json_object through chat() with a Jinja template given as text', async () => {
    const messages: ChatMessage[] = [{ role: 'user', content: 'Who are you?' }];
    const qwen = template('Qwen-Qwen2.5-7B-Instruct');
    for (let seed = 1; seed <= 6; seed++) {
      const r = await model.chat(messages, {
        template: qwen,
        responseFormat: { type: 'json_schema', json_schema: { name: 'person', schema: PERSON, strict: true } },
        seed,
        temperature: 1,
        maxTokens: 256,
      });
      expect(isPerson(r.parsed), r.text).toBe(true);
    }
    const typed = await model.chat(messages, { template: qwen, responseFormat: { type: 'json_object', schema: PERSON }, seed: 2, temperature: 1, maxTokens: 256 });
    expect(isPerson(typed.parsed), typed.text).toBe(true);
    // Any object: the grammar starts one; a tiny model seldom closes it within maxTokens (then `parsed` is absent).
    for (let seed = 1; seed <= 3; seed++) {
      const any = await model.chat(messages, { template: qwen, responseFormat: { type: 'json_object' }, seed, maxTokens: 64 });
      expect(any.text.trimStart().startsWith('{'), any.text).toBe(true);
      expect(any.parsed).toEqual(any.finishReason === 'length' ? undefined : JSON.parse(any.text));
    }
  });

  it('a GBNF grammar constrains the text, and equals llama-server /completion at temperature 0', async () => {
    const grammar = 'root ::= ("yes" | "no") " " [a-z]{3,8} "."';
    for (let seed = 1; seed <= 8; seed++) {
      const r = await model.complete('Once upon a time', { grammar, seed, temperature: 1, maxTokens: 32 });
      expect(r.text).toMatch(/^(yes|no) [a-z]{3,8}\.$/);
      expect(r.parsed).toBeUndefined();
    }
    for (const [body, options] of [
      [{ grammar }, { grammar }],
      [{ json_schema: PERSON }, { jsonSchema: PERSON }],
    ] as const) {
      const reference = await server.post<{ content: string }>('/completion', {
        prompt: 'Lily and Ben', n_predict: 128, temperature: 0, cache_prompt: false, ...body,
      });
      const ours = await model.complete('Lily and Ben', { maxTokens: 128, temperature: 0, ...options });
      expect(ours.text).toBe(reference.content);
    }
  });

  it('an invalid grammar or schema is a typed error before any token, and the model keeps working', async () => {
    const cases: [object, string][] = [
      [{ grammar: 'root ::= foo' }, 'ERR_INVALID_GRAMMAR'],
      [{ grammar: 'root ::= "a' }, 'ERR_INVALID_GRAMMAR'],
      [{ grammar: 'root ::= root "a"' }, 'ERR_INVALID_GRAMMAR'],
      [{ grammar: 'item ::= "a"' }, 'ERR_INVALID_GRAMMAR'],
      [{ jsonSchema: { type: 'object', properties: { a: { $ref: '#/definitions/missing' } } } }, 'ERR_INVALID_SCHEMA'],
      [{ jsonSchema: { type: 'frob' } }, 'ERR_INVALID_SCHEMA'],
      [{ jsonSchema: { $ref: '#/$defs/a', $defs: { a: { $ref: '#/$defs/b' }, b: { $ref: '#/$defs/a' } } } }, 'ERR_INVALID_SCHEMA'],
      [{ jsonSchema: { type: 'array', items: { type: 'integer' }, minItems: 1e8 } }, 'ERR_INVALID_SCHEMA'],
      [{ grammar: 'root ::= "a"{100000000}' }, 'ERR_INVALID_GRAMMAR'],
      [{ grammar: '' }, 'ERR_INVALID_ARGUMENT'],
      [{ grammar: 'root ::= "a"', jsonSchema: {} }, 'ERR_INVALID_ARGUMENT'],
      [{ responseFormat: { type: 'xml' } }, 'ERR_INVALID_ARGUMENT'],
      [{ tools: [WEATHER] }, 'ERR_INVALID_ARGUMENT'], // tools need chat()
    ];
    for (const [options, expected] of cases) {
      const chunks: string[] = [];
      const started = performance.now();
      expect(await code(model.complete('Once upon a time', { ...options, onChunk: (c) => chunks.push(c) })), JSON.stringify(options)).toBe(expected);
      expect(chunks).toEqual([]);
      expect(performance.now() - started).toBeLessThan(5000);
    }
    // Through a chat template too: the schema is checked before the render's own conversion.
    expect(await code(model.chat([{ role: 'user', content: 'hi' }], { template: template('Qwen-Qwen2.5-7B-Instruct'), jsonSchema: { $ref: '#/nope' } }))).toBe(
      'ERR_INVALID_SCHEMA',
    );
    const after = await model.complete('Once upon a time', { maxTokens: 8, temperature: 0 });
    expect(after.completionTokens).toBe(8);
  });

  it("toolChoice 'required' always yields a valid call, parsed into toolCalls, never markup in the content", async () => {
    const messages: ChatMessage[] = [{ role: 'user', content: 'What is the weather in Paris?' }];
    for (let seed = 1; seed <= 8; seed++) {
      const chunks: string[] = [];
      const deltas: GenerationDelta[] = [];
      const r = await model.chat(messages, {
        template: functionary, tools: [WEATHER], toolChoice: 'required', seed, temperature: 1, maxTokens: 160,
        onChunk: (c) => chunks.push(c), onDelta: (d) => deltas.push(d),
      });
      expect(r.toolCalls?.length, r.text).toBeGreaterThan(0);
      // Cut by maxTokens, the last call may be unfinished (as llama-server returns it); every other one is whole.
      const whole = r.finishReason === 'length' ? r.toolCalls!.slice(0, -1) : r.toolCalls!;
      for (const call of r.toolCalls!) {
        expect(call.type).toBe('function');
        expect(call.function.name).toBe('get_weather');
        expect(call.id).toMatch(/^call_[A-Za-z0-9]{24}$/);
      }
      for (const call of whole) {
        const args = JSON.parse(call.function.arguments);
        expect(Object.keys(args)).toEqual(['city']);
        expect(typeof args.city).toBe('string');
      }
      if (r.finishReason !== 'length') expect(r.finishReason).toBe('tool_calls');
      expect(chunks.join('')).toBe(r.text);
      expect(chunks.join('')).not.toContain('>>>');
      // The deltas, put together in OpenAI's way, give the same calls.
      const built: { id?: string; name: string; arguments: string }[] = [];
      for (const d of deltas) {
        for (const t of d.toolCalls ?? []) {
          built[t.index] ??= { name: '', arguments: '' };
          if (t.id) built[t.index]!.id = t.id;
          built[t.index]!.name += t.function.name ?? '';
          built[t.index]!.arguments += t.function.arguments ?? '';
        }
      }
      expect(built).toEqual(r.toolCalls!.map((c) => ({ id: c.id, name: c.function.name, arguments: c.function.arguments })));
    }
  });

  it('the same tool call as llama-server --jinja at temperature 0, and the same prompt as /apply-template', async () => {
    const messages = [{ role: 'user', content: 'What is the weather in Paris?' }];
    const applied = await server.post<{ prompt: string }>('/apply-template', { messages, tools: [WEATHER], tool_choice: 'required' });
    const prepared = await model.prepareChat(messages, { template: functionary, tools: [WEATHER], toolChoice: 'required' });
    expect(prepared.prompt).toBe(applied.prompt);
    expect(prepared.grammar).toContain('get_weather');

    const reference = await server.post<{ choices: { message: { content: string | null; tool_calls?: { function: { name: string; arguments: string } }[] } }[] }>(
      '/v1/chat/completions',
      { messages, tools: [WEATHER], tool_choice: 'required', temperature: 0, max_tokens: 60, seed: 1 },
    );
    const ours = await model.chat(messages, { template: functionary, tools: [WEATHER], toolChoice: 'required', temperature: 0, maxTokens: 60 });
    const message = reference.choices[0]!.message;
    expect(ours.toolCalls?.map((c) => c.function)).toEqual(message.tool_calls?.map((c) => ({ name: c.function.name, arguments: c.function.arguments })));
    expect(ours.text).toBe(message.content ?? '');
  });

  it('a full tool loop: the call, its result as a tool message, the answer', async () => {
    const messages: ChatMessage[] = [{ role: 'user', content: 'What is the weather in Paris?' }];
    const first = await model.chat(messages, { template: functionary, tools: [WEATHER], toolChoice: 'required', parallelToolCalls: false, temperature: 0, maxTokens: 60 });
    expect(first.toolCalls?.length).toBeGreaterThan(0);
    messages.push({ role: 'assistant', content: first.text, toolCalls: first.toolCalls });
    for (const call of first.toolCalls!) messages.push({ role: 'tool', toolCallId: call.id, content: '{"sky":"sunny"}' });
    const prompt = await model.applyChatTemplate(messages, { template: functionary });
    expect(prompt).toContain('{"sky":"sunny"}');
    expect(prompt).toContain(first.toolCalls![0]!.function.arguments);
    const answer = await model.chat(messages, { template: functionary, tools: [WEATHER], toolChoice: 'none', temperature: 0, maxTokens: 24 });
    expect(answer.toolCalls).toBeUndefined();
    expect(answer.finishReason).not.toBe('tool_calls');
    // A tool message without its call id, and toolCalls on a user message, are caller errors.
    expect(await code(model.chat([...messages, { role: 'tool', content: 'x' }], { template: functionary }))).toBe('ERR_INVALID_ARGUMENT');
    expect(await code(model.chat([{ role: 'user', content: 'x', toolCalls: [] }], { template: functionary }))).toBe('ERR_INVALID_ARGUMENT');
    // A named tool choice that is not among the tools.
    expect(await code(model.chat(messages, { template: functionary, tools: [WEATHER], toolChoice: { type: 'function', function: { name: 'nope' } } }))).toBe(
      'ERR_INVALID_ARGUMENT',
    );
  });

  it('streamChat yields the content only; a built-in template refuses tools', async () => {
    const stream = model.streamChat([{ role: 'user', content: 'Weather?' }], { template: functionary, tools: [WEATHER], toolChoice: 'required', seed: 2, maxTokens: 80 });
    let text = '';
    for await (const chunk of stream) text += chunk;
    const result = await stream.result;
    expect(text).toBe(result.text);
    expect(text).not.toContain('get_weather');
    expect(result.toolCalls?.length).toBeGreaterThan(0);
    expect(await code(model.chat([{ role: 'user', content: 'x' }], { template: 'chatml', tools: [WEATHER] }))).toBe('ERR_INVALID_ARGUMENT');
    // JSON through a built-in template: the schema's grammar applies to the plain prompt.
    const json = await model.chat([{ role: 'user', content: 'x' }], { template: 'chatml', jsonSchema: PERSON, seed: 5, maxTokens: 256 });
    expect(isPerson(json.parsed), json.text).toBe(true);
  });

  it('one program, the same answers locally and through ApiLlmBackend against llama-server --jinja', async () => {
    const api = new ApiLlmBackend({ baseUrl: server.baseUrl, maxRetries: 0, logger: silentLogger });
    const local = new LocalLlmBackend({ modelPath: modelPath(STORIES), chatFormat: functionary, contextSize: 4096, threads: 2, logger: silentLogger });
    const messages: ChatMessage[] = [{ role: 'user', content: 'What is the weather in Paris?' }];
    const program = async (backend: LlmBackend) => {
      const call = await backend.chat(messages, { tools: [WEATHER], toolChoice: 'required', temperature: 0, maxTokens: 60 });
      const deltas: GenerationDelta[] = [];
      const streamed = await backend.streamChat(messages, undefined, { tools: [WEATHER], toolChoice: 'required', temperature: 0, maxTokens: 60, onDelta: (d) => deltas.push(d) });
      const json = await backend.call({ prompt: 'Lily and Ben', jsonSchema: PERSON, temperature: 0, maxTokens: 128 });
      return {
        calls: call.toolCalls?.map((c) => c.function),
        streamedCalls: streamed.toolCalls?.map((c) => c.function),
        streamedArgs: deltas.flatMap((d) => d.toolCalls ?? []).map((t) => t.function.arguments ?? '').join(''),
        text: call.text,
        json: json.parsed,
        jsonText: json.text,
      };
    };
    try {
      const [viaApi, viaLocal] = [await program(api), await program(local)];
      expect(viaLocal.calls?.length).toBeGreaterThan(0);
      expect(viaLocal).toEqual(viaApi);
      expect(isPerson(viaApi.json)).toBe(true);
    } finally {
      await api.dispose();
      await local.dispose();
    }
  });

  it('reasoning: reasoningContent apart from the content, streamed apart; enableThinking and chatTemplateKwargs reach the template', async () => {
    const r1 = template('deepseek-ai-DeepSeek-R1-Distill-Qwen-32B');
    const messages: ChatMessage[] = [{ role: 'user', content: 'Tell me a story.' }];
    const chunks: string[] = [];
    const deltas: GenerationDelta[] = [];
    const r = await model.chat(messages, {
      template: r1, reasoningFormat: 'deepseek', temperature: 0, maxTokens: 40, onChunk: (c) => chunks.push(c), onDelta: (d) => deltas.push(d),
    });
    // The prompt opens <think>; stories260K never closes it: all of it is reasoning, none content.
    expect(r.reasoningContent!.length).toBeGreaterThan(10);
    expect(r.text).toBe('');
    expect(chunks).toEqual([]);
    expect(deltas.map((d) => d.reasoningContent ?? '').join('')).toBe(r.reasoningContent);
    expect(deltas.every((d) => d.content === undefined)).toBe(true);
    // With 'none' the same tokens stay in the content.
    const plain = await model.chat(messages, { template: r1, reasoningFormat: 'none', temperature: 0, maxTokens: 40 });
    expect(plain.reasoningContent).toBeUndefined();
    expect(plain.text).toContain(r.reasoningContent!.trim().slice(0, 20));

    const qwen3 = template('Qwen-Qwen3-0.6B');
    const thinking = await model.prepareChat(messages, { template: qwen3 });
    const noThinking = await model.prepareChat(messages, { template: qwen3, enableThinking: false });
    const viaKwargs = await model.prepareChat(messages, { template: qwen3, chatTemplateKwargs: { enable_thinking: false } });
    expect(noThinking.prompt).not.toBe(thinking.prompt);
    expect(noThinking.prompt).toContain('<think>\n\n</think>');
    expect(viaKwargs.prompt).toBe(noThinking.prompt);
    expect(thinking.supportsThinking).toBe(true);
    expect(thinking.thinkingStartTag).toBe('<think>');
  });

  it('a workflow llm.chat node with tools and response_format params', async () => {
    const backend = new LocalLlmBackend({ modelPath: modelPath(STORIES), chatFormat: functionary, contextSize: 4096, threads: 2, logger: silentLogger });
    try {
      const actions = createLlmActions({ backend });
      const messages = [{ role: 'user', content: 'What is the weather in Paris?' }];
      const called = await actions['llm.chat'].withMeta({ messages, tools: [WEATHER], tool_choice: 'required', temperature: 0, max_tokens: 60 });
      const calls = called.meta.tool_calls as { function: { name: string } }[];
      expect(calls.length).toBeGreaterThan(0);
      expect(calls[0]!.function.name).toBe('get_weather');
      const json = await actions['llm.chat'].withMeta({
        messages, response_format: { type: 'json_schema', json_schema: { name: 'person', schema: PERSON } }, seed: 3, max_tokens: 256,
      });
      expect(isPerson(json.meta.parsed), String(json.value)).toBe(true);
      expect(JSON.parse(json.value as string)).toEqual(json.meta.parsed);
      await expect(actions['llm.chat']({ messages, tools: 'get_weather' })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    } finally {
      await backend.dispose();
    }
  });
});
