// The rerank scenario: one query against 64 documents on a reranker, tea-llama's rerank() in-process against
// llama-server --reranking's /v1/rerank (the same file, threads and batch), documents per second. The model is a
// synthetic cross-encoder at MiniLM-L6's shape (random weights, the real bert-bge tokenizer: speed depends on
// shape, not values). Runs alternate which contender goes first; the report gives medians and their ratio.
//
//   node bench/rerank.mjs [--threads 2] [--runs 3] [--documents 64] [--slots 8]     (also: npm run bench -- --scenarios rerank)
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { startLlamaServer } from '../scripts/llama-server-harness.mjs';
import { ensureSyntheticReranker } from '../scripts/synthetic-model.mjs';
import { makeTexts } from './prompts.mjs';
import { argValue, median, now, perSecond } from './stats.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const QUERY = 'Which sentence is about a small animal near the river?';
// Both contenders get one batch (and micro-batch) of this many tokens (the model's trained context; a non-causal
// model attends over the whole micro-batch, so larger ones are slower for both); llama-server's slots get 512 each.
const BATCH = 512;
// llama-server's slots, each at most one document of a decode (tea-llama batches up to 64 documents per decode).
const SLOTS = 8;
const REPS = 3;

/** Median documents/s of REPS rerank calls after a warm-up of the same call. */
async function rate(documents, rerank) {
  await rerank(documents);
  const rates = [];
  for (let i = 0; i < REPS; i++) {
    const t0 = now();
    await rerank(documents);
    rates.push(perSecond(documents.length, now() - t0));
  }
  return median(rates);
}

/** Runs the scenario; resolves { threads, documents, model, tea: number[], server: number[], ratio }. */
export async function rerankScenario({ threads = 2, runs = 3, documents = 64, slots = SLOTS, log = () => {} } = {}) {
  const vocab = join(process.env.TEA_TEST_MODELS_DIR || resolve(root, '../shared/models'), 'ggml-vocab-bert-bge.gguf');
  if (!existsSync(vocab)) throw new Error(`${vocab} not found (set TEA_TEST_MODELS_DIR)`);
  const model = await ensureSyntheticReranker({ vocab, cacheDir: join(root, '.cache', 'models'), shape: 'minilm' });
  const docs = makeTexts(documents, 4242).map((t, i) => `${t} ${makeTexts(1 + (i % 4), i).join(' ')}`);
  const tea = createRequire(import.meta.url)(root);
  const out = { threads, documents, slots, model: 'synthetic reranker, MiniLM-L6 shape (F32)', tea: [], server: [] };
  for (let run = 1; run <= runs; run++) {
    const order = run % 2 === 1 ? ['tea', 'server'] : ['server', 'tea'];
    for (const who of order) {
      log(`[bench] rerank run ${run}/${runs}: ${who}`);
      if (who === 'tea') {
        const m = await tea.loadModel(model, { threads, embeddingContextSize: BATCH });
        try {
          out.tea.push(await rate(docs, (d) => m.rerank(QUERY, d)));
        } finally {
          await m.dispose();
        }
      } else {
        const server = await startLlamaServer(model, ['--reranking', '-t', String(threads), '-c', String(slots * 512), '-np', String(slots), '-b', String(BATCH), '-ub', String(BATCH)]);
        try {
          out.server.push(await rate(docs, (d) => server.post('/v1/rerank', { query: QUERY, documents: d })));
        } finally {
          await server.stop();
        }
      }
    }
  }
  out.ratio = median(out.tea) / median(out.server);
  return out;
}

/** The report's section. */
export function renderRerank(r) {
  const f = (v) => v.toFixed(0);
  return [
    '## Reranking',
    '',
    `One query against ${r.documents} documents on a ${r.model}, ${r.threads} threads, ${r.tea.length} runs: tea-llama \`rerank()\` in-process against \`llama-server --reranking\` \`/v1/rerank\` (${r.slots ?? SLOTS} slots), documents/s (median of ${REPS} calls per run).`,
    '',
    '| contender | documents/s (median) | runs |',
    '| --- | --: | --- |',
    `| tea-llama | ${f(median(r.tea))} | ${r.tea.map(f).join(', ')} |`,
    `| llama-server | ${f(median(r.server))} | ${r.server.map(f).join(', ')} |`,
    '',
    `Ratio tea-llama / llama-server: **${r.ratio.toFixed(2)}** (target ≥ 1.0).`,
    '',
  ].join('\n');
}

const isMain = process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url);
if (isMain) {
  const r = await rerankScenario({ threads: Number(argValue('threads', 2)), runs: Number(argValue('runs', 3)), documents: Number(argValue('documents', 64)), slots: Number(argValue('slots', SLOTS)), log: (l) => console.error(l) });
  process.stdout.write(renderRerank(r));
}
