import { readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { basename, resolve } from 'node:path';

import { chunkStream } from './chunk-stream';
import { Engine } from './engine/engine';
import { ChatSession, SEQUENCE_HOST, type ChatSessionOptions, type SequenceHost } from './engine/session';
import { rejectUnknownKeys, resolveGeneration, type ResolvedGeneration, type ResolvedSampling } from './engine/request';
import {
  checkCompletionStructured,
  checkMessageExtras,
  hasToolMessages,
  MAX_GRAMMAR_BYTES,
  needsChatLayer,
  parseJson,
  resolveStructured,
  STRUCTURED_KEYS,
  toOpenAiMessage,
  type GenerationDelta,
  type ParsedOf,
  type ResolvedStructured,
} from './engine/structured';
import {
  checkFim,
  rankResults,
  resolveInfill,
  resolveRerank,
  tokenPiece,
  vocabularyInfo,
  type InfillInput,
  type RerankOptions,
  type RerankResult,
  type TokenPiece,
  type VocabularyInfo,
} from './engine/text-tasks';
import { LlamaError, toLlamaError } from './errors';
import { readGguf, type GgufTensorInfo } from './gguf';
import { checkLoraFile, LoraAdapter, resolveLora, type LoraRequest, type ResolvedLora } from './lora';
import type { NativeAbortFlag, NativeChatParse, NativeContextOptions, NativeGenerateOptions, NativeGrammarOptions, NativeInfill, NativeModel } from './native/binding-types';
import { getBinding } from './native/load-binding';
import { checkHyperparameters, checkTensors } from './preflight';
import { checkSpeculative, SPECULATIVE_KEYS } from './speculative';
import { DEFAULT_RPC_CONNECT_TIMEOUT_MS, holdRpcServers, parseRpcEndpoint, preflightRpcServers } from './rpc';
import type {
  ChatMessage,
  ChatOptions,
  ChatParseOptions,
  ChatParseResult,
  ChatPrepareOptions,
  ChatTemplateLimits,
  ChatTemplateResult,
  ChatTemplateOptions,
  CompletionOptions,
  CompletionStream,
  GenerationResult,
  DetokenizeAsyncOptions,
  DetokenizeOptions,
  EmbedOptions,
  LoadModelOptions,
  ModelInfo,
  Pooling,
  TokenizeAsyncOptions,
  TokenizeOptions,
} from './types';
import {
  optionalBool,
  optionalFunction,
  optionalInt,
  optionalNumber,
  optionalSignal,
  requireObject,
  requireString,
} from './validate';

const POOLING: Record<Pooling, number> = { mean: 1, cls: 2, last: 3, rank: 4 };
const DEFAULT_MAX_CONTEXT = 4096;
const MAX_UINT32 = 4294967295;

interface ResolvedLoadOptions {
  contextSize: number;
  embeddingContextSize: number;
  threads: number;
  batchSize: number;
  flashAttention: number;
  seed: number | undefined;
  sequences: number;
  maxQueued: number;
  /** LoadModelOptions.pooling as llama_pooling_type, when given. */
  pooling: number | undefined;
  /** The file has a classifier head (the tensors rank pooling needs). */
  hasClassifier: boolean;
  /** Speculative decoding: the draft model (loaded beside this one) and the native context options. */
  speculative?: ResolvedSpeculative;
  /** Releases the RPC servers the model holds (see lib/rpc.ts), after the native model is freed. */
  releaseRpc?: () => void;
  /** The model file's tensors by name, to check LoRA adapters against. */
  tensors: ReadonlyMap<string, GgufTensorInfo>;
}

/** Largest state file loadState() reads (a Buffer's limit is near it). */
const MAX_STATE_FILE_BYTES = 2 ** 32 - 1;

/** Options of {@link LlamaModel.saveState}. */
export interface SaveStateOptions {
  /** The sequence to save: a result's `sequence`. */
  sequence: number;
}

/** Options of {@link LlamaModel.loadState}. */
export interface LoadStateOptions {
  /** Where to restore it. Default: an idle sequence that no chat session reserved. */
  sequence?: number;
}

/** What saveState() wrote or loadState() restored. */
export interface SavedState {
  sequence: number;
  /** Tokens whose KV cells the file holds. */
  tokens: number;
  /** The file's size. */
  bytes: number;
}

/** Writes a state file whole or not at all (a crash mid-write leaves the old file). */
async function writeStateFile(file: string, data: Buffer): Promise<void> {
  const tmp = `${file}.${process.pid}.tmp`;
  try {
    await writeFile(tmp, data);
    await rename(tmp, file);
  } catch (error) {
    await rm(tmp, { force: true });
    throw new LlamaError('ERR_INVALID_ARGUMENT', `cannot write the state file ${file}: ${(error as Error).message}`, { cause: error });
  }
}

async function readStateFile(file: string): Promise<Buffer> {
  let size: number;
  try {
    size = (await stat(file)).size;
  } catch (error) {
    throw new LlamaError('ERR_INVALID_ARGUMENT', `cannot read the state file ${file}: ${(error as Error).message}`, { cause: error });
  }
  if (size > MAX_STATE_FILE_BYTES) throw new LlamaError('ERR_INVALID_STATE', `invalid state file: ${file} has ${size} bytes, more than ${MAX_STATE_FILE_BYTES}`);
  return readFile(file);
}

interface ResolvedSpeculative {
  draft: NativeModel | undefined;
  options: Pick<NativeContextOptions, 'draftMax' | 'draftMin' | 'draftPMin' | 'ngram' | 'ngramSize' | 'ngramMax'>;
}

/** Texts one embedding decode may batch (each its own sequence of the embedding context). */
const EMBEDDING_SEQUENCES = 64;

const LOAD_KEYS = [
  'contextSize', 'threads', 'batchSize', 'gpuLayers', 'vocabOnly', 'seed', 'embeddingContextSize', 'useMmap', 'flashAttention',
  'sequences', 'maxQueued', 'onProgress', 'signal', 'rpcServers', 'tensorSplit', 'rpcConnectTimeoutMs', 'rpcTimeoutMs', 'lora',
  'pooling',
  ...SPECULATIVE_KEYS,
] as const;

/**
 * Tensors of a classifier head (llama.cpp's LLM_TENSOR_CLS / CLS_OUT): without one, llama.cpp aborts the process
 * when a rank-pooling context decodes, so rank pooling is refused before that.
 */
const CLASSIFIER_TENSORS = new Set(['cls.weight', 'cls.output.weight']);

function checkPooling(value: unknown, name: string): Pooling | undefined {
  if (value !== undefined && !(typeof value === 'string' && Object.hasOwn(POOLING, value))) {
    throw new LlamaError('ERR_INVALID_ARGUMENT', `${name} must be one of ${Object.keys(POOLING).join(', ')}`);
  }
  return value as Pooling | undefined;
}

/** llama.cpp's GGML_RPC_MAX_SERVERS. */
const MAX_RPC_SERVERS = 16;

/** rpcTimeoutMs's default: a stalled server ends the generation after this long, not never. */
const DEFAULT_RPC_TIMEOUT_MS = 60_000;

function checkRpcOptions(opts: LoadModelOptions): { rpcServers: string[]; tensorSplit: number[] | undefined; timeoutMs: number; commandTimeoutMs: number } {
  let rpcServers: string[] = [];
  if (opts.rpcServers !== undefined) {
    if (!Array.isArray(opts.rpcServers)) throw new LlamaError('ERR_INVALID_ARGUMENT', 'rpcServers must be an array of "host:port" strings');
    if (opts.rpcServers.length > MAX_RPC_SERVERS) throw new LlamaError('ERR_INVALID_ARGUMENT', `rpcServers lists ${opts.rpcServers.length} servers; llama.cpp takes at most ${MAX_RPC_SERVERS}`);
    rpcServers = opts.rpcServers.map((s, k) => parseRpcEndpoint(s, `rpcServers[${k}]`).endpoint);
    const twice = rpcServers.find((s, k) => rpcServers.indexOf(s) !== k);
    if (twice) throw new LlamaError('ERR_INVALID_ARGUMENT', `rpcServers lists ${twice} twice`);
  }
  let tensorSplit: number[] | undefined;
  if (opts.tensorSplit !== undefined) {
    const split = opts.tensorSplit;
    if (!Array.isArray(split) || split.length === 0 || split.length > 256 || !split.every((v) => typeof v === 'number' && Number.isFinite(v) && v >= 0) || !split.some((v) => v > 0)) {
      throw new LlamaError('ERR_INVALID_ARGUMENT', 'tensorSplit must be a non-empty array of numbers >= 0, not all 0 (one proportion per device)');
    }
    tensorSplit = [...split];
  }
  const timeoutMs = optionalInt(opts.rpcConnectTimeoutMs, 'rpcConnectTimeoutMs', 1, 2 ** 31 - 1) ?? DEFAULT_RPC_CONNECT_TIMEOUT_MS;
  const commandTimeoutMs = optionalInt(opts.rpcTimeoutMs, 'rpcTimeoutMs', 0, 2 ** 31 - 1) ?? DEFAULT_RPC_TIMEOUT_MS;
  return { rpcServers, tensorSplit, timeoutMs, commandTimeoutMs };
}

/** LoadModelOptions.flashAttention to llama_flash_attn_type. */
const FLASH_ATTENTION = { auto: -1, off: 0, on: 1 } as const;

/** The abort flags of every load running in this thread, for the exit hook below. */
const inFlight = new Set<NativeAbortFlag>();
let exitHook = false;

/**
 * Tracks a running load until the returned function is called. process.exit() (and the exit after an uncaught
 * exception) joins libuv's thread pool, which waits for native work in progress: without this hook a running load
 * would hold the process for as long as it takes. At exit, every load is aborted (generations: lib/engine/engine.ts).
 */
function track(flag: NativeAbortFlag): () => void {
  if (!exitHook) {
    exitHook = true;
    process.once('exit', () => {
      for (const running of inFlight) running.abort();
    });
  }
  inFlight.add(flag);
  return () => inFlight.delete(flag);
}

/** Links an AbortSignal to a native flag; returns the unlink function. */
function linkSignal(signal: AbortSignal | undefined, flag: NativeAbortFlag): () => void {
  if (!signal) return () => undefined;
  const abort = () => flag.abort();
  if (signal.aborted) abort();
  signal.addEventListener('abort', abort, { once: true });
  return () => signal.removeEventListener('abort', abort);
}

/** Defaults of {@link ChatTemplateLimits} (documented there), and the largest value each accepts. */
export const TEMPLATE_LIMITS = {
  maxDepth: { default: 256, max: 10_000 },
  maxSteps: { default: 500_000, max: 1e12 },
  maxOutputBytes: { default: 16 * 1024 * 1024, max: 1024 * 1024 * 1024 },
  timeoutMs: { default: 5000, max: 3_600_000 },
} as const;

function resolveTemplateLimits(limits: unknown, name: string): Required<ChatTemplateLimits> {
  const opts = limits === undefined ? {} : requireObject(limits, name);
  rejectUnknownKeys(opts, Object.keys(TEMPLATE_LIMITS), name);
  const out = {} as Required<ChatTemplateLimits>;
  for (const [key, { default: fallback, max }] of Object.entries(TEMPLATE_LIMITS)) {
    out[key as keyof ChatTemplateLimits] = optionalInt(opts[key], `${name}.${key}`, 1, max) ?? fallback;
  }
  return out;
}

interface ResolvedTemplateCall {
  messages: ChatMessage[];
  template: string | null;
  addAssistant: boolean;
  limits: Required<ChatTemplateLimits>;
  signal: AbortSignal | undefined;
}

function resolveTemplateCall(messages: unknown, options: unknown, what: string): ResolvedTemplateCall {
  const opts = requireObject(options, 'options');
  rejectUnknownKeys(opts, TEMPLATE_KEYS, `${what} options`);
  return {
    messages: checkMessages(messages),
    template: opts.template === undefined ? null : requireString(opts.template, 'template'),
    addAssistant: optionalBool(opts.addAssistant, 'addAssistant') ?? true,
    limits: resolveTemplateLimits(opts.limits, 'limits'),
    signal: optionalSignal(opts.signal),
  };
}

/**
 * Longest text (in UTF-16 code units, `text.length`) that {@link LlamaModel.tokenize} takes on the calling thread,
 * and most tokens {@link LlamaModel.detokenize} takes (tens of milliseconds of work at most). Past them: the async forms.
 */
export const SYNC_TOKENIZE_MAX_CHARS = 65536;
export const SYNC_DETOKENIZE_MAX_TOKENS = 65536;

const TOKENIZE_KEYS = ['special', 'addSpecial', 'parseSpecial'] as const;
const DETOKENIZE_KEYS = ['special', 'removeSpecial', 'unparseSpecial'] as const;

/** `special` is the default of both flags (the older option, kept for its callers). */
function tokenizeFlags(opts: Record<string, unknown>): { addSpecial: boolean; parseSpecial: boolean } {
  const special = optionalBool(opts.special, 'special') ?? true;
  return { addSpecial: optionalBool(opts.addSpecial, 'addSpecial') ?? special, parseSpecial: optionalBool(opts.parseSpecial, 'parseSpecial') ?? special };
}

function detokenizeFlags(opts: Record<string, unknown>): { removeSpecial: boolean; unparseSpecial: boolean } {
  const special = optionalBool(opts.special, 'special') ?? false;
  return {
    removeSpecial: optionalBool(opts.removeSpecial, 'removeSpecial') ?? !special,
    unparseSpecial: optionalBool(opts.unparseSpecial, 'unparseSpecial') ?? special,
  };
}

function checkTokens(tokens: unknown): Int32Array | number[] {
  if (!(tokens instanceof Int32Array) && !Array.isArray(tokens)) {
    throw new LlamaError('ERR_INVALID_ARGUMENT', 'tokens must be an Int32Array or an array of token ids');
  }
  return tokens;
}

function checkMessages(messages: unknown): ChatMessage[] {
  if (!Array.isArray(messages)) throw new LlamaError('ERR_INVALID_ARGUMENT', 'messages must be an array of { role, content }');
  messages.forEach((m, i) => {
    if (typeof m !== 'object' || m === null || typeof m.role !== 'string' || typeof m.content !== 'string') {
      throw new LlamaError('ERR_INVALID_ARGUMENT', `messages[${i}] must be { role: string, content: string }`);
    }
    checkMessageExtras(m, i);
  });
  return messages as ChatMessage[];
}

const TEMPLATE_KEYS = ['template', 'addAssistant', 'limits', 'signal'] as const;
/** What prepareChat() takes besides TEMPLATE_KEYS: the structured options, less streaming. */
const PREPARE_KEYS = STRUCTURED_KEYS.filter((k) => k !== 'onDelta');

/** A result whose `parsed` has the type of the literal schema in the options (unknown otherwise). */
type Typed<O> = Omit<GenerationResult, 'parsed'> & { parsed?: ParsedOf<O> };

/** The request fields of a chat template render, in OpenAI's JSON (what llama-server passes to common_chat_templates_apply). */
function openAiInputs(messages: ChatMessage[], s: ResolvedStructured): string {
  return JSON.stringify({
    messages: messages.map(toOpenAiMessage),
    ...(s.tools ? { tools: s.tools } : {}),
    ...(s.toolChoice ? { tool_choice: s.toolChoice } : {}),
    ...(s.parallelToolCalls !== undefined ? { parallel_tool_calls: s.parallelToolCalls } : {}),
    ...(s.grammar !== undefined ? { grammar: s.grammar } : {}),
    ...(s.jsonSchema !== undefined ? { json_schema: s.jsonSchema } : {}),
    ...(s.reasoningFormat !== undefined ? { reasoning_format: s.reasoningFormat } : {}),
    // As llama-server: a boolean enable_thinking among the kwargs also sets the flag the parser and grammar use.
    ...(s.enableThinking !== undefined
      ? { enable_thinking: s.enableThinking }
      : typeof s.chatTemplateKwargs?.enable_thinking === 'boolean'
        ? { enable_thinking: s.chatTemplateKwargs.enable_thinking }
        : {}),
    ...(s.chatTemplateKwargs !== undefined ? { chat_template_kwargs: s.chatTemplateKwargs } : {}),
  });
}

/** A grammar or schema given to a plain prompt (no chat template in between). */
function plainGrammar(s: ResolvedStructured): NativeGrammarOptions {
  if (s.grammar !== undefined) return { grammar: s.grammar, grammarKind: 'user' };
  if (s.jsonSchema !== undefined) return { jsonSchema: JSON.stringify(s.jsonSchema), grammarKind: 'output_format' };
  return {};
}

/** What a chat render adds to the generation: its grammar, the parser of the answer, its stop strings. */
interface ChatLayer {
  grammar: NativeGrammarOptions;
  parserJson: string;
  stops: string[];
}

function chatLayer(params: ChatTemplateResult, s: ResolvedStructured): ChatLayer {
  return {
    // As llama-server: a grammar from the template's result is of the tool-calls kind (prefilled with the
    // generation prompt when it is not lazy). Some of llama.cpp's format handlers (Functionary v3.2 without
    // tools) drop the schema: then it constrains the answer directly, never silently ignored.
    grammar: !params.grammar
      ? plainGrammar(s)
      : {
          grammar: params.grammar,
          grammarKind: 'tool_calls',
          grammarLazy: params.grammarLazy,
          grammarTriggers: params.grammarTriggers,
          preservedTokens: params.preservedTokens,
          generationPrompt: params.generationPrompt,
        },
    parserJson: JSON.stringify({
      format: params.format,
      reasoningFormat: s.reasoningFormat ?? 'none',
      generationPrompt: params.generationPrompt,
      parser: params.parser,
      parseToolCalls: s.tools !== undefined && s.toolChoice !== 'none',
    }),
    stops: params.additionalStops,
  };
}

function nativeSampling(s: ResolvedSampling, defaultSeed: number | undefined): NativeGenerateOptions {
  const { explicit: _, seed: _seed, stop: _stop, ...extras } = s;
  return {
    ...extras,
    maxTokens: s.maxTokens,
    temperature: s.temperature,
    topK: s.topK,
    topP: s.topP,
    minP: s.minP,
    repeatPenalty: s.repeatPenalty,
    repeatLastN: s.repeatLastN,
    frequencyPenalty: s.frequencyPenalty,
    presencePenalty: s.presencePenalty,
    seed: s.seed ?? defaultSeed ?? Math.floor(Math.random() * MAX_UINT32),
    stop: s.stop,
  };
}

/** A loaded GGUF model. Create with {@link loadModel}; release with {@link LlamaModel.dispose}. */
export class LlamaModel implements AsyncDisposable {
  readonly info: ModelInfo;
  readonly #native: NativeModel;
  readonly #options: ResolvedLoadOptions;
  #generation: Promise<Engine> | undefined;
  readonly #embedding = new Map<number, Promise<Engine>>();
  #disposing: Promise<void> | undefined;
  #vocabulary: VocabularyInfo | undefined;
  readonly #loras: LoraAdapter[] = [];
  #defaultLora: ResolvedLora[] = [];

  /** @internal Use loadModel(). */
  constructor(native: NativeModel, info: ModelInfo, options: ResolvedLoadOptions) {
    this.#native = native;
    this.info = info;
    this.#options = options;
  }

  /** Context window of completions, in tokens. */
  get contextSize(): number {
    return this.#options.contextSize;
  }

  /** Requests that run at once on this model, each in its own sequence of one shared KV cache. */
  get sequences(): number {
    return this.#options.sequences;
  }

  /** Requests that may wait for a free sequence before ERR_QUEUE_FULL. */
  get maxQueued(): number {
    return this.#options.maxQueued;
  }

  /** The LoRA adapters loaded for this model (`loadModel`'s `lora`, then each {@link loadLora}), by id. */
  get loras(): readonly LoraAdapter[] {
    return [...this.#loras];
  }

  /** The adapters and scales of requests without a `lora` option (`loadModel`'s `lora`, or {@link setLora}'s). */
  get defaultLora(): readonly { adapter: LoraAdapter; scale: number }[] {
    return this.#defaultLora.map(({ adapter, scale }) => ({ adapter: this.#adapter(adapter, 'defaultLora'), scale }));
  }

  /**
   * Loads a LoRA adapter (a GGUF file made for this model, e.g. by llama.cpp's convert_lora_to_gguf.py), off the
   * main thread. It changes nothing until a request lists it in `lora`, or {@link setLora} makes it a default. A
   * file that is not an adapter of this model (another architecture, tensor names or shapes) is ERR_LORA_INVALID.
   */
  async loadLora(path: string): Promise<LoraAdapter> {
    this.#checkOpen();
    this.#checkGenerative();
    const absolute = resolve(requireString(path, 'path'));
    await checkLoraFile(absolute, this.info.architecture, this.#options.tensors);
    this.#checkOpen();
    const native = await this.#call(() => this.#native.loadLora(absolute));
    const adapter = new LoraAdapter(native, absolute, this.#loras.length, this);
    this.#loras.push(adapter);
    if (this.#disposing) adapter.dispose();
    return adapter;
  }

  /**
   * Sets the adapters of requests without a `lora` option (llama-server's `POST /lora-adapters`); `[]` removes
   * them all. Requests already running keep theirs.
   */
  setLora(lora: LoraRequest[]): void {
    this.#checkOpen();
    const list = resolveLora(lora) ?? [];
    for (const [i, entry] of list.entries()) this.#adapter(entry.adapter, `lora[${i}]`);
    this.#defaultLora = list;
  }

  /** A request's adapter (object or id), checked to be one of this model's and not disposed. */
  #adapter(adapter: LoraAdapter | number, name: string): LoraAdapter {
    const a = typeof adapter === 'number' ? this.#loras[adapter] : adapter;
    if (a === undefined) throw new LlamaError('ERR_INVALID_ARGUMENT', `${name}: the model has no LoRA adapter ${String(adapter)} (it has ${this.#loras.length})`);
    if (a.owner !== this) throw new LlamaError('ERR_INVALID_ARGUMENT', `${name}: the LoRA adapter ${a.path} was loaded for another model`);
    if (a.disposed) throw new LlamaError('ERR_DISPOSED', `${name}: the LoRA adapter ${a.path} has been disposed`);
    return a;
  }

  /** The native `lora` of a request: its own list, or the default set. */
  #nativeLora(lora: ResolvedLora[] | undefined): NativeGenerateOptions['lora'] {
    const list = lora ?? this.#defaultLora;
    return list.map((entry, i) => ({ adapter: this.#adapter(entry.adapter, lora ? `lora[${i}]` : 'the default LoRA set (setLora)').native, scale: entry.scale }));
  }

  /**
   * Estimated bytes of the generation KV cache (f16 keys and values of every layer, `contextSize` cells shared by
   * all sequences), or null when the model's header lacks the attention shape.
   */
  get kvCacheBytes(): number | null {
    const { layerCount, embeddingLength, headCount, headCountKv } = this.info;
    if (!layerCount || !embeddingLength || !headCount) return null;
    const perToken = 2 * layerCount * (embeddingLength / headCount) * (headCountKv || headCount) * 2;
    return perToken * this.#options.contextSize;
  }

  get disposed(): boolean {
    return this.#disposing !== undefined;
  }

  /**
   * Tokenizes `text` on the calling thread. Texts longer than {@link SYNC_TOKENIZE_MAX_CHARS} are
   * ERR_INVALID_ARGUMENT: use {@link LlamaModel.tokenizeAsync}, which runs off the main thread.
   */
  tokenize(text: string, options: TokenizeOptions = {}): Int32Array {
    this.#checkOpen();
    const opts = requireObject(options, 'options');
    rejectUnknownKeys(opts, TOKENIZE_KEYS, 'tokenize() options');
    const { addSpecial, parseSpecial } = tokenizeFlags(opts);
    requireString(text, 'text');
    if (text.length > SYNC_TOKENIZE_MAX_CHARS) {
      throw new LlamaError('ERR_INVALID_ARGUMENT', `text has ${text.length} characters, more than tokenize() takes on the main thread (${SYNC_TOKENIZE_MAX_CHARS}): use tokenizeAsync()`);
    }
    return this.#call(() => this.#native.tokenize(text, addSpecial, parseSpecial));
  }

  /**
   * As {@link LlamaModel.tokenize}, of any length, off the main thread (on libuv's pool). `signal` rejects it
   * with ERR_ABORTED; a long text stops within one piece of about a kilobyte.
   */
  async tokenizeAsync(text: string, options: TokenizeAsyncOptions = {}): Promise<Int32Array> {
    this.#checkOpen();
    const opts = requireObject(options, 'options');
    rejectUnknownKeys(opts, [...TOKENIZE_KEYS, 'signal'], 'tokenizeAsync() options');
    const { addSpecial, parseSpecial } = tokenizeFlags(opts);
    const signal = optionalSignal(opts.signal);
    requireString(text, 'text');
    return this.#offThread('tokenization', signal, (flag) => this.#native.tokenizeAsync(text, addSpecial, parseSpecial, flag));
  }

  /**
   * Detokenizes on the calling thread. More than {@link SYNC_DETOKENIZE_MAX_TOKENS} tokens are
   * ERR_INVALID_ARGUMENT: use {@link LlamaModel.detokenizeAsync}.
   */
  detokenize(tokens: ArrayLike<number>, options: DetokenizeOptions = {}): string {
    this.#checkOpen();
    const opts = requireObject(options, 'options');
    rejectUnknownKeys(opts, DETOKENIZE_KEYS, 'detokenize() options');
    const { removeSpecial, unparseSpecial } = detokenizeFlags(opts);
    const list = checkTokens(tokens);
    if (list.length > SYNC_DETOKENIZE_MAX_TOKENS) {
      throw new LlamaError('ERR_INVALID_ARGUMENT', `${list.length} tokens are more than detokenize() takes on the main thread (${SYNC_DETOKENIZE_MAX_TOKENS}): use detokenizeAsync()`);
    }
    return this.#call(() => this.#native.detokenize(list, removeSpecial, unparseSpecial));
  }

  /** As {@link LlamaModel.detokenize}, of any length, off the main thread; `signal` rejects it with ERR_ABORTED. */
  async detokenizeAsync(tokens: ArrayLike<number>, options: DetokenizeAsyncOptions = {}): Promise<string> {
    this.#checkOpen();
    const opts = requireObject(options, 'options');
    rejectUnknownKeys(opts, [...DETOKENIZE_KEYS, 'signal'], 'detokenizeAsync() options');
    const { removeSpecial, unparseSpecial } = detokenizeFlags(opts);
    const signal = optionalSignal(opts.signal);
    const list = checkTokens(tokens);
    return this.#offThread('detokenization', signal, (flag) => this.#native.detokenizeAsync(list, removeSpecial, unparseSpecial, flag));
  }

  /**
   * Each token with its piece of text, special tokens rendered (as llama-server's `/tokenize` with `with_pieces`).
   * On the calling thread, at most {@link SYNC_DETOKENIZE_MAX_TOKENS} tokens.
   */
  tokenPieces(tokens: ArrayLike<number>): TokenPiece[] {
    this.#checkOpen();
    const list = checkTokens(tokens);
    if (list.length > SYNC_DETOKENIZE_MAX_TOKENS) {
      throw new LlamaError('ERR_INVALID_ARGUMENT', `${list.length} tokens are more than tokenPieces() takes (${SYNC_DETOKENIZE_MAX_TOKENS})`);
    }
    const pieces = this.#call(() => this.#native.tokenPieces(list));
    return pieces.map((bytes, i) => tokenPiece(list[i]!, bytes));
  }

  /** One token's piece of text (special tokens rendered): `tokenPieces([token])[0]`. */
  tokenToPiece(token: number): TokenPiece {
    if (!Number.isInteger(token)) throw new LlamaError('ERR_INVALID_ARGUMENT', `token must be an integer token id (got ${String(token)})`);
    return this.tokenPieces([token])[0]!;
  }

  /** The vocabulary's special tokens (BOS, EOS, EOT, SEP, FIM, ...) and what tokenizing adds. */
  get vocabulary(): VocabularyInfo {
    this.#checkOpen();
    this.#vocabulary ??= vocabularyInfo(this.#call(() => this.#native.vocabulary()));
    return this.#vocabulary;
  }

  /**
   * Renders messages into a prompt with the model's chat template (or the one given), through llama.cpp, on a
   * thread of its own under `limits` (ERR_TEMPLATE past one); `signal` stops it (ERR_ABORTED).
   */
  async applyChatTemplate(messages: ChatMessage[], options: ChatTemplateOptions = {}): Promise<string> {
    this.#checkOpen();
    const call = resolveTemplateCall(messages, options, 'applyChatTemplate()');
    // Tool calls and tool results reach the template in OpenAI's shape (its `tool_calls`, `tool_call_id`).
    return this.#render(call, hasToolMessages(call.messages) ? resolveStructured({}) : undefined, false);
  }

  /**
   * As {@link applyChatTemplate}, blocking the calling thread until the render ends: the same limits hold (the
   * render still runs on its own thread, with its own stack), but no signal can stop it.
   */
  applyChatTemplateSync(messages: ChatMessage[], options: Omit<ChatTemplateOptions, 'signal'> = {}): string {
    this.#checkOpen();
    const call = resolveTemplateCall(messages, options, 'applyChatTemplateSync()');
    if (call.signal) throw new LlamaError('ERR_INVALID_ARGUMENT', 'applyChatTemplateSync() cannot be aborted: use applyChatTemplate() for a signal');
    return this.#call(() => this.#native.applyChatTemplateSync(call.messages, call.template, call.addAssistant, call.limits, null));
  }

  /**
   * Renders a conversation as {@link applyChatTemplate} does, with tools, a JSON schema or reasoning options, and
   * returns everything llama.cpp computes for it (common_chat_templates_apply, as llama-server): the prompt, the
   * grammar, its triggers, preserved tokens, the chat format, its parser and thinking tags.
   */
  async prepareChat(messages: ChatMessage[], options: ChatPrepareOptions = {}): Promise<ChatTemplateResult> {
    this.#checkOpen();
    const opts = requireObject(options, 'options');
    const templateKeys = new Set<string>(TEMPLATE_KEYS);
    const structuredOpts = Object.fromEntries(Object.entries(opts).filter(([k]) => !templateKeys.has(k)));
    rejectUnknownKeys(structuredOpts, PREPARE_KEYS, 'prepareChat() options');
    const structured = resolveStructured(structuredOpts);
    const templateOpts = Object.fromEntries(Object.entries(opts).filter(([k]) => templateKeys.has(k)));
    const call = resolveTemplateCall(messages, templateOpts, 'prepareChat()');
    return this.#render(call, structured, true);
  }

  /**
   * Parses a model's answer as llama.cpp does for the conversation `prepared` came from (common_chat_parse with
   * its format and parser): the content, the reasoning (with `reasoningFormat` other than 'none') and the tool
   * calls. `partial`: the answer is still being generated (a stream's text so far). On the calling thread.
   */
  parseChat(text: string, prepared: ChatTemplateResult, options: ChatParseOptions = {}): ChatParseResult {
    this.#checkOpen();
    requireString(text, 'text');
    const p = requireObject(prepared, 'prepared');
    const opts = requireObject(options, 'options');
    rejectUnknownKeys(opts, ['reasoningFormat', 'parseToolCalls', 'partial'], 'parseChat() options');
    const structured = resolveStructured({ reasoningFormat: opts.reasoningFormat });
    const parseToolCalls = optionalBool(opts.parseToolCalls, 'parseToolCalls') ?? true;
    const partial = optionalBool(opts.partial, 'partial') ?? false;
    const json = JSON.stringify({
      format: optionalInt(p.format, 'prepared.format', 0, 1000) ?? 0,
      reasoningFormat: structured.reasoningFormat ?? 'none',
      generationPrompt: p.generationPrompt === undefined ? '' : requireString(p.generationPrompt, 'prepared.generationPrompt'),
      parser: p.parser === undefined ? '' : requireString(p.parser, 'prepared.parser'),
      parseToolCalls,
    });
    return this.#call(() => {
      const parser = new (getBinding().ChatParser)(json);
      const { message } = JSON.parse(parser.update(text, partial)) as NativeChatParse;
      return message;
    });
  }

  /** Renders through the native template thread; `full`: the JSON of common_chat_params, parsed. */
  async #render(call: ResolvedTemplateCall, structured: ResolvedStructured | undefined, full: true): Promise<ChatTemplateResult>;
  async #render(call: ResolvedTemplateCall, structured: ResolvedStructured | undefined, full: false): Promise<string>;
  async #render(call: ResolvedTemplateCall, structured: ResolvedStructured | undefined, full: boolean): Promise<string | ChatTemplateResult> {
    if (call.signal?.aborted) throw new LlamaError('ERR_ABORTED', 'chat template rendering aborted before it started');
    const flag = new (getBinding().AbortFlag)();
    const unlink = linkSignal(call.signal, flag);
    const untrack = track(flag);
    const extra = structured ? openAiInputs(call.messages, structured) : undefined;
    try {
      const out = await this.#call(() => this.#native.applyChatTemplate(call.messages, call.template, call.addAssistant, call.limits, flag, extra, full));
      return full ? (JSON.parse(out) as ChatTemplateResult) : out;
    } catch (error) {
      throw toLlamaError(error);
    } finally {
      unlink();
      untrack();
    }
  }

  /**
   * Generates a completion of `prompt`. With `onChunk`, text arrives as it is generated. Concurrent calls run
   * together, up to `sequences` at once; more wait in FIFO order (at most `maxQueued`, then ERR_QUEUE_FULL).
   * `grammar`, `jsonSchema` and `responseFormat` constrain the output; a grammar or schema llama.cpp rejects is
   * ERR_INVALID_GRAMMAR / ERR_INVALID_SCHEMA before any token is generated.
   */
  complete<const O extends CompletionOptions = CompletionOptions>(prompt: string, options?: O): Promise<Typed<O>>;
  async complete(prompt: string, options: CompletionOptions = {}): Promise<GenerationResult> {
    this.#checkOpen();
    requireString(prompt, 'prompt');
    const request = resolveGeneration(options, 'complete() options');
    checkCompletionStructured(request.structured, 'complete()');
    return this.#generate(prompt, request, plainGrammar(request.structured), undefined);
  }

  /**
   * Fills in the middle between `input.prefix` and `input.suffix` with the model's FIM tokens, the prompt laid out
   * as llama-server's `/infill` lays it out (`extra` files first, the prefix's end and the suffix's start within one
   * batch). Takes complete()'s options. A model without FIM tokens is ERR_MODEL_UNSUPPORTED.
   */
  infill<const O extends CompletionOptions = CompletionOptions>(input: InfillInput, options?: O): Promise<Typed<O>>;
  async infill(input: InfillInput, options: CompletionOptions = {}): Promise<GenerationResult> {
    this.#checkOpen();
    const parts = resolveInfill(input);
    const request = resolveGeneration(options, 'infill() options');
    checkCompletionStructured(request.structured, 'infill()');
    this.#checkGenerative();
    checkFim(this.vocabulary);
    return this.#generate('', request, plainGrammar(request.structured), undefined, parts);
  }

  async #generate(prompt: string, request: ResolvedGeneration, grammar: NativeGrammarOptions, layer: ChatLayer | undefined, infill?: NativeInfill): Promise<GenerationResult> {
    const { sampling, signal, onChunk, structured } = request;
    const onDelta = structured.onDelta;
    this.#checkGenerative();
    const lora = this.#nativeLora(request.lora);
    const started = performance.now();
    const engine = await this.#generationContext();
    this.#checkOpen();
    const seq = request.sequence;
    if (seq.sequence !== undefined && seq.sequence >= this.#options.sequences) {
      throw new LlamaError('ERR_INVALID_ARGUMENT', `sequence ${seq.sequence} is out of range: the model runs ${this.#options.sequences} sequences (0..${this.#options.sequences - 1})`);
    }
    const native: NativeGenerateOptions = {
      ...nativeSampling(sampling, this.#options.seed),
      ...grammar,
      ...(seq.sequence !== undefined ? { sequence: seq.sequence } : {}),
      ...(seq.contextShift ? { contextShift: true, nKeep: seq.nKeep, nDiscard: seq.nDiscard } : {}),
    };
    if (lora!.length > 0) native.lora = lora;
    if (layer && layer.stops.length > 0) native.stop = [...(native.stop ?? []), ...layer.stops];

    // With a chat layer the raw text goes through llama.cpp's parser: onChunk gets the content only (never the
    // tool-call markup), onDelta every delta.
    const parser = layer ? new (getBinding().ChatParser)(layer.parserJson) : undefined;
    let fed = 0;
    const emit = (deltas: NativeChatParse['deltas']) => {
      for (const delta of deltas) {
        if (delta.content) onChunk?.(delta.content);
        onDelta?.(delta as GenerationDelta);
      }
    };
    const onText =
      onChunk || onDelta
        ? parser
          ? (text: string) => {
              fed += text.length;
              emit((JSON.parse(parser.update(text, true)) as NativeChatParse).deltas);
            }
          : (text: string) => {
              onChunk?.(text);
              onDelta?.({ content: text });
            }
        : undefined;
    let r;
    try {
      r = await engine.generate(prompt, native, signal, onText, infill);
    } catch (error) {
      // A schema whose grammar llama.cpp's grammar parser refuses ($ref cycles are left recursion, huge
      // minItems exceed its repetition bound) is the schema's fault.
      const e = toLlamaError(error);
      if (e.code === 'ERR_INVALID_GRAMMAR' && structured.jsonSchema !== undefined) {
        throw new LlamaError('ERR_INVALID_SCHEMA', `the grammar llama.cpp made of the JSON schema is unusable: ${e.message}`);
      }
      throw e;
    }
    let text = r.text;
    let finishReason: GenerationResult['finishReason'] = r.finishReason;
    let toolCalls: GenerationResult['toolCalls'];
    let reasoningContent: string | undefined;
    if (parser) {
      const final = this.#call(() => JSON.parse(parser.update(r.text.slice(fed), r.finishReason === 'abort')) as NativeChatParse);
      if (onText) emit(final.deltas);
      text = final.message.content;
      if (final.message.toolCalls.length > 0) {
        toolCalls = final.message.toolCalls;
        if (finishReason === 'stop') finishReason = 'tool_calls';
      }
      if (structured.reasoningFormat !== undefined && structured.reasoningFormat !== 'none') reasoningContent = final.message.reasoningContent;
    }
    const perSecond = (n: number, ms: number) => (ms > 0 ? (n * 1000) / ms : 0);
    return {
      text,
      content: text,
      finishReason,
      promptTokens: r.promptTokens,
      completionTokens: r.completionTokens,
      tokensUsed: r.promptTokens + r.completionTokens,
      reusedPromptTokens: r.reusedPromptTokens,
      contextFull: r.contextFull,
      sequence: r.sequence,
      ...(seq.contextShift ? { contextShifts: r.contextShifts } : {}),
      model: basename(this.info.path),
      backend: 'local',
      cached: false,
      timings: {
        totalMs: performance.now() - started,
        ...r.timings,
        promptTokensPerSecond: perSecond(r.promptTokens - r.reusedPromptTokens, r.timings.promptMs),
        tokensPerSecond: perSecond(r.completionTokens, r.timings.generationMs),
      },
      ...(structured.json ? { parsed: parseJson(text) } : {}),
      ...(toolCalls ? { toolCalls } : {}),
      ...(reasoningContent !== undefined ? { reasoningContent } : {}),
      ...(this.#options.speculative ? { draftTokens: r.draftTokens, acceptedDraftTokens: r.acceptedDraftTokens } : {}),
      ...(sampling.logprobs ? { logprobs: r.logprobs ?? [] } : {}),
    };
  }

  /** Streams a completion as an AsyncIterable of text chunks; leaving the loop early aborts the generation. */
  stream(prompt: string, options: Omit<CompletionOptions, 'onChunk'> = {}): CompletionStream {
    const opts = requireObject(options, 'options') as CompletionOptions;
    return chunkStream((push, stop) => {
      const signal = opts.signal ? AbortSignal.any([opts.signal, stop]) : stop;
      return this.complete(prompt, { ...opts, signal, onChunk: push });
    });
  }

  /**
   * Applies the chat template to `messages` and completes the assistant's reply. With `tools`, a JSON schema or
   * reasoning options, the template renders through llama.cpp's common chat layer (as `llama-server --jinja`):
   * its grammar constrains the answer and its parser splits it into `text`, `toolCalls` and `reasoningContent`.
   */
  chat<const O extends ChatOptions = ChatOptions>(messages: ChatMessage[], options?: O): Promise<Typed<O>>;
  async chat(messages: ChatMessage[], options: ChatOptions = {}): Promise<GenerationResult> {
    this.#checkOpen();
    const { template, templateLimits, ...rest } = requireObject(options, 'options') as ChatOptions;
    const request = resolveGeneration(rest, 'chat() options', {}, []);
    const call = resolveTemplateCall(messages, { template, limits: templateLimits, signal: request.signal, addAssistant: true }, 'chat()');
    const s = request.structured;
    const structured = s.grammar !== undefined || s.jsonSchema !== undefined || needsChatLayer(s) || hasToolMessages(call.messages);
    if (!structured) return this.#generate(await this.#render(call, undefined, false), request, {}, undefined);
    if (call.template !== null && getBinding().builtinChatTemplates().includes(call.template)) {
      // llama.cpp's built-in templates render role and content only: no tools, no parser.
      if (needsChatLayer(s) || hasToolMessages(call.messages)) {
        throw new LlamaError('ERR_INVALID_ARGUMENT', `tools, tool messages and reasoning need a Jinja chat template (the model's own or a template string), not the built-in '${call.template}'`);
      }
      return this.#generate(await this.#render(call, undefined, false), request, plainGrammar(s), undefined);
    }
    const params = await this.#render(call, s, true);
    if (Buffer.byteLength(params.grammar) > MAX_GRAMMAR_BYTES) {
      throw new LlamaError('ERR_INVALID_SCHEMA', `the grammar llama.cpp made of the tools and schema has ${Buffer.byteLength(params.grammar)} bytes, more than ${MAX_GRAMMAR_BYTES}`);
    }
    const layer = chatLayer(params, s);
    return this.#generate(params.prompt, request, layer.grammar, layer);
  }

  /** As {@link chat}, streamed: the chunks are the reply's content (tool-call deltas go to `onDelta`). */
  streamChat(messages: ChatMessage[], options: Omit<ChatOptions, 'onChunk'> = {}): CompletionStream {
    const opts = requireObject(options, 'options') as ChatOptions;
    return chunkStream((push, stop) => {
      const signal = opts.signal ? AbortSignal.any([opts.signal, stop]) : stop;
      return this.chat(messages, { ...opts, signal, onChunk: push });
    });
  }

  /**
   * Saves the KV state of `sequence` (a result's `sequence`) to `path`, with the tokens it holds, so that a later
   * process with the same model file continues from it without decoding them again ({@link loadState}). Runs once
   * the sequence is idle. The file starts with a header that ties it to this model and checksums it.
   */
  async saveState(path: string, options: SaveStateOptions): Promise<SavedState> {
    this.#checkOpen();
    this.#checkGenerative();
    const file = resolve(requireString(path, 'path'));
    const opts = requireObject(options, 'options');
    rejectUnknownKeys(opts, ['sequence'], 'saveState() options');
    const sequence = optionalInt(opts.sequence, 'sequence', 0, this.#options.sequences - 1);
    if (sequence === undefined) throw new LlamaError('ERR_INVALID_ARGUMENT', 'saveState() needs options.sequence (a result\'s `sequence`)');
    const { tokens, data } = await this.#saveSequence(sequence, '');
    await writeStateFile(file, data);
    return { sequence, tokens, bytes: data.length };
  }

  /**
   * Restores a state file written by {@link saveState} into an idle sequence (or `options.sequence`): a prompt that
   * starts with the saved tokens then reuses them. A file of another model, truncated or modified is
   * ERR_INVALID_STATE (checked before llama.cpp reads it); one with more tokens than a sequence holds is
   * ERR_CONTEXT_OVERFLOW.
   */
  async loadState(path: string, options: LoadStateOptions = {}): Promise<SavedState> {
    this.#checkOpen();
    this.#checkGenerative();
    const file = resolve(requireString(path, 'path'));
    const opts = requireObject(options, 'options');
    rejectUnknownKeys(opts, ['sequence'], 'loadState() options');
    const sequence = optionalInt(opts.sequence, 'sequence', 0, this.#options.sequences - 1) ?? -1;
    const data = await readStateFile(file);
    const r = await this.#loadSequence(data, sequence);
    return { sequence: r.sequence, tokens: r.tokens, bytes: data.length };
  }

  /**
   * Starts a chat session: a conversation kept in a sequence of its own, so that each turn decodes only its new
   * tokens, with the oldest turns dropped (the system prompt kept) when the context is full. See ChatSession.
   */
  async createChatSession(options: ChatSessionOptions = {}): Promise<ChatSession> {
    this.#checkOpen();
    this.#checkGenerative();
    return ChatSession.create(this, options);
  }

  /** Restores a chat session saved with ChatSession.save(): its conversation and its KV state. */
  async loadChatSession(path: string, options: Omit<ChatSessionOptions, 'systemPrompt'> = {}): Promise<ChatSession> {
    this.#checkOpen();
    this.#checkGenerative();
    const data = await readStateFile(resolve(requireString(path, 'path')));
    return ChatSession.restore(this, data, options);
  }

  /** @internal What a ChatSession needs of its model. */
  [SEQUENCE_HOST](): SequenceHost {
    return {
      contextSize: this.#options.contextSize,
      reserve: async () => (await this.#generationContext()).reserveSequence(),
      release: (sequence) => {
        void this.#generation?.then((engine) => engine.releaseSequence(sequence), () => undefined);
      },
      save: (sequence, meta) => this.#saveSequence(sequence, meta),
      load: (data, sequence) => this.#loadSequence(data, sequence),
      writeFile: writeStateFile,
    };
  }

  async #saveSequence(sequence: number, meta: string): Promise<{ tokens: number; data: Buffer }> {
    const engine = await this.#generationContext();
    this.#checkOpen();
    const r = await engine.saveState(sequence, meta);
    return { tokens: r.tokens, data: r.data! };
  }

  async #loadSequence(data: Buffer, sequence: number): Promise<{ sequence: number; tokens: number; meta: string }> {
    const engine = await this.#generationContext();
    this.#checkOpen();
    return engine.loadState(data, sequence);
  }

  /** Embeds one text (a Float32Array) or several (an array of them). */
  embed(text: string, options?: EmbedOptions): Promise<Float32Array>;
  embed(texts: string[], options?: EmbedOptions): Promise<Float32Array[]>;
  async embed(input: string | string[], options: EmbedOptions = {}): Promise<Float32Array | Float32Array[]> {
    this.#checkOpen();
    const opts = requireObject(options, 'options') as EmbedOptions;
    rejectUnknownKeys(opts, ['pooling', 'normalize', 'signal'], 'embed() options');
    const texts = Array.isArray(input) ? input : [input];
    texts.forEach((t, i) => requireString(t, Array.isArray(input) ? `texts[${i}]` : 'text'));
    checkPooling(opts.pooling, 'pooling');
    const normalize = optionalBool(opts.normalize, 'normalize') ?? true;
    const signal = optionalSignal(opts.signal);
    if (this.info.vocabOnly) throw new LlamaError('ERR_MODEL_VOCAB_ONLY', 'the model was loaded with vocabOnly: it cannot embed');
    if (texts.length === 0) return [];
    // -1 lets llama.cpp use the pooling the model declares; models that declare none get mean pooling.
    const declared = `${this.info.architecture}.pooling_type` in this.info.metadata;
    const pooling = opts.pooling ? POOLING[opts.pooling] : (this.#options.pooling ?? (declared ? -1 : POOLING.mean));
    if (pooling === POOLING.rank || (pooling === -1 && this.info.metadata[`${this.info.architecture}.pooling_type`] === '4')) this.#checkClassifier();

    if (signal?.aborted) throw new LlamaError('ERR_ABORTED', 'embedding aborted before it started');
    const engine = await this.#embeddingContext(pooling);
    this.#checkOpen();
    const vectors = await engine.embed(texts, normalize, signal);
    return Array.isArray(input) ? vectors : vectors[0]!;
  }

  /**
   * Scores each document's relevance to `query` with the model's classifier head (a reranker such as
   * bge-reranker), as llama-server's `/v1/rerank`: the pair laid out by the model's rerank template or as
   * [BOS] query [EOS] [SEP] document [EOS], in batches shared with other calls. Returns the best `topN` first.
   * A model without a classifier head is ERR_MODEL_UNSUPPORTED.
   */
  async rerank(query: string, documents: string[], options: RerankOptions = {}): Promise<RerankResult[]> {
    this.#checkOpen();
    const request = resolveRerank(query, documents, options, 'rerank() options');
    if (this.info.vocabOnly) throw new LlamaError('ERR_MODEL_VOCAB_ONLY', 'the model was loaded with vocabOnly: it cannot rerank');
    this.#checkClassifier();
    if (request.documents.length === 0) return [];
    if (request.signal?.aborted) throw new LlamaError('ERR_ABORTED', 'reranking aborted before it started');
    const engine = await this.#embeddingContext(POOLING.rank);
    this.#checkOpen();
    const scores = await engine.rerank(request.query, request.documents, request.signal);
    return rankResults(request, scores.map((s) => s[0]!));
  }

  #checkClassifier(): void {
    if (!this.#options.hasClassifier) {
      throw new LlamaError('ERR_MODEL_UNSUPPORTED', `${basename(this.info.path)} has no classifier head (cls.weight or cls.output.weight tensors): it cannot rank`);
    }
  }

  /**
   * Frees the model and its contexts. Running requests end first (a completion resolves with what it produced,
   * finishReason 'abort'); queued ones reject with ERR_DISPOSED. Idempotent: later calls return the same promise.
   */
  dispose(): Promise<void> {
    this.#disposing ??= (async () => {
      const contexts = [this.#generation, ...this.#embedding.values()].filter((c) => c !== undefined);
      const settled = await Promise.allSettled(contexts);
      await Promise.all(settled.map((c) => (c.status === 'fulfilled' ? c.value.dispose() : undefined)));
      for (const adapter of this.#loras) adapter.dispose();
      this.#native.dispose();
      this.#options.speculative?.draft?.dispose();
      this.#options.releaseRpc?.();
    })();
    return this.#disposing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.dispose();
  }

  #checkOpen(): void {
    if (this.#disposing) throw new LlamaError('ERR_DISPOSED', 'the model has been disposed');
  }

  #checkGenerative(): void {
    if (this.info.vocabOnly) throw new LlamaError('ERR_MODEL_VOCAB_ONLY', 'the model was loaded with vocabOnly: it cannot generate');
    if (!this.info.hasDecoder) throw new LlamaError('ERR_INVALID_ARGUMENT', `${this.info.architecture} is an encoder-only model: use embed()`);
  }

  /** Runs a native pool-thread operation linked to `signal` and to the exit hook. */
  async #offThread<T>(what: string, signal: AbortSignal | undefined, start: (flag: NativeAbortFlag) => Promise<T>): Promise<T> {
    if (signal?.aborted) throw new LlamaError('ERR_ABORTED', `${what} aborted before it started`);
    const flag = new (getBinding().AbortFlag)();
    const unlink = linkSignal(signal, flag);
    const untrack = track(flag);
    try {
      return await this.#call(() => start(flag));
    } catch (error) {
      throw toLlamaError(error);
    } finally {
      unlink();
      untrack();
    }
  }

  #call<T>(fn: () => T): T {
    try {
      return fn();
    } catch (error) {
      throw toLlamaError(error);
    }
  }

  #generationContext(): Promise<Engine> {
    this.#generation ??= Engine.create(this.#native, {
      contextSize: this.#options.contextSize,
      batchSize: this.#options.batchSize,
      threads: this.#options.threads,
      flashAttention: this.#options.flashAttention,
      sequences: this.#options.sequences,
      maxQueued: this.#options.maxQueued,
      ...this.#options.speculative?.options,
    }, this.#options.speculative?.draft).catch((error: unknown) => {
      this.#generation = undefined;
      throw error;
    });
    return this.#generation;
  }

  /**
   * @internal Makes the model from loadModel(). With speculative decoding the generation context is made at once,
   * so that a draft model llama.cpp finds incompatible fails the load (ERR_DRAFT_INCOMPATIBLE), not the first call.
   */
  static async open(native: NativeModel, info: ModelInfo, options: ResolvedLoadOptions): Promise<LlamaModel> {
    const model = new LlamaModel(native, info, options);
    if (options.speculative) {
      try {
        await model.#generationContext();
      } catch (error) {
        await model.dispose();
        throw error;
      }
    }
    return model;
  }

  #embeddingContext(pooling: number): Promise<Engine> {
    let context = this.#embedding.get(pooling);
    if (!context) {
      const size = this.#options.embeddingContextSize;
      context = Engine.create(this.#native, {
        contextSize: size,
        batchSize: size,
        threads: this.#options.threads,
        flashAttention: this.#options.flashAttention,
        embeddings: true,
        pooling,
        sequences: EMBEDDING_SEQUENCES,
        maxQueued: this.#options.maxQueued,
      }).catch((error: unknown) => {
        this.#embedding.delete(pooling);
        throw error;
      });
      this.#embedding.set(pooling, context);
    }
    return context;
  }
}

/**
 * Loads a GGUF model. The file's header and tensor table are checked in TypeScript first, so a malformed file
 * is an ERR_MODEL_INVALID error rather than an abort inside llama.cpp.
 */
export async function loadModel(path: string, options: LoadModelOptions = {}): Promise<LlamaModel> {
  const absolute = resolve(requireString(path, 'path'));
  const opts = requireObject(options, 'options') as LoadModelOptions;
  rejectUnknownKeys(opts, LOAD_KEYS, 'loadModel() options');
  const contextSize = optionalInt(opts.contextSize, 'contextSize', 1, 2 ** 24);
  const threads = optionalInt(opts.threads, 'threads', 1, 1024) ?? availableParallelism();
  const batchSize = optionalInt(opts.batchSize, 'batchSize', 1, 2 ** 20) ?? 512;
  const gpuLayersOption = optionalInt(opts.gpuLayers, 'gpuLayers', -1, 100000);
  const vocabOnly = optionalBool(opts.vocabOnly, 'vocabOnly') ?? false;
  const useMmap = optionalBool(opts.useMmap, 'useMmap') ?? true;
  const seed = optionalInt(opts.seed, 'seed', 0, MAX_UINT32);
  const sequences = optionalInt(opts.sequences, 'sequences', 1, 256) ?? 4;
  const maxQueued = optionalInt(opts.maxQueued, 'maxQueued', 0, 2 ** 31 - 1) ?? 1024;
  const embeddingContextSize = optionalInt(opts.embeddingContextSize, 'embeddingContextSize', 8, 2 ** 24);
  const pooling = checkPooling(opts.pooling, 'pooling');
  if (opts.flashAttention !== undefined && !Object.hasOwn(FLASH_ATTENTION, opts.flashAttention)) {
    throw new LlamaError('ERR_INVALID_ARGUMENT', `flashAttention must be one of ${Object.keys(FLASH_ATTENTION).join(', ')} (got ${JSON.stringify(opts.flashAttention)})`);
  }
  const flashAttention = FLASH_ATTENTION[opts.flashAttention ?? 'auto'];
  const onProgress = optionalFunction<(progress: number) => void>(opts.onProgress, 'onProgress');
  const signal = optionalSignal(opts.signal);
  const rpc = checkRpcOptions(opts);
  const spec = checkSpeculative(opts, vocabOnly);
  const loraFiles = checkLoadLora(opts.lora);
  // With RPC servers and no gpuLayers, every layer goes to them: offloading nothing would leave them unused.
  const gpuLayers = gpuLayersOption ?? (rpc.rpcServers.length > 0 ? -1 : 0);
  if (signal?.aborted) throw new LlamaError('ERR_ABORTED', 'model load aborted');

  const gguf = await readGguf(absolute);
  if (gguf.tensors.length === 0 && !vocabOnly) {
    throw new LlamaError('ERR_MODEL_VOCAB_ONLY', `${absolute} holds no weights (a vocabulary-only file): load it with { vocabOnly: true }`);
  }
  if (!vocabOnly) {
    checkHyperparameters(gguf, absolute);
    checkTensors(gguf, absolute);
  }
  const hasClassifier = gguf.tensors.some((t) => CLASSIFIER_TENSORS.has(t.name));
  if (pooling === 'rank' && !hasClassifier && !vocabOnly) {
    throw new LlamaError('ERR_MODEL_UNSUPPORTED', `${absolute} has no classifier head (cls.weight or cls.output.weight tensors): it cannot be loaded with pooling 'rank'`);
  }
  const fileSize = (await stat(absolute)).size;
  // llama.cpp's RPC client has no connect timeout and says little about a server it cannot reach: check each one here first.
  if (rpc.rpcServers.length > 0) await preflightRpcServers(rpc.rpcServers, rpc.timeoutMs);
  const releaseRpc = holdRpcServers(rpc.rpcServers);

  const binding = getBinding();
  const flag = new binding.AbortFlag();
  const unlink = linkSignal(signal, flag);
  const untrack = track(flag);
  // Progress arrives through a thread-safe queue that may trail the load's completion: events after it are
  // dropped, and a final 1 is reported before the promise resolves.
  let lastProgress = -1;
  let loaded = false;
  const report = (p: number) => {
    if (loaded || !onProgress) return;
    lastProgress = p;
    try {
      onProgress(p);
    } catch {
      // A failing progress callback must not break the load.
    }
  };
  let native: NativeModel;
  try {
    const where = { ...(rpc.rpcServers.length > 0 ? { rpcServers: rpc.rpcServers, rpcTimeoutMs: rpc.commandTimeoutMs } : {}), ...(rpc.tensorSplit ? { tensorSplit: rpc.tensorSplit } : {}) };
    native = await binding.loadModel(absolute, { gpuLayers, vocabOnly, useMmap, ...where }, onProgress ? report : undefined, flag);
  } catch (error) {
    releaseRpc();
    throw toLlamaError(error);
  } finally {
    unlink();
    untrack();
  }
  if (lastProgress < 1) report(1);
  loaded = true;
  if (signal?.aborted) {
    native.dispose();
    releaseRpc();
    throw new LlamaError('ERR_ABORTED', 'model load aborted');
  }
  const info: ModelInfo = { ...native.info(), path: absolute, fileSize };
  const trained = info.trainedContextLength > 0 ? info.trainedContextLength : DEFAULT_MAX_CONTEXT;
  const resolvedContext = contextSize ?? Math.min(trained, DEFAULT_MAX_CONTEXT);
  let speculative: ResolvedSpeculative | undefined;
  if (spec) {
    try {
      speculative = { options: spec.options, draft: spec.draftPath ? await loadDraft(spec.draftPath, { gpuLayers, useMmap }, signal) : undefined };
    } catch (error) {
      native.dispose();
      releaseRpc();
      throw error;
    }
  }
  const model = await LlamaModel.open(native, info, {
    speculative,
    contextSize: resolvedContext,
    embeddingContextSize: embeddingContextSize ?? Math.min(resolvedContext, 1024),
    threads,
    flashAttention,
    batchSize: Math.min(batchSize, resolvedContext),
    seed,
    sequences,
    maxQueued,
    pooling: pooling === undefined ? undefined : POOLING[pooling],
    hasClassifier,
    releaseRpc,
    tensors: new Map(gguf.tensors.map((t) => [t.name, t])),
  });
  if (loraFiles.length > 0) {
    try {
      const adapters = [];
      for (const { path: file } of loraFiles) adapters.push(await model.loadLora(file));
      model.setLora(adapters.map((adapter, i) => ({ adapter, scale: loraFiles[i]!.scale })));
    } catch (error) {
      await model.dispose();
      throw error;
    }
  }
  return model;
}

/** loadModel's `lora`: files (relative to the working directory) and their default scales. */
function checkLoadLora(value: unknown): { path: string; scale: number }[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) throw new LlamaError('ERR_INVALID_ARGUMENT', 'lora must be an array of adapter paths or { path, scale }');
  return value.map((item: unknown, i) => {
    if (typeof item === 'string') return { path: requireString(item, `lora[${i}]`), scale: 1 };
    const entry = requireObject(item, `lora[${i}]`);
    rejectUnknownKeys(entry, ['path', 'scale'], `lora[${i}]`);
    return { path: requireString(entry.path, `lora[${i}].path`), scale: optionalNumber(entry.scale, `lora[${i}].scale`, -1e6, 1e6) ?? 1 };
  });
}

/** Loads the draft model of speculative decoding, with the checks loadModel makes of any model file. */
async function loadDraft(path: string, options: { gpuLayers: number; useMmap: boolean }, signal: AbortSignal | undefined): Promise<NativeModel> {
  const gguf = await readGguf(path);
  if (gguf.tensors.length === 0) throw new LlamaError('ERR_MODEL_VOCAB_ONLY', `the draft model ${path} holds no weights (a vocabulary-only file)`);
  checkHyperparameters(gguf, path);
  checkTensors(gguf, path);
  const flag = new (getBinding().AbortFlag)();
  const unlink = linkSignal(signal, flag);
  const untrack = track(flag);
  try {
    return await getBinding().loadModel(path, options, undefined, flag);
  } catch (error) {
    throw toLlamaError(error);
  } finally {
    unlink();
    untrack();
  }
}
