// Ends the process while models are loaded and working; the process must exit with the code asked, promptly, and
// not crash.
//   exit-child.cjs <mode> <stories> <bigger model>
// modes: generation (process.exit while streams and an embedding run on two models), load (process.exit while a
// model loads), prompt (process.exit while a long prompt is processed), natural (the event loop empties with
// models loaded, never disposed), throw (an uncaught exception while generating: exit code 1, our message).
'use strict';
const { loadModel } = require(process.env.TEA_REPO_ROOT);

const [mode, stories, bigger] = process.argv.slice(2);

(async () => {
  if (mode === 'generation' || mode === 'throw') {
    const a = await loadModel(stories, { contextSize: 512, threads: 1 });
    const b = await loadModel(bigger, { contextSize: 4096, threads: 1 });
    let chunks = 0;
    const onChunk = () => {
      if (++chunks === 6) {
        if (mode === 'throw') setImmediate(() => { throw new Error('planned failure while generating'); });
        else process.exit(0);
      }
    };
    a.complete('Once upon a time', { maxTokens: 500, onChunk });
    // A long generation: process.exit() must not wait for it (libuv's pool is joined at exit).
    b.complete('Once upon a time', { maxTokens: -1, onChunk });
    a.embed(Array.from({ length: 50 }, (_, i) => `sentence number ${i}`));
  } else if (mode === 'load') {
    await loadModel(bigger, {
      useMmap: false,
      onProgress: (p) => {
        if (p > 0.3) process.exit(0);
      },
    });
    console.log('the load finished before the exit');
  } else if (mode === 'prompt') {
    const model = await loadModel(bigger, { contextSize: 4096, threads: 2 });
    model.complete('Once upon a time, '.repeat(600), { maxTokens: 10 }); // several seconds of prompt processing
    setTimeout(() => process.exit(0), 30);
  } else if (mode === 'natural') {
    const a = await loadModel(stories, { contextSize: 256 });
    const b = await loadModel(bigger, { contextSize: 256 });
    await a.complete('Once', { maxTokens: 4 });
    await b.complete('Once', { maxTokens: 4 });
    await a.embed('hello');
    globalThis.kept = [a, b];
    // Nothing else to do: the event loop ends with both models loaded.
  }
})();
