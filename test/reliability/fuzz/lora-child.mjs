// LoRA fuzz child: loads the base model once, then for each case writes a mutated adapter (GgufFuzzer over the
// adapter file) and loads it with model.loadLora; when it loads, a greedy completion runs with it. Reports as
// child.mjs does (`start`, `done`, `end` JSON lines), so that a crash names its case.
//
// The job on stdin: { seed, base, adapter, indices, tmpDir }.
import { readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';

import { GgufFuzzer } from './gguf-mutator.mjs';

const lib = createRequire(import.meta.url)('../../../dist/cjs/index.js');
const report = (line) => writeSync(1, `${JSON.stringify(line)}\n`);
const code = (error) => (error instanceof lib.LlamaError ? error.code : `UNTYPED ${error?.name}: ${String(error?.message ?? error).slice(0, 200)}`);

const job = JSON.parse(readFileSync(0, 'utf8'));
const fuzzer = new GgufFuzzer([{ name: 'adapter', path: job.adapter, vocabOnly: false, buffer: readFileSync(job.adapter) }], job.seed);
const model = await lib.loadModel(job.base, { contextSize: 64, threads: 1 });
for (const index of job.indices) {
  const c = fuzzer.case(index);
  const path = join(job.tmpDir, `lora-${index}.gguf`);
  writeFileSync(path, c.buffer);
  report({ t: 'start', i: index, source: c.source, d: c.description });
  const out = { stage: 'load', result: 'ok' };
  try {
    const adapter = await model.loadLora(path);
    out.stage = 'complete';
    await model.complete('Once upon a time', { maxTokens: 4, temperature: 0, lora: [{ adapter }] });
    adapter.dispose();
    out.stage = 'done';
  } catch (error) {
    out.result = code(error);
  }
  rmSync(path, { force: true });
  report({ t: 'done', i: index, ...out, rss: process.resourceUsage().maxRSS });
}
await model.dispose();
report({ t: 'end' });
