#!/usr/bin/env node
// Speculative decoding with a draft model: tea-llama in-process (loadModel with draftModel) against llama-server
// from the same tree (--spec-type draft-simple -md) with the same target, draft, draft length, threads, context
// and greedy decoding. Per request: generated tokens per second over the generation phase (the engine's own
// timing: tea-llama's timings.generationMs, llama-server's timings.predicted_ms) and the acceptance (drafted and
// accepted tokens, as each reports them). Runs alternate between the contenders, each in the same process order.
//
//   node bench/speculative.mjs [--runs N] [--tokens N] [--threads N] [--draft-max N] [--target FILE --draft FILE]
//
// Default models: the synthetic 130m Q8_0 as the target and the synthetic tiny Q8_0 (same phi-3 vocabulary) as the
// draft, made by scripts/synthetic-model.mjs. Random weights draft poorly (low acceptance), which measures the
// cost of the speculative machinery itself; pass --target and --draft for a real pair. The same model as its own
// draft (--draft = --target) measures the other end (every draft accepted).
// Writes bench/results/speculative.md.
import { writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { ensureSyntheticModel } from '../scripts/synthetic-model.mjs';
import { startLlamaServer } from '../scripts/llama-server-harness.mjs';
import { median } from './stats.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '..');
const sharedModels = process.env.TEA_TEST_MODELS_DIR || resolve(root, '../shared/models');

function option(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : fallback;
}
const runs = Number(option('runs', 3));
const tokens = Number(option('tokens', 64));
const threads = Number(option('threads', 2));
const draftMax = Number(option('draft-max', 4));
const ctx = 1024;

async function models() {
  if (option('target') && option('draft')) return [resolve(option('target')), resolve(option('draft'))];
  const common = { vocab: join(sharedModels, 'ggml-vocab-phi-3.gguf'), cacheDir: join(root, '.cache', 'models'), quantizeBin: join(root, 'build', 'tools', 'llama-quantize'), seed: 1 };
  return Promise.all([ensureSyntheticModel({ preset: '130m', quant: 'Q8_0', ...common }), ensureSyntheticModel({ preset: 'tiny', quant: 'Q8_0', ...common })]);
}

const [target, draft] = await models();
const { loadModel } = await import(join(root, 'dist', 'index.mjs'));
const STARTS = ['Once upon a time', 'The quick brown fox', 'In a small village', 'The report says that', 'Here is a list of'];
const prompts = Array.from({ length: runs }, (_, i) => `${STARTS[i % STARTS.length]} (${i})`);

const ours = await loadModel(target, { contextSize: ctx, threads, batchSize: 512, sequences: 1, draftModel: draft, draftMax });
const server = await startLlamaServer(target, [
  '-t', String(threads), '-tb', String(threads), '-c', String(ctx), '-b', '512', '-ub', '512', '-np', '1', '-fa', 'auto', '--no-cache-prompt', '-cram', '0',
  '--spec-type', 'draft-simple', '-md', draft, '--spec-draft-n-max', String(draftMax), '-td', String(threads), '-tbd', String(threads),
], { timeoutMs: 120_000 });

const samples = { tea: [], server: [] };
try {
  // One warm-up each, then the runs, alternating who goes first.
  await ours.complete('Hello', { maxTokens: 8, temperature: 0 });
  await server.post('/completion', { prompt: 'Hello', n_predict: 8, temperature: 0, cache_prompt: false });
  for (let r = 0; r < runs; r++) {
    const tea = async () => {
      const x = await ours.complete(prompts[r], { maxTokens: tokens, temperature: 0 });
      samples.tea.push({ tps: (x.completionTokens * 1000) / x.timings.generationMs, n: x.completionTokens, drafted: x.draftTokens, accepted: x.acceptedDraftTokens, text: x.text });
    };
    const srv = async () => {
      const x = await server.post('/completion', { prompt: prompts[r], n_predict: tokens, temperature: 0, repeat_penalty: 1, cache_prompt: false });
      samples.server.push({ tps: x.timings.predicted_per_second, n: x.tokens_predicted, drafted: x.timings.draft_n ?? 0, accepted: x.timings.draft_n_accepted ?? 0, text: x.content });
    };
    if (r % 2 === 0) {
      await tea();
      await srv();
    } else {
      await srv();
      await tea();
    }
  }
} finally {
  await server.stop();
  await ours.dispose();
}

const sum = (xs, k) => xs.reduce((s, x) => s + x[k], 0);
const row = (name, xs) => {
  const drafted = sum(xs, 'drafted');
  const accepted = sum(xs, 'accepted');
  return `| ${name} | ${median(xs.map((x) => x.tps)).toFixed(1)} | ${drafted} | ${accepted} | ${drafted > 0 ? ((100 * accepted) / drafted).toFixed(1) : '-'}% |`;
};
const ratio = median(samples.tea.map((x) => x.tps)) / median(samples.server.map((x) => x.tps));
const same = samples.tea.every((x, i) => x.text === samples.server[i].text);
const report = [
  `# Speculative decoding: tea-llama against llama-server`,
  '',
  `${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC · \`node bench/speculative.mjs --runs ${runs} --tokens ${tokens} --threads ${threads} --draft-max ${draftMax}\``,
  `target ${basename(target)}, draft ${basename(draft)}, ${threads} threads, context ${ctx}, greedy, ${tokens} tokens per request, ${runs} requests each, alternating.`,
  '',
  '| contender | generated tokens/s (median) | drafted | accepted | acceptance |',
  '| --- | --: | --: | --: | --: |',
  row('tea-llama (draftModel)', samples.tea),
  row('llama-server (draft-simple)', samples.server),
  '',
  `Ratio tea-llama / llama-server: **${ratio.toFixed(3)}** (target ≥ 0.95). Texts identical: ${same ? 'yes' : 'NO'}.`,
  '',
].join('\n');
writeFileSync(join(here, 'results', 'speculative.md'), report);
process.stdout.write(report);
