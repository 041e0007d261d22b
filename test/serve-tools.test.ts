// tea-llama serve with tools, response_format and reasoning, against the official `openai` client on 127.0.0.1
// with a free port, over stories260K with llama.cpp's own templates given as text: the answers equal the
// in-process calls of the same backend, and streams carry OpenAI's tool-call deltas, never the raw markup.
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';

import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { ApiLlmBackend, createServer, LocalLlmBackend, silentLogger, type ChatMessage, type TeaServer, type ToolDefinition } from '../lib';
import { startLlamaServer } from './support/llama-server';
import { haveModel, modelPath, repoRoot, STORIES } from './support/models';

const run = haveModel(STORIES) ? describe : describe.skip;
const templatePath = (name: string) => join(repoRoot, 'vendor', 'llama.cpp', 'models', 'templates', `${name}.jinja`);
const template = (name: string) => readFileSync(templatePath(name), 'utf8');

const PERSON = {
  type: 'object',
  properties: { name: { type: 'string', maxLength: 20 }, age: { type: 'integer' }, pet: { enum: ['cat', 'dog'] } },
  required: ['name', 'age', 'pet'],
  additionalProperties: false,
} as const;

function isPerson(value: unknown): boolean {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const v = value as Record<string, unknown>;
  return Object.keys(v).sort().join() === 'age,name,pet' && typeof v.name === 'string' && [...v.name].length <= 20 && Number.isInteger(v.age) && (v.pet === 'cat' || v.pet === 'dog');
}

const WEATHER: ToolDefinition = {
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'The weather of a city',
    parameters: { type: 'object', properties: { city: { type: 'string', maxLength: 12 } }, required: ['city'], additionalProperties: false },
  },
};

async function listen(server: TeaServer): Promise<string> {
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

async function serve(chatFormat: string): Promise<{ backend: LocalLlmBackend; server: TeaServer; client: OpenAI }> {
  const backend = new LocalLlmBackend({ modelPath: modelPath(STORIES), chatFormat, contextSize: 4096, threads: 2, sequences: 2, logger: silentLogger });
  await backend.load();
  const server = createServer(backend, { logger: silentLogger });
  const client = new OpenAI({ baseURL: `${await listen(server)}/v1`, apiKey: 'unused', maxRetries: 0 });
  return { backend, server, client };
}

run('tea-llama serve: tools, response_format and reasoning with the openai client', () => {
  let functionary: Awaited<ReturnType<typeof serve>>;
  let r1: Awaited<ReturnType<typeof serve>>;
  beforeAll(async () => {
    functionary = await serve(template('meetkai-functionary-medium-v3.2'));
    r1 = await serve(template('deepseek-ai-DeepSeek-R1-Distill-Qwen-32B'));
  }, 60_000);
  afterAll(async () => {
    for (const s of [functionary, r1]) {
      await s?.server.shutdown();
      await s?.backend.dispose();
    }
  });

  it('response_format json_schema: the content parses and validates, sampled over seeds; json_object gives an object', async () => {
    const { client, backend } = functionary;
    const messages = [{ role: 'user' as const, content: 'Who are you?' }];
    for (let seed = 1; seed <= 4; seed++) {
      const r = await client.chat.completions.create({
        model: STORIES,
        messages,
        response_format: { type: 'json_schema', json_schema: { name: 'person', schema: PERSON, strict: true } },
        seed,
        temperature: 1,
        max_tokens: 256,
      });
      const content = r.choices[0]!.message.content!;
      expect(r.choices[0]!.finish_reason, content).toBe('stop');
      expect(isPerson(JSON.parse(content)), content).toBe(true);
    }
    const local = await backend.chat(messages, { responseFormat: { type: 'json_object', schema: PERSON }, temperature: 0, maxTokens: 256 });
    const remote = await client.chat.completions.create({ model: STORIES, messages, response_format: { type: 'json_object', schema: PERSON } as never, temperature: 0, max_tokens: 256 });
    expect(remote.choices[0]!.message.content).toBe(local.text);
    expect(isPerson(local.parsed)).toBe(true);
    // On /v1/completions too (a plain prompt, the schema's grammar).
    const completion = await client.completions.create({ model: STORIES, prompt: 'Lily and Ben', response_format: { type: 'json_schema', json_schema: { name: 'p', schema: PERSON } }, temperature: 0, max_tokens: 128 } as never);
    expect(isPerson(JSON.parse(completion.choices[0]!.text))).toBe(true);
  });

  it('a tool call round trip: tool_calls and their finish_reason, then the tool result, then the answer, as in-process', async () => {
    const { client, backend } = functionary;
    const messages: ChatMessage[] = [{ role: 'user', content: 'What is the weather in Paris?' }];
    const first = await client.chat.completions.create({ model: STORIES, messages: messages as never, tools: [WEATHER], tool_choice: 'required', parallel_tool_calls: false, temperature: 0, max_tokens: 60 });
    const local = await backend.chat(messages, { tools: [WEATHER], toolChoice: 'required', parallelToolCalls: false, temperature: 0, maxTokens: 60 });
    const choice = first.choices[0]!;
    // stories260K never ends its calls by itself: maxTokens cuts them ('length', as llama-server says then).
    expect(choice.finish_reason).toBe(local.finishReason);
    expect(['tool_calls', 'length']).toContain(choice.finish_reason);
    expect(choice.message.content).toBe(local.text === '' ? null : local.text);
    const calls = choice.message.tool_calls!;
    expect(calls.map((c) => c.type === 'function' && c.function)).toEqual(local.toolCalls!.map((c) => c.function));
    expect(calls[0]!.type === 'function' && calls[0]!.function.name).toBe('get_weather');
    expect(calls[0]!.id).toMatch(/^call_/);

    // The client sends back the assistant message as it got it, and one tool message per call.
    const followUp: OpenAI.ChatCompletionMessageParam[] = [
      { role: 'user', content: 'What is the weather in Paris?' },
      choice.message,
      ...calls.map((c) => ({ role: 'tool' as const, tool_call_id: c.id, content: '{"sky":"sunny"}' })),
    ];
    const answer = await client.chat.completions.create({ model: STORIES, messages: followUp, tools: [WEATHER], tool_choice: 'none', temperature: 0, max_tokens: 24 });
    const localAnswer = await backend.chat(
      [...messages, { role: 'assistant', content: local.text, toolCalls: local.toolCalls }, ...local.toolCalls!.map((c) => ({ role: 'tool', toolCallId: c.id, content: '{"sky":"sunny"}' }))],
      { tools: [WEATHER], toolChoice: 'none', temperature: 0, maxTokens: 24 },
    );
    expect(answer.choices[0]!.message.tool_calls).toBeUndefined();
    expect(answer.choices[0]!.finish_reason).not.toBe('tool_calls');
    expect(answer.choices[0]!.message.content).toBe(localAnswer.text);
  });

  it('streams tool calls as OpenAI tool-call deltas that build the same calls, never markup as content', async () => {
    const { client } = functionary;
    const messages = [{ role: 'user' as const, content: 'What is the weather in Paris?' }];
    for (let seed = 1; seed <= 3; seed++) {
      const request = { model: STORIES, messages, tools: [WEATHER], tool_choice: 'required' as const, seed, temperature: 1, max_tokens: 160 };
      const whole = await client.chat.completions.create(request);
      const stream = await client.chat.completions.create({ ...request, stream: true, stream_options: { include_usage: true } });
      let content = '';
      let finish: string | null = null;
      const built: { id?: string; name: string; arguments: string }[] = [];
      for await (const chunk of stream) {
        const c = chunk.choices[0];
        if (!c) continue;
        content += c.delta.content ?? '';
        for (const t of c.delta.tool_calls ?? []) {
          built[t.index] ??= { name: '', arguments: '' };
          if (t.id) built[t.index]!.id = t.id;
          built[t.index]!.name += t.function?.name ?? '';
          built[t.index]!.arguments += t.function?.arguments ?? '';
        }
        finish = c.finish_reason ?? finish;
      }
      const calls = whole.choices[0]!.message.tool_calls!;
      expect(calls.length).toBeGreaterThan(0);
      // Same seed, same calls (ids are new each time).
      expect(built.map((b) => ({ name: b.name, arguments: b.arguments }))).toEqual(calls.map((c) => c.type === 'function' && { name: c.function.name, arguments: c.function.arguments }));
      expect(built.every((b) => b.id?.startsWith('call_'))).toBe(true);
      expect(content).toBe(whole.choices[0]!.message.content ?? '');
      expect(content).not.toContain('>>>');
      expect(finish).toBe(whole.choices[0]!.finish_reason);
    }
    // The SDK's own accumulator agrees.
    const runner = client.chat.completions.stream({ model: STORIES, messages, tools: [WEATHER], tool_choice: 'required', temperature: 0, max_tokens: 60 });
    const final = await runner.finalChatCompletion();
    const calls = final.choices[0]!.message.tool_calls!;
    expect(calls[0]!.type === 'function' && calls[0]!.function.name).toBe('get_weather');
    expect(JSON.parse(calls[0]!.type === 'function' ? calls[0]!.function.arguments : '')).toHaveProperty('city');
  });

  it('reasoning_format separates reasoning_content, in the answer and in the stream', async () => {
    const { client, backend } = r1;
    const messages = [{ role: 'user' as const, content: 'Tell me a story.' }];
    const local = await backend.chat(messages, { reasoningFormat: 'deepseek', temperature: 0, maxTokens: 40 });
    expect(local.reasoningContent!.length).toBeGreaterThan(10);
    const whole = await client.chat.completions.create({ model: STORIES, messages, reasoning_format: 'deepseek', temperature: 0, max_tokens: 40 } as never);
    const message = whole.choices[0]!.message as OpenAI.ChatCompletionMessage & { reasoning_content?: string };
    expect(message.reasoning_content).toBe(local.reasoningContent);
    expect(message.content).toBe(local.text);
    const stream = await client.chat.completions.create({ model: STORIES, messages, reasoning_format: 'deepseek', temperature: 0, max_tokens: 40, stream: true } as never);
    let reasoning = '';
    let content = '';
    for await (const chunk of stream as unknown as AsyncIterable<OpenAI.ChatCompletionChunk>) {
      const delta = chunk.choices[0]?.delta as { content?: string; reasoning_content?: string } | undefined;
      reasoning += delta?.reasoning_content ?? '';
      content += delta?.content ?? '';
    }
    expect(reasoning).toBe(local.reasoningContent);
    expect(content).toBe(local.text);
  });

  it('as a gateway over ApiLlmBackend to llama-server --jinja: the same tool calls and JSON as in-process', async () => {
    const llama = await startLlamaServer(modelPath(STORIES), ['-c', '4096', '-np', '1', '--jinja', '--chat-template-file', templatePath('meetkai-functionary-medium-v3.2')]);
    const api = new ApiLlmBackend({ baseUrl: llama.baseUrl, maxRetries: 0, logger: silentLogger });
    const gateway = createServer(api, { logger: silentLogger });
    try {
      const client = new OpenAI({ baseURL: `${await listen(gateway)}/v1`, apiKey: 'unused', maxRetries: 0 });
      const messages = [{ role: 'user' as const, content: 'What is the weather in Paris?' }];
      const local = await functionary.backend.chat(messages, { tools: [WEATHER], toolChoice: 'required', temperature: 0, maxTokens: 60 });
      const viaGateway = await client.chat.completions.create({ model: STORIES, messages, tools: [WEATHER], tool_choice: 'required', temperature: 0, max_tokens: 60 });
      expect(viaGateway.choices[0]!.message.tool_calls!.map((c) => c.type === 'function' && c.function)).toEqual(local.toolCalls!.map((c) => c.function));
      expect(viaGateway.choices[0]!.finish_reason).toBe(local.finishReason);
      const stream = await client.chat.completions.create({ model: STORIES, messages, tools: [WEATHER], tool_choice: 'required', temperature: 0, max_tokens: 60, stream: true });
      let args = '';
      for await (const chunk of stream) for (const t of chunk.choices[0]?.delta.tool_calls ?? []) args += t.function?.arguments ?? '';
      expect(args).toBe(local.toolCalls!.map((c) => c.function.arguments).join(''));
      const json = await client.completions.create({ model: STORIES, prompt: 'Lily and Ben', response_format: { type: 'json_schema', json_schema: { name: 'p', schema: PERSON } }, temperature: 0, max_tokens: 128 } as never);
      const localJson = await functionary.backend.call({ prompt: 'Lily and Ben', responseFormat: { type: 'json_schema', json_schema: { name: 'p', schema: PERSON } }, temperature: 0, maxTokens: 128 });
      expect(json.choices[0]!.text).toBe(localJson.text);
    } finally {
      await gateway.shutdown();
      await api.dispose();
      await llama.stop();
    }
  }, 60_000);

  it('bad tools, tool choices, schemas and tool messages are 400s naming the field, and the server keeps serving', async () => {
    const { client } = functionary;
    const user = [{ role: 'user', content: 'hi' }];
    const cases: [Record<string, unknown>, string, string][] = [
      [{ tools: 'get_weather' }, 'tools', 'invalid_request'],
      [{ tools: [WEATHER], tool_choice: 'sometimes' }, 'tool_choice', 'invalid_request'],
      [{ tools: [WEATHER], tool_choice: { type: 'function', function: { name: 'nope' } } }, 'tool_choice', 'invalid_request'],
      [{ tool_choice: 'auto' }, 'tool_choice', 'invalid_request'],
      [{ response_format: { type: 'xml' } }, 'response_format', 'invalid_request'],
      [{ response_format: { type: 'json_schema', json_schema: { name: 'x', schema: { type: 'frob' } } } }, 'response_format', 'invalid_schema'],
      [{ functions: [{ name: 'f' }] }, 'functions', 'unsupported_parameter'],
      [{ messages: [{ role: 'tool', content: '1' }] }, 'messages[0].tool_call_id', 'invalid_request'],
      [{ messages: [{ role: 'user', content: 'x', tool_calls: [] }] }, 'messages[0].tool_calls', 'unknown_parameter'],
      [{ messages: [{ role: 'assistant', content: null, tool_calls: [{ id: 'c', type: 'function', function: { name: 'f', arguments: {} } }] }] }, 'messages[0].tool_calls[0].function', 'invalid_request'],
    ];
    for (const [extra, param, code] of cases) {
      const error = await client.chat.completions.create({ model: STORIES, messages: user, ...extra } as never).catch((e: unknown) => e);
      expect(error, JSON.stringify(extra)).toBeInstanceOf(OpenAI.BadRequestError);
      expect((error as InstanceType<typeof OpenAI.BadRequestError>).param, JSON.stringify(extra)).toBe(param);
      expect((error as InstanceType<typeof OpenAI.BadRequestError>).code, JSON.stringify(extra)).toBe(code);
    }
    // Tools belong to a conversation: on /v1/completions they are unknown fields, as on OpenAI's.
    const onCompletions = await client.completions.create({ model: STORIES, prompt: 'x', tools: [WEATHER] } as never).catch((e: unknown) => e);
    expect((onCompletions as InstanceType<typeof OpenAI.BadRequestError>).param).toBe('tools');
    // tool_choice 'none' without tools asks for nothing, and is answered as without it.
    const after = await client.chat.completions.create({ model: STORIES, messages: [{ role: 'user', content: 'hi' }], tool_choice: 'none', max_tokens: 4, temperature: 0 });
    expect(after.usage?.completion_tokens).toBe(4);
    expect(after.choices[0]!.message.content).toBe((await functionary.backend.chat([{ role: 'user', content: 'hi' }], { maxTokens: 4, temperature: 0 })).text);
  });
});
