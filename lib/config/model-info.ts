import { freemem } from 'node:os';
import { basename, resolve } from 'node:path';

import { readGguf, type GgufFile, type GgufMetadataValue } from '../gguf';
import { defaultLogger, type Logger } from '../logger';
import { optionalInt, optionalNumber, requireObject, requireString } from '../validate';
import { rejectUnknownKeys } from '../engine/request';

/** Model families with their own defaults; everything else is 'other'. */
export type ModelFamily = 'phi' | 'gemma' | 'other';

/** Context size each family is configured for before the trained-length and memory caps. */
export const FAMILY_CONTEXT: Readonly<Record<ModelFamily, number>> = Object.freeze({ phi: 131072, gemma: 32768, other: 4096 });

/** Built-in chat template used for a family whose file carries no template of its own. */
export const FAMILY_CHAT_FORMAT: Readonly<Record<ModelFamily, string>> = Object.freeze({ phi: 'phi3', gemma: 'gemma', other: 'chatml' });

/** The smallest context the memory cap lowers to. */
export const MIN_AUTO_CONTEXT = 256;

/** Share of (free memory − model weights) the KV cache may take. */
export const KV_MEMORY_SHARE = 0.8;

export interface GetModelInfoOptions {
  /** An explicit context size (`n_ctx`): always used, with a warning above the trained length or the memory estimate. */
  contextSize?: number;
  /** Memory, in bytes, the model and its KV cache must fit in. Default: `os.freemem()`. */
  freeMemory?: number;
  /** Default: warnings to stderr. */
  logger?: Logger;
}

export interface ModelAutoConfig {
  /** Absolute path of the file. */
  path: string;
  /** `general.architecture`, e.g. 'llama', 'phi3'. */
  architecture: string | null;
  family: ModelFamily;
  /** Where the family came from: the GGUF metadata, the file name, or neither ('other'). */
  familySource: 'gguf' | 'file-name' | 'default';
  /** `<arch>.context_length`, or null when the file does not say. */
  trainedContextLength: number | null;
  /** The context size to use. */
  contextSize: number;
  /** What decided `contextSize`. */
  contextSource: 'explicit' | 'family' | 'trained' | 'memory';
  /** 'gguf' when the file carries its own chat template, else the family's built-in template name. */
  chatFormat: string;
  /** The file's own chat template (Jinja), or null. */
  chatTemplate: string | null;
  /** Estimated KV-cache bytes per token (f16 K and V, every layer), or null when the header lacks the shape. */
  kvBytesPerToken: number | null;
  /** Estimated KV-cache bytes at `contextSize`, or null. */
  kvCacheBytes: number | null;
  /** Size of the file in bytes (the weights that must be in memory too). */
  fileSize: number;
  /** Why the context is what it is, one sentence each (the same text is logged). */
  notes: string[];
}

function num(value: GgufMetadataValue | undefined): number | undefined {
  if (typeof value === 'number') return value;
  if (typeof value === 'bigint') return Number(value);
  return undefined;
}

/** LLAMA_MAX_LAYERS: a header claiming more layers is lying (and must not size an allocation). */
const MAX_LAYERS = 512;

/** A per-layer value: a scalar for every layer, or an array with one entry per layer. */
function perLayer(value: GgufMetadataValue | undefined, layers: number): number[] | undefined {
  const scalar = num(value);
  if (scalar !== undefined) return new Array<number>(layers).fill(scalar);
  if (Array.isArray(value) && value.length === layers) return (value as Array<number | bigint>).map(Number);
  return undefined;
}

/** A count read from an untrusted header: a safe integer >= 0, else undefined. */
function count(value: GgufMetadataValue | undefined): number | undefined {
  const n = num(value);
  return n !== undefined && Number.isSafeInteger(n) && n >= 0 ? n : undefined;
}

/** phi / gemma as a word start in a name ("microsoft_Phi-4-mini", "gemma-3n"), not inside one ("dolphin"). */
function familyOfName(name: string): ModelFamily | undefined {
  if (/(^|[^a-z])phi/i.test(name)) return 'phi';
  if (/(^|[^a-z])gemma/i.test(name)) return 'gemma';
  return undefined;
}

function familyOf(file: GgufFile, path: string): { family: ModelFamily; source: ModelAutoConfig['familySource'] } {
  const arch = file.metadata['general.architecture'];
  const name = file.metadata['general.name'];
  const fromMetadata =
    (typeof arch === 'string' ? familyOfName(arch) : undefined) ?? (typeof name === 'string' ? familyOfName(name) : undefined);
  if (fromMetadata) return { family: fromMetadata, source: 'gguf' };
  const fromName = familyOfName(basename(path));
  if (fromName) return { family: fromName, source: 'file-name' };
  return { family: 'other', source: 'default' };
}

/** KV-cache bytes per token from the header's attention shape (f16 K and V in every layer), or null. */
export function kvBytesPerToken(file: GgufFile): number | null {
  const arch = file.metadata['general.architecture'];
  if (typeof arch !== 'string') return null;
  const get = (key: string) => file.metadata[`${arch}.${key}`];
  const layers = count(get('block_count'));
  const embd = count(get('embedding_length'));
  if (!layers || layers > MAX_LAYERS || !embd) return null;
  const heads = perLayer(get('attention.head_count'), layers);
  if (!heads) return null;
  const kvHeads = perLayer(get('attention.head_count_kv'), layers) ?? heads;
  const maxHeads = Math.max(...heads);
  if (!(maxHeads > 0)) return null;
  const keyLength = count(get('attention.key_length')) ?? embd / maxHeads;
  const valueLength = count(get('attention.value_length')) ?? embd / maxHeads;
  const F16 = 2;
  const bytes = kvHeads.reduce((sum, h) => sum + h * (keyLength + valueLength) * F16, 0);
  // Negative, fractional or absurd head counts: no estimate rather than a nonsense one.
  return Number.isFinite(bytes) && bytes > 0 && kvHeads.every((h) => Number.isSafeInteger(h) && h >= 0) ? bytes : null;
}

function gib(bytes: number): string {
  return bytes >= 2 ** 30 ? `${(bytes / 2 ** 30).toFixed(1)} GiB` : `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}

/**
 * Reads a model's GGUF header and chooses its configuration:
 * - family: from the metadata (`general.architecture`, `general.name`), else the file name (`phi`, `gemma`);
 * - context: an explicit `contextSize` always wins (with a warning above the trained length or the memory
 *   estimate); otherwise the family's size (phi 128K, gemma 32K, others 4096), never above the trained length,
 *   lowered (and logged) when its estimated KV cache would not fit in free memory beside the weights;
 * - chat format: the file's own template ('gguf'), else the family's built-in one (phi3, gemma, chatml).
 *
 * @throws LlamaError ERR_MODEL_NOT_FOUND / ERR_MODEL_INVALID when the file is missing or not a valid GGUF file.
 */
export async function getModelInfo(path: string, options: GetModelInfoOptions = {}): Promise<ModelAutoConfig> {
  const absolute = resolve(requireString(path, 'path'));
  const opts = requireObject(options, 'options') as GetModelInfoOptions;
  rejectUnknownKeys(opts, ['contextSize', 'freeMemory', 'logger'], 'getModelInfo() options');
  const explicit = optionalInt(opts.contextSize, 'contextSize', 1, 2 ** 24);
  const freeMemory = optionalNumber(opts.freeMemory, 'freeMemory', 0, Number.MAX_SAFE_INTEGER) ?? freemem();
  const logger = opts.logger ?? defaultLogger;

  const file = await readGguf(absolute);
  const arch = typeof file.metadata['general.architecture'] === 'string' ? (file.metadata['general.architecture'] as string) : null;
  const trained = arch ? num(file.metadata[`${arch}.context_length`]) : undefined;
  const trainedContextLength = trained !== undefined && Number.isSafeInteger(trained) && trained > 0 ? trained : null;
  const { family, source: familySource } = familyOf(file, absolute);
  const template = file.metadata['tokenizer.chat_template'];
  const chatTemplate = typeof template === 'string' && template.length > 0 ? template : null;
  const perToken = kvBytesPerToken(file);
  const name = basename(absolute);
  const notes: string[] = [];
  const budget = Math.max(0, freeMemory - file.fileSize) * KV_MEMORY_SHARE;
  const fits = (context: number) => perToken === null || perToken * context <= budget;

  let contextSize: number;
  let contextSource: ModelAutoConfig['contextSource'];
  if (explicit !== undefined) {
    contextSize = explicit;
    contextSource = 'explicit';
    if (trainedContextLength !== null && explicit > trainedContextLength) {
      const note =
        `n_ctx ${explicit} for ${name} is above its trained context length ${trainedContextLength}: using it as configured, ` +
        `output quality may degrade past ${trainedContextLength} tokens`;
      notes.push(note);
      logger.warn(note);
    }
    if (!fits(explicit)) {
      const note =
        `n_ctx ${explicit} for ${name} needs about ${gib(perToken! * explicit)} of KV cache, ` +
        `more than the ${gib(budget)} estimated free: using it as configured`;
      notes.push(note);
      logger.warn(note);
    }
  } else {
    contextSize = FAMILY_CONTEXT[family];
    contextSource = 'family';
    if (trainedContextLength !== null && contextSize > trainedContextLength) {
      contextSize = trainedContextLength;
      contextSource = 'trained';
    }
    if (!fits(contextSize)) {
      const wanted = contextSize;
      const fitting = Math.floor(budget / perToken! / MIN_AUTO_CONTEXT) * MIN_AUTO_CONTEXT;
      contextSize = Math.max(Math.min(fitting, wanted), Math.min(MIN_AUTO_CONTEXT, wanted));
      contextSource = 'memory';
      let note =
        `lowered the context of ${name} from ${wanted} to ${contextSize} tokens: its KV cache would need about ` +
        `${gib(perToken! * wanted)}, but only ${gib(freeMemory)} of memory is free (${gib(file.fileSize)} of it for the weights)`;
      if (!fits(contextSize)) note += `; even ${contextSize} tokens may not fit`;
      notes.push(note);
      logger.warn(note);
    }
  }
  const chatFormat = chatTemplate ? 'gguf' : FAMILY_CHAT_FORMAT[family];
  logger.debug(`${name}: family ${family} (from ${familySource}), context ${contextSize} (${contextSource}), chat format ${chatFormat}`);

  return {
    path: absolute,
    architecture: arch,
    family,
    familySource,
    trainedContextLength,
    contextSize,
    contextSource,
    chatFormat,
    chatTemplate,
    kvBytesPerToken: perToken,
    kvCacheBytes: perToken === null ? null : perToken * contextSize,
    fileSize: file.fileSize,
    notes,
  };
}
