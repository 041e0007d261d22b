// Fuzz child: runs a batch of fuzz cases one after the other in this process and reports each on stdout as one JSON
// line, `start` before the case runs and `done` after. When this process dies (a crash or an abort inside native
// code) or stops reporting (a hang), the parent (run-fuzz.mjs) knows which case did it from the last `start`.
//
// The job arrives on stdin as JSON: { seed, sources: [{ name, path, vocabOnly }], indices: number[], tmpDir }.

import { writeSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { GgufFuzzer } from './gguf-mutator.mjs';

const require = createRequire(import.meta.url);
const lib = require('../../../dist/cjs/index.js');

function report(line) {
  // Synchronous: the line must be out before a crash in the next native call.
  writeSync(1, `${JSON.stringify(line)}\n`);
}

function code(error) {
  if (error instanceof lib.LlamaError) return error.code;
  return `UNTYPED ${error?.name ?? typeof error}: ${String(error?.message ?? error).slice(0, 200)}`;
}

const PROMPT = 'Once upon a time';
const TEXT = 'Hello world! Once upon a time, 123 <s> </s> <|user|> [CLS] ü 🐕 \n\t  x';

/**
 * Loads one mutated file and, when it loads, uses it: tokenize / detokenize, the chat template, a greedy and a
 * sampled completion, an embedding. The outcome is 'ok' or the code of the first typed error, with the stage.
 */
export async function runCase(lib, path, c, index) {
  const out = { reader: 'ok', stage: 'load', result: 'ok' };
  try {
    await lib.readGguf(path);
  } catch (error) {
    out.reader = code(error);
  }
  let model;
  try {
    model = await lib.loadModel(path, {
      vocabOnly: c.vocabOnly,
      contextSize: 64,
      embeddingContextSize: 32,
      threads: 1,
      seed: 1,
      useMmap: index % 2 === 0,
    });
    out.stage = 'tokenize';
    const tokens = model.tokenize(TEXT);
    model.detokenize(tokens);
    model.detokenize([0, Math.max(0, model.info.vocabSize - 1)], { special: true });
    if (model.info.chatTemplate !== null) {
      out.stage = 'template';
      try {
        await model.applyChatTemplate([{ role: 'user', content: 'hi' }]);
      } catch (error) {
        // A mangled template is refused with a template error; anything else is a finding.
        if (!(error instanceof lib.LlamaError) || !error.code.startsWith('ERR_TEMPLATE')) throw error;
      }
    }
    if (!model.info.vocabOnly && model.info.hasDecoder) {
      out.stage = 'complete';
      const greedy = await model.complete(PROMPT, { maxTokens: 4, temperature: 0 });
      if (typeof greedy.text !== 'string') throw new Error('complete() returned no text');
      if (index % 3 === 0) await model.complete(PROMPT, { maxTokens: 3, temperature: 0.8, topK: 10, repeatPenalty: 1.1 });
    }
    // Every fourth case, and every regression case (some crashed only there), computes an embedding.
    if (!model.info.vocabOnly && (index % 4 === 0 || c.expect)) {
      out.stage = 'embed';
      await model.embed('Once upon a time');
    }
    out.stage = 'done';
  } catch (error) {
    out.result = code(error);
    out.message = String(error?.message ?? error).slice(0, 300);
  } finally {
    if (model) {
      try {
        await model.dispose();
      } catch (error) {
        out.result = `dispose: ${code(error)}`;
      }
    }
  }
  return out;
}

/** Whether a regression case ended as it must: '' when it did, else what differs. */
export function meets(outcome, expect) {
  const problems = [];
  if (outcome.stage !== expect.stage) problems.push(`stage ${outcome.stage}, expected ${expect.stage}`);
  if (outcome.result !== expect.result) problems.push(`result ${outcome.result}, expected ${expect.result}`);
  if (expect.message && !expect.message.test(outcome.message ?? '')) problems.push(`message ${JSON.stringify(outcome.message)} does not match ${expect.message}`);
  return problems.join('; ');
}

async function main() {
  const job = JSON.parse(readFileSync(0, 'utf8'));
  const fuzzer = new GgufFuzzer(
    job.sources.map((s) => ({ ...s, buffer: readFileSync(s.path) })),
    job.seed,
  );
  for (const index of job.indices) {
    let c;
    try {
      c = fuzzer.case(index);
    } catch (error) {
      // A bug in the mutator, not in the library: reported as an unexpected outcome, never as a crash.
      report({ t: 'start', i: index, source: '?', d: 'mutator failed' });
      report({ t: 'done', i: index, reader: 'ok', stage: 'mutate', result: `MUTATOR ${error?.stack ?? error}`, ms: 0, rss: process.resourceUsage().maxRSS });
      continue;
    }
    const path = join(job.tmpDir, `case-${index}.gguf`);
    writeFileSync(path, c.buffer);
    report({ t: 'start', i: index, source: c.source, d: c.description });
    const started = performance.now();
    const outcome = await runCase(lib, path, c, index);
    rmSync(path, { force: true });
    if (c.expect) outcome.regression = meets(outcome, c.expect);
    report({ t: 'done', i: index, ...outcome, ms: Math.round(performance.now() - started), rss: process.resourceUsage().maxRSS });
  }
  report({ t: 'end' });
}

if (process.argv[1] && fileURLToPath(import.meta.url) === resolve(process.argv[1])) {
  main().catch((error) => {
    process.stderr.write(`fuzz child failed: ${error?.stack ?? error}\n`);
    process.exit(3);
  });
}
