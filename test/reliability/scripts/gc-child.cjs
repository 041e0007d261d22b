// Models that are never disposed: dropped while idle, with a stream left early, with a stream never read and
// with a generation still running. Run with --expose-gc. Prints one JSON line with thread and memory figures.
'use strict';
const { readdirSync } = require('node:fs');
const { loadModel } = require(process.env.TEA_REPO_ROOT);

const [path] = process.argv.slice(2);
const threads = () => readdirSync('/proc/self/task').length;
// Resident memory outside V8's heap (see soak.test.ts for why this, and not RSS, measures native leaks).
const rssMb = () => {
  const m = process.memoryUsage();
  return (m.rss - m.heapTotal) / 1048576;
};
const settle = async () => {
  // Finalizers run after a collection; a context's wrapper keeps its model's wrapper until it is finalized itself.
  for (let i = 0; i < 6; i++) {
    global.gc();
    await new Promise((r) => setTimeout(r, 20));
  }
};

async function drop(i) {
  const model = await loadModel(path, { contextSize: 512, threads: 1, useMmap: i % 2 === 0 });
  await model.complete('Once', { maxTokens: 4, temperature: 0 });
  if (i % 3 === 0) await model.embed('a sentence to embed');
  if (i % 3 === 1) {
    const stream = model.stream('Once upon a time', { maxTokens: 64, temperature: 0 });
    for await (const _chunk of stream) break; // left early: aborts the generation
  }
  if (i % 3 === 2) model.stream('Once upon a time', { maxTokens: 16, temperature: 0 }); // never read
}

(async () => {
  await drop(0);
  await settle();
  const baseline = { threads: threads(), rssMb: rssMb() };
  let warm;
  const rounds = 45;
  for (let i = 1; i <= rounds; i++) {
    await drop(i);
    if (i % 5 === 0) await settle();
    if (i === 15) warm = rssMb();
  }
  await new Promise((r) => setTimeout(r, 200)); // let the unread streams finish
  await settle();
  const afterDrops = { threads: threads(), rssMb: rssMb() };

  // A model dropped while a generation runs: the running operation keeps it alive until it ends, then it goes.
  let finish = 'pending';
  await (async () => {
    const model = await loadModel(path, { contextSize: 512, threads: 1 });
    model.complete('Once upon a time', { maxTokens: 400, temperature: 0 }).then((r) => (finish = r.finishReason), (e) => (finish = e.code));
  })();
  await settle();
  const runningThreads = threads();
  while (finish === 'pending') await new Promise((r) => setTimeout(r, 10));
  await settle();
  const end = { threads: threads(), rssMb: rssMb() };
  console.log(JSON.stringify({ rounds, baseline, warmRssMb: warm, afterDrops, runningThreads, finish, end }));
})().catch((error) => {
  console.error(error);
  process.exit(1);
});
