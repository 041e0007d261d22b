import { resolve } from 'node:path';

import { toolPath } from './llama-server';
import { cacheDir, haveModel, modelPath, PHI3_VOCAB } from './models';

export type Preset = 'tiny' | '130m' | '1b';

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
