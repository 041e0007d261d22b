import { LlamaError } from '../errors';
import { resolveLora, type LoraRequest, type ResolvedLora } from '../lora';
import { optionalFunction, optionalInt, optionalNumber, optionalSignal, requireObject, stopStrings } from '../validate';
import { resolveStructured, STRUCTURED_KEYS, type ResolvedStructured, type StructuredOptions } from './structured';

// The one request model: every generation (Model.complete/chat/stream, LlmBackend.call/chat/stream/streamChat,
// the CLI and workflows) is validated and defaulted here, once, with the same defaults.

const MAX_INT32 = 2 ** 31 - 1;
const MAX_UINT32 = 4294967295;

/** Defaults of every generation, wherever it comes from. */
export const GENERATION_DEFAULTS = Object.freeze({
  maxTokens: 100,
  temperature: 0.7,
  topK: 40,
  topP: 0.95,
  minP: 0.05,
  repeatPenalty: 1,
  repeatLastN: 64,
  frequencyPenalty: 0,
  presencePenalty: 0,
});

/** Sampling and limits of one generation. */
export interface SamplingOptions {
  /** Most tokens to generate; -1 generates until the sequence's context is full. Default 100. */
  maxTokens?: number;
  /** 0 is greedy (always the most likely token). Default 0.7. */
  temperature?: number;
  /** Keep only the k most likely tokens (0: off). Default 40. */
  topK?: number;
  /** Nucleus sampling threshold (1: off). Default 0.95. */
  topP?: number;
  /** Drop tokens below minP × the top token's probability (0: off). Default 0.05. */
  minP?: number;
  /** Penalty for repeating recent tokens (1: off). Default 1. */
  repeatPenalty?: number;
  /** How many recent tokens the penalties look at (-1: the whole context). Default 64. */
  repeatLastN?: number;
  /** OpenAI-style frequency penalty (0: off). Default 0. */
  frequencyPenalty?: number;
  /** OpenAI-style presence penalty (0: off). Default 0. */
  presencePenalty?: number;
  /** Sampling seed, for reproducible output at temperature > 0. Default: the model's seed, else random. */
  seed?: number;
  /** Generation ends before any of these strings, which never appear in the output. */
  stop?: string | string[];
}

/**
 * Where a generation runs and what happens when its sequence is full (llama-server's `id_slot`, `--context-shift`,
 * `n_keep`, `n_discard`).
 */
export interface SequenceOptions {
  /** Run in this sequence (0 .. sequences-1), waiting for it to be free (llama-server's `id_slot`). Default: the scheduler picks. */
  sequence?: number;
  /**
   * At the context's end, drop `nDiscard` tokens after the first `nKeep` and go on generating (llama-server's
   * context shift), instead of finishing with 'length'. Default false.
   */
  contextShift?: boolean;
  /** Prompt tokens (besides a BOS) that a context shift keeps; -1: the whole prompt. Default 0. */
  nKeep?: number;
  /** Tokens a context shift drops; 0: half of those after `nKeep`. Default 0. */
  nDiscard?: number;
}

export const SEQUENCE_KEYS = ['sequence', 'contextShift', 'nKeep', 'nDiscard'] as const satisfies readonly (keyof SequenceOptions)[];

/** Sequence options after validation; `undefined` fields were not set. */
export interface ResolvedSequence {
  sequence: number | undefined;
  contextShift: boolean;
  nKeep: number;
  nDiscard: number;
}

/** Validates and defaults the sequence part of `options`. */
export function resolveSequence(options: Record<string, unknown>): ResolvedSequence {
  const contextShift = options.contextShift;
  if (contextShift !== undefined && typeof contextShift !== 'boolean') throw new LlamaError('ERR_INVALID_ARGUMENT', 'contextShift must be a boolean');
  return {
    sequence: optionalInt(options.sequence, 'sequence', 0, 255),
    contextShift: contextShift ?? false,
    nKeep: optionalInt(options.nKeep, 'nKeep', -1, MAX_INT32) ?? 0,
    nDiscard: optionalInt(options.nDiscard, 'nDiscard', 0, MAX_INT32) ?? 0,
  };
}

/** A generation's options: sampling, constrained output, tools, reasoning, abort and streaming. */
export interface GenerationOptions extends SamplingOptions, SequenceOptions, StructuredOptions {
  /**
   * Stops the generation. Aborted while it runs, the call resolves with what was produced and finishReason
   * 'abort'; aborted while it waits for a free sequence (or before it starts), it rejects with ERR_ABORTED.
   */
  signal?: AbortSignal;
  /** Receives the text as it is generated, in chunks that never split a UTF-8 character or leak a stop string. */
  onChunk?: (text: string) => void;
  /**
   * LoRA adapters for this request, with their scales (llama-server's per-request `lora`): exactly these apply,
   * the others are off; `[]`: the base model. Default: the model's (or backend's) default set (see README, LoRA).
   */
  lora?: LoraRequest[];
}

/** Sampling after validation and defaults: what the engine (native or HTTP) receives. */
export interface ResolvedSampling {
  maxTokens: number;
  temperature: number;
  topK: number;
  topP: number;
  minP: number;
  repeatPenalty: number;
  repeatLastN: number;
  frequencyPenalty: number;
  presencePenalty: number;
  seed: number | undefined;
  stop: string[] | undefined;
  /** The keys the caller set explicitly (an HTTP backend sends only those beyond OpenAI's own). */
  explicit: ReadonlySet<keyof SamplingOptions>;
}

export const SAMPLING_KEYS = [
  'maxTokens', 'temperature', 'topK', 'topP', 'minP', 'repeatPenalty', 'repeatLastN', 'frequencyPenalty', 'presencePenalty', 'seed', 'stop',
] as const satisfies readonly (keyof SamplingOptions)[];
export const GENERATION_KEYS = [...SAMPLING_KEYS, ...SEQUENCE_KEYS, ...STRUCTURED_KEYS, 'signal', 'onChunk', 'lora'] as const;

/** Levenshtein distance, for "did you mean" suggestions. */
function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let previous = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const current = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, previous + (a[i - 1]!.toLowerCase() === b[j - 1]!.toLowerCase() ? 0 : 1));
      previous = current;
    }
  }
  return row[b.length]!;
}

/** The known key nearest to `key`, when it is near enough to be a likely misspelling. */
export function nearestKey(key: string, known: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of known) {
    const d = distance(key, candidate);
    if (d < bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  return best !== undefined && bestDistance <= Math.max(2, Math.floor(best.length / 3)) ? best : undefined;
}

/** Rejects keys of `options` outside `known` with ERR_INVALID_ARGUMENT, naming the nearest known key. */
export function rejectUnknownKeys(options: object, known: readonly string[], where: string): void {
  for (const key of Object.keys(options)) {
    if (known.includes(key)) continue;
    const near = nearestKey(key, known);
    throw new LlamaError(
      'ERR_INVALID_ARGUMENT',
      `unknown option '${key}' in ${where}${near ? ` (did you mean '${near}'?)` : ''}; known options: ${known.join(', ')}`,
    );
  }
}

/** Defaults a backend or model may override (a backend's `defaults`, a model's `seed`). */
export interface SamplingDefaults {
  maxTokens?: number;
  temperature?: number;
  topP?: number;
  seed?: number;
}

/** Validates and defaults the sampling part of `options` (whose unknown keys the caller has already rejected). */
export function resolveSampling(options: Record<string, unknown>, defaults: SamplingDefaults = {}): ResolvedSampling {
  const explicit = new Set(SAMPLING_KEYS.filter((k) => options[k] !== undefined || defaults[k as keyof SamplingDefaults] !== undefined));
  const d = GENERATION_DEFAULTS;
  return {
    maxTokens: optionalInt(options.maxTokens, 'maxTokens', -1, MAX_INT32) ?? defaults.maxTokens ?? d.maxTokens,
    temperature: optionalNumber(options.temperature, 'temperature', 0, 100) ?? defaults.temperature ?? d.temperature,
    topK: optionalInt(options.topK, 'topK', 0, MAX_INT32) ?? d.topK,
    topP: optionalNumber(options.topP, 'topP', 0, 1) ?? defaults.topP ?? d.topP,
    minP: optionalNumber(options.minP, 'minP', 0, 1) ?? d.minP,
    repeatPenalty: optionalNumber(options.repeatPenalty, 'repeatPenalty', 1e-6, 100) ?? d.repeatPenalty,
    repeatLastN: optionalInt(options.repeatLastN, 'repeatLastN', -1, MAX_INT32) ?? d.repeatLastN,
    frequencyPenalty: optionalNumber(options.frequencyPenalty, 'frequencyPenalty', -100, 100) ?? d.frequencyPenalty,
    presencePenalty: optionalNumber(options.presencePenalty, 'presencePenalty', -100, 100) ?? d.presencePenalty,
    seed: optionalInt(options.seed, 'seed', 0, MAX_UINT32) ?? defaults.seed,
    stop: stopStrings(options.stop),
    explicit,
  };
}

export interface ResolvedGeneration {
  sampling: ResolvedSampling;
  signal: AbortSignal | undefined;
  onChunk: ((text: string) => void) | undefined;
  structured: ResolvedStructured;
  sequence: ResolvedSequence;
  /** undefined: the default adapters. */
  lora: ResolvedLora[] | undefined;
}

/** Checks a whole generation options object: unknown keys (beyond `extraKeys`), values, defaults. */
export function resolveGeneration(
  options: unknown,
  where: string,
  defaults: SamplingDefaults = {},
  extraKeys: readonly string[] = [],
): ResolvedGeneration {
  const opts = requireObject(options, 'options');
  rejectUnknownKeys(opts, [...GENERATION_KEYS, ...extraKeys], where);
  return {
    sampling: resolveSampling(opts, defaults),
    signal: optionalSignal(opts.signal),
    onChunk: optionalFunction<(text: string) => void>(opts.onChunk, 'onChunk'),
    structured: resolveStructured(opts),
    sequence: resolveSequence(opts),
    lora: resolveLora(opts.lora),
  };
}
