// tea-llama's OpenAI-compatible server against the official `openai` client, on 127.0.0.1 with a free port, over a
// real stories260K model: answers equal to the in-process calls of the same backend.
import { mkdtempSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { ApiLlmBackend, createServer, LlamaError, LocalLlmBackend, silentLogger, type TeaServer } from '../lib';
import { cliEnv, spawnCli, startServeCli } from './support/cli';
import { haveModel, modelPath, STORIES, STORY_PROMPTS } from './support/models';

const run = haveModel(STORIES) ? describe : describe.skip;
const KEY = 'sk-test-0123456789';

async function listen(server: TeaServer): Promise<string> {
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

run('tea-llama serve with the openai client', () => {
  let backend: LocalLlmBackend;
  let server: TeaServer;
  let url: string;
  let client: OpenAI;

  beforeAll(async () => {
    backend = new LocalLlmBackend({ modelPath: modelPath(STORIES), contextSize: 2048, threads: 2, sequences: 8 });
    await backend.load();
    server = createServer(backend, { apiKey: KEY });
    url = await listen(server);
    client = new OpenAI({ baseURL: `${url}/v1`, apiKey: KEY, maxRetries: 0 });
  });
  afterAll(async () => {
    await server?.shutdown();
    await backend?.dispose();
  });

  it('lists the model', async () => {
    const models = await client.models.list();
    expect(models.data.map((m) => m.id)).toEqual([STORIES]);
    expect((await client.models.retrieve(STORIES)).id).toBe(STORIES);
  });

  it('completes greedily with the same text and usage as the in-process call', async () => {
    const local = await backend.call({ prompt: 'Once upon a time', maxTokens: 40, temperature: 0 });
    const remote = await client.completions.create({ model: STORIES, prompt: 'Once upon a time', max_tokens: 40, temperature: 0 });
    expect(remote.choices[0]!.text).toBe(local.text);
    expect(remote.choices[0]!.finish_reason).toBe('length');
    expect(remote.usage).toEqual({ prompt_tokens: local.promptTokens, completion_tokens: 40, total_tokens: local.promptTokens + 40 });
    expect(remote.object).toBe('text_completion');
  });

  it('chats greedily with the same text as the in-process chat, also streamed, with usage', async () => {
    const messages = [
      { role: 'system' as const, content: 'You tell stories.' },
      { role: 'user' as const, content: 'Tell me about a dog.' },
    ];
    const local = await backend.chat(messages, { maxTokens: 48, temperature: 0 });
    const whole = await client.chat.completions.create({ model: STORIES, messages, max_tokens: 48, temperature: 0 });
    expect(whole.choices[0]!.message).toMatchObject({ role: 'assistant', content: local.text });
    expect(whole.usage?.prompt_tokens).toBe(local.promptTokens);
    expect(whole.usage?.completion_tokens).toBe(local.completionTokens);

    const stream = await client.chat.completions.create({
      model: STORIES,
      messages,
      max_completion_tokens: 48,
      temperature: 0,
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = '';
    let finish: string | null = null;
    let usage: OpenAI.CompletionUsage | undefined | null;
    let events = 0;
    for await (const chunk of stream) {
      events++;
      if (chunk.usage) usage = chunk.usage;
      const choice = chunk.choices[0];
      if (!choice) continue;
      text += choice.delta.content ?? '';
      finish = choice.finish_reason ?? finish;
    }
    expect(text).toBe(local.text);
    expect(finish).toBe(local.finishReason);
    expect(events).toBeGreaterThan(10);
    expect(usage).toEqual({ prompt_tokens: local.promptTokens, completion_tokens: local.completionTokens, total_tokens: local.tokensUsed });
  });

  it('streams completions that concatenate to the whole answer, stopping before a stop string', async () => {
    const whole = await client.completions.create({ model: STORIES, prompt: 'The little dog', max_tokens: 60, temperature: 0, stop: ['.'] });
    const stream = await client.completions.create({ model: STORIES, prompt: 'The little dog', max_tokens: 60, temperature: 0, stop: ['.'], stream: true });
    let text = '';
    for await (const chunk of stream) text += chunk.choices[0]?.text ?? '';
    expect(text).toBe(whole.choices[0]!.text);
    expect(text).not.toContain('.');
    expect(whole.choices[0]!.finish_reason).toBe('stop');
  });

  it('embeds equal to embed(), as floats and as base64', async () => {
    const texts = ['a sentence to embed', 'another one'];
    const local = await backend.embed(texts);
    const floats = await client.embeddings.create({ model: STORIES, input: texts, encoding_format: 'float' });
    expect(floats.data.map((d) => d.index)).toEqual([0, 1]);
    floats.data.forEach((d, i) => expect(d.embedding).toEqual(Array.from(local[i]!)));
    expect(floats.usage.prompt_tokens).toBeGreaterThan(4);
    // The client decodes base64 itself when it asked for floats; a raw request shows the base64 answer.
    const raw = await fetch(`${url}/v1/embeddings`, {
      method: 'POST',
      headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ input: texts[0], encoding_format: 'base64' }),
    });
    const body = (await raw.json()) as { data: { embedding: string }[] };
    const bytes = Buffer.from(body.data[0]!.embedding, 'base64');
    // One text alone, as embed() of one text (a batch of several may differ in the last bits).
    const alone = await backend.embed(texts[0]!);
    expect(Array.from(new Float32Array(bytes.buffer, bytes.byteOffset, bytes.length / 4))).toEqual(Array.from(alone));
    const single = await client.embeddings.create({ model: STORIES, input: texts[0]! });
    expect(single.data[0]!.embedding).toEqual(Array.from(alone));
  });

  it('answers a wrong or missing key with 401 in OpenAI shape, compared for every route but /health', async () => {
    const wrong = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'sk-wrong', maxRetries: 0 });
    const error = await wrong.chat.completions.create({ model: STORIES, messages: [{ role: 'user', content: 'hi' }] }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OpenAI.AuthenticationError);
    expect((error as InstanceType<typeof OpenAI.AuthenticationError>).status).toBe(401);
    expect((error as InstanceType<typeof OpenAI.AuthenticationError>).code).toBe('invalid_api_key');
    const prefix = new OpenAI({ baseURL: `${url}/v1`, apiKey: KEY.slice(0, -1), maxRetries: 0 });
    await expect(prefix.models.list()).rejects.toBeInstanceOf(OpenAI.AuthenticationError);
    for (const path of ['/v1/models', '/metrics']) expect((await fetch(url + path)).status).toBe(401);
    const health = await fetch(`${url}/health`);
    expect(health.status).toBe(200);
    expect(await health.json()).toMatchObject({ status: 'ok', model: STORIES });
  });

  it('serves 8 concurrent streaming clients, each with its own correct text', async () => {
    const expected = await Promise.all(STORY_PROMPTS.map((prompt) => backend.call({ prompt, maxTokens: 64, temperature: 0 })));
    const texts = await Promise.all(
      STORY_PROMPTS.map(async (prompt) => {
        // One client each, as separate programs would have.
        const own = new OpenAI({ baseURL: `${url}/v1`, apiKey: KEY, maxRetries: 0 });
        const stream = await own.completions.create({ model: STORIES, prompt, max_tokens: 64, temperature: 0, stream: true });
        let text = '';
        for await (const chunk of stream) text += chunk.choices[0]?.text ?? '';
        return text;
      }),
    );
    expect(texts).toEqual(expected.map((r) => r.text));
    expect(new Set(texts).size).toBe(8);
    const metrics = await (await fetch(`${url}/metrics`, { headers: { authorization: `Bearer ${KEY}` } })).text();
    expect(metrics).toMatch(/^tea_sequences 8$/m);
    expect(metrics).toMatch(/^tea_requests_in_flight 0$/m);
    expect(metrics).toMatch(/^tea_time_to_first_token_seconds_count\{endpoint="\/v1\/completions"\} \d+$/m);
    expect(Number(/^tea_completion_tokens_total (\d+)$/m.exec(metrics)?.[1])).toBeGreaterThanOrEqual(8 * 64);
  });

  it('rejects what it does not support with a 400 naming the field, never ignoring it', async () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ tools: [{ type: 'function', function: { name: 'bad name', parameters: {} } }] }, 'tools'],
      [{ response_format: { type: 'xml' } }, 'response_format'],
      [{ function_call: 'auto' }, 'function_call'],
      [{ n: 2 }, 'n'],
      [{ temperature: 'hot' }, 'temperature'],
      [{ max_tokens: -5 }, 'max_tokens'],
      [{ frobnicate: true }, 'frobnicate'],
    ];
    for (const [extra, param] of cases) {
      const error = await client.chat.completions
        .create({ model: STORIES, messages: [{ role: 'user', content: 'hi' }], ...extra } as never)
        .catch((e: unknown) => e);
      expect(error, param).toBeInstanceOf(OpenAI.BadRequestError);
      expect((error as InstanceType<typeof OpenAI.BadRequestError>).param, JSON.stringify(extra)).toBe(param);
    }
    const tool = await client.chat.completions
      .create({ model: STORIES, messages: [{ role: 'tool', content: '1' }] } as never)
      .catch((e: unknown) => e);
    expect(tool).toBeInstanceOf(OpenAI.BadRequestError);
    const overflow = await client.completions.create({ model: STORIES, prompt: 'word '.repeat(3000), max_tokens: 4 }).catch((e: unknown) => e);
    expect(overflow).toBeInstanceOf(OpenAI.BadRequestError);
    expect((overflow as InstanceType<typeof OpenAI.BadRequestError>).code).toBe('context_length_exceeded');
  });

  it("is a server for tea-llama's own ApiLlmBackend, and a gateway over one", async () => {
    const client = new ApiLlmBackend({ baseUrl: url, apiKey: KEY, maxRetries: 0 });
    const gateway = createServer(client, { logger: silentLogger });
    const gatewayUrl = await listen(gateway);
    const viaGateway = new OpenAI({ baseURL: `${gatewayUrl}/v1`, apiKey: 'unused', maxRetries: 0 });
    try {
      const local = await backend.call({ prompt: 'A cat sat on', maxTokens: 24, temperature: 0, topK: 10, repeatPenalty: 1.1 });
      const remote = await client.call({ prompt: 'A cat sat on', maxTokens: 24, temperature: 0, topK: 10, repeatPenalty: 1.1 });
      expect(remote.text).toBe(local.text);
      let streamed = '';
      for await (const chunk of client.streamChat([{ role: 'user', content: 'Hi' }], undefined, { maxTokens: 16, temperature: 0 })) streamed += chunk;
      expect(streamed).toBe((await backend.chat([{ role: 'user', content: 'Hi' }], { maxTokens: 16, temperature: 0 })).text);
      expect(Array.from(await client.embed('a cat'))).toEqual(Array.from(await backend.embed('a cat')));
      expect((await client.healthCheck()).ok).toBe(true);
      // Two hops: openai client → gateway (ApiLlmBackend) → this server (LocalLlmBackend).
      const hop = await viaGateway.completions.create({ model: 'default', prompt: 'A cat sat on', max_tokens: 24, temperature: 0 });
      expect(hop.choices[0]!.text).toBe((await backend.call({ prompt: 'A cat sat on', maxTokens: 24, temperature: 0 })).text);
    } finally {
      await gateway.shutdown();
      await client.dispose();
    }
  });

  it('sends CORS headers only when asked, and checks its options strictly', async () => {
    const open = createServer(backend, { cors: 'https://app.example', logger: silentLogger });
    const openUrl = await listen(open);
    try {
      const preflight = await fetch(`${openUrl}/v1/chat/completions`, { method: 'OPTIONS', headers: { origin: 'https://app.example' } });
      expect(preflight.status).toBe(204);
      expect(preflight.headers.get('access-control-allow-origin')).toBe('https://app.example');
      expect(preflight.headers.get('access-control-allow-headers')).toContain('authorization');
      expect((await fetch(`${openUrl}/v1/models`)).headers.get('access-control-allow-origin')).toBe('https://app.example');
    } finally {
      await open.shutdown();
    }
    const closed = await fetch(`${url}/v1/models`, { headers: { authorization: `Bearer ${KEY}`, origin: 'https://app.example' } });
    expect(closed.headers.get('access-control-allow-origin')).toBeNull();
    expect(() => createServer(backend, { apikey: 'x' } as never)).toThrow(/unknown option 'apikey' in createServer\(\) options \(did you mean 'apiKey'\?\)/);
    expect(() => createServer(backend, { maxBodyBytes: -1 })).toThrow(LlamaError);
    expect(() => createServer(backend, { apiKey: '' })).toThrow(/apiKey must not be empty/);
  });

  it('tea-llama serve warns when it listens beyond loopback without a key, and exits 0 on SIGINT', async () => {
    const serve = await startServeCli(['--model', modelPath(STORIES), '--host', '0.0.0.0', '--port', '0', '--threads', '1']);
    expect(serve.address).toMatch(/^http:\/\/0\.0\.0\.0:\d+$/);
    expect(serve.output.stderr).toMatch(/warning: serving on 0\.0\.0\.0 without an API key/);
    const port = new URL(serve.address).port;
    expect((await fetch(`http://127.0.0.1:${port}/health`)).status).toBe(200);
    expect(await serve.stop('SIGINT')).toBe(0);
  });

  it('tea-llama serve --context-shift goes on past a full context (createServer contextShift); without it the answer ends there', async () => {
    const body = { prompt: 'Once upon a time', max_tokens: 300, temperature: 0, n_keep: 4 };
    const answer = async (address: string) => {
      const r = await fetch(`${address}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
      expect(r.status).toBe(200);
      return (await r.json()) as { choices: { finish_reason: string }[]; usage: { completion_tokens: number } };
    };
    const args = ['--model', modelPath(STORIES), '--port', '0', '--threads', '1', '--parallel', '1', '--ctx-size', '128'];
    const [shifting, plain] = await Promise.all([startServeCli([...args, '--context-shift']), startServeCli(args)]);
    try {
      const [shifted, ended] = await Promise.all([answer(shifting.address), answer(plain.address)]);
      expect(ended.choices[0]!.finish_reason).toBe('length');
      expect(ended.usage.completion_tokens).toBeLessThan(128);
      // Past the context's end is what shows the shift.
      expect(shifted.usage.completion_tokens).toBeGreaterThan(ended.usage.completion_tokens);
    } finally {
      await Promise.all([shifting.stop(), plain.stop()]);
    }
  });

  it("tea-llama serve reads a settings file's serve: block (a key is then required) and rejects a misspelt key", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tea-serve-settings-'));
    const file = join(dir, 'settings.yaml');
    writeFileSync(file, `llm:\n  model_path: ${JSON.stringify(modelPath(STORIES))}\nserve:\n  port: 0\n  api_key: sk-from-file\n  parallel: 2\n  context_shift: true\n`);
    const serve = await startServeCli(['--settings', file, '--threads', '1']);
    const address = serve.address;
    expect((await fetch(`${address}/v1/models`)).status).toBe(401);
    const metrics = await fetch(`${address}/metrics`, { headers: { authorization: 'Bearer sk-from-file' } });
    expect(await metrics.text()).toMatch(/^tea_sequences 2$/m);
    expect(await serve.stop()).toBe(0);

    writeFileSync(file, 'serve:\n  prot: 8080\n');
    const wrong = spawnCli(['serve', '--settings', file], { env: cliEnv() });
    let stderr = '';
    wrong.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    expect(await new Promise((resolve) => wrong.on('close', resolve))).toBe(2);
    expect(stderr).toMatch(/unknown key serve\.prot; did you mean "port"\?/);
  });
});
