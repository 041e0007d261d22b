#!/usr/bin/env node
// The speculative scenario: speculative decoding with a draft model, tea-llama in-process (loadModel with
// draftModel) against llama-server from the same tree (--spec-type draft-simple -md) with the same target, draft,
// draft length, threads, context and greedy decoding. Per request: generated tokens per second over the generation
// phase (the engine's own timing: tea-llama's timings.generationMs, llama-server's timings.predicted_ms) and the
// acceptance (drafted and accepted tokens, as each reports them). Requests alternate which contender goes first.
//
// Two pairs by default, made by scripts/synthetic-model.mjs (same phi-3 vocabulary): the 130m Q8_0 drafted by the
// tiny Q8_0, whose random weights draft poorly (about no draft accepted: the cost of the speculative machinery), and
// the 130m Q8_0 as its own draft (every draft accepted: the other end). --target and --draft measure a real pair.
//
//   node bench/speculative.mjs [--runs 3] [--tokens 64] [--threads 2] [--draft-max 4] [--target FILE --draft FILE]
//   npm run bench -- --scenarios speculative
//
// Run on its own, it writes bench/results/speculative.md.
import { writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { startLlamaServer } from '../scripts/llama-server-harness.mjs';
import { ensureSyntheticModel } from '../scripts/synthetic-model.mjs';
import { argValue, median } from './stats.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '..');
const CTX = 1024;
const STARTS = ['Once upon a time', 'The quick brown fox', 'In a small village', 'The report says that', 'Here is a list of'];

/** The default pairs: [label, target, draft]. */
async function defaultPairs() {
  const sharedModels = process.env.TEA_TEST_MODELS_DIR || resolve(root, '../shared/models');
  const common = { vocab: join(sharedModels, 'ggml-vocab-phi-3.gguf'), cacheDir: join(root, '.cache', 'models'), quantizeBin: join(root, 'build', 'tools', 'llama-quantize'), seed: 1 };
  const [target, tiny] = await Promise.all([ensureSyntheticModel({ preset: '130m', quant: 'Q8_0', ...common }), ensureSyntheticModel({ preset: 'tiny', quant: 'Q8_0', ...common })]);
  return [
    { label: 'tiny draft (random weights: few accepted)', target, draft: tiny },
    { label: 'self-draft (every draft accepted)', target, draft: target },
  ];
}

/** One pair: both contenders, `runs` requests each, alternating. */
async function measurePair({ target, draft }, { runs, tokens, threads, draftMax, log }) {
  const { loadModel } = await import(join(root, 'dist', 'index.mjs'));
  const prompts = Array.from({ length: runs }, (_, i) => `${STARTS[i % STARTS.length]} (${i})`);
  const ours = await loadModel(target, { contextSize: CTX, threads, batchSize: 512, sequences: 1, draftModel: draft, draftMax });
  let server;
  const samples = { tea: [], server: [] };
  try {
    server = await startLlamaServer(target, [
      '-t', String(threads), '-tb', String(threads), '-c', String(CTX), '-b', '512', '-ub', '512', '-np', '1', '-fa', 'auto', '--no-cache-prompt', '-cram', '0',
      '--spec-type', 'draft-simple', '-md', draft, '--spec-draft-n-max', String(draftMax), '-td', String(threads), '-tbd', String(threads),
    ], { timeoutMs: 120_000 });
    // One warm-up each, then the requests.
    await ours.complete('Hello', { maxTokens: 8, temperature: 0 });
    await server.post('/completion', { prompt: 'Hello', n_predict: 8, temperature: 0, cache_prompt: false });
    for (let r = 0; r < runs; r++) {
      log(`[bench] speculative ${basename(draft)} request ${r + 1}/${runs}`);
      const tea = async () => {
        const x = await ours.complete(prompts[r], { maxTokens: tokens, temperature: 0 });
        samples.tea.push({ tps: (x.completionTokens * 1000) / x.timings.generationMs, n: x.completionTokens, drafted: x.draftTokens, accepted: x.acceptedDraftTokens, text: x.text });
      };
      const srv = async () => {
        const x = await server.post('/completion', { prompt: prompts[r], n_predict: tokens, temperature: 0, repeat_penalty: 1, cache_prompt: false });
        samples.server.push({ tps: x.timings.predicted_per_second, n: x.tokens_predicted, drafted: x.timings.draft_n ?? 0, accepted: x.timings.draft_n_accepted ?? 0, text: x.content });
      };
      for (const step of r % 2 === 0 ? [tea, srv] : [srv, tea]) await step();
    }
  } finally {
    await server?.stop();
    await ours.dispose();
  }
  const rate = (xs) => median(xs.map((x) => x.tps));
  return {
    target: basename(target),
    draft: basename(draft),
    tea: samples.tea.map(({ text, ...x }) => x),
    server: samples.server.map(({ text, ...x }) => x),
    ratio: rate(samples.tea) / rate(samples.server),
    identical: samples.tea.every((x, i) => x.text === samples.server[i].text),
  };
}

/**
 * Runs the scenario; resolves { threads, tokens, draftMax, runs, pairs: [{ label, target, draft, tea, server,
 * ratio, identical }] }.
 */
export async function speculativeScenario({ threads = 2, runs = 3, tokens = 64, draftMax = 4, pairs, log = () => {} } = {}) {
  const chosen = pairs ?? (await defaultPairs());
  const out = { threads, runs, tokens, draftMax, pairs: [] };
  for (const pair of chosen) out.pairs.push({ label: pair.label, ...(await measurePair(pair, { runs, tokens, threads, draftMax, log })) });
  return out;
}

/** The report's section. */
export function renderSpeculative(r) {
  const sum = (xs, k) => xs.reduce((s, x) => s + x[k], 0);
  const row = (pair, name, xs) => {
    const drafted = sum(xs, 'drafted');
    const accepted = sum(xs, 'accepted');
    return `| ${pair} | ${name} | ${median(xs.map((x) => x.tps)).toFixed(1)} | ${drafted} | ${accepted} | ${drafted > 0 ? ((100 * accepted) / drafted).toFixed(1) : '-'}% |`;
  };
  return [
    '## Speculative decoding',
    '',
    `tea-llama \`loadModel(target, { draftModel, draftMax: ${r.draftMax} })\` against \`llama-server --spec-type draft-simple -md\` with the same files, ${r.threads} threads, context ${CTX}, greedy, ${r.tokens} tokens per request, ${r.runs} requests each, alternating. Generated tokens/s over the generation phase.`,
    '',
    '| pair | contender | tokens/s (median) | drafted | accepted | acceptance |',
    '| --- | --- | --: | --: | --: | --: |',
    ...r.pairs.flatMap((p) => [row(`${p.label}: ${p.target} ← ${p.draft}`, 'tea-llama', p.tea), row('', 'llama-server', p.server)]),
    '',
    ...r.pairs.map((p) => `- ${p.label}: ratio tea-llama / llama-server **${p.ratio.toFixed(3)}** (target ≥ 0.95); texts identical: ${p.identical ? 'yes' : '**no**'}.`),
    '',
  ].join('\n');
}

const isMain = process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url);
if (isMain) {
  const runs = Number(argValue('runs', 3));
  const tokens = Number(argValue('tokens', 64));
  const threads = Number(argValue('threads', 2));
  const draftMax = Number(argValue('draft-max', 4));
  const pairs = argValue('target') && argValue('draft') ? [{ label: 'given pair', target: resolve(argValue('target')), draft: resolve(argValue('draft')) }] : undefined;
  const r = await speculativeScenario({ threads, runs, tokens, draftMax, pairs, log: (l) => console.error(l) });
  const report = [
    '# Speculative decoding: tea-llama against llama-server',
    '',
    `${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC · \`node bench/speculative.mjs ${process.argv.slice(2).join(' ')}\``.trimEnd(),
    '',
    renderSpeculative(r).replace(/^## Speculative decoding\n\n/, ''),
  ].join('\n');
  writeFileSync(join(here, 'results', 'speculative.md'), report);
  process.stdout.write(report);
}
