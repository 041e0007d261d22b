// Template fuzz child: renders a batch of template cases one after the other and reports each on stdout as one JSON
// line, `start` before it runs and `done` after, so that the parent (run-template-fuzz.mjs) knows which case a crash
// (this process dies) or a hang (no more lines) belongs to.
//
// The job arrives on stdin as JSON: { seed, model, templatesDir, indices: number[], limits }.
import { readFileSync, writeSync } from 'node:fs';
import { createRequire } from 'node:module';

import { TemplateFuzzer } from './template-mutator.mjs';

const require = createRequire(import.meta.url);
const lib = require('../../../dist/cjs/index.js');

const report = (line) => writeSync(1, `${JSON.stringify(line)}\n`); // synchronous: out before a crash

const MESSAGES = [
  { role: 'system', content: 'You are a helpful assistant.' },
  { role: 'user', content: 'Hello!' },
  { role: 'assistant', content: 'Hi, how can I help?' },
  { role: 'user', content: 'Name a colour.' },
];

const job = JSON.parse(readFileSync(0, 'utf8'));
const fuzzer = new TemplateFuzzer(job.templatesDir, job.seed);
const model = await lib.loadModel(job.model, { vocabOnly: true });
for (const i of job.indices) {
  const c = fuzzer.case(i);
  report({ t: 'start', i, kind: c.kind, d: c.description });
  const started = performance.now();
  let result = 'ok';
  try {
    await model.applyChatTemplate(MESSAGES, { template: c.template, limits: job.limits });
  } catch (error) {
    result = error instanceof lib.LlamaError ? error.code : `UNTYPED ${error?.name}: ${String(error?.message ?? error).slice(0, 200)}`;
  }
  report({ t: 'done', i, result, ms: performance.now() - started, rss: process.resourceUsage().maxRSS });
}
await model.dispose();
report({ t: 'end' });
