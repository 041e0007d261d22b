// tea-llama serve's request surface beyond OpenAI's own fields: llama-server's sampler fields, log-probabilities,
// logit_bias, per-request LoRA, id_slot and n_keep/n_discard, sent with the official `openai` client and compared
// with llama-server (same tree, same file, same request) on its OpenAI-compatible endpoints.
import { resolve } from 'node:path';
import type { AddressInfo } from 'node:net';

import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { ApiLlmBackend, createServer, LocalLlmBackend, silentLogger, type TeaServer } from '../lib';
import { SAMPLING_FIELDS } from '../lib/engine/request';
import { startLlamaServer, type LlamaServer } from './support/llama-server';
import { cacheDir, haveModel, modelPath, STORIES } from './support/models';

interface WireAlternative {
  id: number;
  token: string;
  bytes: number[];
  logprob: number;
}
type WireLogprob = WireAlternative & { top_logprobs: WireAlternative[] };
interface Choice {
  text?: string;
  message?: { content: string | null };
  delta?: { content?: string };
  logprobs: { content: WireLogprob[] } | null;
  finish_reason: string | null;
}
interface Answer {
  choices: Choice[];
}

const PROMPT = 'Once upon a time, there was a little girl named Lily. She';
const SEEDED = { max_tokens: 48, temperature: 1, seed: 1234 };

async function listen(server: TeaServer): Promise<string> {
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** A local backend served by `createServer`, and an openai client of it. */
async function serve(options: ConstructorParameters<typeof LocalLlmBackend>[0], serverOptions: Parameters<typeof createServer>[1] = {}) {
  const backend = new LocalLlmBackend({ logger: silentLogger, ...options });
  await backend.load();
  const server = createServer(backend, { logger: silentLogger, ...serverOptions });
  const url = await listen(server);
  const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'unused', maxRetries: 0 });
  // Bodies with llama-server's fields, which the client's types do not list; the answer as JSON.
  const completion = (body: Record<string, unknown>) => client.completions.create({ model: STORIES, ...body } as never) as unknown as Promise<Answer>;
  const chat = (body: Record<string, unknown>) => client.chat.completions.create({ model: STORIES, ...body } as never) as unknown as Promise<Answer>;
  const stop = async () => {
    await server.shutdown();
    await backend.dispose();
  };
  return { backend, server, url, client, completion, chat, stop };
}
type Served = Awaited<ReturnType<typeof serve>>;

/** A streamed answer's text and its logprobs.content, concatenated across chunks as OpenAI's clients do. */
function collect(chunks: Answer[]): { text: string; logprobs: WireLogprob[]; finish: string | null } {
  let text = '';
  const logprobs: WireLogprob[] = [];
  let finish: string | null = null;
  for (const chunk of chunks) {
    const choice = chunk.choices[0];
    if (!choice) continue;
    text += choice.text ?? choice.delta?.content ?? '';
    logprobs.push(...(choice.logprobs?.content ?? []));
    finish = choice.finish_reason ?? finish;
  }
  return { text, logprobs, finish };
}

function expectLogprobsEqual(ours: WireLogprob[], reference: WireLogprob[], top: number): void {
  expect(ours.length).toBeGreaterThan(0);
  expect(ours.map((t) => t.id)).toEqual(reference.map((t) => t.id));
  ours.forEach((entry, i) => {
    const e = reference[i]!;
    expect(entry.token).toBe(e.token);
    expect(entry.bytes).toEqual(e.bytes);
    expect(Math.abs(entry.logprob - e.logprob)).toBeLessThan(1e-4);
    expect(entry.top_logprobs).toHaveLength(top);
    expect(entry.top_logprobs.map((t) => t.id)).toEqual(e.top_logprobs.map((t) => t.id));
    entry.top_logprobs.forEach((t, k) => {
      expect(t.token).toBe(e.top_logprobs[k]!.token);
      expect(t.bytes).toEqual(e.top_logprobs[k]!.bytes);
      expect(Math.abs(t.logprob - e.top_logprobs[k]!.logprob)).toBeLessThan(1e-4);
    });
  });
}

describe.runIf(haveModel(STORIES))('tea-llama serve: sampling fields and log-probabilities equal llama-server', () => {
  let ours: Served;
  let server: LlamaServer;
  let baseline: string;
  // llama-server with cache_prompt false decodes each prompt from scratch; a KV prefix reused here would round the
  // logits slightly differently (test/samplers.test.ts): each comparison starts after a prompt that shares nothing.
  const fresh = () => ours.completion({ prompt: 'Zoo', max_tokens: 1, temperature: 0 });
  const reference = (path: string, body: Record<string, unknown>) => server.post<Answer>(path, { ...body, cache_prompt: false });
  const streamedReference = async (path: string, body: Record<string, unknown>) => {
    const events: Answer[] = [];
    await server.stream<Answer>(path, { ...body, cache_prompt: false, stream: true }, (e) => events.push(e));
    return collect(events);
  };
  const streamed = async (path: 'completions' | 'chat', body: Record<string, unknown>) => {
    const stream = (await (path === 'chat' ? ours.chat : ours.completion)({ ...body, stream: true })) as unknown as AsyncIterable<Answer>;
    const chunks: Answer[] = [];
    for await (const chunk of stream) chunks.push(chunk);
    return collect(chunks);
  };

  beforeAll(async () => {
    // One sequence, as llama-server's -np 1 (the same KV cache shape rounds the logits the same); chatml on both.
    [ours, server] = await Promise.all([
      serve({ modelPath: modelPath(STORIES), contextSize: 512, threads: 2, sequences: 1, chatFormat: 'chatml' }),
      startLlamaServer(modelPath(STORIES), ['-c', '512', '-np', '1', '--chat-template', 'chatml']),
    ]);
    const expected = await reference('/v1/completions', { prompt: PROMPT, ...SEEDED });
    baseline = (await ours.completion({ prompt: PROMPT, ...SEEDED })).choices[0]!.text!;
    expect(baseline).toBe(expected.choices[0]!.text);
  });
  afterAll(async () => {
    await ours?.stop();
    await server?.stop();
  });

  const CASES: { name: string; fields: Record<string, unknown> }[] = [
    { name: 'top_k', fields: { top_k: 3 } },
    { name: 'typical_p', fields: { typical_p: 0.5 } },
    { name: 'mirostat 2', fields: { mirostat: 2, mirostat_tau: 2, mirostat_eta: 0.3 } },
    { name: 'DRY', fields: { dry_multiplier: 2, dry_base: 2, dry_allowed_length: 1, dry_penalty_last_n: 128, dry_sequence_breakers: ['.'] } },
    { name: 'XTC', fields: { xtc_probability: 0.9, xtc_threshold: 0.05 } },
    { name: 'samplers order', fields: { samplers: ['temperature', 'top_k'], top_k: 2 } },
    { name: 'logit_bias pairs with a ban (false)', fields: { logit_bias: [[' the', false], [' dog', 8]] } },
  ];

  for (const c of CASES) {
    it(`${c.name}: the seeded text equals llama-server's /v1/completions and differs from the default`, async () => {
      const expected = await reference('/v1/completions', { prompt: PROMPT, ...SEEDED, ...c.fields });
      await fresh();
      const got = await ours.completion({ prompt: PROMPT, ...SEEDED, ...c.fields });
      expect(got.choices[0]!.text).toBe(expected.choices[0]!.text);
      expect(got.choices[0]!.text, `${c.name} changes nothing at this seed`).not.toBe(baseline);
    });
  }

  it("logit_bias as OpenAI sends it ({ id: -100 }) bans a token the default text has, as llama-server's", async () => {
    // The third token of the default text, by its id.
    await fresh();
    const probed = await ours.completion({ prompt: PROMPT, ...SEEDED, logprobs: 1 });
    const id = probed.choices[0]!.logprobs!.content[2]!.id;
    const fields = { logit_bias: { [String(id)]: -100 } };
    const expected = await reference('/v1/completions', { prompt: PROMPT, ...SEEDED, ...fields });
    await fresh();
    const got = await ours.completion({ prompt: PROMPT, ...SEEDED, ...fields, logprobs: 1 });
    expect(got.choices[0]!.text).toBe(expected.choices[0]!.text);
    expect(got.choices[0]!.text).not.toBe(baseline);
    expect(got.choices[0]!.logprobs!.content.map((t) => t.id)).not.toContain(id);
  });

  it('a sampler field on /v1/chat/completions equals llama-server chat', async () => {
    const messages = [{ role: 'user', content: 'Tell me about a dog.' }];
    for (const fields of [{}, { top_k: 2, min_p: 0.1 }]) {
      const expected = await reference('/v1/chat/completions', { messages, ...SEEDED, ...fields });
      await fresh();
      const got = await ours.chat({ messages, ...SEEDED, ...fields });
      expect(got.choices[0]!.message!.content).toBe(expected.choices[0]!.message!.content);
    }
  });

  const LOGPROB_CASES = [
    { name: 'greedy', prompt: 'The little dog', sampling: { temperature: 0 } },
    { name: 'sampled', prompt: 'Lily and Ben went to the park. They', sampling: { temperature: 1, seed: 99, top_k: 10 } },
  ];

  for (const { name, prompt, sampling } of LOGPROB_CASES) {
    it(`completions logprobs: N (${name}), whole and streamed, equal llama-server's within 1e-4`, async () => {
      const body = { prompt, max_tokens: 24, ...sampling, logprobs: 3 };
      const expected = await reference('/v1/completions', body);
      await fresh();
      const whole = await ours.completion(body);
      expect(whole.choices[0]!.text).toBe(expected.choices[0]!.text);
      expectLogprobsEqual(whole.choices[0]!.logprobs!.content, expected.choices[0]!.logprobs!.content, 3);

      const expectedStream = await streamedReference('/v1/completions', body);
      await fresh();
      const stream = await streamed('completions', body);
      expect(stream.text).toBe(expectedStream.text);
      expect(stream.finish).toBe('length');
      expectLogprobsEqual(stream.logprobs, expectedStream.logprobs, 3);
    });

    it(`chat logprobs: true, top_logprobs (${name}), whole and streamed, equal llama-server's within 1e-4`, async () => {
      const body = { messages: [{ role: 'user', content: prompt }], max_tokens: 24, ...sampling, logprobs: true, top_logprobs: 4 };
      const expected = await reference('/v1/chat/completions', body);
      await fresh();
      const whole = await ours.chat(body);
      expect(whole.choices[0]!.message!.content).toBe(expected.choices[0]!.message!.content);
      expectLogprobsEqual(whole.choices[0]!.logprobs!.content, expected.choices[0]!.logprobs!.content, 4);

      const expectedStream = await streamedReference('/v1/chat/completions', body);
      await fresh();
      const stream = await streamed('chat', body);
      expect(stream.text).toBe(expectedStream.text);
      expectLogprobsEqual(stream.logprobs, expectedStream.logprobs, 4);
    });
  }

  it('without logprobs the answers carry logprobs: null; chat logprobs: true alone has no alternatives (OpenAI)', async () => {
    expect((await ours.completion({ prompt: PROMPT, max_tokens: 4, temperature: 0 })).choices[0]!.logprobs).toBeNull();
    expect((await ours.completion({ prompt: PROMPT, max_tokens: 4, temperature: 0, logprobs: 0 })).choices[0]!.logprobs).toBeNull();
    const chat = await ours.chat({ messages: [{ role: 'user', content: 'Hi' }], max_tokens: 4, temperature: 0, logprobs: true });
    expect(chat.choices[0]!.logprobs!.content).toHaveLength(4);
    for (const entry of chat.choices[0]!.logprobs!.content) expect(entry.top_logprobs).toEqual([]);
  });

  it("llama-server's own n_predict, n_probs and cache_prompt answer as llama-server's on both endpoints", async () => {
    const fields = { n_predict: 12, n_probs: 2, temperature: 0 };
    for (const [path, body] of [
      ['completions', { prompt: 'The little dog', ...fields }],
      ['chat', { messages: [{ role: 'user', content: 'The little dog' }], ...fields }],
    ] as const) {
      const expected = await reference(`/v1/${path === 'chat' ? 'chat/completions' : 'completions'}`, body);
      for (const cache_prompt of [true, false]) {
        await fresh();
        const got = await (path === 'chat' ? ours.chat : ours.completion)({ ...body, cache_prompt });
        const [mine, theirs] = [got.choices[0]!, expected.choices[0]!];
        expect(mine.text ?? mine.message!.content, path).toBe(theirs.text ?? theirs.message!.content);
        expect(mine.finish_reason).toBe('length');
        expectLogprobsEqual(mine.logprobs!.content, theirs.logprobs!.content, 2);
        expect(mine.logprobs!.content).toHaveLength(12);
      }
    }
  });

  it("tea-llama's own ApiLlmBackend sends these options to it and gets the local backend's answer", async () => {
    const api = new ApiLlmBackend({ baseUrl: ours.url, maxRetries: 0 });
    try {
      const options = {
        maxTokens: 24, temperature: 1, seed: 5, topK: 8, xtcProbability: 0.5, xtcThreshold: 0.1, dryMultiplier: 1.5,
        logitBias: [[' the', false]] as [string, false][], logprobs: true, topLogprobs: 2, sequence: 0,
      };
      for (const kind of ['prompt', 'chat'] as const) {
        await fresh();
        const local = kind === 'prompt' ? await ours.backend.call({ prompt: PROMPT, ...options }) : await ours.backend.chat([{ role: 'user', content: PROMPT }], options);
        await fresh();
        const remote = kind === 'prompt' ? await api.call({ prompt: PROMPT, ...options }) : await api.chat([{ role: 'user', content: PROMPT }], options);
        expect(remote.text, kind).toBe(local.text);
        expect(remote.logprobs!.map((t) => [t.id, t.topLogprobs.map((a) => a.id)])).toEqual(local.logprobs!.map((t) => [t.id, t.topLogprobs.map((a) => a.id)]));
        remote.logprobs!.forEach((t, i) => expect(Math.abs(t.logprob - local.logprobs![i]!.logprob)).toBeLessThan(1e-4));
      }
    } finally {
      await api.dispose();
    }
  });

  it("llama-server's grammar and json_schema fields constrain a completion as ApiLlmBackend sends them", async () => {
    const api = new ApiLlmBackend({ baseUrl: ours.url, maxRetries: 0 });
    try {
      const grammar = 'root ::= "Yes" | "No"';
      const schema = { type: 'object', properties: { name: { type: 'string', maxLength: 8 } }, required: ['name'] };
      for (const options of [{ grammar }, { jsonSchema: schema }]) {
        const local = await ours.backend.call({ prompt: PROMPT, maxTokens: 32, temperature: 0, ...options });
        const remote = await api.call({ prompt: PROMPT, maxTokens: 32, temperature: 0, ...options });
        expect(remote.text).toBe(local.text);
        if ('grammar' in options) expect(['Yes', 'No']).toContain(remote.text);
        else expect(Object.keys(JSON.parse(remote.text) as object)).toEqual(['name']);
      }
      const bad = await fetch(`${ours.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prompt: 'x', grammar: 'root ::= (' }) });
      expect(bad.status).toBe(400);
      expect(((await bad.json()) as { error: { param: string } }).error.param).toBe('grammar');
    } finally {
      await api.dispose();
    }
  });

  it('id_slot picks the sequence (-1: any), as llama-server', async () => {
    const expected = (await ours.completion({ prompt: PROMPT, max_tokens: 8, temperature: 0 })).choices[0]!.text;
    for (const id_slot of [0, -1]) expect((await ours.completion({ prompt: PROMPT, max_tokens: 8, temperature: 0, id_slot })).choices[0]!.text).toBe(expected);
  });

  it('a bad value is a 400 naming the field by its wire name, also for a stream; the server goes on', async () => {
    const cases: [Record<string, unknown>, string, RegExp?][] = [
      [{ top_k: -5 }, 'top_k', /top_k must be between 0 and/],
      [{ mirostat: 3 }, 'mirostat', /mirostat must be between 0 and 2/],
      [{ xtc_probability: 2 }, 'xtc_probability'],
      [{ dry_sequence_breakers: [] }, 'dry_sequence_breakers'],
      [{ samplers: ['top_kk'] }, 'samplers', /did you mean 'top_k'/],
      [{ logit_bias: { '12': 'x' } }, 'logit_bias'],
      [{ logit_bias: { '99999999': 1 } }, 'logit_bias', /vocabulary/],
      [{ ignore_eos: 1 }, 'ignore_eos'],
      [{ logprobs: 21 }, 'logprobs'],
      [{ logprobs: true }, 'logprobs'],
      [{ n_keep: -2 }, 'n_keep'],
      [{ id_slot: 1 }, 'id_slot', /id_slot 1 is out of range/],
      [{ lora: [{ id: 0, scale: 1 }] }, 'lora', /no LoRA adapter 0/],
      [{ lora: [{ id: 0 }] }, 'lora[0].scale'],
      [{ lora: [{ adapter: 0, scale: 1 }] }, 'lora[0].adapter'],
      [{ top_kk: 3 }, 'top_kk'],
      [{ n_probs: 21 }, 'n_probs'],
      [{ n_probs: 2, logprobs: 2 }, 'n_probs'],
      [{ n_predict: 4 }, 'n_predict', /only one of 'max_tokens', 'max_completion_tokens' and 'n_predict'/],
      [{ cache_prompt: 'yes' }, 'cache_prompt'],
    ];
    for (const [fields, param, message] of cases) {
      for (const stream of [false, true]) {
        const error = await ours.completion({ prompt: PROMPT, max_tokens: 4, ...fields, ...(stream ? { stream } : {}) }).catch((e: unknown) => e);
        expect(error, JSON.stringify(fields)).toBeInstanceOf(OpenAI.BadRequestError);
        const e = error as InstanceType<typeof OpenAI.BadRequestError>;
        expect(e.param, JSON.stringify(fields)).toBe(param);
        if (message) expect(e.message).toMatch(message);
        // The message names the HTTP field, never the library's camelCase option.
        expect(e.message).not.toMatch(/\b(topK|xtcProbability|drySequenceBreakers|logitBias|ignoreEos|nKeep|topLogprobs)\b/);
      }
    }
    const chatCases: [Record<string, unknown>, string][] = [
      [{ top_logprobs: 3 }, 'top_logprobs'],
      [{ logprobs: true, top_logprobs: 21 }, 'top_logprobs'],
      [{ logprobs: 2 }, 'logprobs'],
    ];
    for (const [fields, param] of chatCases) {
      const error = await ours.chat({ messages: [{ role: 'user', content: 'Hi' }], max_tokens: 4, ...fields }).catch((e: unknown) => e);
      expect(error, JSON.stringify(fields)).toBeInstanceOf(OpenAI.BadRequestError);
      expect((error as InstanceType<typeof OpenAI.BadRequestError>).param, JSON.stringify(fields)).toBe(param);
    }
    // and it still answers
    expect((await ours.completion({ prompt: PROMPT, max_tokens: 3, temperature: 0 })).choices[0]!.text!.length).toBeGreaterThan(0);
  });
});

/** Seeded random numbers (mulberry32), so a failing body can be found again by its seed and index. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe.runIf(haveModel(STORIES))('tea-llama serve: request bodies with random values', () => {
  it('every body of random field values answers 200 or 400 (never 500, a broken stream or a hang)', async () => {
    const ours = await serve({ modelPath: modelPath(STORIES), contextSize: 256, threads: 2, sequences: 2 });
    const FIELDS = [...Object.values(SAMPLING_FIELDS).map((f) => f.wire), 'max_completion_tokens', 'n_predict', 'n_probs', 'cache_prompt', 'n_keep', 'n_discard', 'id_slot', 'lora'];
    const VALUES: unknown[] = [
      -1e12, -100, -5, -1, 0, 0.05, 0.5, 1, 1.5, 2, 3, 20, 21, 255, 2 ** 31, 2 ** 32, 1e308, -1e308,
      '', 'x', ' the', 'top_k', '12', true, false, null, [], {}, [0], ['.'], [''], ['top_k', 'temperature'], [[1, 2]], [[' the', false]],
      [['x', 'y']], [[1.5, 1]], { '1': 'x' }, { '1': -100 }, { ' ': 5 }, { '-1': 1 }, { '': 1 }, [{ id: 0, scale: 1 }], [{ id: -1, scale: 0 }], [{}], [null], 'Infinity',
    ];
    const seed = Number(process.env.TEA_SERVE_FUZZ_SEED ?? 16);
    const cases = Number(process.env.TEA_SERVE_FUZZ_CASES ?? 200);
    const next = random(seed);
    const pick = <T>(list: readonly T[]): T => list[Math.floor(next() * list.length)]!;
    const statuses: Record<number, number> = {};
    const findings: string[] = [];
    try {
      for (let i = 0; i < cases; i++) {
        const chat = next() < 0.5;
        const body: Record<string, unknown> = chat ? { messages: [{ role: 'user', content: 'Hi' }] } : { prompt: 'Once upon a time' };
        body.max_tokens = 3;
        for (let n = 1 + Math.floor(next() * 3); n > 0; n--) body[pick(FIELDS)] = pick(VALUES);
        if (chat && next() < 0.3) body.logprobs = true;
        if (next() < 0.3) body.stream = true;
        const res = await fetch(`${ours.url}/v1/${chat ? 'chat/completions' : 'completions'}`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(body),
          signal: AbortSignal.timeout(60_000),
        });
        const text = await res.text();
        statuses[res.status] = (statuses[res.status] ?? 0) + 1;
        const where = `case ${i} (seed ${seed}) ${JSON.stringify(body)}: ${res.status} ${text.slice(0, 300)}`;
        if (res.status !== 200 && res.status !== 400) findings.push(where);
        else if (res.status === 400 && typeof JSON.parse(text).error?.param !== 'string') findings.push(`no param: ${where}`);
        else if (body.stream === true && res.status === 200 && (text.includes('data: {"error"') || !text.endsWith('data: [DONE]\n\n'))) findings.push(where);
      }
    } finally {
      await ours.stop();
    }
    expect(findings).toEqual([]);
    // Both happened: some bodies are refused, some run.
    expect(statuses[200]).toBeGreaterThan(0);
    expect(statuses[400]).toBeGreaterThan(0);
  }, 600_000);
});

describe.runIf(haveModel(STORIES))('tea-llama serve: per-request lora and context shift equal llama-server', () => {
  it('lora: [{ id, scale }] over a backend with adapters equals llama-server --lora with the same per-request lora', async () => {
    // @ts-expect-error plain ESM script without type declarations
    const { ensureSyntheticLora } = await import('../scripts/synthetic-lora.mjs');
    const make = (name: string, seed: number) => ensureSyntheticLora({ base: modelPath(STORIES), out: resolve(cacheDir, 'models', name), seed }) as Promise<string>;
    const paths = [await make('lora-stories260K-s1.gguf', 1), await make('lora-stories260K-s2.gguf', 2)];
    // Both adapters on both sides, at scale 1 by default (ids 0 and 1: their order).
    const [ours, server] = await Promise.all([
      serve({ modelPath: modelPath(STORIES), contextSize: 512, threads: 2, sequences: 1, lora: paths }),
      startLlamaServer(modelPath(STORIES), ['-c', '512', '-np', '1', '--lora', paths[0]!, '--lora', paths[1]!]),
    ]);
    try {
      const greedy = { prompt: 'The little dog', max_tokens: 48, temperature: 0 };
      const texts = new Set<string>();
      for (const lora of [undefined, [], [{ id: 0, scale: 1 }], [{ id: 1, scale: 0.5 }], [{ id: 0, scale: 0.4 }, { id: 1, scale: 0.6 }], [{ id: 0, scale: 0 }, { id: 1, scale: 0 }]]) {
        const body = { ...greedy, ...(lora ? { lora } : {}) };
        const expected = await server.post<Answer>('/v1/completions', { ...body, cache_prompt: false });
        const got = await ours.completion(body);
        expect(got.choices[0]!.text, JSON.stringify(lora)).toBe(expected.choices[0]!.text);
        texts.add(got.choices[0]!.text!);
      }
      // The adapters and their scales reached the model: five distinct answers (the default set and [] are one).
      expect(texts.size).toBe(5);
      const error = await ours.completion({ ...greedy, lora: [{ id: 2, scale: 1 }] }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(OpenAI.BadRequestError);
      expect((error as InstanceType<typeof OpenAI.BadRequestError>).param).toBe('lora');
    } finally {
      await ours.stop();
      await server.stop();
    }
  });

  it('contextShift with n_keep and n_discard equals llama-server --context-shift', async () => {
    const [ours, server] = await Promise.all([
      serve({ modelPath: modelPath(STORIES), contextSize: 256, threads: 2, sequences: 1 }, { contextShift: true }),
      startLlamaServer(modelPath(STORIES), ['-c', '256', '-np', '1', '--context-shift']),
    ]);
    try {
      const body = { prompt: 'Lily and Ben went to the park. They', max_tokens: 450, temperature: 0, n_keep: 4, n_discard: 60 };
      const expected = await server.post<Answer>('/v1/completions', { ...body, cache_prompt: false });
      const got = await ours.completion(body);
      expect(got.choices[0]!.text).toBe(expected.choices[0]!.text);
      // Past the end of a 256-token context: it shifted rather than stopping there.
      expect((got as unknown as { usage: { completion_tokens: number } }).usage.completion_tokens).toBe(450);
    } finally {
      await ours.stop();
      await server.stop();
    }
    const gateway = new ApiLlmBackend({ baseUrl: 'http://127.0.0.1:9', model: 'x' });
    expect(() => createServer(gateway, { contextShift: true })).toThrow(/contextShift: an API backend/);
    await gateway.dispose();
  });
});
