// Grammar fuzz child: generates with a batch of grammar and schema cases one after the other (a few tokens each)
// and reports each on stdout as one JSON line, `start` before and `done` after, so that the parent
// (run-grammar-fuzz.mjs) knows which case a crash or a hang belongs to.
//
// The job arrives on stdin as JSON: { seed, model, indices: number[] }.
import { readFileSync, writeSync } from 'node:fs';
import { createRequire } from 'node:module';

import { GrammarFuzzer } from './grammar-mutator.mjs';

const require = createRequire(import.meta.url);
const lib = require('../../../dist/cjs/index.js');

const report = (line) => writeSync(1, `${JSON.stringify(line)}\n`); // synchronous: out before a crash

const job = JSON.parse(readFileSync(0, 'utf8'));
const fuzzer = new GrammarFuzzer(job.seed);
const model = await lib.loadModel(job.model, { contextSize: 256, threads: 1, sequences: 1 });
for (const i of job.indices) {
  const c = fuzzer.case(i);
  report({ t: 'start', i, kind: c.kind, d: c.description });
  const started = performance.now();
  let result = 'ok';
  try {
    await model.complete('Once upon a time', { ...c.options, maxTokens: 8, temperature: 0 });
  } catch (error) {
    result = error instanceof lib.LlamaError ? error.code : `UNTYPED ${error?.name}: ${String(error?.message ?? error).slice(0, 200)}`;
  }
  report({ t: 'done', i, result, ms: performance.now() - started, rss: process.resourceUsage().maxRSS });
}
await model.dispose();
report({ t: 'end' });
