import { LlamaError } from './errors';
import type { GgufFile, GgufMetadataValue } from './gguf';

// llama.cpp checks some hyperparameters with GGML_ASSERT, which aborts the whole process on a bad value
// (llama-model.cpp, load_hparams). These mirror those asserts so such a file is an ERR_MODEL_INVALID instead.
const MAX_LAYERS = 512; // LLAMA_MAX_LAYERS
const MAX_EXPERTS = 1024; // LLAMA_MAX_EXPERTS

function numbers(value: GgufMetadataValue | undefined): number[] | undefined {
  if (value === undefined) return undefined;
  if (typeof value === 'number' || typeof value === 'bigint') return [Number(value)];
  if (Array.isArray(value) || ArrayBuffer.isView(value)) return Array.from(value as ArrayLike<number | bigint>, Number);
  return undefined;
}

/** Rejects hyperparameters that would trip an assert inside llama.cpp's loader. */
export function checkHyperparameters(file: GgufFile, path: string): void {
  const arch = file.metadata['general.architecture'];
  if (typeof arch !== 'string') return; // llama.cpp reports a missing architecture as a normal error
  const get = (key: string) => numbers(file.metadata[`${arch}.${key}`]);
  const fail = (message: string): never => {
    throw new LlamaError('ERR_MODEL_INVALID', `${path}: ${message}`);
  };
  const first = (key: string, fallback: number) => get(key)?.[0] ?? fallback;

  const layers = first('block_count', Number.NaN);
  if (get('block_count') !== undefined && !(layers > 0 && layers <= MAX_LAYERS)) {
    fail(`${arch}.block_count is ${layers}; llama.cpp supports 1 to ${MAX_LAYERS}`);
  }
  for (const key of ['nextn_predict_layers', 'posnet.block_count', 'convnext.block_count']) {
    const n = first(key, 0);
    if (n < 0 || (Number.isFinite(layers) && n > layers)) fail(`${arch}.${key} is ${n}, more than block_count ${layers}`);
  }
  const experts = first('expert_count', 0);
  if (experts < 0 || experts > MAX_EXPERTS) fail(`${arch}.expert_count is ${experts}; llama.cpp supports at most ${MAX_EXPERTS}`);
  const used = Math.max(0, ...(get('expert_used_count') ?? [0]));
  if (used > experts) fail(`${arch}.expert_used_count is ${used}, more than expert_count ${experts}`);
  if (experts > 0) {
    if (used === 0) fail(`${arch}.expert_used_count must be set when expert_count is ${experts}`);
    const groups = first('expert_group_count', 0);
    if (groups >= experts) fail(`${arch}.expert_group_count ${groups} must be below expert_count ${experts}`);
    if (groups > 1 && (experts % groups !== 0 || first('expert_group_used_count', 0) <= 0)) {
      fail(`${arch}.expert_group_count ${groups} does not divide expert_count ${experts} or no group is used`);
    }
  }
}
