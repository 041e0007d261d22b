import { describe, expect, it } from 'vitest';

import { loadModel } from '../../lib';
import { haveModel, modelPath, PHI3_VOCAB, STORIES } from '../support/models';
import { syntheticModel } from '../support/synthetic';
import { figure, lastJson, runScript } from './helpers';

// Soak and leaks: 1,000 sequential completions and 50 load/dispose cycles in a child process, with resident
// memory, the V8 heap, threads (/proc/self/task) and open file descriptors (/proc/self/fd) sampled along the way.
// Sizes: TEA_SOAK_COMPLETIONS, TEA_SOAK_CYCLES (a nightly job can raise them; the bounds below are totals).

const COMPLETIONS = Number(process.env.TEA_SOAK_COMPLETIONS ?? 1000);
const CYCLES = Number(process.env.TEA_SOAK_CYCLES ?? 50);
/** A hang detector that grows with the sizes (the default run takes well under a minute). */
const LIMIT_MS = Math.max(600_000, COMPLETIONS * 200 + CYCLES * 4000);

interface Stats {
  rssMb: number;
  nativeMb: number;
  heapMb: number;
  threads: number;
  fds: number;
}
interface Phase {
  warm: Stats;
  samples: Stats[];
  end: Stats;
  ms: number;
}
interface SoakOutput {
  completionsRun: number;
  cyclesRun: number;
  baseline: Stats;
  completions: Phase;
  cycles: Phase;
  totalMs: number;
}

// The bounds. Growth is measured after a warm-up (the first requests create the contexts, caches and allocator
// arenas) on native memory, i.e. resident memory outside V8's heap (RSS - heapTotal), plus V8's live heap after a
// full GC. Three things move RSS without leaking, and are taken out of the figure:
// - V8 grows its young generation (256 KiB pages) in steps of 8-16 MB under a steady allocation rate: hence RSS
//   minus V8's heap;
// - glibc raises its mmap threshold after the first large free, after which model-sized buffers come from the heap
//   and freed space is kept instead of returned (RSS climbed from 110 to about 220 MB over 50 cycles that way, then
//   stayed flat): MALLOC_MMAP_THRESHOLD_ fixes it at its initial 128 KiB;
// - each new compute thread may get a fresh malloc arena (up to 8 per core) that keeps ~3 MB resident:
//   MALLOC_ARENA_MAX=2.
// With those fixed, a freed model gives its memory back and what remains is what was not freed.
//
// - Completions: 4 MB over 1,000, i.e. under 4 KB per completion. Anything a completion allocates natively and could
//   leak is at least that: its prompt's token vector and KV bookkeeping, the sampler chain with its penalty history,
//   the chunk callback's thread-safe function and queue, the AsyncWorker and its result. Measured: under 1 MB.
// - Load/dispose: 8 MB over 50 cycles (half stories260K, half the tiny synthetic model; mmap on and off). The
//   smallest thing a cycle could leak is stories260K with its contexts, measured at 4.7 MB (the tiny model: 27 MB),
//   so leaking in 2 of the 50 cycles exceeds the bound. Measured: under 4 MB.
// - The V8 heap after a full GC: 1 MB over each phase (JavaScript-side leaks: listeners, queues, closures).
const COMPLETION_RSS_BOUND_MB = (4 * COMPLETIONS) / 1000;
const CYCLE_RSS_BOUND_MB = (8 * CYCLES) / 50;
const HEAP_BOUND_MB = 1;

describe.runIf(haveModel(STORIES) && haveModel(PHI3_VOCAB))('soak and leaks', () => {
  const stories = modelPath(STORIES);

  it(`${COMPLETIONS} sequential completions and ${CYCLES} load/dispose cycles: memory, threads and file handles stay flat`, async () => {
    const tiny = await syntheticModel('tiny', 'Q8_0');
    const r = await runScript('soak-child.cjs', [stories, tiny, String(COMPLETIONS), String(CYCLES)], {
      nodeArgs: ['--expose-gc'],
      env: { MALLOC_MMAP_THRESHOLD_: '131072', MALLOC_ARENA_MAX: '2' },
      timeoutMs: LIMIT_MS - 60_000,
    });
    expect(r.signal, r.stderr).toBeNull();
    expect(r.code, r.stderr).toBe(0);
    const out = lastJson<SoakOutput>(r.stdout);
    const { baseline, completions, cycles } = out;
    // Growth: the lowest of the last three measurements minus the one after warm-up. A leak raises all three; the
    // allocator's transient highs (a few MB, depending on which model was freed last) do not.
    const settled = (p: Phase, key: keyof Stats) => Math.min(...[...p.samples.slice(-2), p.end].map((x) => x[key]));
    const growth = (p: Phase) => ({
      rss: settled(p, 'rssMb') - p.warm.rssMb,
      native: settled(p, 'nativeMb') - p.warm.nativeMb,
      heap: settled(p, 'heapMb') - p.warm.heapMb,
    });
    const c = growth(completions);
    const l = growth(cycles);
    const signed = (x: number) => `${x >= 0 ? '+' : ''}${x.toFixed(2)} MB`;
    const series = (p: Phase) => p.samples.map((s) => s.nativeMb.toFixed(1)).join(' ');
    const describe = (p: Phase, g: ReturnType<typeof growth>, bound: number, every: number) =>
      `native memory after warm-up ${p.warm.nativeMb.toFixed(1)} MB, every ${every}: ${series(p)}, end ${p.end.nativeMb.toFixed(1)} MB: ` +
      `growth ${signed(g.native)} (bound ${bound} MB); RSS growth ${signed(g.rss)}, V8 heap ${signed(g.heap)}`;
    figure(`soak: ${out.completionsRun} completions in ${(completions.ms / 1000).toFixed(1)} s: ${describe(completions, c, COMPLETION_RSS_BOUND_MB, 100)}`);
    figure(`soak: ${out.cyclesRun} load/dispose cycles in ${(cycles.ms / 1000).toFixed(1)} s: ${describe(cycles, l, CYCLE_RSS_BOUND_MB, 10)}`);
    figure(
      `soak: threads ${baseline.threads} with nothing loaded, ${completions.warm.threads} with one model, ${cycles.end.threads} after the cycles; ` +
        `open file descriptors ${baseline.fds} -> ${completions.end.fds} -> ${cycles.end.fds}; total ${(out.totalMs / 1000).toFixed(1)} s`,
    );

    expect(c.native).toBeLessThan(COMPLETION_RSS_BOUND_MB);
    expect(l.native).toBeLessThan(CYCLE_RSS_BOUND_MB);
    expect(c.heap).toBeLessThan(HEAP_BOUND_MB);
    expect(l.heap).toBeLessThan(HEAP_BOUND_MB);
    // Threads and file handles: constant while one model works, back to the baseline once everything is disposed.
    for (const s of completions.samples) {
      expect(s.threads).toBe(completions.warm.threads);
      expect(s.fds).toBe(baseline.fds);
    }
    expect(completions.warm.threads).toBeGreaterThan(baseline.threads); // the model's compute thread(s) exist...
    for (const s of cycles.samples) {
      expect(s.threads).toBe(baseline.threads); // ...and go with it
      expect(s.fds).toBe(baseline.fds);
    }
    expect(cycles.end.threads).toBe(baseline.threads);
    expect(cycles.end.fds).toBe(baseline.fds);
  }, LIMIT_MS);

  it('a generation that fills the context stops cleanly: finishReason length, contextFull, the text a larger context gives', async () => {
    // Documented behaviour (README, "complete"): no context shift. The generation stops when prompt + completion
    // fill contextSize; the text is exactly what the same request gives in a larger context, cut at that token.
    await using small = await loadModel(stories, { contextSize: 64, threads: 2 });
    await using large = await loadModel(stories, { contextSize: 512, threads: 2 });
    for (const prompt of ['Once upon a time', 'The little dog', 'Lily']) {
      for (const maxTokens of [-1, 1000]) {
        let chunks = '';
        const r = await small.complete(prompt, { maxTokens, temperature: 0, onChunk: (t) => (chunks += t) });
        expect(r.finishReason).toBe('length');
        expect(r.contextFull).toBe(true);
        expect(r.promptTokens + r.completionTokens).toBe(64);
        expect(chunks).toBe(r.text);
        const reference = await large.complete(prompt, { maxTokens: r.completionTokens, temperature: 0 });
        expect(reference.contextFull).toBe(false);
        expect(r.text).toBe(reference.text);
      }
    }
    // A stream ends the same way.
    const stream = small.stream('Once upon a time', { maxTokens: -1, temperature: 0 });
    let streamed = '';
    for await (const chunk of stream) streamed += chunk;
    expect(await stream.result).toMatchObject({ finishReason: 'length', contextFull: true, text: streamed });
    // A prompt that does not fit at all is ERR_CONTEXT_OVERFLOW; the model stays usable.
    const long = 'Once upon a time, there was a little dog. '.repeat(20);
    await expect(small.complete(long, { maxTokens: 4 })).rejects.toMatchObject({ code: 'ERR_CONTEXT_OVERFLOW' });
    expect((await small.complete('Once upon a time', { maxTokens: 8, temperature: 0 })).text).toBe(
      (await large.complete('Once upon a time', { maxTokens: 8, temperature: 0 })).text,
    );
    await using embedder = await loadModel(stories, { contextSize: 64, embeddingContextSize: 16 });
    await expect(embedder.embed(long)).rejects.toMatchObject({ code: 'ERR_CONTEXT_OVERFLOW' });
    expect(await embedder.embed('short')).toHaveLength(64);
  });
});
