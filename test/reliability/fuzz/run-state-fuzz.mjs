#!/usr/bin/env node
// Fuzzing of saved state files (issue 16): seeded mutations of a real state file (state-mutator.mjs), each
// restored by loadState() in child processes and followed by a short generation, so that a crash inside
// llama.cpp's state reader is a finding instead of a lost run.
//
//   node test/reliability/fuzz/run-state-fuzz.mjs --base file.state     # 400 cases, seed 1
//   TEA_STATE_FUZZ_CASES=20000 node test/reliability/fuzz/run-state-fuzz.mjs --base file.state
//
// Needs dist/ (npm run build:ts), the native addon and stories260K.gguf. The base file is a state saved from
// stories260K with a context of at most 256 tokens (the fuzz test makes it).
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { cliArg, runFuzzCampaign } from './child-runner.mjs';
import { DEFAULT_MODEL } from './run-grammar-fuzz.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const CHILD = join(here, 'state-child.mjs');

/**
 * What a mutated state file may end in: rejected (ERR_INVALID_STATE, ERR_CONTEXT_OVERFLOW for a token count past
 * the context), restored and generating, or a model that computes NaN from cells whose rows were changed
 * (ERR_NUMERIC). Anything else (untyped, internal, a crash) is a finding.
 */
export const EXPECTED_STATE_CODES = new Set(['ERR_INVALID_STATE', 'ERR_CONTEXT_OVERFLOW', 'ERR_NUMERIC']);

export function runStateFuzz({
  seed = 1, cases = 400, base, dir, prompt, model = DEFAULT_MODEL, batchSize = 200,
  ...campaign
} = {}) {
  return runFuzzCampaign({ name: 'state fuzz', script: CHILD, expected: EXPECTED_STATE_CODES, seed, cases, batchSize, ...campaign, job: (batch) => ({ seed, model, base, dir, prompt, indices: batch }) });
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const base = resolve(cliArg('--base'));
  const report = await runStateFuzz({
    seed: Number(cliArg('--seed') ?? process.env.TEA_STATE_FUZZ_SEED ?? 1),
    cases: Number(process.env.TEA_STATE_FUZZ_CASES ?? 400),
    base,
    dir: dirname(base),
    prompt: cliArg('--prompt') ?? 'Once upon a time',
    log: (m) => process.stderr.write(`${m}\n`),
  });
  process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  process.exit(report.crashes.length + report.hangs.length + report.unexpected.length + report.oversized.length > 0 ? 1 : 0);
}
