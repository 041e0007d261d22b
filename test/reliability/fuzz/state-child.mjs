// State fuzz child: restores a batch of mutated state files one after the other, each followed by a short
// generation from the restored tokens, and reports each on stdout as JSON lines (`start` before, `done` after),
// so that the parent (run-state-fuzz.mjs) knows which case a crash or a hang belongs to.
//
// The job arrives on stdin as JSON: { seed, model, base, prompt, dir, indices: number[] }.
import { readFileSync, writeFileSync, writeSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';

import { StateFuzzer } from './state-mutator.mjs';

const require = createRequire(import.meta.url);
const lib = require('../../../dist/cjs/index.js');

const report = (line) => writeSync(1, `${JSON.stringify(line)}\n`); // synchronous: out before a crash

const job = JSON.parse(readFileSync(0, 'utf8'));
const fuzzer = new StateFuzzer(job.seed, readFileSync(job.base));
const model = await lib.loadModel(job.model, { contextSize: 256, threads: 1, sequences: 2 });
const file = join(job.dir, `case-${process.pid}.state`);
for (const i of job.indices) {
  const c = fuzzer.case(i);
  report({ t: 'start', i, kind: c.kind, d: c.description });
  const started = performance.now();
  let result = 'ok';
  try {
    writeFileSync(file, c.buffer);
    await model.loadState(file);
    await model.complete(job.prompt, { maxTokens: 4, temperature: 0 });
  } catch (error) {
    result = error instanceof lib.LlamaError ? error.code : `UNTYPED ${error?.name}: ${String(error?.message ?? error).slice(0, 200)}`;
  }
  report({ t: 'done', i, result, ms: performance.now() - started, rss: process.resourceUsage().maxRSS });
}
await model.dispose();
report({ t: 'end' });
