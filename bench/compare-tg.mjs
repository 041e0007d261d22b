#!/usr/bin/env node
// Generation throughput of tea-llama next to llama.cpp's own llama-bench, on the same files and threads,
// interleaved, medians of several runs. (The full side-by-side benchmark is `npm run bench`.)
//
//   node bench/compare-tg.mjs [--threads 2] [--tokens 128] [--runs 5] model.gguf [model2.gguf ...]
import { execFileSync } from 'node:child_process';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { loadModel } = createRequire(import.meta.url)(root);
const args = process.argv.slice(2);
const flag = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args.splice(i, 2)[1]) : fallback;
};
const threads = flag('threads', 2);
const tokens = flag('tokens', 128);
const runs = flag('runs', 5);
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

function llamaBench(model) {
  const out = execFileSync(join(root, 'build', 'tools', 'llama-bench'), ['-m', model, '-p', '0', '-n', String(tokens), '-t', String(threads), '-r', '1', '-o', 'json'], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  return JSON.parse(out)[0].avg_ts;
}

for (const path of args) {
  const model = await loadModel(path, { threads, contextSize: 512 });
  await model.complete('Once upon a time', { maxTokens: 16, temperature: 0 }); // warm-up
  const ours = [];
  const ref = [];
  let generated = 0;
  for (let i = 0; i < runs; i++) {
    ref.push(llamaBench(path));
    // A new prompt each run, so no KV cache reuse; greedy; stops early only on an end-of-text token.
    const r = await model.complete(`Run ${i}: once upon a time`, { maxTokens: tokens, temperature: 0 });
    generated = r.completionTokens;
    ours.push(r.timings.tokensPerSecond);
  }
  await model.dispose();
  const [o, b] = [median(ours), median(ref)];
  console.log(
    `${basename(path)}: tea-llama ${o.toFixed(1)} t/s (${generated} tokens), llama-bench ${b.toFixed(1)} t/s, ratio ${(o / b).toFixed(3)}` +
      ` [runs ${runs}, threads ${threads}; ours ${Math.min(...ours).toFixed(0)}-${Math.max(...ours).toFixed(0)}, bench ${Math.min(...ref).toFixed(0)}-${Math.max(...ref).toFixed(0)}]`,
  );
}
