import { describe, expect, it } from 'vitest';

import { haveModel, STORIES } from '../support/models';
import { figure } from './helpers';
// @ts-expect-error plain ESM modules without type declarations
import { runTemplateFuzz } from './fuzz/run-template-fuzz.mjs';

// Fuzzing of chat templates (issue 18): seeded cases of recursion, nesting, loops, huge literals, filters on wrong
// types and the real templates mutated (test/reliability/fuzz/template-mutator.mjs), rendered in child processes.
// Each must render or end in a template error: no crash, no hang, no untyped error, bounded memory.
// TEA_TEMPLATE_FUZZ_CASES sets the number of cases (a nightly job runs more), TEA_TEMPLATE_FUZZ_SEED the seed; one
// case is shown with `node test/reliability/fuzz/run-template-fuzz.mjs --seed <seed> --case <index> --print`.

const SEED = Number(process.env.TEA_TEMPLATE_FUZZ_SEED ?? 1);
const CASES = Number(process.env.TEA_TEMPLATE_FUZZ_CASES ?? 400);

interface TemplateFuzzReport {
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

describe.runIf(haveModel(STORIES))('fuzzing chat templates', () => {
  it(`${CASES} seeded templates (seed ${SEED}) rendered in child processes: each renders or is a template error`, async () => {
    const report: TemplateFuzzReport = await runTemplateFuzz({ seed: SEED, cases: CASES, log: (m: string) => figure(m) });
    figure(`template fuzz: ${report.done} cases in ${report.elapsedMs} ms, outcomes ${JSON.stringify(report.outcomes)}, kinds ${JSON.stringify(report.kinds)}, peak RSS ${report.peakRssMb} MB, slowest case ${report.slowest.index} (${report.slowest.ms} ms)`);
    expect(report.crashes).toEqual([]);
    expect(report.hangs).toEqual([]);
    expect(report.unexpected).toEqual([]);
    expect(report.oversized).toEqual([]);
    expect(report.done).toBe(CASES);
    // The cases reach every kind, and both the limits and the templates that render.
    for (const kind of ['recursion', 'nesting', 'loops', 'literals', 'filters', 'mutated']) expect(report.kinds[kind], kind).toBeGreaterThan(0);
    expect(report.outcomes.ERR_TEMPLATE).toBeGreaterThan(0);
    expect(report.outcomes.ok).toBeGreaterThan(0);
  }, 600_000);
});
