import { stat } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { basename, resolve } from 'node:path';

import { chunkStream } from './chunk-stream';
import { Engine } from './engine/engine';
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
import { LlamaError, toLlamaError } from './errors';
import { readGguf } from './gguf';
import type { NativeAbortFlag, NativeChatParse, NativeGenerateOptions, NativeGrammarOptions, NativeModel } from './native/binding-types';
import { getBinding } from './native/load-binding';
import { checkHyperparameters, checkTensors } from './preflight';
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

const POOLING: Record<Pooling, number> = { mean: 1, cls: 2, last: 3 };
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
  /** Releases the RPC servers the model holds (see lib/rpc.ts), after the native model is freed. */
  releaseRpc?: () => void;
}

/** Texts one embedding decode may batch (each its own sequence of the embedding context). */
const EMBEDDING_SEQUENCES = 64;

const LOAD_KEYS = [
  'contextSize', 'threads', 'batchSize', 'gpuLayers', 'vocabOnly', 'seed', 'embeddingContextSize', 'useMmap', 'flashAttention',
  'sequences', 'maxQueued', 'onProgress', 'signal', 'rpcServers', 'tensorSplit', 'rpcConnectTimeoutMs', 'rpcTimeoutMs',
] as const;

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
    rejectUnknownKeys(opts, ['special'], 'tokenize() options');
    const special = optionalBool(opts.special, 'special') ?? true;
    requireString(text, 'text');
    if (text.length > SYNC_TOKENIZE_MAX_CHARS) {
      throw new LlamaError('ERR_INVALID_ARGUMENT', `text has ${text.length} characters, more than tokenize() takes on the main thread (${SYNC_TOKENIZE_MAX_CHARS}): use tokenizeAsync()`);
    }
    return this.#call(() => this.#native.tokenize(text, special, special));
  }

  /**
   * As {@link LlamaModel.tokenize}, of any length, off the main thread (on libuv's pool). `signal` rejects it
   * with ERR_ABORTED; a long text stops within one piece of about a kilobyte.
   */
  async tokenizeAsync(text: string, options: TokenizeAsyncOptions = {}): Promise<Int32Array> {
    this.#checkOpen();
    const opts = requireObject(options, 'options');
    rejectUnknownKeys(opts, ['special', 'signal'], 'tokenizeAsync() options');
    const special = optionalBool(opts.special, 'special') ?? true;
    const signal = optionalSignal(opts.signal);
    requireString(text, 'text');
    return this.#offThread('tokenization', signal, (flag) => this.#native.tokenizeAsync(text, special, special, flag));
  }

  /**
   * Detokenizes on the calling thread. More than {@link SYNC_DETOKENIZE_MAX_TOKENS} tokens are
   * ERR_INVALID_ARGUMENT: use {@link LlamaModel.detokenizeAsync}.
   */
  detokenize(tokens: ArrayLike<number>, options: DetokenizeOptions = {}): string {
    this.#checkOpen();
    const opts = requireObject(options, 'options');
    rejectUnknownKeys(opts, ['special'], 'detokenize() options');
    const special = optionalBool(opts.special, 'special') ?? false;
    const list = checkTokens(tokens);
    if (list.length > SYNC_DETOKENIZE_MAX_TOKENS) {
      throw new LlamaError('ERR_INVALID_ARGUMENT', `${list.length} tokens are more than detokenize() takes on the main thread (${SYNC_DETOKENIZE_MAX_TOKENS}): use detokenizeAsync()`);
    }
    return this.#call(() => this.#native.detokenize(list, special));
  }

  /** As {@link LlamaModel.detokenize}, of any length, off the main thread; `signal` rejects it with ERR_ABORTED. */
  async detokenizeAsync(tokens: ArrayLike<number>, options: DetokenizeAsyncOptions = {}): Promise<string> {
    this.#checkOpen();
    const opts = requireObject(options, 'options');
    rejectUnknownKeys(opts, ['special', 'signal'], 'detokenizeAsync() options');
    const special = optionalBool(opts.special, 'special') ?? false;
    const signal = optionalSignal(opts.signal);
    const list = checkTokens(tokens);
    return this.#offThread('detokenization', signal, (flag) => this.#native.detokenizeAsync(list, special, flag));
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

  async #generate(prompt: string, request: ResolvedGeneration, grammar: NativeGrammarOptions, layer: ChatLayer | undefined): Promise<GenerationResult> {
    const { sampling, signal, onChunk, structured } = request;
    const onDelta = structured.onDelta;
    this.#checkGenerative();
    const started = performance.now();
    const engine = await this.#generationContext();
    this.#checkOpen();
    const native: NativeGenerateOptions = { ...nativeSampling(sampling, this.#options.seed), ...grammar };
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
      r = await engine.generate(prompt, native, signal, onText);
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

  /** Embeds one text (a Float32Array) or several (an array of them). */
  embed(text: string, options?: EmbedOptions): Promise<Float32Array>;
  embed(texts: string[], options?: EmbedOptions): Promise<Float32Array[]>;
  async embed(input: string | string[], options: EmbedOptions = {}): Promise<Float32Array | Float32Array[]> {
    this.#checkOpen();
    const opts = requireObject(options, 'options') as EmbedOptions;
    rejectUnknownKeys(opts, ['pooling', 'normalize', 'signal'], 'embed() options');
    const texts = Array.isArray(input) ? input : [input];
    texts.forEach((t, i) => requireString(t, Array.isArray(input) ? `texts[${i}]` : 'text'));
    if (opts.pooling !== undefined && !(typeof opts.pooling === 'string' && Object.hasOwn(POOLING, opts.pooling))) {
      throw new LlamaError('ERR_INVALID_ARGUMENT', `pooling must be one of ${Object.keys(POOLING).join(', ')}`);
    }
    const normalize = optionalBool(opts.normalize, 'normalize') ?? true;
    const signal = optionalSignal(opts.signal);
    if (this.info.vocabOnly) throw new LlamaError('ERR_MODEL_VOCAB_ONLY', 'the model was loaded with vocabOnly: it cannot embed');
    if (texts.length === 0) return [];
    // -1 lets llama.cpp use the pooling the model declares; models that declare none get mean pooling.
    const declared = `${this.info.architecture}.pooling_type` in this.info.metadata;
    const pooling = opts.pooling ? POOLING[opts.pooling] : declared ? -1 : POOLING.mean;

    if (signal?.aborted) throw new LlamaError('ERR_ABORTED', 'embedding aborted before it started');
    const engine = await this.#embeddingContext(pooling);
    this.#checkOpen();
    const vectors = await engine.embed(texts, normalize, signal);
    return Array.isArray(input) ? vectors : vectors[0]!;
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
      this.#native.dispose();
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
    }).catch((error: unknown) => {
      this.#generation = undefined;
      throw error;
    });
    return this.#generation;
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
  if (opts.flashAttention !== undefined && !Object.hasOwn(FLASH_ATTENTION, opts.flashAttention)) {
    throw new LlamaError('ERR_INVALID_ARGUMENT', `flashAttention must be one of ${Object.keys(FLASH_ATTENTION).join(', ')} (got ${JSON.stringify(opts.flashAttention)})`);
  }
  const flashAttention = FLASH_ATTENTION[opts.flashAttention ?? 'auto'];
  const onProgress = optionalFunction<(progress: number) => void>(opts.onProgress, 'onProgress');
  const signal = optionalSignal(opts.signal);
  const rpc = checkRpcOptions(opts);
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
  return new LlamaModel(native, info, {
    contextSize: resolvedContext,
    embeddingContextSize: embeddingContextSize ?? Math.min(resolvedContext, 1024),
    threads,
    flashAttention,
    batchSize: Math.min(batchSize, resolvedContext),
    seed,
    sequences,
    maxQueued,
    releaseRpc,
  });
}
