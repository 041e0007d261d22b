#!/usr/bin/env node
// Fuzzing of constrained output: seeded GBNF grammars and JSON schemas (grammar-mutator.mjs: malformed grammars,
// deep nesting, huge repetition counts, $ref cycles, unsupported keywords, the valid ones mutated), each given to a
// short generation in child processes, so that a crash inside llama.cpp's grammar parser or schema converter is a
// finding instead of a lost run.
//
//   node test/reliability/fuzz/run-grammar-fuzz.mjs                      # 300 cases, seed 1
//   TEA_GRAMMAR_FUZZ_CASES=20000 node test/reliability/fuzz/run-grammar-fuzz.mjs
//   node test/reliability/fuzz/run-grammar-fuzz.mjs --seed 3 --case 17 --print   # show one case
//
// Needs dist/ (npm run build:ts), the native addon and ../shared/models/stories260K.gguf (or TEA_TEST_MODELS_DIR).
// Per case: a time limit (a hang), an address-space cap (ulimit -v) and the child's peak resident memory.
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { cliArg, runFuzzCampaign } from './child-runner.mjs';
import { GrammarFuzzer } from './grammar-mutator.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const repoRoot = resolve(here, '..', '..', '..');
const CHILD = join(here, 'grammar-child.mjs');

/** What a fuzzed grammar or schema may end in. Anything else (untyped, internal, out of memory) is a finding. */
export const EXPECTED_GRAMMAR_CODES = new Set(['ERR_INVALID_GRAMMAR', 'ERR_INVALID_SCHEMA']);

export const DEFAULT_MODEL = join(process.env.TEA_TEST_MODELS_DIR ?? resolve(repoRoot, '..', 'shared', 'models'), 'stories260K.gguf');

export function runGrammarFuzz({
  seed = 1, cases = 300, model = DEFAULT_MODEL,
  ...campaign
} = {}) {
  return runFuzzCampaign({ name: 'grammar fuzz', script: CHILD, expected: EXPECTED_GRAMMAR_CODES, seed, cases, ...campaign, job: (batch) => ({ seed, model, indices: batch }) });
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const seed = Number(cliArg('--seed') ?? process.env.TEA_GRAMMAR_FUZZ_SEED ?? 1);
  if (cliArg('--case') !== undefined && process.argv.includes('--print')) {
    const c = new GrammarFuzzer(seed).case(Number(cliArg('--case')));
    process.stdout.write(`${c.kind}: ${c.description}\n${JSON.stringify(c.options).slice(0, 4000)}\n`);
  } else {
    const cases = Number(process.env.TEA_GRAMMAR_FUZZ_CASES ?? 300);
    const report = await runGrammarFuzz({ seed, cases, log: (m) => process.stderr.write(`${m}\n`) });
    process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    process.exit(report.crashes.length + report.hangs.length + report.unexpected.length + report.oversized.length > 0 ? 1 : 0);
  }
}
