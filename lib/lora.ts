import { LlamaError } from './errors';
import { GgmlType, GgufValueType, readGguf, type GgufFile, type GgufTensorInfo } from './gguf';
import type { NativeLora } from './native/binding-types';
import { optionalNumber, requireObject } from './validate';

/**
 * A LoRA adapter loaded for one model ({@link LlamaModel.loadLora}, or `loadModel`'s `lora` option). Requests use it
 * through their `lora` option; it shares ownership with its model: a request or context still using it keeps it
 * alive after {@link LoraAdapter.dispose}, and disposing the model disposes its adapters.
 */
export class LoraAdapter {
  /** Absolute path of the adapter file. */
  readonly path: string;
  /** Its position in the model's `loras` (the id a request may use instead of the object, as llama-server's). */
  readonly id: number;
  /** `adapter.lora.alpha` (0: none, the scale is used as is; otherwise scale × alpha / rank). */
  readonly alpha: number;
  /** The adapter file's metadata (scalar values, as strings). */
  readonly metadata: Readonly<Record<string, string>>;
  /** @internal */
  readonly native: NativeLora;
  /** @internal The model it was loaded for. */
  readonly owner: object;

  /** @internal Use LlamaModel.loadLora(). */
  constructor(native: NativeLora, path: string, id: number, owner: object) {
    const info = native.info();
    this.native = native;
    this.path = path;
    this.id = id;
    this.alpha = info.alpha;
    this.metadata = Object.freeze({ ...info.metadata });
    this.owner = owner;
  }

  get disposed(): boolean {
    return this.native.disposed;
  }

  /** Releases this handle's share; the adapter's memory goes once no request or context uses it. Idempotent. */
  dispose(): void {
    this.native.dispose();
  }
}

/** One adapter of a request and its scale: a {@link LoraAdapter} of the model, or its id (position in `loras`). */
export interface LoraRequest {
  /** The adapter, or its id: its position in the model's `loras` (an API backend: the server's adapter id). */
  adapter: LoraAdapter | number;
  /** Multiplies the adapter's effect (llama-server's `scale`; 0 turns it off). Default 1. */
  scale?: number;
}

export interface ResolvedLora {
  adapter: LoraAdapter | number;
  scale: number;
}

/** Largest scale accepted: far beyond any useful one, small enough to stay finite in f32 through the graph. */
const MAX_SCALE = 1e6;

/** Validates a request's `lora` list (the adapters themselves are checked by the model they are used with). */
export function resolveLora(value: unknown, name = 'lora'): ResolvedLora[] | undefined {
  if (value === undefined) return undefined;
  if (!Array.isArray(value)) throw new LlamaError('ERR_INVALID_ARGUMENT', `${name} must be an array of { adapter, scale }`);
  if (value.length > 1024) throw new LlamaError('ERR_INVALID_ARGUMENT', `${name} lists ${value.length} adapters; at most 1024`);
  return value.map((item, i) => {
    const where = `${name}[${i}]`;
    const entry = requireObject(item, where);
    for (const key of Object.keys(entry)) {
      if (key !== 'adapter' && key !== 'scale') throw new LlamaError('ERR_INVALID_ARGUMENT', `unknown option '${key}' in ${where}; known options: adapter, scale`);
    }
    const adapter = entry.adapter;
    if (!(adapter instanceof LoraAdapter) && !(typeof adapter === 'number' && Number.isInteger(adapter) && adapter >= 0 && adapter <= 2 ** 31 - 1)) {
      throw new LlamaError('ERR_INVALID_ARGUMENT', `${where}.adapter must be a LoraAdapter or an adapter id (an integer >= 0)`);
    }
    return { adapter, scale: optionalNumber(entry.scale, `${where}.scale`, -MAX_SCALE, MAX_SCALE) ?? 1 };
  });
}

/** What LoRA tensors llama.cpp can compute with: the types llama.cpp's convert_lora_to_gguf.py writes. */
const LORA_TYPES = new Set<number>([GgmlType.F32, GgmlType.F16, GgmlType.BF16, GgmlType.Q8_0]);

/**
 * Checks an adapter file against the model's tensor table before llama.cpp sees it. llama_adapter_lora_init checks
 * names and the outer shapes; what it leaves out would abort the process in the first graph that uses the adapter
 * (a GGML_ASSERT in ggml_mul_mat): the rank of an embedding adapter, extra dimensions, types without a matrix
 * product. Throws ERR_LORA_INVALID.
 */
export async function checkLoraFile(path: string, architecture: string, modelTensors: ReadonlyMap<string, GgufTensorInfo>): Promise<void> {
  const fail = (message: string): never => {
    throw new LlamaError('ERR_LORA_INVALID', `${path}: ${message}`);
  };
  let file: GgufFile;
  try {
    file = await readGguf(path, { maxArrayLength: 1 << 20 });
  } catch (error) {
    const e = error as { code?: string; message?: string };
    if (e.code === 'ERR_MODEL_NOT_FOUND') throw new LlamaError('ERR_MODEL_NOT_FOUND', `LoRA adapter not found: ${path}`, { cause: error });
    return fail(`not a readable GGUF file: ${e.message ?? String(error)}`);
  }
  const meta = file.metadata;
  const show = (v: unknown) => (typeof v === 'string' ? JSON.stringify(v) : v === undefined ? 'missing' : 'not a string');
  if (meta['general.type'] !== 'adapter') fail(`general.type is ${show(meta['general.type'])}, not "adapter": this is not an adapter file`);
  if (meta['adapter.type'] !== 'lora') fail(`adapter.type is ${show(meta['adapter.type'])}, not "lora"`);
  if (meta['general.architecture'] !== architecture) {
    fail(`the adapter is for architecture ${show(meta['general.architecture'])}, the model is ${JSON.stringify(architecture)}`);
  }
  // llama.cpp reads it with gguf_get_val_f32, which aborts the process on any other type.
  const alpha = file.entries.find((e) => e.key === 'adapter.lora.alpha');
  if (alpha !== undefined && (alpha.type !== GgufValueType.FLOAT32 || !Number.isFinite(alpha.value))) fail('adapter.lora.alpha must be a finite FLOAT32');
  const pairs = new Map<string, { a?: GgufTensorInfo; b?: GgufTensorInfo }>();
  for (const t of file.tensors) {
    const m = /^(.*)\.lora_([ab])$/.exec(t.name);
    if (!m) {
      if (t.name.endsWith('_norm.weight')) continue;  // llama.cpp skips these
      fail(`tensor '${t.name}' is neither a .lora_a nor a .lora_b tensor`);
    }
    if (!LORA_TYPES.has(t.type)) fail(`tensor '${t.name}' has type ${t.typeName}; LoRA tensors must be F32, F16, BF16 or Q8_0`);
    const pair = pairs.get(m![1]!) ?? {};
    pair[m![2] as 'a' | 'b'] = t;
    pairs.set(m![1]!, pair);
  }
  if (pairs.size === 0) fail('the adapter has no LoRA tensors');
  const dim = (t: GgufTensorInfo, i: number) => t.dims[i] ?? 1;
  for (const [base, { a, b }] of pairs) {
    if (!a || !b) fail(`the LoRA pair of '${base}' lacks its ${a ? 'lora_b' : 'lora_a'} tensor`);
    const w = modelTensors.get(base) ?? fail(`'${base}' is not a tensor of the model (an adapter of another model?)`);
    const shape = (t: GgufTensorInfo) => `[${t.dims.join(', ')}]`;
    const mismatch = () => fail(`the LoRA pair of '${base}' has shapes ${shape(a!)} and ${shape(b!)}, which do not fit the model's ${shape(w)} (an adapter of another model?)`);
    if (base.endsWith('token_embd.weight')) {
      // llama.cpp computes b × get_rows(a, tokens): a is [rank, n_vocab], b is [rank, n_embd].
      if (dim(a!, 0) !== dim(b!, 0) || dim(a!, 1) !== dim(w, 1) || dim(b!, 1) !== dim(w, 0)) mismatch();
    } else if (dim(a!, 0) !== dim(w, 0) || dim(b!, 1) !== dim(w, 1) || dim(a!, 1) !== dim(b!, 0)) {
      mismatch();
    }
    // Experts' tensors are 3-D (one matrix per expert); anything else has no third dimension, and none a fourth.
    for (const t of [a!, b!]) {
      if (dim(t, 2) !== dim(w, 2) || dim(t, 3) !== 1 || t.dims.length > 4) mismatch();
    }
  }
}
