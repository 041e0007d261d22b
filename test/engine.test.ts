import { execFileSync } from 'node:child_process';

import { describe, expect, it } from 'vitest';

import { LlamaError, loadModel, type GenerationResult } from '../lib';
import { startLlamaServer } from './support/llama-server';
import { haveModel, modelPath, repoRoot, STORIES, STORY_PROMPTS } from './support/models';

// The engine (binding/core/scheduler.cpp, lib/engine): parallel sequences and continuous batching on one model.

const PROMPTS = STORY_PROMPTS;
const GREEDY = { maxTokens: 32, temperature: 0 };

describe.runIf(haveModel(STORIES))('engine: parallel sequences on stories260K', () => {
  const stories = modelPath(STORIES);

  async function alone(prompt: string, options: object): Promise<GenerationResult> {
    await using model = await loadModel(stories, { contextSize: 512, threads: 1, sequences: 1 });
    return await model.complete(prompt, options);
  }

  it('8 concurrent greedy requests each equal the request alone and llama-server -np 8 given the same 8 at once', async () => {
    const references: string[] = [];
    for (const prompt of PROMPTS) references.push((await alone(prompt, GREEDY)).text);
    await using model = await loadModel(stories, { contextSize: 2048, threads: 1, sequences: 8 });
    expect(model.sequences).toBe(8);
    const results = await Promise.all(PROMPTS.map((p) => model.complete(p, GREEDY)));
    results.forEach((r, i) => expect(r.text, PROMPTS[i]).toBe(references[i]));
    // They really ran in different sequences at once.
    expect(new Set(results.map((r) => r.text)).size).toBe(PROMPTS.length);

    const server = await startLlamaServer(stories, ['-c', '2048', '-np', '8', '--kv-unified', '-t', '1']);
    try {
      const answers = await Promise.all(
        PROMPTS.map((prompt) =>
          server.post<{ content: string }>('/completion', { prompt, n_predict: GREEDY.maxTokens, temperature: 0, cache_prompt: false }),
        ),
      );
      answers.forEach((a, i) => expect(results[i]!.text, `llama-server, ${PROMPTS[i]}`).toBe(a.content));
    } finally {
      await server.stop();
    }
  }, 300_000);

  it('requests overlap: with 8 equal requests, none finishes before all 8 have produced text', async () => {
    await using model = await loadModel(stories, { contextSize: 2048, threads: 1, sequences: 8 });
    const log: string[] = [];
    await Promise.all(
      PROMPTS.map((p, i) => {
        let first = true;
        return model
          .complete(p, {
            maxTokens: 24,
            temperature: 0,
            onChunk: () => {
              if (first) log.push(`first ${i}`);
              first = false;
            },
          })
          .then(() => log.push(`done ${i}`));
      }),
    );
    const lastFirst = Math.max(...log.map((e, k) => (e.startsWith('first') ? k : -1)));
    const firstDone = log.findIndex((e) => e.startsWith('done'));
    expect(log.filter((e) => e.startsWith('first'))).toHaveLength(8);
    expect(firstDone, log.join(', ')).toBeGreaterThan(lastFirst);
  }, 120_000);

  it('with one sequence the same 8 requests run one after another (the order the queue gives)', async () => {
    await using model = await loadModel(stories, { contextSize: 512, threads: 1, sequences: 1 });
    const log: string[] = [];
    await Promise.all(PROMPTS.map((p, i) => model.complete(p, { ...GREEDY, onChunk: () => log.push(`chunk ${i}`) }).then(() => log.push(`done ${i}`))));
    // FIFO: every chunk of request i comes before any chunk of request i + 1.
    const owners = log.filter((e) => e.startsWith('chunk')).map((e) => Number(e.split(' ')[1]));
    expect(owners).toEqual([...owners].sort((a, b) => a - b));
  }, 120_000);

  it('a seeded sampled request gives the same text alone and among 7 others', async () => {
    const sampled = { maxTokens: 32, temperature: 0.9, topK: 20, seed: 4242 };
    const reference = (await alone(PROMPTS[0]!, sampled)).text;
    await using model = await loadModel(stories, { contextSize: 2048, threads: 1, sequences: 8 });
    const others = PROMPTS.slice(1).map((p, i) => model.complete(p, { maxTokens: 32, temperature: 0.8, seed: i }));
    const mine = model.complete(PROMPTS[0]!, sampled);
    expect((await mine).text).toBe(reference);
    await Promise.all(others);
    expect(reference).not.toBe((await alone(PROMPTS[0]!, GREEDY)).text);
  }, 120_000);

  it('abort one of 8 mid-stream: a queued request takes its sequence, the other 7 texts are unchanged', async () => {
    const references: string[] = [];
    for (const prompt of PROMPTS) references.push((await alone(prompt, GREEDY)).text);
    const queuedReference = (await alone('The big tree', GREEDY)).text;
    await using model = await loadModel(stories, { contextSize: 2048, threads: 1, sequences: 8 });
    const controller = new AbortController();
    let chunks = 0;
    const runs = PROMPTS.map((p, i) =>
      model.complete(p, i === 3 ? { ...GREEDY, maxTokens: -1, signal: controller.signal, onChunk: () => ++chunks === 3 && controller.abort() } : GREEDY),
    );
    const queued = model.complete('The big tree', GREEDY);
    const results = await Promise.all(runs);
    expect(results[3]!.finishReason).toBe('abort');
    expect(references[3]!.startsWith(results[3]!.text) || results[3]!.text.startsWith(references[3]!)).toBe(true);
    results.forEach((r, i) => i !== 3 && expect(r.text, PROMPTS[i]).toBe(references[i]));
    expect((await queued).text).toBe(queuedReference);
  }, 300_000);

  it('past maxQueued waiting requests, one more is ERR_QUEUE_FULL; aborting a waiting one is ERR_ABORTED', async () => {
    await using model = await loadModel(stories, { contextSize: 512, threads: 1, sequences: 1, maxQueued: 1 });
    const running = model.complete(PROMPTS[0]!, { maxTokens: 200, temperature: 0 });
    const controller = new AbortController();
    const waiting = model.complete(PROMPTS[1]!, { ...GREEDY, signal: controller.signal });
    await new Promise((r) => setTimeout(r, 0)); // both submitted
    const error = await model.complete(PROMPTS[2]!, GREEDY).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LlamaError);
    expect((error as LlamaError).code).toBe('ERR_QUEUE_FULL');
    controller.abort();
    await expect(waiting).rejects.toMatchObject({ code: 'ERR_ABORTED' });
    expect((await running).completionTokens).toBeGreaterThan(0);
    // The queue has room again.
    expect((await model.complete(PROMPTS[2]!, GREEDY)).text).toBe((await alone(PROMPTS[2]!, GREEDY)).text);
  }, 120_000);

  it('reports sequences and the KV cache size, and rejects a bad sequences value', async () => {
    await using model = await loadModel(stories, { contextSize: 1024, sequences: 3 });
    expect(model.sequences).toBe(3);
    expect(model.maxQueued).toBe(1024);
    // stories260K: 5 layers, 4 KV heads of 8 dims, f16 K and V: 5 * 2 * 32 * 2 bytes per token.
    expect(model.kvCacheBytes).toBe(5 * 2 * 32 * 2 * 1024);
    await expect(loadModel(stories, { sequences: 0 })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    await expect(loadModel(stories, { sequence: 2 } as never)).rejects.toThrow(/did you mean 'sequences'/);
  });

  it('every Model method rejects a misspelt option with ERR_INVALID_ARGUMENT and the nearest key, before any work', async () => {
    await using model = await loadModel(stories, { contextSize: 256, threads: 1, sequences: 1 });
    const cases: [string, () => unknown, string][] = [
      ['complete', () => model.complete('x', { maxToken: 3 } as never), "unknown option 'maxToken' in complete() options (did you mean 'maxTokens'?)"],
      ['complete', () => model.complete('x', { temprature: 0 } as never), "(did you mean 'temperature'?)"],
      ['chat', () => model.chat([{ role: 'user', content: 'x' }], { template: 'chatml', topk: 3 } as never), "(did you mean 'topK'?)"],
      ['embed', () => model.embed('x', { normalise: true } as never), "unknown option 'normalise' in embed() options (did you mean 'normalize'?)"],
      ['tokenize', () => model.tokenize('x', { specail: true } as never), "unknown option 'specail' in tokenize() options (did you mean 'special'?)"],
      ['detokenize', () => model.detokenize([1], { speical: true } as never), "(did you mean 'special'?)"],
    ];
    for (const [method, call, message] of cases) {
      const error = await (async () => call())().then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error, method).toBeInstanceOf(LlamaError);
      expect(error, method).toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
      expect((error as Error).message, method).toContain(message);
    }
    // Nothing was queued or generated by the rejected calls: the next request is the first.
    expect((await model.complete('Once upon a time', GREEDY)).reusedPromptTokens).toBe(0);
  });

  it("generations park no libuv pool thread: with UV_THREADPOOL_SIZE=4 and 6 models generating, fs and crypto finish first", () => {
    const script = `
      const { loadModel } = require(${JSON.stringify(repoRoot)});
      const fs = require('fs'), crypto = require('crypto');
      (async () => {
        const models = [];
        for (let i = 0; i < 6; i++) models.push(await loadModel(${JSON.stringify(stories)}, { contextSize: 1024, threads: 1 }));
        const log = [];
        const gens = models.map((m, i) => m.complete('Once upon a time', { maxTokens: 600, temperature: 0 }).then(() => log.push('generation ' + i)));
        await new Promise((r) => setTimeout(r, 100));  // every generation is running
        await Promise.all([
          fs.promises.readFile(${JSON.stringify(__filename)}).then(() => log.push('readFile')),
          new Promise((r) => crypto.pbkdf2('secret', 'salt', 1000, 32, 'sha256', () => r(log.push('pbkdf2')))),
        ]);
        await Promise.all(gens);
        console.log(JSON.stringify(log));
      })();`;
    const out = execFileSync(process.execPath, ['-e', script], { encoding: 'utf8', env: { ...process.env, UV_THREADPOOL_SIZE: '4' } });
    const log = JSON.parse(out.trim()) as string[];
    expect(log).toHaveLength(8);
    expect(log.slice(0, 2).sort()).toEqual(['pbkdf2', 'readFile']);
  }, 120_000);
});
