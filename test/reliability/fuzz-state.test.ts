import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import { loadModel } from '../../lib';
import { haveModel, modelPath, STORIES } from '../support/models';
import { figure } from './helpers';
// @ts-expect-error plain ESM modules without type declarations
import { fixChecksum } from './fuzz/state-mutator.mjs';
// @ts-expect-error plain ESM modules without type declarations
import { runStateFuzz } from './fuzz/run-state-fuzz.mjs';

// Fuzzing of saved state files (issue 16): a real state file of stories260K mutated (test/reliability/fuzz/
// state-mutator.mjs: truncations, changed bytes with and without a valid checksum, header fields, llama.cpp's
// cell table and row headers at edge values, bytes appended or cut), each restored in child processes and followed
// by a short generation. Each must restore or be a typed error: no crash, no hang, no untyped error, bounded
// memory. TEA_STATE_FUZZ_CASES sets the number of cases, TEA_STATE_FUZZ_SEED the seed.

const SEED = Number(process.env.TEA_STATE_FUZZ_SEED ?? 1);
const CASES = Number(process.env.TEA_STATE_FUZZ_CASES ?? 400);
const PROMPT = 'Once upon a time, there was a little dog named Max.';

const dir = mkdtempSync(join(process.platform === 'linux' ? '/dev/shm' : tmpdir(), 'tea-state-fuzz-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe.runIf(haveModel(STORIES))('fuzzing state files', () => {
  it(`${CASES} mutated state files (seed ${SEED}) restored in child processes: each restores or is a typed error`, async () => {
    const model = await loadModel(modelPath(STORIES), { contextSize: 256, threads: 1, sequences: 2 });
    const base = join(dir, 'base.state');
    try {
      const r = await model.complete(PROMPT, { maxTokens: 16, temperature: 0 });
      await model.saveState(base, { sequence: r.sequence! });
      // The mutator's checksum is the native one: a file re-checksummed unchanged still loads.
      const copy = join(dir, 'copy.state');
      writeFileSync(copy, fixChecksum(Buffer.from(readFileSync(base))));
      expect((await model.loadState(copy)).tokens).toBe(r.promptTokens + r.completionTokens - 1);
    } finally {
      await model.dispose();
    }
    const report = await runStateFuzz({ seed: SEED, cases: CASES, base, dir, prompt: PROMPT, model: modelPath(STORIES), log: (m: string) => figure(m) });
    figure(`state fuzz: ${report.done} cases in ${report.elapsedMs} ms, outcomes ${JSON.stringify(report.outcomes)}, kinds ${JSON.stringify(report.kinds)}, peak RSS ${report.peakRssMb} MB`);
    expect(report.crashes).toEqual([]);
    expect(report.hangs).toEqual([]);
    expect(report.unexpected).toEqual([]);
    expect(report.oversized).toEqual([]);
    expect(report.done).toBe(CASES);
    for (const kind of ['truncate-boundary', 'flip', 'flip-valid', 'header-field', 'cell-table', 'rows', 'append', 'cut-payload', 'tokens']) expect(report.kinds[kind], kind).toBeGreaterThan(0);
    expect(report.outcomes.ERR_INVALID_STATE).toBeGreaterThan(0);
    expect(report.outcomes.ok).toBeGreaterThan(0);
  }, 600_000);
});
