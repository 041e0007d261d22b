import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';

import { loadModel, systemInfo } from '../lib';
import { haveModel, modelPath, PHI3_VOCAB, repoRoot, STORIES } from './support/models';
import { syntheticModel } from './support/synthetic';

/** Counts ticks of a 1 ms interval and the longest gap between them while `work` runs. */
async function eventLoopDuring<T>(work: () => Promise<T>): Promise<{ value: T; ticks: number; maxGapMs: number; elapsedMs: number }> {
  let ticks = 0;
  let last = performance.now();
  let maxGapMs = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    maxGapMs = Math.max(maxGapMs, now - last);
    last = now;
    ticks++;
  }, 1);
  const started = performance.now();
  try {
    const value = await work();
    return { value, ticks, maxGapMs, elapsedMs: performance.now() - started };
  } finally {
    clearInterval(timer);
  }
}

describe.runIf(haveModel(STORIES) && haveModel(PHI3_VOCAB))('runtime behaviour', () => {
  it('builds without AMX or AVX-512 and runs a Q4_K_M model here (the AMX SIGILL case)', async () => {
    const info = systemInfo();
    expect(info).not.toMatch(/AMX_INT8 = 1|AVX512 = 1/);
    const path = await syntheticModel('130m', 'Q4_K_M');
    await using model = await loadModel(path, { contextSize: 256, threads: 2 });
    expect(model.info.metadata['general.file_type']).toBe('15'); // LLAMA_FTYPE_MOSTLY_Q4_K_M
    const r = await model.complete('The quick brown fox', { maxTokens: 16, temperature: 0 });
    expect(r.completionTokens).toBeGreaterThan(0);
  });

  it('keeps the event loop ticking during load and generation', async () => {
    const path = await syntheticModel('130m', 'Q8_0');
    const load = await eventLoopDuring(() => loadModel(path, { contextSize: 512, threads: 2, useMmap: false }));
    await using model = load.value;
    const gen = await eventLoopDuring(() => model.complete('Once upon a time', { maxTokens: 48, temperature: 0 }));
    for (const phase of [load, gen]) {
      // A blocked loop would show one gap as long as the whole phase.
      expect(phase.maxGapMs).toBeLessThan(Math.max(50, phase.elapsedMs / 4));
      expect(phase.ticks).toBeGreaterThan(phase.elapsedMs / 20);
    }
    expect(gen.elapsedMs).toBeGreaterThan(50);
  });

  it('abort stops a generation within a few tokens and returns what was produced', async () => {
    const path = await syntheticModel('130m', 'Q4_K_M');
    await using model = await loadModel(path, { contextSize: 1024, threads: 2 });
    const controller = new AbortController();
    let seen = 0;
    let seenAtAbort = 0;
    const chunks: string[] = [];
    const result = await model.complete('Once upon a time', {
      maxTokens: 500,
      temperature: 0,
      signal: controller.signal,
      onChunk: (c) => {
        chunks.push(c);
        seen++;
        if (seen === 5) {
          seenAtAbort = seen;
          controller.abort();
        }
      },
    });
    expect(result.finishReason).toBe('abort');
    expect(result.completionTokens).toBeGreaterThanOrEqual(seenAtAbort);
    expect(result.completionTokens - seenAtAbort).toBeLessThanOrEqual(4);
    expect(result.text).toBe(chunks.join(''));
    // The model serves the next request normally.
    expect((await model.complete('Hello', { maxTokens: 3, temperature: 0 })).completionTokens).toBe(3);
  });

  it('abort rejects a queued call and an aborted load', async () => {
    await using model = await loadModel(modelPath(STORIES), { threads: 2 });
    const controller = new AbortController();
    const first = model.complete('Once upon a time', { maxTokens: 200 });
    const queued = model.complete('Once upon a time', { maxTokens: 200, signal: controller.signal });
    controller.abort();
    await expect(queued).rejects.toMatchObject({ code: 'ERR_ABORTED' });
    await first;
    const path = await syntheticModel('130m', 'Q8_0');
    const loading = new AbortController();
    const load = loadModel(path, { useMmap: false, signal: loading.signal, onProgress: () => loading.abort() });
    await expect(load).rejects.toMatchObject({ code: 'ERR_ABORTED' });
  });

  it('leaving a stream early aborts the generation', async () => {
    await using model = await loadModel(modelPath(STORIES), { threads: 2 });
    const stream = model.stream('Once upon a time', { maxTokens: 400, temperature: 0 });
    let n = 0;
    for await (const _chunk of stream) if (++n === 3) break;
    const result = await stream.result;
    expect(['abort', 'stop']).toContain(result.finishReason);
    expect(result.completionTokens).toBeLessThan(400);
  });

  it('dispose during a generation aborts it and frees the model', async () => {
    const path = await syntheticModel('130m', 'Q4_K_M');
    // One sequence, so the second request waits for the first.
    const model = await loadModel(path, { contextSize: 512, threads: 2, sequences: 1 });
    let chunks = 0;
    const running = model.complete('Once upon a time', { maxTokens: 400, onChunk: () => chunks++ });
    // Observed from the start: dispose() rejects it before this test awaits it.
    const queued = model.complete('Later', { maxTokens: 10 }).then(
      () => 'resolved',
      (error: { code?: string }) => error.code,
    );
    while (chunks < 2) await new Promise((r) => setTimeout(r, 5));
    await model.dispose();
    const r = await running;
    expect(r.finishReason).toBe('abort');
    expect(await queued).toBe('ERR_DISPOSED');
  });

  it('reports load progress up to 1', async () => {
    const seen: number[] = [];
    await using model = await loadModel(modelPath(STORIES), { onProgress: (p) => seen.push(p) });
    expect(model.info.architecture).toBe('llama');
    expect(seen.length).toBeGreaterThan(0);
    expect(seen.at(-1)).toBe(1);
  });

  it('frees models that are garbage-collected without dispose (finalizers), then exits cleanly', () => {
    // A child process, so a crash in a finalizer fails this test instead of killing the runner.
    const script = `
      const { loadModel } = require(${JSON.stringify(repoRoot)});
      (async () => {
        const rss = () => process.memoryUsage().rss / 1048576;
        for (let i = 0; i < 40; i++) {
          const m = await loadModel(${JSON.stringify(modelPath(STORIES))}, { contextSize: 1024, useMmap: false });
          await m.complete('Once', { maxTokens: 2 });
          if (i === 9) { global.gc(); globalThis.warm = rss(); }
        }
        await new Promise((r) => setTimeout(r, 50));
        global.gc();
        await new Promise((r) => setTimeout(r, 50));
        console.log(JSON.stringify({ warm: globalThis.warm, end: rss() }));
        // A model still loaded at exit must not crash the process on the way out.
        globalThis.kept = await loadModel(${JSON.stringify(modelPath(STORIES))});
      })();`;
    const out = execFileSync(process.execPath, ['--expose-gc', '-e', script], { encoding: 'utf8' });
    const { warm, end } = JSON.parse(out.trim()) as { warm: number; end: number };
    // 30 more unreleased loads of a model with a 1024-token context would add far more than this.
    expect(end - warm).toBeLessThan(60);
  });
});
