import { LlamaError } from './errors';
import { GgmlType, type GgufFile, type GgufMetadataValue } from './gguf';

// llama.cpp checks some hyperparameters with GGML_ASSERT, which aborts the whole process on a bad value
// (llama-model.cpp, load_hparams), and trusts others until a compute kernel asserts on them or reads out of
// bounds. These checks mirror those asserts so such a file is an ERR_MODEL_INVALID instead. Several were found by
// the fuzz tests (test/reliability/fuzz-gguf.test.ts); each has a regression case there.
const MAX_LAYERS = 512; // LLAMA_MAX_LAYERS
const MAX_EXPERTS = 1024; // LLAMA_MAX_EXPERTS
const ROPE_SCALING_TYPES = ['none', 'linear', 'yarn', 'longrope']; // LLAMA_ROPE_SCALING_TYPES
const MAX_POOLING_TYPE = 4; // LLAMA_POOLING_TYPE_RANK
/** Architectures whose graph output is <arch>.embedding_length_out wide (llama-context reads that many from any). */
const OWN_OUTPUT_WIDTH = new Set(['deepseek4', 'qwen4exp', 'gemma4-assistant', 'lfm2', 'lfm2moe']);
/** TENSOR_ALIGNMENT in ggml-backend: a memory-mapped tensor's data must start at a multiple of this. */
const TENSOR_ALIGNMENT = 32;
/** Types without a CPU dot product (ggml-cpu's type_traits_cpu has no vec_dot): a matrix multiplication with one crashes. */
const NOT_COMPUTABLE = new Set<number>([GgmlType.Q8_1, GgmlType.Q8_K, GgmlType.I8, GgmlType.I16, GgmlType.I32, GgmlType.I64, GgmlType.F64]);

function numbers(value: GgufMetadataValue | undefined): number[] | undefined {
  if (value === undefined) return undefined;
  if (typeof value === 'number' || typeof value === 'bigint') return [Number(value)];
  if (Array.isArray(value) || ArrayBuffer.isView(value)) return Array.from(value as ArrayLike<number | bigint>, Number);
  return undefined;
}

/** C strings: llama.cpp reads keys and string values up to their first NUL. */
const cString = (s: string) => s.split('\0', 1)[0]!;

/** A metadata value as llama.cpp finds it: the first entry whose key, read as a C string, matches. */
function lookup(file: GgufFile, key: string): GgufMetadataValue | undefined {
  if (key in file.metadata) return file.metadata[key];
  return file.entries.find((e) => cString(e.key) === key)?.value;
}

/** Rejects hyperparameters that would trip an assert inside llama.cpp's loader or its compute kernels. */
export function checkHyperparameters(file: GgufFile, path: string): void {
  const archValue = lookup(file, 'general.architecture');
  if (typeof archValue !== 'string') return; // llama.cpp reports a missing architecture as a normal error
  const arch = cString(archValue);
  const get = (key: string) => numbers(lookup(file, `${arch}.${key}`));
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
  const groups = first('expert_group_count', 0);
  if (experts > 0) {
    if (used === 0) fail(`${arch}.expert_used_count must be set when expert_count is ${experts}`);
    if (groups >= experts) fail(`${arch}.expert_group_count ${groups} must be below expert_count ${experts}`);
    const groupsUsed = first('expert_group_used_count', 0);
    if (groups > 1 && (experts % groups !== 0 || groupsUsed <= 0 || groupsUsed >= groups)) {
      fail(`${arch}.expert_group_count ${groups} does not divide expert_count ${experts}, or expert_group_used_count ${groupsUsed} is not between 1 and ${groups - 1}`);
    }
  } else if (groups !== 0) {
    fail(`${arch}.expert_group_count is ${groups} but the model has no experts`);
  }
  const scaling = lookup(file, `${arch}.rope.scaling.type`);
  if (typeof scaling === 'string' && !ROPE_SCALING_TYPES.includes(cString(scaling))) {
    fail(`${arch}.rope.scaling.type is ${JSON.stringify(scaling)}; llama.cpp knows ${ROPE_SCALING_TYPES.join(', ')}`);
  }
  // llama.cpp copies embedding_length_out values per output, but only some architectures make their output that
  // wide: elsewhere a larger value reads past the output tensor (ggml-backend: "tensor read out of bounds").
  const embd = first('embedding_length', Number.NaN);
  const embdOut = first('embedding_length_out', 0);
  if (embdOut !== 0 && embdOut !== embd && !OWN_OUTPUT_WIDTH.has(arch)) {
    fail(`${arch}.embedding_length_out is ${embdOut}, but a ${arch} model's output is embedding_length (${embd}) wide`);
  }
  // The graph builder aborts on a pooling type it does not know (llama-graph.cpp: "unknown pooling type").
  const pooling = get('pooling_type')?.[0];
  if (pooling !== undefined && !(Number.isInteger(pooling) && pooling >= 0 && pooling <= MAX_POOLING_TYPE)) {
    fail(`${arch}.pooling_type is ${pooling}; llama.cpp knows 0 to ${MAX_POOLING_TYPE} (none, mean, cls, last, rank)`);
  }
  // Normalization epsilons: ggml's norm kernels assert eps >= 0 while computing (so NaN fails too).
  for (const entry of file.entries) {
    const key = cString(entry.key);
    if (!key.startsWith(`${arch}.`) || !/epsilon$/.test(key)) continue;
    for (const eps of numbers(entry.value) ?? []) {
      if (!(eps >= 0)) fail(`${key} is ${eps}; a normalization epsilon must be a number >= 0`);
    }
  }
}

/** Rejects tensors llama.cpp would map or compute with in a way that crashes the process. */
export function checkTensors(file: GgufFile, path: string): void {
  const fail = (message: string): never => {
    throw new LlamaError('ERR_MODEL_INVALID', `${path}: ${message}`);
  };
  for (const t of file.tensors) {
    if ((file.dataOffset + t.offset) % TENSOR_ALIGNMENT !== 0) {
      fail(`tensor '${t.name}' data starts at byte ${file.dataOffset + t.offset} of the file, not a multiple of ${TENSOR_ALIGNMENT} (general.alignment is ${file.alignment})`);
    }
    if (NOT_COMPUTABLE.has(t.type)) fail(`tensor '${t.name}' has type ${t.typeName}, which llama.cpp cannot compute with`);
    // Vectors (norms, biases, scales) go into element-wise operations, which take F32 only.
    if (t.dims.slice(1).every((d) => d === 1) && t.type !== GgmlType.F32) fail(`tensor '${t.name}' is a vector of type ${t.typeName}; llama.cpp needs F32 vectors`);
  }
}
