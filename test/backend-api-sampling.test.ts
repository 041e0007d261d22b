import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { ApiLlmBackend, createLlmBackend, type LlmCallParams, type TokenLogprob } from '../lib';
import { captureLogger } from './support/capture-logger';
import { startLlamaServer, type LlamaServer } from './support/llama-server';
import { haveModel, modelPath, STORIES } from './support/models';

// The API backend's request surface: every sampler option reaches llama-server under its own name (the seeded text
// equals llama-server's native /completion with those fields, and differs from the text without them), the
// log-probabilities come back streamed or not, and with compat 'openai' what OpenAI's API lacks is refused before
// anything is sent.

const PROMPT = 'Once upon a time, there was a little girl named Lily. She';
const BASE = { maxTokens: 48, temperature: 1, seed: 1234 } as const;

interface NativeCompletion {
  content: string;
  completion_probabilities?: { id: number; token: string; logprob: number; top_logprobs: { id: number; token: string; logprob: number }[] }[];
}

const CASES: { name: string; ours: Partial<LlmCallParams>; server: Record<string, unknown> }[] = [
  { name: 'topK and minP', ours: { topK: 3, minP: 0.1 }, server: { top_k: 3, min_p: 0.1 } },
  { name: 'mirostat 2', ours: { mirostat: 2, mirostatTau: 2, mirostatEta: 0.3 }, server: { mirostat: 2, mirostat_tau: 2, mirostat_eta: 0.3 } },
  {
    name: 'DRY',
    ours: { dryMultiplier: 2, dryBase: 2, dryAllowedLength: 1, dryPenaltyLastN: 128, drySequenceBreakers: ['.'] },
    server: { dry_multiplier: 2, dry_base: 2, dry_allowed_length: 1, dry_penalty_last_n: 128, dry_sequence_breakers: ['.'] },
  },
  { name: 'typicalP and the sampler order', ours: { typicalP: 0.5, samplers: ['typ_p', 'temperature'] }, server: { typical_p: 0.5, samplers: ['typ_p', 'temperature'] } },
  { name: 'logitBias by text, a ban', ours: { logitBias: [[' dog', 8], [' the', -Infinity]] }, server: { logit_bias: [[' dog', 8], [' the', false]] } },
];

function expectSameLogprobs(actual: TokenLogprob[] | undefined, expected: { id: number; token: string; logprob: number; top_logprobs: { id: number; logprob: number }[] }[]) {
  expect(actual).toHaveLength(expected.length);
  actual!.forEach((entry, i) => {
    const e = expected[i]!;
    expect(entry.token).toBe(e.token);
    expect(Math.abs(entry.logprob - e.logprob)).toBeLessThan(1e-4);
    expect(entry.topLogprobs.map((t) => t.id)).toEqual(e.top_logprobs.map((t) => t.id));
  });
}

describe.runIf(haveModel(STORIES))('ApiLlmBackend: sampler options and logprobs against llama-server', () => {
  let server: LlamaServer;
  let api: ApiLlmBackend;

  beforeAll(async () => {
    // No prompt cache: each request decodes its prompt from scratch, so a reused prefix cannot round the logits
    // differently between the two requests compared.
    server = await startLlamaServer(modelPath(STORIES), ['-c', '512', '-np', '1', '--no-cache-prompt']);
    api = new ApiLlmBackend({ baseUrl: server.baseUrl, apiKey: '', logger: captureLogger() });
    expect(api.compat).toBe('llama-server');
  });
  afterAll(async () => {
    await api?.dispose();
    await server?.stop();
  });

  it.each(CASES)('$name: the text of llama-server /completion with the same fields, and not the text without them', async ({ ours, server: fields }) => {
    const reference = await server.post<NativeCompletion>('/completion', { prompt: PROMPT, n_predict: BASE.maxTokens, temperature: 1, seed: BASE.seed, ...fields });
    const without = await api.call({ prompt: PROMPT, ...BASE });
    const result = await api.call({ prompt: PROMPT, ...BASE, ...ours });
    expect(result.content).toBe(reference.content);
    expect(result.content).not.toBe(without.content);
  });

  it('logprobs of a completion equal llama-server n_probs, and a stream brings the same ones', async () => {
    const options = { prompt: 'The little dog', maxTokens: 16, temperature: 0, logprobs: true, topLogprobs: 3 } as const;
    const reference = await server.post<NativeCompletion>('/completion', { prompt: options.prompt, n_predict: 16, temperature: 0, n_probs: 3 });
    const whole = await api.call(options);
    expect(whole.content).toBe(reference.content);
    expectSameLogprobs(whole.logprobs, reference.completion_probabilities!);
    const streamed = await api.stream(options);
    expect(streamed.content).toBe(whole.content);
    expect(streamed.logprobs).toEqual(whole.logprobs);
    expect(streamed.logprobs!.every((t) => t.topLogprobs.length === 3)).toBe(true);
  });

  it('logprobs of a chat answer, streamed and not, one per generated token', async () => {
    const messages = [{ role: 'user', content: 'Tell me about the park.' }];
    const options = { maxTokens: 12, temperature: 0, logprobs: true, topLogprobs: 2 } as const;
    const whole = await api.chat(messages, options);
    const streamed = await api.streamChat(messages, undefined, options);
    expect(whole.logprobs).toHaveLength(whole.completionTokens);
    expect(whole.logprobs!.map((t) => t.token).join('')).toBe(whole.content);
    expect(streamed.content).toBe(whole.content);
    expect(streamed.logprobs).toEqual(whole.logprobs);
  });
});

/** A stand-in for OpenAI's API that records what it is sent and answers one fixed chat completion. */
async function recordingServer(): Promise<{ server: Server; url: string; bodies: Record<string, unknown>[] }> {
  const bodies: Record<string, unknown>[] = [];
  const read = async (req: IncomingMessage) => {
    let text = '';
    for await (const chunk of req) text += chunk;
    return text;
  };
  const server = createServer((req, res) => {
    void read(req).then((text) => {
      bodies.push(JSON.parse(text) as Record<string, unknown>);
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ model: 'gpt-test', choices: [{ index: 0, message: { role: 'assistant', content: 'Hi.' }, finish_reason: 'stop' }], usage: { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 } }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`, bodies };
}

describe("ApiLlmBackend compat 'openai'", () => {
  let stub: Awaited<ReturnType<typeof recordingServer>>;
  let api: ApiLlmBackend;
  const messages = [{ role: 'user', content: 'Hello' }];

  beforeAll(async () => {
    stub = await recordingServer();
    api = new ApiLlmBackend({ baseUrl: stub.url, apiKey: 'sk-test', compat: 'openai', maxRetries: 0, logger: captureLogger() });
  });
  afterAll(async () => {
    await api?.dispose();
    await new Promise((resolve) => stub?.server.close(resolve));
  });

  it("refuses what OpenAI's API has no field for, naming it, before anything is sent", async () => {
    const refused: [Partial<LlmCallParams>, RegExp][] = [
      [{ topK: 5 }, /topK is not part of OpenAI's API/],
      [{ mirostat: 2 }, /mirostat/],
      [{ dryMultiplier: 1 }, /dryMultiplier/],
      [{ ignoreEos: true }, /ignoreEos/],
      [{ logitBias: [[' dog', 1]] }, /a text in logitBias/],
      [{ grammar: 'root ::= "a"' }, /grammar/],
      [{ nKeep: 4 }, /nKeep/],
      [{ sequence: 0 }, /sequence/],
      [{ lora: [{ adapter: 0, scale: 1 }] }, /lora/],
    ];
    for (const [options, message] of refused) {
      await expect(api.chat(messages, options)).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT', message: expect.stringMatching(message) });
    }
    await expect(api.call({ prompt: 'x', logprobs: true })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT', message: expect.stringMatching(/logprobs on a completion/) });
    expect(stub.bodies).toHaveLength(0);
  });

  it("sends OpenAI's own fields by OpenAI's names, logit_bias as a map of token ids within ±100", async () => {
    const result = await api.chat(messages, {
      maxTokens: 7, temperature: 0.5, topP: 0.9, frequencyPenalty: 0.2, presencePenalty: 0.1, seed: 3, stop: ['\n'],
      logitBias: { 12: 3, 15: -Infinity }, logprobs: true, topLogprobs: 2,
    });
    expect(result.content).toBe('Hi.');
    const body = stub.bodies.at(-1)!;
    expect(body).toMatchObject({ max_tokens: 7, temperature: 0.5, top_p: 0.9, frequency_penalty: 0.2, presence_penalty: 0.1, seed: 3, stop: ['\n'], logprobs: true, top_logprobs: 2 });
    expect(body.logit_bias).toEqual({ '12': 3, '15': -100 });
    // Nothing of llama-server's: OpenAI answers an unknown field with a 400.
    expect(Object.keys(body).filter((k) => !['model', 'messages', 'max_tokens', 'temperature', 'top_p', 'frequency_penalty', 'presence_penalty', 'seed', 'stop', 'logit_bias', 'logprobs', 'top_logprobs'].includes(k))).toEqual([]);
  });

  it("is the default for api.openai.com, 'llama-server' elsewhere, and llm.api.compat / LLM_API_COMPAT choose it", async () => {
    await using openai = new ApiLlmBackend({ baseUrl: 'https://api.openai.com/v1', apiKey: 'sk-test', logger: captureLogger() });
    expect(openai.compat).toBe('openai');
    await using other = new ApiLlmBackend({ baseUrl: stub.url, apiKey: '', logger: captureLogger() });
    expect(other.compat).toBe('llama-server');
    expect(() => new ApiLlmBackend({ baseUrl: stub.url, compat: 'vllm' as never })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT', message: expect.stringMatching(/compat must be/) }));
    await using fromEnv = await createLlmBackend({ backend: 'api', env: { LLM_API_BASE: stub.url, LLM_API_COMPAT: 'openai' }, logger: captureLogger() });
    expect((fromEnv as ApiLlmBackend).compat).toBe('openai');
    await expect(createLlmBackend({ backend: 'api', env: { LLM_API_BASE: stub.url, LLM_API_COMPAT: 'ollama' }, logger: captureLogger() })).rejects.toMatchObject({ code: 'ERR_SETTINGS_INVALID' });
  });
});
