import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

import { describe, expect, it } from 'vitest';

import { cacheDir, haveModel, modelPath, STORIES } from '../support/models';

// Mutated and truncated LoRA adapter files (the project's GGUF mutator over an adapter made by
// scripts/synthetic-lora.mjs), each loaded into stories260K and, when it loads, used, in child processes: every case
// ends in a typed error or works; none crashes the process. TEA_LORA_FUZZ_CASES sets the random cases (default 150).

const CODES = new Set(['ERR_LORA_INVALID', 'ERR_MODEL_NOT_FOUND', 'ERR_NUMERIC', 'ERR_INVALID_ARGUMENT', 'ERR_DECODE']);

describe.runIf(haveModel(STORIES))('LoRA adapter fuzz', () => {
  it('truncated and mutated adapters give typed errors, never a crash or a hang', async () => {
    // @ts-expect-error plain ESM scripts without type declarations
    const { ensureSyntheticLora } = await import('../../scripts/synthetic-lora.mjs');
    // @ts-expect-error plain ESM scripts without type declarations
    const { runInChildren } = await import('./fuzz/child-runner.mjs');
    // @ts-expect-error plain ESM scripts without type declarations
    const { GgufFuzzer } = await import('./fuzz/gguf-mutator.mjs');
    const { readFileSync } = await import('node:fs');
    const adapter: string = await ensureSyntheticLora({ base: modelPath(STORIES), out: resolve(cacheDir, 'models', 'lora-stories260K-s1.gguf'), seed: 1 });
    const fuzzer = new GgufFuzzer([{ name: 'adapter', path: adapter, vocabOnly: false, buffer: readFileSync(adapter) }], 1);
    const random = Number(process.env.TEA_LORA_FUZZ_CASES ?? 150);
    const indices = Array.from({ length: fuzzer.systematicCount + random }, (_, i) => i);
    const tmpDir = mkdtempSync(join(tmpdir(), 'tea-lora-fuzz-'));
    const outcomes: Record<string, number> = {};
    const findings: unknown[] = [];
    try {
      await runInChildren({
        name: 'lora-fuzz',
        script: resolve(__dirname, 'fuzz', 'lora-child.mjs'),
        indices,
        batchSize: 100,
        parallel: 1,
        caseTimeoutMs: 30_000,
        addressSpaceMb: 4096,
        job: (batch: number[]) => ({ seed: 1, base: modelPath(STORIES), adapter, indices: batch, tmpDir }),
        onDone: (line: { i: number; stage: string; result: string }, start: { d?: string } | undefined) => {
          outcomes[line.result] = (outcomes[line.result] ?? 0) + 1;
          if (line.result !== 'ok' && !CODES.has(line.result)) findings.push({ ...line, d: start?.d });
        },
        onDeath: (death: unknown) => findings.push(death),
      });
    } finally {
      rmSync(tmpDir, { recursive: true, force: true });
    }
    expect(findings).toEqual([]);
    expect(Object.values(outcomes).reduce((a, b) => a + b, 0)).toBe(indices.length);
    // Both kinds happened: some mutations are refused, some still load and run.
    expect(outcomes.ERR_LORA_INVALID).toBeGreaterThan(0);
    expect(outcomes.ok).toBeGreaterThan(0);
  }, 600_000);
});
