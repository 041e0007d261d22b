#!/usr/bin/env node
// The measuring half of bench/gpu-check.sh (which builds first): run with the build in build/ as it is.
//
//   node bench/gpu-check.mjs reference OUT.json MODEL...   greedy texts with every layer on the CPU (gpuLayers 0)
//   node bench/gpu-check.mjs check REF.json OUT.md MODEL...  greedy texts fully offloaded (gpuLayers -1) compared
//                                                            with REF.json; tg/pp against llama-bench -ngl 99;
//                                                            8 clients against llama-server -np 8 -ngl 99
//
// Every figure goes to OUT.md with the command that produced it.
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { basename } from 'node:path';

import { startLlamaServer, toolPath } from '../scripts/llama-server-harness.mjs';

const require = createRequire(import.meta.url);
const { loadModel } = require('../dist/cjs/index.js');

const PROMPTS = ['Once upon a time', 'The little dog', 'Lily wanted to'];
const TOKENS = 64;
const THREADS = Math.min(8, availableParallelism());

async function greedy(model, gpuLayers) {
  const m = await loadModel(model, { gpuLayers, contextSize: 1024, threads: THREADS });
  try {
    const texts = [];
    for (const p of PROMPTS) texts.push((await m.complete(p, { maxTokens: TOKENS, temperature: 0 })).text);
    return texts;
  } finally {
    await m.dispose();
  }
}

/** Index of the first differing character, or -1. */
function firstDifference(a, b) {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return a.length === b.length ? -1 : n;
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** tea-llama's tg128 and pp512 (tokens/s, medians of 3), fully offloaded. */
async function teaSpeed(model) {
  const m = await loadModel(model, { gpuLayers: -1, contextSize: 1024, batchSize: 512, threads: THREADS, sequences: 1 });
  try {
    const words = 'the cat sat on the mat and looked at the little dog who ran '.repeat(60);
    const tokens = m.tokenize(words).slice(0, 511);
    const prompt = m.detokenize(tokens);
    const tg = [];
    const pp = [];
    for (let r = 0; r < 3; r++) {
      const g = await m.complete('Once upon a time', { maxTokens: 128, temperature: 0 });
      tg.push(g.timings.tokensPerSecond);
      // A different first token each time: no KV cells reused from the previous repetition.
      const p = await m.complete(`${r + 1}. ${prompt}`, { maxTokens: 1, temperature: 0 });
      pp.push(p.timings.promptTokensPerSecond);
    }
    return { tg: median(tg), pp: median(pp) };
  } finally {
    await m.dispose();
  }
}

function benchSpeed(model) {
  const args = ['-m', model, '-ngl', '99', '-p', '512', '-n', '128', '-r', '3', '-t', String(THREADS), '-o', 'json'];
  const rows = JSON.parse(execFileSync(toolPath('llama-bench'), args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }));
  const of = (kind) => rows.find((r) => (kind === 'pp' ? r.n_prompt > 0 && r.n_gen === 0 : r.n_gen > 0 && r.n_prompt === 0))?.avg_ts;
  return { tg: of('tg'), pp: of('pp'), command: `llama-bench ${args.join(' ')}` };
}

/** Aggregate tokens/s of 8 clients generating 128 tokens each at once. */
async function teaServing(model) {
  const m = await loadModel(model, { gpuLayers: -1, contextSize: 8 * 256, threads: THREADS, sequences: 8 });
  try {
    const round = () => Promise.all(PROMPTS.concat(PROMPTS, PROMPTS).slice(0, 8).map((p, k) => m.complete(`${p} ${k}`, { maxTokens: 128, temperature: 0 })));
    await round(); // warm-up (GPU kernels, graph allocation), not timed
    const started = performance.now();
    const results = await round();
    const tokens = results.reduce((s, r) => s + r.completionTokens, 0);
    return tokens / ((performance.now() - started) / 1000);
  } finally {
    await m.dispose();
  }
}

async function serverServing(model) {
  const args = ['-ngl', '99', '-np', '8', '-c', String(8 * 256), '--kv-unified', '-t', String(THREADS)];
  const server = await startLlamaServer(model, args, { timeoutMs: 300_000 });
  try {
    const round = () =>
      Promise.all(PROMPTS.concat(PROMPTS, PROMPTS).slice(0, 8).map((p, k) => server.post('/completion', { prompt: `${p} ${k}`, n_predict: 128, temperature: 0, cache_prompt: false })));
    await round(); // warm-up, as for tea-llama
    const started = performance.now();
    const answers = await round();
    const tokens = answers.reduce((s, a) => s + a.tokens_predicted, 0);
    return { rate: tokens / ((performance.now() - started) / 1000), command: `llama-server -m ${model} ${args.join(' ')}` };
  } finally {
    await server.stop();
  }
}

const fmt = (x) => (x === undefined || x === null || Number.isNaN(x) ? '—' : x >= 100 ? x.toFixed(0) : x.toFixed(1));

const [mode, file, ...rest] = process.argv.slice(2);
if (mode === 'reference') {
  const out = {};
  for (const model of rest) out[model] = await greedy(model, 0);
  writeFileSync(file, JSON.stringify(out, null, 2));
  console.error(`[gpu-check] CPU reference texts of ${rest.length} models in ${file}`);
} else if (mode === 'check') {
  const [report, ...models] = rest;
  const reference = JSON.parse(readFileSync(file, 'utf8'));
  const lines = [];
  let failed = false;
  for (const model of models) {
    const name = basename(model);
    const texts = await greedy(model, -1);
    texts.forEach((t, k) => {
      const at = firstDifference(t, reference[model][k]);
      if (at >= 0) failed = true;
      lines.push(`- ${name}, "${PROMPTS[k]}": ${at < 0 ? `greedy text equal to the CPU build's (${t.length} characters)` : `DIFFERS from the CPU build's at character ${at}`}`);
    });
    const tea = await teaSpeed(model);
    const bench = benchSpeed(model);
    const serving = await teaServing(model);
    const server = await serverServing(model);
    lines.push(
      `- ${name}: tg128 ${fmt(tea.tg)} tok/s (llama-bench ${fmt(bench.tg)}, ${fmt(tea.tg / bench.tg)}×), pp512 ${fmt(tea.pp)} tok/s ` +
        `(llama-bench ${fmt(bench.pp)}, ${fmt(tea.pp / bench.pp)}×); 8 clients × 128 tokens: ${fmt(serving)} tok/s ` +
        `(llama-server -np 8: ${fmt(server.rate)}, ${fmt(serving / server.rate)}×)`,
      `  - \`${bench.command}\``,
      `  - \`${server.command}\``,
    );
  }
  let gpu = 'none (nvidia-smi failed: a dry run on the CPU)';
  try {
    gpu = execFileSync('nvidia-smi', ['--query-gpu=name,compute_cap,memory.total,driver_version', '--format=csv,noheader'], { encoding: 'utf8' }).trim();
  } catch {
    // keep the dry-run note
  }
  const text = `# bench/gpu-check.sh, ${new Date().toISOString()}\n\nGPU: ${gpu}; ${THREADS} threads\n\n${lines.join('\n')}\n`;
  writeFileSync(report, text);
  process.stdout.write(text);
  process.exitCode = failed ? 1 : 0;
} else {
  console.error('usage: node bench/gpu-check.mjs reference OUT.json MODEL... | check REF.json OUT.md MODEL...');
  process.exitCode = 2;
}
