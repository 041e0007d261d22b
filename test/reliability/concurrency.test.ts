import { describe, expect, it } from 'vitest';

import { LlamaError, loadModel, type CompletionOptions, type CompletionResult, type LlamaModel } from '../../lib';
import { haveModel, modelPath, PHI3_VOCAB, STORIES, STORY_PROMPTS } from '../support/models';
import { syntheticModel } from '../support/synthetic';
import { figure, lastJson, rng, runScript, SEED, sleep } from './helpers';

// Concurrency and cancellation: concurrent streams give exactly what each request gives alone, aborts at random
// moments give their documented result and leave the model usable, dispose and GC at any time, worker_threads,
// process exit with work in flight. Randomized schedules use TEA_RELIABILITY_SEED (printed) to be replayed.

interface Request {
  prompt: string;
  options: CompletionOptions;
}

const PROMPTS = STORY_PROMPTS;

/** Greedy and seeded-sampling requests (both deterministic). */
const REQUESTS: Request[] = PROMPTS.map((prompt, i) => ({
  prompt,
  options: i % 4 === 3 ? { maxTokens: 24, temperature: 0.9, topK: 20, seed: 1000 + i } : { maxTokens: 24, temperature: 0 },
}));

/** The same request alone: a fresh model, nothing before or beside it. */
async function alone(path: string, request: Request, contextSize = 512): Promise<CompletionResult> {
  await using model = await loadModel(path, { contextSize, threads: 1 });
  return await model.complete(request.prompt, request.options);
}

/** Reads a stream to its end; returns the concatenated chunks and the result. */
async function drain(model: LlamaModel, request: Request): Promise<{ chunks: string; result: CompletionResult }> {
  const stream = model.stream(request.prompt, request.options);
  let chunks = '';
  for await (const chunk of stream) chunks += chunk;
  return { chunks, result: await stream.result };
}

function expectSame(got: { chunks: string; result: CompletionResult }, reference: CompletionResult, label: string): void {
  expect(got.chunks, label).toBe(got.result.text);
  expect(got.result.text, label).toBe(reference.text);
  expect(got.result.completionTokens, label).toBe(reference.completionTokens);
  expect(got.result.finishReason, label).toBe(reference.finishReason);
}

async function settled<T>(promise: Promise<T>): Promise<{ value?: T; code?: string }> {
  try {
    return { value: await promise };
  } catch (error) {
    expect(error).toBeInstanceOf(LlamaError);
    return { code: (error as LlamaError).code };
  }
}

describe.runIf(haveModel(STORIES) && haveModel(PHI3_VOCAB))('concurrency and cancellation', () => {
  const stories = modelPath(STORIES);

  it('8 concurrent streams on one model: each equals the same request alone', async () => {
    const references: CompletionResult[] = [];
    for (const request of REQUESTS) references.push(await alone(stories, request));
    await using model = await loadModel(stories, { contextSize: 512, threads: 1 });
    const outputs = await Promise.all(REQUESTS.map((request) => drain(model, request)));
    outputs.forEach((out, i) => expectSame(out, references[i]!, `request ${i} (${REQUESTS[i]!.prompt})`));
    // Different requests really gave different texts (a mix-up could not hide behind identical outputs).
    expect(new Set(outputs.map((o) => o.result.text)).size).toBe(REQUESTS.length);
    // And once more in the reverse order on the same model: the KV cache left by other requests changes nothing.
    const reversed = await Promise.all([...REQUESTS].reverse().map((request) => drain(model, request)));
    reversed.reverse().forEach((out, i) => expectSame(out, references[i]!, `again, request ${i}`));
  }, 300_000);

  it('8 concurrent streams across two models: each equals the same request alone', async () => {
    const tiny = await syntheticModel('tiny', 'Q8_0');
    const plan = REQUESTS.map((request, i) => ({ path: i % 2 === 0 ? stories : tiny, request }));
    const references: CompletionResult[] = [];
    for (const { path, request } of plan) references.push(await alone(path, request));
    await using a = await loadModel(stories, { contextSize: 512, threads: 1 });
    await using b = await loadModel(tiny, { contextSize: 512, threads: 1 });
    const outputs = await Promise.all(plan.map(({ path, request }) => drain(path === stories ? a : b, request)));
    outputs.forEach((out, i) => expectSame(out, references[i]!, `request ${i} on ${plan[i]!.path === stories ? 'stories' : 'tiny'}`));
  }, 300_000);

  it('abort at random moments during load: ERR_ABORTED, or a working model when the load won the race', async () => {
    const path = await syntheticModel('130m', 'Q8_0');
    const random = rng(SEED);
    let started = performance.now();
    (await loadModel(path, { useMmap: false, contextSize: 256 })).dispose();
    const loadMs = performance.now() - started;
    const outcomes: string[] = [];
    for (let i = 0; i < 6; i++) {
      const controller = new AbortController();
      const delay = random.next() * loadMs * 1.2;
      const timer = setTimeout(() => controller.abort(), delay);
      const r = await settled(loadModel(path, { useMmap: false, contextSize: 256, signal: controller.signal }));
      clearTimeout(timer);
      if (r.value) {
        expect(r.value.tokenize('hello').length).toBeGreaterThan(0);
        await r.value.dispose();
        outcomes.push('loaded');
      } else {
        expect(r.code).toBe('ERR_ABORTED');
        outcomes.push('aborted');
      }
    }
    // Aborting from the progress callback, at a random point: always before the load resolves.
    for (let i = 0; i < 4; i++) {
      const controller = new AbortController();
      const at = random.next();
      const r = await settled(loadModel(path, { useMmap: false, signal: controller.signal, onProgress: (p) => p >= at && controller.abort() }));
      expect(r.code).toBe('ERR_ABORTED');
      outcomes.push('aborted(progress)');
    }
    started = performance.now();
    await (await loadModel(path, { contextSize: 256 })).dispose();
    figure(`abort during load (seed ${SEED}, load ${Math.round(loadMs)} ms): ${outcomes.join(', ')}`);
    expect(outcomes).toContain('aborted');
  }, 300_000);

  it('abort at random moments during prompt processing and generation: finishReason abort, a prefix of the full text, and the model still gives the same answers', async () => {
    const path = await syntheticModel('tiny', 'Q8_0');
    const random = rng(SEED + 1);
    const long = { prompt: 'Once upon a time, there was a little robot who liked to count. '.repeat(80), options: { maxTokens: 48, temperature: 0 } };
    const short = { prompt: 'The quick brown fox', options: { maxTokens: 16, temperature: 0 } };
    const fullLong = await alone(path, long, 2048);
    const fullShort = await alone(path, short, 2048);
    expect(fullLong.promptTokens).toBeGreaterThan(1000);
    const promptMs = fullLong.timings.promptMs;
    const totalMs = promptMs + fullLong.timings.generationMs;

    // One sequence: the short prompt in between evicts the long one's cache, as in the reference runs. With more
    // sequences the long prompt's cells survive and only its last token is decoded again, alone; on this Q8_0 model
    // the CPU kernels give that token slightly different logits in a batch of one, and greedy text can diverge
    // (llama-server's cache_prompt behaves the same way; see test/engine.test.ts for the multi-sequence case).
    await using model = await loadModel(path, { contextSize: 2048, threads: 1, sequences: 1 });
    const seen: string[] = [];
    for (let i = 0; i < 10; i++) {
      const controller = new AbortController();
      let result: CompletionResult;
      if (i % 2 === 0) {
        // At a random time: most land in the prompt, some in the generation.
        const timer = setTimeout(() => controller.abort(), random.next() * totalMs);
        result = await model.complete(long.prompt, { ...long.options, signal: controller.signal });
        clearTimeout(timer);
      } else {
        // After a random number of generated chunks.
        const after = 1 + random.int(30);
        let chunks = 0;
        result = await model.complete(long.prompt, { ...long.options, signal: controller.signal, onChunk: () => ++chunks === after && controller.abort() });
        if (result.finishReason === 'abort') expect(result.completionTokens).toBeGreaterThanOrEqual(after);
      }
      expect(['abort', fullLong.finishReason]).toContain(result.finishReason);
      expect(fullLong.text.startsWith(result.text), `aborted text is a prefix of the full one (run ${i})`).toBe(true);
      seen.push(result.finishReason === 'abort' ? (result.completionTokens === 0 ? 'prompt' : `token ${result.completionTokens}`) : 'finished');
      // The KV cache after an abort is consistent: a different prompt, then the same one, give what they give alone.
      expect((await model.complete(short.prompt, short.options)).text).toBe(fullShort.text);
    }
    expect((await model.complete(long.prompt, long.options)).text).toBe(fullLong.text);
    figure(`abort during prompt/generation (seed ${SEED + 1}, prompt ${fullLong.promptTokens} tokens in ${Math.round(promptMs)} ms): ${seen.join(', ')}`);
    expect(seen).toContain('prompt');
  }, 300_000);

  it('abort at random moments during embedding: ERR_ABORTED or every vector, and the next embedding is unchanged', async () => {
    const path = await syntheticModel('tiny', 'Q8_0');
    const random = rng(SEED + 2);
    await using model = await loadModel(path, { contextSize: 512, threads: 1 });
    const texts = Array.from({ length: 200 }, (_, i) => `Sentence number ${i} is about ${['cats', 'dogs', 'birds', 'trees'][i % 4]} and the weather.`);
    const reference = await model.embed('a reference sentence');
    let started = performance.now();
    await model.embed(texts);
    const embedMs = performance.now() - started;
    const outcomes: string[] = [];
    for (let i = 0; i < 8; i++) {
      const controller = new AbortController();
      const timer = setTimeout(() => controller.abort(), random.next() * embedMs);
      started = performance.now();
      const r = await settled(model.embed(texts, { signal: controller.signal }));
      clearTimeout(timer);
      if (r.value) {
        expect(r.value).toHaveLength(texts.length);
        outcomes.push('complete');
      } else {
        expect(r.code).toBe('ERR_ABORTED');
        outcomes.push(`aborted after ${Math.round(performance.now() - started)} ms`);
      }
      expect(Array.from(await model.embed('a reference sentence'))).toEqual(Array.from(reference));
    }
    figure(`abort during embedding (seed ${SEED + 2}, ${texts.length} texts in ${Math.round(embedMs)} ms): ${outcomes.join(', ')}`);
    expect(outcomes.some((o) => o.startsWith('aborted'))).toBe(true);
  }, 300_000);

  it('dispose while generations, a stream and an embedding run: each ends as documented, nothing crashes', async () => {
    const path = await syntheticModel('tiny', 'Q8_0');
    const random = rng(SEED + 3);
    const tally = new Map<string, number>();
    const note = (what: string) => tally.set(what, (tally.get(what) ?? 0) + 1);
    for (let round = 0; round < 6; round++) {
      const model = await loadModel(path, { contextSize: 512, threads: 1 });
      const running = settled(model.complete('Once upon a time', { maxTokens: 300 }));
      const queued = settled(model.complete('Later', { maxTokens: 10 }));
      const stream = model.stream('A stream', { maxTokens: 300 });
      const streamed = (async () => {
        let chunks = 0;
        try {
          for await (const _chunk of stream) chunks++;
          return `stream ended (${(await stream.result).finishReason})`;
        } catch (error) {
          return `stream threw ${(error as LlamaError).code}`;
        }
      })();
      const embedding = settled(model.embed(Array.from({ length: 20 }, (_, i) => `text ${i}`)));
      await sleep(random.next() * 150);
      await model.dispose();
      const r = await running;
      // The running completion resolves with what it produced (abort), or had already finished.
      expect(r.code ?? r.value!.finishReason).toMatch(/^(abort|length|stop)$/);
      note(`running: ${r.code ?? r.value!.finishReason}`);
      const q = await queued;
      expect(q.code ?? q.value!.finishReason).toMatch(/^(ERR_DISPOSED|abort|length|stop)$/);
      note(`queued: ${q.code ?? q.value!.finishReason}`);
      const s = await streamed;
      expect(s).toMatch(/^stream (ended \((abort|length|stop)\)|threw ERR_DISPOSED)$/);
      note(s);
      const e = await embedding;
      if (e.code) expect(['ERR_ABORTED', 'ERR_DISPOSED']).toContain(e.code);
      else expect(e.value).toHaveLength(20);
      note(`embedding: ${e.code ?? 'complete'}`);
    }
    figure(`dispose while running (seed ${SEED + 3}): ${[...tally].map(([k, v]) => `${k} x${v}`).join('; ')}`);
  }, 300_000);

  it('every call after dispose is ERR_DISPOSED; dispose twice is the same promise', async () => {
    const model = await loadModel(stories, { contextSize: 256 });
    await model.complete('Once', { maxTokens: 2 });
    await model.embed('x');
    const first = model.dispose();
    const second = model.dispose();
    expect(second).toBe(first);
    await first;
    await model[Symbol.asyncDispose]();
    expect(model.disposed).toBe(true);
    const sync: Array<[string, () => unknown]> = [
      ['tokenize', () => model.tokenize('x')],
      ['detokenize', () => model.detokenize([1, 2])],
      ['applyChatTemplateSync', () => model.applyChatTemplateSync([{ role: 'user', content: 'hi' }], { template: 'chatml' })],
    ];
    for (const [name, call] of sync) expect(call, name).toThrow(expect.objectContaining({ code: 'ERR_DISPOSED' }));
    const asynchronous: Array<[string, () => Promise<unknown>]> = [
      ['complete', () => model.complete('x')],
      ['applyChatTemplate', () => model.applyChatTemplate([{ role: 'user', content: 'hi' }], { template: 'chatml' })],
      ['chat', () => model.chat([{ role: 'user', content: 'hi' }], { template: 'chatml' })],
      ['embed', () => model.embed('x')],
      ['embed[]', () => model.embed(['x', 'y'])],
      ['stream.result', () => model.stream('x').result],
      // streamChat renders the template inside its stream: the result rejects.
      ['streamChat', async () => model.streamChat([{ role: 'user', content: 'hi' }], { template: 'chatml' }).result],
    ];
    for (const [name, call] of asynchronous) await expect(call(), name).rejects.toMatchObject({ code: 'ERR_DISPOSED' });
    const stream = model.stream('x');
    await expect((async () => {
      for await (const _chunk of stream) void _chunk;
    })()).rejects.toMatchObject({ code: 'ERR_DISPOSED' });
    expect(model.info.architecture).toBe('llama'); // plain data stays readable
  });

  it('models garbage-collected without dispose (running, streaming, idle) are freed: threads and memory come back', async () => {
    const r = await runScript('gc-child.cjs', [stories], {
      nodeArgs: ['--expose-gc'],
      env: { MALLOC_MMAP_THRESHOLD_: '131072', MALLOC_ARENA_MAX: '2' }, // as in soak.test.ts
      timeoutMs: 120_000,
    });
    expect(r.signal, r.stderr).toBeNull();
    expect(r.code, r.stderr).toBe(0);
    const out = lastJson<{
      rounds: number;
      baseline: { threads: number; rssMb: number };
      warmRssMb: number;
      afterDrops: { threads: number; rssMb: number };
      runningThreads: number;
      finish: string;
      end: { threads: number; rssMb: number };
    }>(r.stdout);
    figure(
      `GC without dispose: ${out.rounds} models dropped; threads ${out.baseline.threads} -> ${out.afterDrops.threads} -> ${out.end.threads}; ` +
        `native memory ${out.baseline.rssMb.toFixed(1)} MB, after warm-up ${out.warmRssMb.toFixed(1)} MB, end ${out.end.rssMb.toFixed(1)} MB`,
    );
    // Every context's compute thread (and its OpenMP team) went with its model.
    expect(out.afterDrops.threads).toBe(out.baseline.threads);
    expect(out.end.threads).toBe(out.baseline.threads);
    // The model dropped mid-generation finished its generation, then was freed.
    expect(out.finish).toBe('length');
    expect(out.runningThreads).toBeGreaterThan(out.baseline.threads);
    // 30 rounds after warm-up; a model with its contexts that GC did not free is 4.7 MB of native memory, all of
    // them 140 MB: 16 MB is crossed by 4 of the 30. (Native memory: resident memory outside V8's heap.)
    expect(out.end.rssMb - out.warmRssMb).toBeLessThan(16);
  }, 300_000);

  it('worker_threads: several workers load and complete at once, workers are terminated mid-load, mid-generation and mid-embedding (promptly), one leaves its model loaded', async () => {
    const bigger = await syntheticModel('130m', 'Q8_0');
    const r = await runScript('workers-child.cjs', [stories, bigger], { timeoutMs: 120_000 });
    expect(r.signal, r.stderr).toBeNull();
    expect(r.code, r.stderr).toBe(0);
    const steps = r.stdout
      .trim()
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    const step = (name: string) => steps.find((s) => s.step === name)!;
    const parallel = step('parallel') as { reference: string; mainText: string; texts: string[]; codes: number[] };
    expect(parallel.reference.length).toBeGreaterThan(10);
    expect(parallel.mainText).toBe(parallel.reference);
    expect(parallel.texts).toEqual([parallel.reference, parallel.reference, parallel.reference, parallel.reference]);
    expect(parallel.codes).toEqual([0, 0, 0, 0]);
    const terminate = step('terminate') as { codes: Record<string, number>; ms: Record<string, number> };
    expect(terminate.codes).toEqual({ load: 1, stream: 1, complete: 1, embed: 1, prompt: 1 });
    // Hang detector: Node waits for a worker's running thread-pool work before tearing it down; without the
    // binding's EnvWatch, terminate() took as long as the operation (measured: 50 s for the completion, 155 s for
    // the embeddings, 7 s for the prompt).
    for (const [mode, ms] of Object.entries(terminate.ms)) expect(ms, `terminate() during ${mode}`).toBeLessThan(10_000);
    expect(step('leave')).toMatchObject({ code: 0, messages: [{ dims: 64 }] });
    expect(step('after')).toMatchObject({ same: true });
    figure(
      `worker_threads: 4 workers + the main thread gave the same text; terminate() during a load, a stream, a completion, ` +
        `an embedding and a long prompt returned in ${Object.entries(terminate.ms).map(([m, ms]) => `${m} ${ms} ms`).join(', ')}; ${Math.round(r.ms)} ms in all`,
    );
  }, 300_000);

  it('the process exits cleanly with models loaded and work in flight', async () => {
    const bigger = await syntheticModel('130m', 'Q8_0');
    const results: string[] = [];
    for (const mode of ['generation', 'load', 'prompt', 'natural', 'generation', 'prompt']) {
      const r = await runScript('exit-child.cjs', [mode, stories, bigger], { timeoutMs: 60_000 });
      results.push(`${mode}: ${r.signal ?? r.code} in ${Math.round(r.ms)} ms`);
      expect(r.timedOut, `${mode} hung`).toBe(false);
      // Hang detector: without the library's exit hook, process.exit() waited for the running prompt or
      // generation to finish (16.7 s for a 1,400-token prompt; minutes for the generation here).
      expect(r.ms, `${mode} exit took ${Math.round(r.ms)} ms`).toBeLessThan(15_000);
      expect(r.signal, `${mode}: ${r.stderr}`).toBeNull();
      expect(r.code, `${mode}: ${r.stderr}`).toBe(0);
      expect(r.stderr, mode).not.toMatch(/Abort|Segmentation|terminate called|FATAL|GGML_ASSERT/);
      if (mode === 'load') expect(r.stdout).not.toContain('the load finished');
    }
    const thrown = await runScript('exit-child.cjs', ['throw', stories, bigger], { timeoutMs: 60_000 });
    expect(thrown.signal, thrown.stderr).toBeNull();
    expect(thrown.code).toBe(1);
    expect(thrown.stderr).toContain('planned failure while generating');
    results.push(`uncaught exception: exit ${thrown.code}`);
    figure(`process exit with work in flight: ${results.join('; ')}`);
  }, 300_000);
});
