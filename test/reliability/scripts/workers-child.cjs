// tea-llama from worker_threads: several workers load and complete at once, workers are terminated in the middle
// of a load, a generation and an embedding, a worker ends with its model loaded. Prints one JSON line per step.
'use strict';
const { Worker, isMainThread, parentPort, workerData } = require('node:worker_threads');

const PROMPT = 'Once upon a time';
const OPTIONS = { maxTokens: 24, temperature: 0 };

if (isMainThread) {
  const [path, bigger] = process.argv.slice(2);
  const { loadModel } = require(process.env.TEA_REPO_ROOT);
  const run = (mode, model = path) => {
    const worker = new Worker(__filename, { workerData: { path: model, mode } });
    const messages = [];
    worker.on('message', (m) => messages.push(m));
    const exited = new Promise((done, fail) => {
      worker.on('error', fail);
      worker.on('exit', (code) => done(code));
    });
    return { worker, messages, exited };
  };
  (async () => {
    const model = await loadModel(path, { contextSize: 256, threads: 1 });
    const reference = (await model.complete(PROMPT, OPTIONS)).text;

    // Four workers at once, each with its own model, while the main thread generates too.
    const workers = Array.from({ length: 4 }, () => run('parallel'));
    const mainText = (await model.complete(PROMPT, OPTIONS)).text;
    const codes = await Promise.all(workers.map((w) => w.exited));
    const texts = workers.map((w) => w.messages.find((m) => m.text !== undefined)?.text);
    console.log(JSON.stringify({ step: 'parallel', reference, mainText, texts, codes }));

    // terminate() while the worker's model is loading, generating (streamed or not) or embedding, each for far
    // longer than terminate() may take: the worker's environment is torn down while native work runs.
    const terminated = {};
    const waits = {};
    for (const mode of ['load', 'stream', 'complete', 'embed', 'prompt']) {
      const busy = run(mode, bigger);
      while (!busy.messages.some((m) => m.busy)) await new Promise((r) => setTimeout(r, 5));
      await new Promise((r) => setTimeout(r, 50));
      const started = performance.now();
      terminated[mode] = await busy.worker.terminate();
      waits[mode] = Math.round(performance.now() - started);
      await busy.exited;
    }
    console.log(JSON.stringify({ step: 'terminate', codes: terminated, ms: waits }));

    // A worker that returns with its model loaded and an embedding context, never disposed.
    const leaver = run('leave-loaded');
    console.log(JSON.stringify({ step: 'leave', code: await leaver.exited, messages: leaver.messages }));

    // The main thread's model is unaffected.
    const after = (await model.complete(PROMPT, OPTIONS)).text;
    await model.dispose();
    console.log(JSON.stringify({ step: 'after', same: after === reference }));
  })().catch((error) => {
    console.error(error);
    process.exit(1);
  });
} else {
  const { loadModel } = require(process.env.TEA_REPO_ROOT);
  (async () => {
    if (workerData.mode === 'load') {
      parentPort.postMessage({ busy: true });
      for (;;) await (await loadModel(workerData.path, { useMmap: false, onProgress: () => undefined })).dispose();
    }
    const model = await loadModel(workerData.path, { contextSize: 4096, threads: 1 });
    if (workerData.mode === 'parallel') {
      const result = await model.complete(PROMPT, OPTIONS);
      parentPort.postMessage({ text: result.text });
      await model.dispose();
    } else if (workerData.mode === 'stream') {
      for (;;) {
        for await (const _chunk of model.stream(PROMPT, { maxTokens: -1, temperature: 0.8 })) parentPort.postMessage({ busy: true });
      }
    } else if (workerData.mode === 'complete') {
      parentPort.postMessage({ busy: true });
      for (;;) await model.complete(PROMPT, { maxTokens: -1, temperature: 0.8 }); // minutes: to the full context
    } else if (workerData.mode === 'embed') {
      parentPort.postMessage({ busy: true });
      for (;;) await model.embed(Array.from({ length: 5000 }, (_, i) => `sentence number ${i}`));
    } else if (workerData.mode === 'prompt') {
      parentPort.postMessage({ busy: true });
      for (;;) await model.complete('Once upon a time, '.repeat(600), { maxTokens: 4 }); // batches of 512 tokens
    } else if (workerData.mode === 'leave-loaded') {
      await model.complete(PROMPT, { maxTokens: 4 });
      const vector = await model.embed('hello');
      parentPort.postMessage({ dims: vector.length });
    }
  })();
}
