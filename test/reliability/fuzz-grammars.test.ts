import { describe, expect, it } from 'vitest';

import { haveModel, STORIES } from '../support/models';
import { figure } from './helpers';
// @ts-expect-error plain ESM modules without type declarations
import { runGrammarFuzz } from './fuzz/run-grammar-fuzz.mjs';

// Fuzzing of grammars and JSON schemas (issue 13): malformed GBNF, deep nesting, huge repetition counts, long
// alternations, left recursion, $ref cycles, unsupported keywords and the valid ones mutated
// (test/reliability/fuzz/grammar-mutator.mjs), each given to a short generation in child processes. Each must
// generate or end in ERR_INVALID_GRAMMAR / ERR_INVALID_SCHEMA: no crash, no hang, no untyped error, bounded memory.
// TEA_GRAMMAR_FUZZ_CASES sets the number of cases, TEA_GRAMMAR_FUZZ_SEED the seed; one case is shown with
// `node test/reliability/fuzz/run-grammar-fuzz.mjs --seed <seed> --case <index> --print`.

const SEED = Number(process.env.TEA_GRAMMAR_FUZZ_SEED ?? 1);
const CASES = Number(process.env.TEA_GRAMMAR_FUZZ_CASES ?? 300);

interface GrammarFuzzReport {
  done: number;
  outcomes: Record<string, number>;
  kinds: Record<string, number>;
  crashes: unknown[];
  hangs: unknown[];
  unexpected: unknown[];
  oversized: unknown[];
  peakRssMb: number;
  slowest: { index: number; ms: number };
  elapsedMs: number;
}

describe.runIf(haveModel(STORIES))('fuzzing grammars and JSON schemas', () => {
  it(`${CASES} seeded grammars and schemas (seed ${SEED}) in child processes: each generates or is a typed error`, async () => {
    const report: GrammarFuzzReport = await runGrammarFuzz({ seed: SEED, cases: CASES, log: (m: string) => figure(m) });
    figure(`grammar fuzz: ${report.done} cases in ${report.elapsedMs} ms, outcomes ${JSON.stringify(report.outcomes)}, kinds ${JSON.stringify(report.kinds)}, peak RSS ${report.peakRssMb} MB, slowest case ${report.slowest.index} (${report.slowest.ms} ms)`);
    expect(report.crashes).toEqual([]);
    expect(report.hangs).toEqual([]);
    expect(report.unexpected).toEqual([]);
    expect(report.oversized).toEqual([]);
    expect(report.done).toBe(CASES);
    for (const kind of ['gbnf-mutated', 'gbnf-deep', 'gbnf-repetition', 'schema-cycle', 'schema-unsupported', 'schema-mutated', 'schema-deep']) expect(report.kinds[kind], kind).toBeGreaterThan(0);
    expect(report.outcomes.ERR_INVALID_GRAMMAR).toBeGreaterThan(0);
    expect(report.outcomes.ERR_INVALID_SCHEMA).toBeGreaterThan(0);
    expect(report.outcomes.ok).toBeGreaterThan(0);
  }, 600_000);
});
