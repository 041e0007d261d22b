import { existsSync } from 'node:fs';
import { resolve } from 'node:path';

/** Repository root. */
export const repoRoot = resolve(__dirname, '..', '..');

/** Test models: TEA_TEST_MODELS_DIR, else ../shared/models beside the repository. */
export const modelsDir = process.env.TEA_TEST_MODELS_DIR ?? resolve(repoRoot, '..', 'shared', 'models');

/** Where tests generate synthetic models and other large artefacts (git-ignored). */
export const cacheDir = resolve(repoRoot, '.cache');

/**
 * True when integration tests must run: `.ci/run` sets TEA_REQUIRE_MODELS=1 so a missing model fails the run
 * instead of silently skipping it. On a user's machine without the models, those tests skip.
 */
export const strict = process.env.TEA_REQUIRE_MODELS === '1';

export function modelPath(name: string): string {
  return resolve(modelsDir, name);
}

/** Whether the named shared model is present; throws in strict mode when it is not. */
export function haveModel(name: string): boolean {
  const present = existsSync(modelPath(name));
  if (!present && strict) throw new Error(`test model ${modelPath(name)} is missing (TEA_REQUIRE_MODELS=1)`);
  return present;
}

export const STORIES = 'stories260K.gguf';
export const PHI3_VOCAB = 'ggml-vocab-phi-3.gguf';
export const TOKENIZER_VOCABS = ['ggml-vocab-phi-3.gguf', 'ggml-vocab-gpt-2.gguf', 'ggml-vocab-bert-bge.gguf'];

/** Eight story openings that stories260K continues differently (concurrency tests). */
export const STORY_PROMPTS = [
  'Once upon a time',
  'The little dog',
  'Lily wanted to',
  'One day, a big',
  'Tom and Sue went',
  'The sun was',
  'A cat sat on',
  'There was a girl',
];
