import type { GenerationOptions } from '../engine/request';
import type { RerankOptions, RerankResult } from '../engine/text-tasks';
import type { BackendKind, ChatMessage, FinishReason, GenerationResult, GenerationTimings } from '../types';

export type { BackendKind } from '../types';

/**
 * Sampling and control options of every backend call: the one request model (lib/engine/request.ts), with the
 * same defaults everywhere (maxTokens 100, temperature 0.7, or the backend's `defaults`). Streaming goes through
 * `stream()`/`streamChat()` rather than an `onChunk` option.
 */
export type LlmGenerateOptions = Omit<GenerationOptions, 'onChunk'>;

/** `call()` / `stream()` parameters: a prompt and the sampling options. */
export interface LlmCallParams extends LlmGenerateOptions {
  prompt: string;
}

/** `chat()` / `streamChat()` options. */
export type LlmChatOptions = LlmGenerateOptions;

/** @deprecated the old name of {@link GenerationTimings}. */
export type LlmTimings = GenerationTimings;

/** @deprecated the old name of {@link FinishReason}. */
export type LlmFinishReason = FinishReason;

/** What every backend call resolves with: the one generation result. */
export type LlmResult = GenerationResult;

/**
 * A streamed call: iterate it for the text chunks (`for await`), or await it (or its `result`) for the final
 * {@link LlmResult}. Both work on the same stream; leaving the loop early aborts the generation.
 */
export interface LlmStream extends AsyncIterable<string>, PromiseLike<LlmResult> {
  readonly result: Promise<LlmResult>;
}

export interface LlmEmbedOptions {
  signal?: AbortSignal;
}

/** `rerank()` options: `topN`, `normalize` and `signal`, as {@link LlamaModel.rerank} takes them. */
export type LlmRerankOptions = RerankOptions;

export interface HealthStatus {
  /** True when the backend can serve calls. */
  ok: boolean;
  backend: BackendKind;
  model: string;
  /** What was checked and what it answered, e.g. "GET /health: 200 ok". Never contains an API key. */
  detail: string;
  latencyMs: number;
}

/** The sampling defaults a backend applies when a call does not set them. */
export interface LlmSamplingDefaults {
  /** Default 100. */
  maxTokens?: number;
  /** Default 0.7. */
  temperature?: number;
  /** Default: unset (the engine's own). */
  topP?: number;
}

/**
 * One interface whether the model runs in-process ({@link LocalLlmBackend}), behind an OpenAI-compatible HTTP
 * API ({@link ApiLlmBackend}) or is a test double ({@link MockLlmBackend}).
 */
export interface LlmBackend extends AsyncDisposable {
  /** Which kind of backend this is. */
  readonly kind: BackendKind;
  /** The model name results report. */
  readonly model: string;
  /** Completes a prompt. */
  call(params: LlmCallParams): Promise<LlmResult>;
  /** Answers a conversation with the assistant's next message. */
  chat(messages: ChatMessage[], options?: LlmChatOptions): Promise<LlmResult>;
  /** As {@link call}, streamed: `onChunk` (optional) receives each piece; the stream is also an AsyncIterable. */
  stream(params: LlmCallParams, onChunk?: (chunk: string) => void): LlmStream;
  /** As {@link chat}, streamed. */
  streamChat(messages: ChatMessage[], onChunk?: (chunk: string) => void, options?: LlmChatOptions): LlmStream;
  /** Embeds one text (a Float32Array) or several (one Float32Array each). Vectors have unit length. */
  embed(text: string, options?: LlmEmbedOptions): Promise<Float32Array>;
  embed(texts: string[], options?: LlmEmbedOptions): Promise<Float32Array[]>;
  /**
   * Scores each document's relevance to `query` with a reranking model, best first: in-process (a model with a
   * classifier head) or a server's `/v1/rerank` (llama-server `--reranking`). ERR_MODEL_UNSUPPORTED where none.
   */
  rerank(query: string, documents: string[], options?: LlmRerankOptions): Promise<RerankResult[]>;
  /** Checks that the backend can serve calls. Never throws: problems are reported as `ok: false`. */
  healthCheck(): Promise<HealthStatus>;
  /** Releases the model or aborts in-flight requests; later calls reject with ERR_DISPOSED. Idempotent. */
  dispose(): Promise<void>;
}
