import { chunkStream } from '../chunk-stream';
import { LlamaError } from '../errors';
import { defaultLogger, type Logger } from '../logger';
import type { ChatMessage, TokenLogprob } from '../types';
import { resolveGeneration, type ResolvedSampling, type ResolvedSequence } from '../engine/request';
import type { ResolvedLora } from '../lora';
import { checkCompletionStructured, checkMessageExtras, parseJson, structuredCacheKey, type ResolvedStructured, type ToolCall } from '../engine/structured';
import { rankResults, resolveRerank, type RerankResult } from '../engine/text-tasks';
import { optionalFunction, optionalInt, optionalNumber, optionalSignal, requireObject, requireString } from '../validate';
import type {
  BackendKind,
  HealthStatus,
  LlmBackend,
  LlmCallParams,
  LlmChatOptions,
  LlmEmbedOptions,
  LlmFinishReason,
  LlmRerankOptions,
  LlmResult,
  LlmSamplingDefaults,
  LlmStream,
  LlmTimings,
} from './llm-backend';
import type { ResponseCache, ResponseCacheKey } from './response-cache';

export { GENERATION_DEFAULTS } from '../engine/request';
const DEFAULT_MAX_TOKENS = 100;
const DEFAULT_TEMPERATURE = 0.7;

/** Options every backend accepts. */
export interface BackendCommonOptions {
  /** Sampling defaults for calls that do not set them. Default: maxTokens 100, temperature 0.7. */
  defaults?: LlmSamplingDefaults;
  /** Response cache; off when absent. */
  cache?: ResponseCache;
  /** Default: warnings to stderr. */
  logger?: Logger;
}

/** Sampling parameters after defaults and validation (lib/engine/request.ts). */
export type Sampling = ResolvedSampling;

/** A prompt or a conversation. */
export type GenerationInput = { kind: 'prompt'; prompt: string } | { kind: 'chat'; messages: ChatMessage[] };

/** What a backend's engine is asked to do. */
export type GenerationRequest = GenerationInput & { sampling: Sampling; structured: ResolvedStructured; signal: AbortSignal; sequence: ResolvedSequence; lora?: ResolvedLora[] };

/** What a backend's engine returns; the base class adds the backend kind, caching and the wall-clock time. */
export interface EngineResult {
  content: string;
  model?: string;
  promptTokens: number;
  completionTokens: number;
  finishReason: LlmFinishReason;
  reusedPromptTokens?: number;
  contextFull?: boolean;
  timings?: Omit<LlmTimings, 'totalMs'>;
  parsed?: unknown;
  toolCalls?: ToolCall[];
  reasoningContent?: string;
  /** Speculative decoding (a local model with a draft): tokens drafted and accepted. */
  draftTokens?: number;
  acceptedDraftTokens?: number;
  logprobs?: TokenLogprob[];
}

/** A checked request and the caller's signal. */
type Prepared = { input: GenerationInput; sampling: Sampling; structured: ResolvedStructured; signal: AbortSignal | undefined; sequence: ResolvedSequence; lora: ResolvedLora[] | undefined };

export function checkMessages(messages: unknown): ChatMessage[] {
  if (!Array.isArray(messages)) throw new LlamaError('ERR_INVALID_ARGUMENT', 'messages must be an array of { role, content }');
  messages.forEach((m, i) => {
    if (typeof m !== 'object' || m === null || typeof m.role !== 'string' || typeof m.content !== 'string') {
      throw new LlamaError('ERR_INVALID_ARGUMENT', `messages[${i}] must be { role: string, content: string }`);
    }
    checkMessageExtras(m, i);
  });
  return messages.map((m: ChatMessage) => ({
    role: m.role,
    content: m.content,
    ...(m.toolCalls !== undefined ? { toolCalls: m.toolCalls } : {}),
    ...(m.toolCallId !== undefined ? { toolCallId: m.toolCallId } : {}),
    ...(m.reasoningContent !== undefined ? { reasoningContent: m.reasoningContent } : {}),
  }));
}

function checkDefaults(defaults: LlmSamplingDefaults | undefined): Required<Omit<LlmSamplingDefaults, 'topP'>> & { topP?: number } {
  const d = requireObject(defaults, 'defaults');
  return {
    maxTokens: optionalInt(d.maxTokens, 'defaults.maxTokens', 1, 2 ** 31 - 1) ?? DEFAULT_MAX_TOKENS,
    temperature: optionalNumber(d.temperature, 'defaults.temperature', 0, 100) ?? DEFAULT_TEMPERATURE,
    topP: optionalNumber(d.topP, 'defaults.topP', 0, 1),
  };
}

/**
 * What the three backends share: argument checks and defaults, the response cache, wall-clock timings, the
 * streamed forms (callback and AsyncIterable), abort and dispose bookkeeping. A backend supplies `generate`,
 * `embedTexts`, `healthCheck` and `release`.
 */
export abstract class BaseLlmBackend implements LlmBackend {
  abstract readonly kind: BackendKind;
  abstract readonly model: string;
  protected readonly logger: Logger;
  readonly #defaults: ReturnType<typeof checkDefaults>;
  readonly #cache: ResponseCache | undefined;
  #disposing: Promise<void> | undefined;

  protected constructor(options: BackendCommonOptions) {
    this.logger = options.logger ?? defaultLogger;
    this.#defaults = checkDefaults(options.defaults);
    this.#cache = options.cache;
  }

  /** Runs one generation. `onChunk`, when given, must receive the text as it is produced. */
  protected abstract generate(request: GenerationRequest, onChunk: ((chunk: string) => void) | undefined): Promise<EngineResult>;

  /** Embeds texts (at least one) into unit-length vectors. */
  protected abstract embedTexts(texts: string[], signal: AbortSignal | undefined): Promise<Float32Array[]>;

  /** Frees what the backend holds; called once by dispose(). */
  protected abstract release(): Promise<void>;

  abstract healthCheck(): Promise<HealthStatus>;

  /** What identifies the model in cache keys (a local backend uses the file's absolute path). */
  protected cacheIdentity(): string {
    return this.model;
  }

  get disposed(): boolean {
    return this.#disposing !== undefined;
  }

  call(params: LlmCallParams): Promise<LlmResult> {
    return this.#run(() => this.#promptRequest(params), undefined);
  }

  chat(messages: ChatMessage[], options: LlmChatOptions = {}): Promise<LlmResult> {
    return this.#run(() => this.#chatRequest(messages, options), undefined);
  }

  stream(params: LlmCallParams, onChunk?: (chunk: string) => void): LlmStream {
    return this.#stream(() => this.#promptRequest(params), onChunk);
  }

  streamChat(messages: ChatMessage[], onChunk?: (chunk: string) => void, options: LlmChatOptions = {}): LlmStream {
    return this.#stream(() => this.#chatRequest(messages, options), onChunk);
  }

  embed(text: string, options?: LlmEmbedOptions): Promise<Float32Array>;
  embed(texts: string[], options?: LlmEmbedOptions): Promise<Float32Array[]>;
  async embed(input: string | string[], options: LlmEmbedOptions = {}): Promise<Float32Array | Float32Array[]> {
    this.checkOpen();
    const texts = Array.isArray(input) ? input : [input];
    texts.forEach((t, i) => requireString(t, Array.isArray(input) ? `texts[${i}]` : 'text'));
    const signal = optionalSignal(requireObject(options, 'options').signal);
    if (signal?.aborted) throw new LlamaError('ERR_ABORTED', 'embedding aborted before it started');
    if (texts.length === 0) return [];
    const vectors = await this.embedTexts(texts, signal);
    return Array.isArray(input) ? vectors : vectors[0];
  }

  /**
   * Scores each document's relevance to `query` with a reranking model, best first (see {@link LlamaModel.rerank}):
   * the local backend's model in-process, the API backend's server through `/v1/rerank`.
   */
  async rerank(query: string, documents: string[], options: LlmRerankOptions = {}): Promise<RerankResult[]> {
    this.checkOpen();
    const request = resolveRerank(query, documents, options, `${this.kind} backend rerank() options`);
    if (request.signal?.aborted) throw new LlamaError('ERR_ABORTED', 'reranking aborted before it started');
    if (request.documents.length === 0) return [];
    return rankResults(request, await this.rankDocuments(request.query, request.documents, request.signal));
  }

  /** Each document's raw relevance score, in order. A backend without reranking keeps this default. */
  protected rankDocuments(_query: string, _documents: string[], _signal: AbortSignal | undefined): Promise<number[]> {
    return Promise.reject(new LlamaError('ERR_MODEL_UNSUPPORTED', `the ${this.kind} backend cannot rerank`));
  }

  dispose(): Promise<void> {
    this.#disposing ??= this.release();
    return this.#disposing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.dispose();
  }

  protected checkOpen(): void {
    if (this.#disposing) throw new LlamaError('ERR_DISPOSED', `the ${this.kind} backend has been disposed`);
  }

  #prepare(input: GenerationInput, options: unknown, where: string, extraKeys: readonly string[] = []): Prepared {
    const { sampling, signal, structured, sequence, lora } = resolveGeneration(options, where, this.#defaults, [...extraKeys]);
    return { input, sampling, structured, signal, sequence, lora };
  }

  #promptRequest(params: LlmCallParams): Prepared {
    const p = requireObject(params, 'params');
    const prompt = requireString(p.prompt, 'prompt');
    const { onChunk: _, ...rest } = p;
    if (_ !== undefined) throw new LlamaError('ERR_INVALID_ARGUMENT', "onChunk is not a call() option: use stream(params, onChunk)");
    const prepared = this.#prepare({ kind: 'prompt', prompt }, rest, `${this.kind} backend params`, ['prompt']);
    // Tools and reasoning need a conversation, on every backend alike.
    checkCompletionStructured(prepared.structured, 'call()/stream()');
    return prepared;
  }

  #chatRequest(messages: ChatMessage[], options: LlmChatOptions): Prepared {
    const checked = checkMessages(messages);
    const opts = requireObject(options, 'options');
    if (opts.onChunk !== undefined) throw new LlamaError('ERR_INVALID_ARGUMENT', 'onChunk is not a chat() option: use streamChat(messages, onChunk)');
    return this.#prepare({ kind: 'chat', messages: checked }, opts, `${this.kind} backend chat options`);
  }

  #stream(prepare: () => Prepared, onChunk: ((chunk: string) => void) | undefined): LlmStream {
    optionalFunction(onChunk, 'onChunk');
    const stream = chunkStream<LlmResult>((push, stop) =>
      this.#run(prepare, (chunk) => {
        onChunk?.(chunk);
        push(chunk);
      }, stop),
    );
    return {
      result: stream.result,
      [Symbol.asyncIterator]: () => stream[Symbol.asyncIterator](),
      then: (onFulfilled, onRejected) => stream.result.then(onFulfilled, onRejected),
    };
  }

  async #run(
    prepare: () => Prepared,
    onChunk: ((chunk: string) => void) | undefined,
    stop?: AbortSignal,
  ): Promise<LlmResult> {
    this.checkOpen();
    const { input, sampling, structured, signal, sequence, lora } = prepare();
    if (signal?.aborted) throw new LlamaError('ERR_ABORTED', 'the call was aborted before it started');
    const started = performance.now();

    const key = this.#cache ? this.#cacheKey(input, sampling, structured, sequence, lora) : undefined;
    if (key) {
      const hit = await this.#cache!.get(key);
      if (hit) {
        if (hit.content) onChunk?.(hit.content);
        return { ...hit, backend: this.kind, cached: true, timings: { totalMs: performance.now() - started } };
      }
    }

    // One signal for the engine: the caller's, early exit from a `for await` loop, or a throwing onChunk.
    const internal = new AbortController();
    const signals = [internal.signal, ...(signal ? [signal] : []), ...(stop ? [stop] : [])];
    let callbackError: unknown;
    let firstChunkMs: number | undefined;
    const sink = onChunk
      ? (chunk: string) => {
          if (callbackError !== undefined || chunk.length === 0) return;
          firstChunkMs ??= performance.now() - started;
          try {
            onChunk(chunk);
          } catch (error) {
            callbackError = error;
            internal.abort();
          }
        }
      : undefined;

    const engine = await this.generate({ ...input, sampling, structured, sequence, signal: AbortSignal.any(signals), ...(lora ? { lora } : {}) }, sink);
    if (callbackError !== undefined) throw callbackError;
    const result: LlmResult = {
      text: engine.content,
      content: engine.content,
      model: engine.model ?? this.model,
      backend: this.kind,
      tokensUsed: engine.promptTokens + engine.completionTokens,
      promptTokens: engine.promptTokens,
      completionTokens: engine.completionTokens,
      reusedPromptTokens: engine.reusedPromptTokens ?? 0,
      contextFull: engine.contextFull ?? false,
      finishReason: engine.finishReason,
      cached: false,
      timings: { totalMs: performance.now() - started },
      // Every backend alike (the mock's scripted text too): JSON asked for, the text parsed.
      ...(structured.json ? { parsed: engine.parsed ?? parseJson(engine.content) } : {}),
      ...(engine.toolCalls !== undefined ? { toolCalls: engine.toolCalls } : {}),
      ...(engine.reasoningContent !== undefined ? { reasoningContent: engine.reasoningContent } : {}),
      ...(engine.draftTokens !== undefined ? { draftTokens: engine.draftTokens, acceptedDraftTokens: engine.acceptedDraftTokens } : {}),
      ...(engine.logprobs !== undefined ? { logprobs: engine.logprobs } : {}),
    };
    // The engine's own timings when it has them; the first chunk's arrival as seen here otherwise.
    for (const [name, value] of Object.entries({ firstTokenMs: firstChunkMs, ...engine.timings })) {
      if (value !== undefined) result.timings[name as keyof LlmTimings] = value;
    }
    if (key && result.finishReason !== 'abort') {
      await this.#cache!.set(key, result).catch((error: unknown) => {
        this.logger.warn(`could not write the response cache in ${this.#cache!.dir}: ${(error as Error).message}`);
      });
    }
    return result;
  }

  #cacheKey(input: GenerationInput, sampling: Sampling, structured: ResolvedStructured, sequence: ResolvedSequence, lora: ResolvedLora[] | undefined): ResponseCacheKey {
    const { explicit: _, ...values } = sampling;
    const extra = structuredCacheKey(structured);
    return {
      backend: this.kind,
      model: this.cacheIdentity(),
      ...(input.kind === 'prompt' ? { prompt: input.prompt } : { messages: input.messages }),
      ...values,
      ...(Object.keys(extra).length > 0 ? { structured: extra } : {}),
      // A context shift changes the text; the sequence a request ran in does not.
      ...(sequence.contextShift ? { contextShift: { nKeep: sequence.nKeep, nDiscard: sequence.nDiscard } } : {}),
      // An adapter by id, or by its file (an object's identity does not survive the process).
      ...(lora ? { lora: lora.map((l) => [typeof l.adapter === 'number' ? l.adapter : l.adapter.path, l.scale]) } : {}),
    };
  }
}
