#!/usr/bin/env node
// Fuzzing of chat templates: seeded cases (template-mutator.mjs: recursion, nesting, loops, huge literals, filters
// on wrong types, the real templates mutated), rendered in child processes so that a crash inside llama.cpp's Jinja
// engine is a finding instead of a lost run.
//
//   node test/reliability/fuzz/run-template-fuzz.mjs                      # 400 cases, seed 1
//   TEA_TEMPLATE_FUZZ_CASES=20000 node test/reliability/fuzz/run-template-fuzz.mjs
//   node test/reliability/fuzz/run-template-fuzz.mjs --seed 3 --case 17 --print   # show one case's template
//
// Needs dist/ (npm run build:ts), the native addon and ../shared/models/stories260K.gguf (or TEA_TEST_MODELS_DIR).
// Per case: a time limit (a hang), an address-space cap (ulimit -v) and the child's peak resident memory.
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { cliArg, runFuzzCampaign } from './child-runner.mjs';
import { TemplateFuzzer } from './template-mutator.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const repoRoot = resolve(here, '..', '..', '..');
const CHILD = join(here, 'template-child.mjs');

/** What a fuzzed template may end in. Anything else (untyped, internal, out of memory) is a finding. */
export const EXPECTED_TEMPLATE_CODES = new Set(['ERR_TEMPLATE', 'ERR_TEMPLATE_UNSUPPORTED', 'ERR_TEMPLATE_NOT_FOUND']);

export const TEMPLATES_DIR = join(repoRoot, 'vendor', 'llama.cpp', 'models', 'templates');
export const DEFAULT_MODEL = join(process.env.TEA_TEST_MODELS_DIR ?? resolve(repoRoot, '..', 'shared', 'models'), 'stories260K.gguf');

export function runTemplateFuzz({
  seed = 1,
  cases = 400,
  model = DEFAULT_MODEL,
  templatesDir = TEMPLATES_DIR,
  // The default maxDepth (what the stack must hold) with shorter loops, so that a run fits CI.
  limits = { maxSteps: 200_000, timeoutMs: 2000 },
  ...campaign
} = {}) {
  return runFuzzCampaign({ name: 'template fuzz', script: CHILD, expected: EXPECTED_TEMPLATE_CODES, seed, cases, ...campaign, job: (batch) => ({ seed, model, templatesDir, indices: batch, limits }) });
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const seed = Number(cliArg('--seed') ?? process.env.TEA_TEMPLATE_FUZZ_SEED ?? 1);
  if (cliArg('--case') !== undefined && process.argv.includes('--print')) {
    process.stdout.write(`${new TemplateFuzzer(TEMPLATES_DIR, seed).case(Number(cliArg('--case'))).template}\n`);
  } else {
    const cases = Number(process.env.TEA_TEMPLATE_FUZZ_CASES ?? 400);
    const report = await runTemplateFuzz({ seed, cases, log: (m) => process.stderr.write(`${m}\n`) });
    process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    process.exit(report.crashes.length + report.hangs.length + report.unexpected.length + report.oversized.length > 0 ? 1 : 0);
  }
}
