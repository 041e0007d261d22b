import { resolve } from 'node:path';

import { toolPath } from './llama-server';
import { cacheDir, haveModel, modelPath, PHI3_VOCAB, repoRoot } from './models';

export type Preset = 'micro' | 'tiny' | '130m' | '1b';

/**
 * A llama-architecture model with random weights and the real phi-3 tokenizer and chat template, quantized by
 * the vendored llama-quantize; made once into .cache/models by scripts/synthetic-model.mjs.
 */
export async function syntheticModel(preset: Preset, quant: 'F16' | 'Q8_0' | 'Q4_K_M'): Promise<string> {
  haveModel(PHI3_VOCAB);
  // @ts-expect-error plain ESM script without type declarations
  const { ensureSyntheticModel } = await import('../../scripts/synthetic-model.mjs');
  return ensureSyntheticModel({
    preset,
    quant,
    vocab: modelPath(PHI3_VOCAB),
    cacheDir: resolve(cacheDir, 'models'),
    quantizeBin: toolPath('llama-quantize'),
    seed: 1,
  }) as Promise<string>;
}

export const BERT_VOCAB = 'ggml-vocab-bert-bge.gguf';
/** llama.cpp's own StarCoder vocabulary: it has FIM prefix/suffix/middle, repository and file separator tokens. */
export const STARCODER_VOCAB = resolve(repoRoot, 'vendor', 'llama.cpp', 'models', 'ggml-vocab-starcoder.gguf');

/**
 * A BERT reranker (classifier head, rank pooling) with random weights and the real bert-bge tokenizer; `template`:
 * with a rerank prompt template in its metadata. Made once into .cache/models by scripts/synthetic-model.mjs.
 */
export async function syntheticReranker(template = false): Promise<string> {
  haveModel(BERT_VOCAB);
  // @ts-expect-error plain ESM script without type declarations
  const { ensureSyntheticReranker } = await import('../../scripts/synthetic-model.mjs');
  return ensureSyntheticReranker({ vocab: modelPath(BERT_VOCAB), cacheDir: resolve(cacheDir, 'models'), seed: 1, template }) as Promise<string>;
}

/** The smallest llama-architecture model with the StarCoder tokenizer (FIM tokens), F16. */
export async function syntheticFimModel(): Promise<string> {
  // @ts-expect-error plain ESM script without type declarations
  const { ensureSyntheticModel } = await import('../../scripts/synthetic-model.mjs');
  return ensureSyntheticModel({ preset: 'micro', quant: 'F16', vocab: STARCODER_VOCAB, cacheDir: resolve(cacheDir, 'models'), seed: 1 }) as Promise<string>;
}
