#!/usr/bin/env node
// Fuzzing of model files: seeded mutations of real GGUF files, each loaded (and, when it loads, used) in a child
// process so that a crash or an abort inside llama.cpp is detected instead of taking the test runner down.
//
//   node test/reliability/fuzz/run-fuzz.mjs                       # default run: systematic truncations + 2000 random cases
//   TEA_FUZZ_CASES=50000 node test/reliability/fuzz/run-fuzz.mjs  # nightly: more random cases (TEA_FUZZ_SEED to vary)
//   node test/reliability/fuzz/run-fuzz.mjs --seed 7 --case 1234 --write /tmp/x   # reproduce one case
//
// Needs dist/ (npm run build:ts) and the models in ../shared/models (or TEA_TEST_MODELS_DIR).
//
// Per case: a time limit (the child is killed and the case reported as a hang), an address-space cap on the child
// (ulimit -v: a lying header cannot make it allocate gigabytes; a failed allocation shows up as an error or a crash)
// and the child's peak resident memory after every case (reported; above rssLimitMb the case is a finding).

import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { runInChildren } from './child-runner.mjs';
import { GgufFuzzer } from './gguf-mutator.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const repoRoot = resolve(here, '..', '..', '..');
const CHILD = join(here, 'child.mjs');

/** Typed errors a mutated file may legitimately end in. Anything else (untyped, internal, out of memory) is a finding. */
export const EXPECTED_CODES = new Set([
  'ERR_MODEL_INVALID',
  'ERR_MODEL_VOCAB_ONLY',
  'ERR_CONTEXT_CREATE',
  'ERR_CONTEXT_OVERFLOW',
  'ERR_DECODE',
  'ERR_TEMPLATE_NOT_FOUND',
  'ERR_TEMPLATE_UNSUPPORTED',
  'ERR_INVALID_ARGUMENT',
  // pooling_type mutated to rank (4) on a model without a classifier head, which llama.cpp cannot serve.
  'ERR_MODEL_UNSUPPORTED',
  // Weights or metadata mutated into values that compute NaN/Inf (a byte flipped in a tensor, a type relaid out).
  'ERR_NUMERIC',
]);

export function defaultSources(modelsDir = process.env.TEA_TEST_MODELS_DIR ?? resolve(repoRoot, '..', 'shared', 'models')) {
  return [
    { name: 'stories260K.gguf', vocabOnly: false },
    { name: 'ggml-vocab-phi-3.gguf', vocabOnly: true },
    { name: 'ggml-vocab-gpt-2.gguf', vocabOnly: true },
    { name: 'ggml-vocab-bert-bge.gguf', vocabOnly: true },
  ].map((s) => ({ ...s, path: join(modelsDir, s.name) }));
}

/**
 * Runs a fuzz campaign and returns its report. Cases are split over `parallel` lanes; each lane runs batches of
 * `batchSize` cases per child process and starts a new child after a crash or a hang, from the next case.
 */
export async function runFuzz({
  sources = defaultSources(),
  seed = 1,
  randomCases = 2000,
  indices,
  parallel = Math.min(2, availableParallelism()),
  batchSize = 150,
  caseTimeoutMs = 30_000,
  addressSpaceMb = 4096,
  rssLimitMb = 512,
  log = () => undefined,
} = {}) {
  const started = performance.now();
  const fuzzer = new GgufFuzzer(
    sources.map((s) => ({ ...s, buffer: readFileSync(s.path) })),
    seed,
  );
  const all = indices ?? Array.from({ length: fuzzer.systematicCount + randomCases }, (_, i) => i);
  const tmpRoot = mkdtempSync(join(process.env.TEA_FUZZ_TMP ?? (process.platform === 'linux' ? '/dev/shm' : tmpdir()), 'tea-fuzz-'));
  const report = {
    seed,
    cases: all.length,
    systematic: Math.min(all.length, all.filter((i) => i < fuzzer.systematicCount).length),
    done: 0,
    outcomes: {},
    readerRejected: 0,
    reachedLlama: 0,
    llamaRejected: 0,
    loaded: 0,
    worked: 0,
    regressions: [],
    crashes: [],
    hangs: [],
    unexpected: [],
    oversized: [],
    childProcesses: 0,
    peakRssMb: 0,
    slowestCase: { index: -1, ms: 0 },
    largestRssStep: { index: -1, mb: 0, description: '' },
    elapsedMs: 0,
  };
  const finding = (list, item) => {
    list.push(item);
    log(`FINDING ${JSON.stringify(item)}`);
  };

  function record(line) {
    report.done++;
    const key = line.result === 'ok' ? 'ok' : line.result;
    report.outcomes[key] = (report.outcomes[key] ?? 0) + 1;
    if (line.reader !== 'ok') report.readerRejected++;
    else {
      report.reachedLlama++;
      if (line.stage === 'load' && line.result !== 'ok') report.llamaRejected++;
    }
    if (line.stage !== 'load') report.loaded++;
    if (line.result === 'ok') report.worked++;
    const rssMb = line.rss / 1024;
    report.peakRssMb = Math.max(report.peakRssMb, rssMb);
    if (line.ms > report.slowestCase.ms) report.slowestCase = { index: line.i, ms: line.ms };
    const step = (line.rss - line.previousRss) / 1024;
    if (step > report.largestRssStep.mb) report.largestRssStep = { index: line.i, mb: Math.round(step), description: line.d };
    if (line.regression !== undefined) {
      report.regressions.push({ index: line.i, description: line.d, ok: line.regression === '', problem: line.regression || undefined });
      if (line.regression) log(`REGRESSION ${line.d}: ${line.regression}`);
    }
    const ok = line.result === 'ok' || EXPECTED_CODES.has(line.result);
    const readerOk = line.reader === 'ok' || line.reader === 'ERR_MODEL_INVALID';
    if (!ok || !readerOk) finding(report.unexpected, { index: line.i, source: line.source, description: line.d, stage: line.stage, result: line.result, reader: line.reader });
    // The peak only grows within a child: the case that pushed it over the bound is the finding.
    if (rssMb > rssLimitMb && line.previousRss / 1024 <= rssLimitMb) finding(report.oversized, { index: line.i, source: line.source, description: line.d, peakRssMb: Math.round(rssMb) });
  }

  try {
    await runInChildren({
      name: 'fuzz',
      script: CHILD,
      indices: all,
      batchSize,
      parallel,
      caseTimeoutMs,
      addressSpaceMb,
      job: (batch) => ({ seed, sources: sources.map(({ name, path, vocabOnly }) => ({ name, path, vocabOnly })), indices: batch, tmpDir: tmpRoot }),
      onSpawn: () => report.childProcesses++,
      onDone: (line, start, previousRss) => {
        record({ ...line, source: start?.source, d: start?.d, previousRss });
        if (report.done % 250 === 0) log(`${report.done}/${report.cases} cases, ${Math.round((performance.now() - started) / 1000)} s`);
      },
      onDeath: ({ start, lastIndex, exit, stderr, hung }) => {
        const item = {
          index: start ? start.i : lastIndex,
          source: start?.source,
          description: start ? start.d : 'after this case, between cases',
          exit,
          stderr,
        };
        if (hung) finding(report.hangs, { ...item, timeoutMs: caseTimeoutMs });
        else finding(report.crashes, item);
      },
    });
  } finally {
    rmSync(tmpRoot, { recursive: true, force: true });
  }
  report.peakRssMb = Math.round(report.peakRssMb);
  report.elapsedMs = Math.round(performance.now() - started);
  return report;
}

/** One line per figure, for logs and the closing note. */
export function summarize(r) {
  const outcomes = Object.entries(r.outcomes)
    .sort((a, b) => b[1] - a[1])
    .map(([k, v]) => `${k} ${v}`)
    .join(', ');
  return [
    `fuzz seed ${r.seed}: ${r.done}/${r.cases} cases (${r.systematic} fixed: ${r.regressions.length} regression cases and the truncations at every section boundary; ${r.cases - r.systematic} seeded random mutations) in ${(r.elapsedMs / 1000).toFixed(1)} s, ${r.childProcesses} child processes`,
    `  rejected by the TypeScript reader ${r.readerRejected}; reached llama.cpp ${r.reachedLlama} (refused by it or by the pre-flight ${r.llamaRejected}); loaded ${r.loaded}; loaded and worked ${r.worked}`,
    `  outcomes: ${outcomes}`,
    `  regression cases as expected ${r.regressions.filter((x) => x.ok).length}/${r.regressions.length}; crashes ${r.crashes.length}, hangs ${r.hangs.length}, unexpected outcomes ${r.unexpected.length}, over the memory bound ${r.oversized.length}; peak child RSS ${r.peakRssMb} MB (largest rise in one case ${r.largestRssStep.mb} MB, #${r.largestRssStep.index}); slowest case #${r.slowestCase.index} ${r.slowestCase.ms} ms`,
  ].join('\n');
}

async function cli() {
  const args = process.argv.slice(2);
  const value = (name) => {
    const i = args.indexOf(name);
    return i >= 0 ? args[i + 1] : undefined;
  };
  const seed = Number(value('--seed') ?? process.env.TEA_FUZZ_SEED ?? 1);
  const randomCases = Number(value('--cases') ?? process.env.TEA_FUZZ_CASES ?? 2000);
  const parallel = Number(value('--parallel') ?? Math.min(2, availableParallelism()));
  const cases = args.flatMap((a, i) => (args[i - 1] === '--case' ? [Number(a)] : []));
  const write = value('--write');
  if (cases.length > 0) {
    // Reproduce: describe, optionally save, and run each case in this process (a crash shows its native message).
    const sources = defaultSources();
    const fuzzer = new GgufFuzzer(
      sources.map((s) => ({ ...s, buffer: readFileSync(s.path) })),
      seed,
    );
    const { runCase } = await import('./child.mjs');
    const { createRequire } = await import('node:module');
    const lib = createRequire(import.meta.url)('../../../dist/cjs/index.js');
    const dir = write ?? mkdtempSync(join(tmpdir(), 'tea-fuzz-case-'));
    mkdirSync(dir, { recursive: true });
    for (const index of cases) {
      const c = fuzzer.case(index);
      const path = join(dir, `seed${seed}-case${index}-${c.source}`);
      writeFileSync(path, c.buffer);
      console.log(`case ${index} (${c.source}${c.vocabOnly ? ', vocabOnly' : ''}): ${c.description}\n  file: ${path}`);
      console.log(`  outcome: ${JSON.stringify(await runCase(lib, path, c, index))}`);
    }
    return;
  }
  const report = await runFuzz({ seed, randomCases, parallel, log: (m) => console.error(m) });
  console.log(summarize(report));
  for (const kind of ['crashes', 'hangs', 'unexpected', 'oversized']) {
    for (const item of report[kind]) console.log(`${kind}: ${JSON.stringify(item)}`);
  }
  for (const item of report.regressions.filter((x) => !x.ok)) console.log(`regression: ${JSON.stringify(item)}`);
  const failed = report.crashes.length + report.hangs.length + report.unexpected.length + report.oversized.length + report.regressions.filter((x) => !x.ok).length;
  if (failed > 0) console.log(`reproduce one: node test/reliability/fuzz/run-fuzz.mjs --seed ${seed} --case <index>`);
  process.exitCode = failed > 0 ? 1 : 0;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === resolve(process.argv[1])) {
  cli().catch((error) => {
    console.error(error);
    process.exitCode = 2;
  });
}
