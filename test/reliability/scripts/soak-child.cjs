// Soak: 1,000 sequential completions on one model, then 50 load/dispose cycles, in one process (run with
// --expose-gc). Prints one JSON line: resident memory, V8 heap, threads and open file descriptors along the way.
//   soak-child.cjs <stories.gguf> <second model.gguf> [completions] [cycles]
'use strict';
const { readdirSync } = require('node:fs');
const { loadModel } = require(process.env.TEA_REPO_ROOT);

const [stories, second, completionsArg, cyclesArg] = process.argv.slice(2);
const COMPLETIONS = Number(completionsArg ?? 1000);
const CYCLES = Number(cyclesArg ?? 50);

async function stats() {
  for (let i = 0; i < 3; i++) {
    global.gc();
    await new Promise((r) => setTimeout(r, 10));
  }
  const m = process.memoryUsage();
  return {
    rssMb: m.rss / 1048576,
    // Resident memory outside V8's heap: what native code (llama.cpp, the addon) holds.
    nativeMb: (m.rss - m.heapTotal) / 1048576,
    heapMb: m.heapUsed / 1048576,
    threads: readdirSync('/proc/self/task').length,
    fds: readdirSync('/proc/self/fd').length,
  };
}

const PROMPTS = ['Once upon a time', 'Once upon a time there was', 'The little dog', 'Lily and Tom went to the park', 'One day', 'The sun'];

/** One request of a varied mix: every path a completion can take (stream, callback, sampler, stop, abort, embed). */
async function request(model, i) {
  const prompt = PROMPTS[i % PROMPTS.length];
  const options = { maxTokens: 4 + (i % 5), temperature: 0 };
  switch (i % 6) {
    case 0: {
      let text = '';
      for await (const chunk of model.stream(prompt, options)) text += chunk;
      return text;
    }
    case 1:
      return (await model.complete(prompt, { ...options, onChunk: () => undefined })).text;
    case 2:
      return (await model.complete(prompt, { ...options, temperature: 0.8, topK: 40, topP: 0.9, repeatPenalty: 1.1, seed: i })).text;
    case 3:
      return (await model.complete(prompt, { ...options, stop: ['.', ' was'] })).text;
    case 4: {
      if (i % 24 === 4) return (await model.embed([prompt, `${prompt}!`]))[0].length;
      const controller = new AbortController();
      let n = 0;
      return (await model.complete(prompt, { ...options, maxTokens: 20, signal: controller.signal, onChunk: () => ++n === 2 && controller.abort() })).text;
    }
    default:
      return (await model.complete(prompt, options)).text;
  }
}

(async () => {
  const started = performance.now();
  // Baseline with nothing loaded, after one load/dispose so lazily created process-wide threads (libuv's pool) exist.
  await (await loadModel(stories, { contextSize: 256, threads: 2 })).dispose();
  const baseline = await stats();

  const model = await loadModel(stories, { contextSize: 256, threads: 2 });
  for (let i = 0; i < 100; i++) await request(model, i); // warm-up: contexts, caches and allocator arenas settle
  const completions = { warm: await stats(), samples: [] };
  const t1 = performance.now();
  for (let i = 0; i < COMPLETIONS; i++) {
    await request(model, i);
    if ((i + 1) % 100 === 0) completions.samples.push(await stats());
  }
  completions.ms = performance.now() - t1;
  completions.end = await stats();
  await model.dispose();

  const paths = [stories, second];
  const cycle = async (c) => {
    const m = await loadModel(paths[c % 2], { contextSize: 256, threads: 2, useMmap: c % 4 < 2 });
    await m.complete('Once upon a time', { maxTokens: 4, temperature: 0 });
    await m.embed('a sentence');
    m.tokenize('hello world');
    await m.dispose();
  };
  for (let c = 0; c < 10; c++) await cycle(c); // warm-up
  const cycles = { warm: await stats(), samples: [] };
  const t2 = performance.now();
  for (let c = 0; c < CYCLES; c++) {
    await cycle(c);
    if ((c + 1) % 10 === 0) cycles.samples.push(await stats());
  }
  cycles.ms = performance.now() - t2;
  cycles.end = await stats();
  console.log(JSON.stringify({ completionsRun: COMPLETIONS, cyclesRun: CYCLES, baseline, completions, cycles, totalMs: performance.now() - started }));
})().catch((error) => {
  console.error(error);
  process.exit(1);
});
