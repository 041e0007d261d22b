import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { createLlmBackend, loadModel, type LlamaModel } from '../lib';
import { cliEnv, ensureCliBuilt, runCli } from './support/cli';
import { startLlamaServer, type LlamaServer } from './support/llama-server';
import { haveModel, modelPath, STORIES, strict } from './support/models';
import { syntheticModel } from './support/synthetic';

// Speculative decoding (binding/core/speculation.h): greedy output identical to plain decoding and to llama-server
// with the same draft and settings, for a draft model and for n-gram (prompt lookup) drafting.

interface ServerCompletion {
  content: string;
  tokens_predicted: number;
  timings: { draft_n?: number; draft_n_accepted?: number };
}

const PROMPTS = ['Once upon a time', 'The little dog', 'Lily and Ben went to the park. They'];

function serverGreedy(server: LlamaServer, prompt: string, maxTokens: number): Promise<ServerCompletion> {
  return server.post<ServerCompletion>('/completion', { prompt, n_predict: maxTokens, temperature: 0, repeat_penalty: 1, cache_prompt: false });
}

describe.runIf(haveModel(STORIES))('speculative decoding on stories260K', () => {
  const path = modelPath(STORIES);
  let plain: LlamaModel;
  let drafted: LlamaModel;
  let ngram: LlamaModel;
  let draftServer: LlamaServer;
  let ngramServer: LlamaServer;

  beforeAll(async () => {
    // The model as its own draft is a valid equality test: it drafts what it will then accept.
    [plain, drafted, ngram, draftServer, ngramServer] = await Promise.all([
      loadModel(path, { contextSize: 512, threads: 2 }),
      loadModel(path, { contextSize: 512, threads: 2, draftModel: path, draftMax: 5 }),
      loadModel(path, { contextSize: 512, threads: 2, draftNgram: true, draftNgramSize: 3, draftMax: 8 }),
      startLlamaServer(path, ['-c', '512', '-np', '1', '--spec-type', 'draft-simple', '-md', path, '--spec-draft-n-max', '5']),
      startLlamaServer(path, ['-c', '512', '-np', '1', '--spec-type', 'ngram-simple', '--spec-ngram-simple-size-n', '3', '--spec-ngram-simple-size-m', '8']),
    ]);
  });
  afterAll(async () => {
    await Promise.all([plain?.dispose(), drafted?.dispose(), ngram?.dispose(), draftServer?.stop(), ngramServer?.stop()]);
  });

  it('with a draft model, greedy text equals plain decoding and llama-server with the same draft', async () => {
    for (const prompt of PROMPTS) {
      const [reference, ours, base] = await Promise.all([
        serverGreedy(draftServer, prompt, 120),
        drafted.complete(prompt, { maxTokens: 120, temperature: 0 }),
        plain.complete(prompt, { maxTokens: 120, temperature: 0 }),
      ]);
      expect(reference.content.length).toBeGreaterThan(50);
      expect(ours.text).toBe(base.text);
      expect(ours.text).toBe(reference.content);
      expect(ours.completionTokens).toBe(reference.tokens_predicted);
      // The acceptance llama-server reports for the same draft.
      expect(ours.draftTokens).toBeGreaterThan(20);
      expect(ours.draftTokens).toBe(reference.timings.draft_n);
      expect(ours.acceptedDraftTokens).toBe(reference.timings.draft_n_accepted);
      expect(base.draftTokens).toBeUndefined();
    }
  });

  it('with n-gram drafting, greedy text equals plain decoding and llama-server ngram-simple', async () => {
    let drafts = 0;
    for (const prompt of PROMPTS) {
      const [reference, ours, base] = await Promise.all([
        serverGreedy(ngramServer, prompt, 300),
        ngram.complete(prompt, { maxTokens: 300, temperature: 0 }),
        plain.complete(prompt, { maxTokens: 300, temperature: 0 }),
      ]);
      expect(ours.text).toBe(base.text);
      expect(ours.text).toBe(reference.content);
      expect(ours.draftTokens).toBe(reference.timings.draft_n ?? 0);
      expect(ours.acceptedDraftTokens).toBe(reference.timings.draft_n_accepted ?? 0);
      expect(ours.acceptedDraftTokens!).toBeLessThanOrEqual(ours.draftTokens!);
      drafts += ours.draftTokens!;
    }
    // stories260K repeats itself over 300 tokens: what it wrote is looked up and drafted.
    expect(drafts).toBeGreaterThan(0);
  });

  it('concurrent requests each equal their plain text (continuous batching with drafts)', async () => {
    const prompts = [...PROMPTS, 'One day, a big', 'Tom and Sue went'];
    const [ours, base] = await Promise.all([
      Promise.all(prompts.map((p) => drafted.complete(p, { maxTokens: 60, temperature: 0 }))),
      Promise.all(prompts.map((p) => plain.complete(p, { maxTokens: 60, temperature: 0 }))),
    ]);
    expect(ours.map((r) => r.text)).toEqual(base.map((r) => r.text));
  });

  it('maxTokens, stop strings and a grammar end exactly where plain decoding does', async () => {
    const full = await plain.complete(PROMPTS[0], { maxTokens: 80, temperature: 0 });
    for (const maxTokens of [1, 2, 3, 7, 11]) {
      const [a, b] = await Promise.all([drafted.complete(PROMPTS[0], { maxTokens, temperature: 0 }), plain.complete(PROMPTS[0], { maxTokens, temperature: 0 })]);
      expect(a.text).toBe(b.text);
      expect(a.completionTokens).toBe(maxTokens);
      expect(a.finishReason).toBe('length');
    }
    const stop = full.text.slice(Math.floor(full.text.length / 2)).trim().split(' ')[0]!;
    const [a, b] = await Promise.all([
      drafted.complete(PROMPTS[0], { maxTokens: 80, temperature: 0, stop: [stop] }),
      plain.complete(PROMPTS[0], { maxTokens: 80, temperature: 0, stop: [stop] }),
    ]);
    expect(a.text).toBe(b.text);
    expect(a.completionTokens).toBe(b.completionTokens);
    expect(a.text.length).toBeLessThan(full.text.length);
    // A grammar the drafts know nothing about: the model's sampler rejects what it forbids.
    const grammar = 'root ::= [a-z ]+ "."';
    const [g1, g2] = await Promise.all([
      drafted.complete(PROMPTS[1], { maxTokens: 40, temperature: 0, grammar }),
      plain.complete(PROMPTS[1], { maxTokens: 40, temperature: 0, grammar }),
    ]);
    expect(g1.text).toBe(g2.text);
    expect(g1.text).toMatch(/^[a-z ]+\.?$/);
  });

  it('streams and aborts with several tokens per step', async () => {
    const chunks: string[] = [];
    const whole = await drafted.complete(PROMPTS[2], { maxTokens: 100, temperature: 0 });
    const streamed = await drafted.complete(PROMPTS[2], { maxTokens: 100, temperature: 0, onChunk: (c) => chunks.push(c) });
    expect(chunks.join('')).toBe(streamed.text);
    expect(streamed.text).toBe(whole.text);
    const controller = new AbortController();
    let seen = '';
    const aborted = await drafted.complete(PROMPTS[2], {
      maxTokens: -1,
      temperature: 0,
      signal: controller.signal,
      onChunk: (c) => {
        seen += c;
        if (seen.length > 40) controller.abort();
      },
    });
    expect(aborted.finishReason).toBe('abort');
    expect(aborted.text.startsWith(seen)).toBe(true);
    expect(whole.text.startsWith(aborted.text.slice(0, Math.min(aborted.text.length, whole.text.length)))).toBe(true);
  });

  it('rejects options that would do nothing, and bad values', async () => {
    await expect(loadModel(path, { draftMin: 2 })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT', message: expect.stringContaining('draftModel') });
    await expect(loadModel(path, { draftMax: 4 })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    await expect(loadModel(path, { draftNgramSize: 4 })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    await expect(loadModel(path, { draftNgram: true, draftMax: 0 })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    await expect(loadModel(path, { draftModel: path, draftMax: 2, draftMin: 3 })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    await expect(loadModel(path, { draftModel: 42 as unknown as string })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    await expect(loadModel(path, { draftModel: '/nonexistent/draft.gguf' })).rejects.toMatchObject({ code: 'ERR_MODEL_NOT_FOUND' });
    await expect(loadModel(path, { draftModle: path } as never)).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT', message: expect.stringContaining('draftModel') });
  });
});

describe.runIf(haveModel(STORIES))('speculative decoding through LlmBackend, settings and the CLI', () => {
  const path = modelPath(STORIES);
  const prompt = 'Once upon a time';

  it('createLlmBackend passes the draft settings to the local model and reports acceptance', async () => {
    await using plain = await loadModel(path, { contextSize: 512, threads: 2 });
    const expected = await plain.complete(prompt, { maxTokens: 48, temperature: 0 });
    const backend = await createLlmBackend({ modelPath: path, contextSize: 512, threads: 2, draftModel: path, draftMax: 4 });
    try {
      const r = await backend.call({ prompt, maxTokens: 48, temperature: 0 });
      expect(r.text).toBe(expected.text);
      expect(r.draftTokens).toBeGreaterThan(0);
      expect(r.acceptedDraftTokens).toBeGreaterThan(0);
    } finally {
      await backend.dispose();
    }
    const yaml = await createLlmBackend({ settings: { llm: { model_path: path, n_ctx: 512, n_threads: 2, draft_ngram: true } } });
    try {
      expect((await yaml.call({ prompt, maxTokens: 48, temperature: 0 })).text).toBe(expected.text);
    } finally {
      await yaml.dispose();
    }
  });

  it('the API backend says it cannot take draft settings', async () => {
    await expect(createLlmBackend({ backend: 'api', api: { baseUrl: 'http://127.0.0.1:9' }, draftModel: path })).rejects.toMatchObject({
      code: 'ERR_SETTINGS_INVALID',
      message: expect.stringContaining('draftModel'),
    });
  });

  it('tea-llama complete --draft-model / --draft-ngram prints the plain greedy text', async () => {
    ensureCliBuilt();
    const args = ['complete', '--model', path, '-c', '512', '--temperature', '0', '--max-tokens', '40'];
    const [base, drafted, ngram, missing] = await Promise.all([
      runCli([...args, prompt], { env: cliEnv() }),
      runCli([...args, '--draft-model', path, '--draft-max', '4', '--draft-min', '1', prompt], { env: cliEnv() }),
      runCli([...args, '--draft-ngram', prompt], { env: cliEnv() }),
      runCli([...args, '--draft-model', '/nonexistent.gguf', prompt], { env: cliEnv() }),
    ]);
    expect(base.code).toBe(0);
    expect(base.stdout.length).toBeGreaterThan(20);
    expect(drafted.stderr).toBe('');
    expect(drafted.stdout).toBe(base.stdout);
    expect(ngram.stdout).toBe(base.stdout);
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toContain('ERR_MODEL_NOT_FOUND');
  });
});

describe.runIf(haveModel(STORIES) && (strict || haveModel('ggml-vocab-phi-3.gguf')))('speculative decoding with a smaller synthetic draft', () => {
  let target: string;
  let draft: string;

  beforeAll(async () => {
    [target, draft] = await Promise.all([syntheticModel('130m', 'Q8_0'), syntheticModel('tiny', 'Q8_0')]);
  }, 600_000);

  it('greedy text equals plain decoding and llama-server with the same draft', async () => {
    const prompt = 'The quick brown fox';
    await using plain = await loadModel(target, { contextSize: 256, threads: 2 });
    await using spec = await loadModel(target, { contextSize: 256, threads: 2, draftModel: draft, draftMax: 4 });
    const server = await startLlamaServer(target, ['-c', '256', '-np', '1', '--spec-type', 'draft-simple', '-md', draft, '--spec-draft-n-max', '4']);
    try {
      const [reference, ours, base] = await Promise.all([
        serverGreedy(server, prompt, 32),
        spec.complete(prompt, { maxTokens: 32, temperature: 0 }),
        plain.complete(prompt, { maxTokens: 32, temperature: 0 }),
      ]);
      expect(ours.text).toBe(base.text);
      expect(ours.text).toBe(reference.content);
      expect(ours.draftTokens).toBe(reference.timings.draft_n);
      expect(ours.acceptedDraftTokens).toBe(reference.timings.draft_n_accepted);
    } finally {
      await server.stop();
    }
  }, 300_000);

  it('a draft model of another vocabulary is ERR_DRAFT_INCOMPATIBLE at load', async () => {
    await expect(loadModel(target, { contextSize: 256, threads: 2, draftModel: modelPath(STORIES) })).rejects.toMatchObject({
      code: 'ERR_DRAFT_INCOMPATIBLE',
    });
  }, 120_000);
});
