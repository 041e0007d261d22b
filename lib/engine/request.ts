import { LlamaError } from '../errors';
import { resolveLora, type LoraRequest, type ResolvedLora } from '../lora';
import { optionalBool, optionalFunction, optionalInt, optionalNumber, optionalSignal, requireObject, stopStrings } from '../validate';
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
  typicalP: 1,
  dynatempRange: 0,
  dynatempExponent: 1,
  topNSigma: -1,
  xtcProbability: 0,
  xtcThreshold: 0.1,
  mirostat: 0,
  mirostatTau: 5,
  mirostatEta: 0.1,
  dryMultiplier: 0,
  dryBase: 1.75,
  dryAllowedLength: 2,
  dryPenaltyLastN: 64,
  ignoreEos: false,
  minKeep: 0,
  logprobs: false,
  topLogprobs: 0,
});

/** llama.cpp's sampler names for `samplers` (common_sampler_types_from_names, canonical names). */
export const SAMPLER_NAMES = ['penalties', 'dry', 'top_n_sigma', 'top_k', 'typ_p', 'top_p', 'min_p', 'xtc', 'temperature', 'infill'] as const;
export type SamplerName = (typeof SAMPLER_NAMES)[number];

/** Most alternatives per token `topLogprobs` may ask for (OpenAI's limit). */
export const MAX_TOP_LOGPROBS = 20;

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
  /** Locally typical sampling (1: off). Default 1. */
  typicalP?: number;
  /** Dynamic temperature: the temperature varies in [temperature - range, temperature + range] (0: off). Default 0. */
  dynatempRange?: number;
  /** How entropy maps to the dynamic temperature. Default 1. */
  dynatempExponent?: number;
  /** Keep tokens within n standard deviations of the top logit (negative: off). Default -1. */
  topNSigma?: number;
  /** XTC: chance of removing the most likely tokens (0: off). Default 0. */
  xtcProbability?: number;
  /** XTC: the probability above which tokens may be removed (above 0.5: off). Default 0.1. */
  xtcThreshold?: number;
  /** Mirostat: 0 off, 1 Mirostat, 2 Mirostat 2.0 (replaces the other samplers but the temperature). Default 0. */
  mirostat?: 0 | 1 | 2;
  /** Mirostat target entropy (tau). Default 5. */
  mirostatTau?: number;
  /** Mirostat learning rate (eta). Default 0.1. */
  mirostatEta?: number;
  /** DRY repetition penalty multiplier (0: off). Default 0. */
  dryMultiplier?: number;
  /** DRY base (a value below 1 means the default). Default 1.75. */
  dryBase?: number;
  /** Repetitions up to this length go unpenalized by DRY. Default 2. */
  dryAllowedLength?: number;
  /** How many recent tokens DRY scans (0: off, -1: the whole context). Default 64. */
  dryPenaltyLastN?: number;
  /** Strings that break a DRY repetition. Default ['\n', ':', '"', '*']. */
  drySequenceBreakers?: string[];
  /** The sampler chain's order, by llama.cpp's names (SAMPLER_NAMES). Default llama.cpp's order. */
  samplers?: SamplerName[];
  /**
   * Biases added to tokens' logits: a map from token id (or text: every token of its tokenization) to a bias, or
   * an array of [token id or text, bias] pairs; -Infinity (or false) bans the token. Default none.
   */
  logitBias?: Record<string, number | false> | [number | string, number | false][];
  /** Never end at an end-of-generation token (they are banned). Default false. */
  ignoreEos?: boolean;
  /** Samplers keep at least this many candidates (0: off). Default 0. */
  minKeep?: number;
  /** Report each generated token's log-probability in `result.logprobs`. Default false. */
  logprobs?: boolean;
  /** With logprobs: also the N most likely alternatives of each token (0 to 20). Default 0. */
  topLogprobs?: number;
}

/** The kind of value a sampling option takes, for the surfaces that parse text into it (CLI flags, workflow params). */
export type SamplingFieldKind = 'int' | 'number' | 'bool' | 'stop' | 'strings' | 'samplers' | 'logitBias';

/** One sampling option as every surface names and parses it. */
export interface SamplingField {
  /**
   * llama-server's request field (snake_case): the name over HTTP (`tea-llama serve`, the API backend), in workflow
   * params, and, in kebab-case, the CLI flag.
   */
  wire: string;
  kind: SamplingFieldKind;
  /** The accepted range of an 'int' or 'number'. */
  min?: number;
  max?: number;
  /** OpenAI's own API has this field (an OpenAI server refuses the others; llama-server, vLLM and Ollama take most). */
  openai: boolean;
  /** One line for help texts. */
  help: string;
}

/**
 * Every sampling option: its wire name, kind, range and help line. resolveSampling checks the ranges given here;
 * the CLI, workflow params, `tea-llama serve` and the API backend take their names from here.
 */
export const SAMPLING_FIELDS = Object.freeze({
  maxTokens: { wire: 'max_tokens', kind: 'int', min: -1, max: MAX_INT32, openai: true, help: 'most tokens to generate; -1 until the context is full (default 100)' },
  temperature: { wire: 'temperature', kind: 'number', min: 0, max: 100, openai: true, help: '0 is greedy (default 0.7)' },
  topK: { wire: 'top_k', kind: 'int', min: 0, max: MAX_INT32, openai: false, help: 'keep the k most likely tokens, 0 off (default 40)' },
  topP: { wire: 'top_p', kind: 'number', min: 0, max: 1, openai: true, help: 'nucleus sampling threshold, 1 off (default 0.95)' },
  minP: { wire: 'min_p', kind: 'number', min: 0, max: 1, openai: false, help: "drop tokens below min-p x the top token's probability (default 0.05)" },
  repeatPenalty: { wire: 'repeat_penalty', kind: 'number', min: 1e-6, max: 100, openai: false, help: 'penalty for repeating recent tokens, 1 off (default 1)' },
  repeatLastN: { wire: 'repeat_last_n', kind: 'int', min: -1, max: MAX_INT32, openai: false, help: 'recent tokens the penalties look at, -1 the context (default 64)' },
  frequencyPenalty: { wire: 'frequency_penalty', kind: 'number', min: -100, max: 100, openai: true, help: 'frequency penalty, 0 off (default 0)' },
  presencePenalty: { wire: 'presence_penalty', kind: 'number', min: -100, max: 100, openai: true, help: 'presence penalty, 0 off (default 0)' },
  seed: { wire: 'seed', kind: 'int', min: 0, max: MAX_UINT32, openai: true, help: 'sampling seed, for reproducible output' },
  stop: { wire: 'stop', kind: 'stop', openai: true, help: 'end the reply before this text (repeatable)' },
  typicalP: { wire: 'typical_p', kind: 'number', min: -1e6, max: 1e6, openai: false, help: 'locally typical sampling, 1 off (default 1)' },
  dynatempRange: { wire: 'dynatemp_range', kind: 'number', min: 0, max: 100, openai: false, help: 'dynamic temperature range, 0 off (default 0)' },
  dynatempExponent: { wire: 'dynatemp_exponent', kind: 'number', min: 0, max: 100, openai: false, help: 'dynamic temperature exponent (default 1)' },
  topNSigma: { wire: 'top_n_sigma', kind: 'number', min: -1e6, max: 1e6, openai: false, help: 'keep tokens within n standard deviations of the top logit, negative off (default -1)' },
  xtcProbability: { wire: 'xtc_probability', kind: 'number', min: 0, max: 1, openai: false, help: 'XTC: chance of removing the top tokens, 0 off (default 0)' },
  xtcThreshold: { wire: 'xtc_threshold', kind: 'number', min: 0, max: 1, openai: false, help: 'XTC: probability above which tokens may go (default 0.1)' },
  mirostat: { wire: 'mirostat', kind: 'int', min: 0, max: 2, openai: false, help: '1 Mirostat, 2 Mirostat 2.0, 0 off (default 0)' },
  mirostatTau: { wire: 'mirostat_tau', kind: 'number', min: 0, max: 1e6, openai: false, help: 'Mirostat target entropy (default 5)' },
  mirostatEta: { wire: 'mirostat_eta', kind: 'number', min: 0, max: 1e6, openai: false, help: 'Mirostat learning rate (default 0.1)' },
  dryMultiplier: { wire: 'dry_multiplier', kind: 'number', min: 0, max: 1e6, openai: false, help: 'DRY repetition penalty multiplier, 0 off (default 0)' },
  dryBase: { wire: 'dry_base', kind: 'number', min: 0, max: 1e6, openai: false, help: 'DRY base (default 1.75)' },
  dryAllowedLength: { wire: 'dry_allowed_length', kind: 'int', min: 0, max: MAX_INT32, openai: false, help: 'DRY: repetitions up to this length are free (default 2)' },
  dryPenaltyLastN: { wire: 'dry_penalty_last_n', kind: 'int', min: -1, max: MAX_INT32, openai: false, help: 'DRY: recent tokens scanned, -1 the context (default 64)' },
  drySequenceBreakers: { wire: 'dry_sequence_breakers', kind: 'strings', openai: false, help: 'DRY: a text that breaks a repetition (repeatable)' },
  samplers: { wire: 'samplers', kind: 'samplers', openai: false, help: `the sampler order, of ${SAMPLER_NAMES.join(', ')}` },
  logitBias: { wire: 'logit_bias', kind: 'logitBias', openai: true, help: 'TOKEN=BIAS: add BIAS to a token id or text, -inf bans it (repeatable)' },
  ignoreEos: { wire: 'ignore_eos', kind: 'bool', openai: false, help: 'never stop at an end-of-generation token' },
  minKeep: { wire: 'min_keep', kind: 'int', min: 0, max: MAX_INT32, openai: false, help: 'samplers keep at least this many candidates (default 0)' },
  logprobs: { wire: 'logprobs', kind: 'bool', openai: true, help: "report each token's log-probability" },
  topLogprobs: { wire: 'top_logprobs', kind: 'int', min: 0, max: MAX_TOP_LOGPROBS, openai: true, help: `with logprobs, the N most likely alternatives too (0 to ${MAX_TOP_LOGPROBS})` },
} as const satisfies Record<keyof SamplingOptions, SamplingField>);

/** A sampling option's key from its wire name (`top_k` → `topK`). */
export const SAMPLING_KEY_BY_WIRE: Readonly<Record<string, keyof SamplingOptions>> = Object.freeze(
  Object.fromEntries(Object.entries(SAMPLING_FIELDS).map(([key, f]) => [f.wire, key as keyof SamplingOptions])),
);

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
  const contextShift = optionalBool(options.contextShift, 'contextShift');
  return {
    sequence: optionalInt(options.sequence, 'sequence', 0, 255),
    contextShift: contextShift ?? false,
    nKeep: optionalInt(options.nKeep, 'nKeep', -1, MAX_INT32) ?? 0,
    nDiscard: optionalInt(options.nDiscard, 'nDiscard', 0, MAX_INT32) ?? 0,
  };
}

/** One entry of a resolved logitBias: a token id or a text, and its bias (-Infinity bans). */
export type ResolvedLogitBias = { token: number; bias: number } | { text: string; bias: number };

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
  typicalP: number;
  dynatempRange: number;
  dynatempExponent: number;
  topNSigma: number;
  xtcProbability: number;
  xtcThreshold: number;
  mirostat: 0 | 1 | 2;
  mirostatTau: number;
  mirostatEta: number;
  dryMultiplier: number;
  dryBase: number;
  dryAllowedLength: number;
  dryPenaltyLastN: number;
  drySequenceBreakers: string[] | undefined;
  samplers: SamplerName[] | undefined;
  logitBias: ResolvedLogitBias[] | undefined;
  ignoreEos: boolean;
  minKeep: number;
  logprobs: boolean;
  topLogprobs: number;
  /** The keys the caller set explicitly (an HTTP backend sends only those beyond OpenAI's own). */
  explicit: ReadonlySet<keyof SamplingOptions>;
}

export const SAMPLING_KEYS = [
  'maxTokens', 'temperature', 'topK', 'topP', 'minP', 'repeatPenalty', 'repeatLastN', 'frequencyPenalty', 'presencePenalty', 'seed', 'stop',
  'typicalP', 'dynatempRange', 'dynatempExponent', 'topNSigma', 'xtcProbability', 'xtcThreshold', 'mirostat', 'mirostatTau', 'mirostatEta',
  'dryMultiplier', 'dryBase', 'dryAllowedLength', 'dryPenaltyLastN', 'drySequenceBreakers', 'samplers', 'logitBias', 'ignoreEos', 'minKeep',
  'logprobs', 'topLogprobs',
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

/** The sampling options whose value is one number. */
type ScalarSamplingKey = { [K in keyof typeof SAMPLING_FIELDS]: (typeof SAMPLING_FIELDS)[K]['kind'] extends 'int' | 'number' ? K : never }[keyof typeof SAMPLING_FIELDS];

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
  // Every scalar option, in the range SAMPLING_FIELDS gives it, else the caller's default, else the engine's.
  const scalars = {} as Record<ScalarSamplingKey, number | undefined>;
  for (const [key, f] of Object.entries(SAMPLING_FIELDS) as [keyof typeof SAMPLING_FIELDS, SamplingField][]) {
    if (f.kind !== 'int' && f.kind !== 'number') continue;
    const k = key as ScalarSamplingKey;
    const given = (f.kind === 'int' ? optionalInt : optionalNumber)(options[k], k, f.min!, f.max!);
    scalars[k] = given ?? defaults[k as keyof SamplingDefaults] ?? (d as Partial<Record<ScalarSamplingKey, number>>)[k];
  }
  const all = scalars as Record<Exclude<ScalarSamplingKey, 'seed'>, number>;
  return {
    ...all,
    seed: scalars.seed,
    mirostat: all.mirostat as 0 | 1 | 2,
    stop: stopStrings(options.stop),
    drySequenceBreakers: sequenceBreakers(options.drySequenceBreakers),
    samplers: samplerOrder(options.samplers),
    logitBias: logitBias(options.logitBias),
    ignoreEos: optionalBool(options.ignoreEos, 'ignoreEos') ?? d.ignoreEos,
    ...logprobOptions(options),
    explicit,
  };
}

function sequenceBreakers(value: unknown): string[] | undefined {
  if (value === undefined) return undefined;
  // llama-server refuses an empty list (use dryMultiplier 0 to turn DRY off).
  if (!Array.isArray(value) || value.length === 0 || value.some((v) => typeof v !== 'string' || v.length === 0)) {
    throw new LlamaError('ERR_INVALID_ARGUMENT', 'drySequenceBreakers must be a non-empty array of non-empty strings');
  }
  return [...(value as string[])];
}

function samplerOrder(value: unknown): SamplerName[] | undefined {
  if (value === undefined) return undefined;
  if (!Array.isArray(value)) throw new LlamaError('ERR_INVALID_ARGUMENT', `samplers must be an array of sampler names (${SAMPLER_NAMES.join(', ')})`);
  return value.map((name, i) => {
    if (typeof name !== 'string' || !(SAMPLER_NAMES as readonly string[]).includes(name)) {
      const near = typeof name === 'string' ? nearestKey(name, SAMPLER_NAMES) : undefined;
      throw new LlamaError(
        'ERR_INVALID_ARGUMENT',
        `samplers[${i}] ${JSON.stringify(name)} is not a llama.cpp sampler${near ? ` (did you mean '${near}'?)` : ''}; known: ${SAMPLER_NAMES.join(', ')}`,
      );
    }
    return name as SamplerName;
  });
}

function biasValue(value: unknown, where: string): number {
  if (value === false) return -Infinity;
  if (typeof value !== 'number' || Number.isNaN(value) || value === Infinity) {
    throw new LlamaError('ERR_INVALID_ARGUMENT', `${where} must be a number, -Infinity or false (to ban the token)`);
  }
  return value;
}

function biasTarget(key: number | string, where: string): { token: number } | { text: string } {
  if (typeof key === 'number') {
    if (!Number.isInteger(key) || key < 0 || key > MAX_INT32) throw new LlamaError('ERR_INVALID_ARGUMENT', `${where} must be a token id (an integer >= 0) or a text`);
    return { token: key };
  }
  if (typeof key !== 'string' || key.length === 0) throw new LlamaError('ERR_INVALID_ARGUMENT', `${where} must be a token id or a non-empty text`);
  // An object's keys are strings: one of digits only is a token id, as llama-server reads it.
  return /^\d+$/.test(key) ? biasTarget(Number(key), where) : { text: key };
}

function logitBias(value: unknown): ResolvedLogitBias[] | undefined {
  if (value === undefined) return undefined;
  if (Array.isArray(value)) {
    return value.map((pair, i) => {
      if (!Array.isArray(pair) || pair.length !== 2) throw new LlamaError('ERR_INVALID_ARGUMENT', `logitBias[${i}] must be a [token or text, bias] pair`);
      return { ...biasTarget(pair[0] as number | string, `logitBias[${i}][0]`), bias: biasValue(pair[1], `logitBias[${i}][1]`) };
    });
  }
  if (typeof value !== 'object' || value === null) throw new LlamaError('ERR_INVALID_ARGUMENT', 'logitBias must be an object { token: bias } or an array of [token, bias] pairs');
  return Object.entries(value).map(([key, bias]) => ({ ...biasTarget(key, `logitBias key ${JSON.stringify(key)}`), bias: biasValue(bias, `logitBias[${JSON.stringify(key)}]`) }));
}

function logprobOptions(options: Record<string, unknown>): { logprobs: boolean; topLogprobs: number } {
  const logprobs = optionalBool(options.logprobs, 'logprobs') ?? GENERATION_DEFAULTS.logprobs;
  const topLogprobs = optionalInt(options.topLogprobs, 'topLogprobs', SAMPLING_FIELDS.topLogprobs.min, SAMPLING_FIELDS.topLogprobs.max);
  // As OpenAI and llama-server: alternatives without logprobs is a mistake, not a no-op.
  if (topLogprobs !== undefined && !logprobs) throw new LlamaError('ERR_INVALID_ARGUMENT', 'topLogprobs requires logprobs: true');
  return { logprobs, topLogprobs: topLogprobs ?? GENERATION_DEFAULTS.topLogprobs };
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
