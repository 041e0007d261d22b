import type { ChatMessage } from '../types';

/** Which kind of backend produced a result. */
export type BackendKind = 'local' | 'api' | 'mock';

/** Sampling and control options shared by every backend call. */
export interface LlmGenerateOptions {
  /** Most tokens to generate. Default 100 (or the backend's `defaults.maxTokens`). */
  maxTokens?: number;
  /** 0 is greedy. Default 0.7 (or the backend's `defaults.temperature`). */
  temperature?: number;
  /** Nucleus sampling threshold in [0, 1]. Default: the backend's `defaults.topP`, else the engine's own. */
  topP?: number;
  /** Keep only the k most likely tokens (0: off). Default: the engine's own. Sent to an API only when set. */
  topK?: number;
  /** Generation ends before any of these strings, which never appear in the output. */
  stop?: string | string[];
  /** Sampling seed, for reproducible output at temperature > 0. */
  seed?: number;
  /**
   * Stops the call. Aborted while it runs, the call resolves with what was produced and finishReason 'abort';
   * aborted before it starts (or while waiting for an earlier call), it rejects with ERR_ABORTED.
   */
  signal?: AbortSignal;
}

/** `call()` / `stream()` parameters: a prompt and the sampling options. */
export interface LlmCallParams extends LlmGenerateOptions {
  prompt: string;
}

/** `chat()` / `streamChat()` options. */
export type LlmChatOptions = LlmGenerateOptions;

export interface LlmTimings {
  /** Wall-clock time of the call, as the caller saw it. */
  totalMs: number;
  /** Prompt processing time, when the engine reports it. */
  promptMs?: number;
  /** Generation time, when the engine reports it. */
  generationMs?: number;
  /** Time to the first generated text, when known (local calls and streamed API calls). */
  firstTokenMs?: number;
  /** Generated tokens per second, when known. */
  tokensPerSecond?: number;
}

/** 'stop': end of text or a stop string; 'length': maxTokens or a full context; 'abort': the signal fired. */
export type LlmFinishReason = 'stop' | 'length' | 'abort' | (string & {});

export interface LlmResult {
  /** The generated text (for chat: the assistant's reply). */
  content: string;
  /** The model that answered: the file name for a local model, the server's model id for an API. */
  model: string;
  backend: BackendKind;
  /** promptTokens + completionTokens. */
  tokensUsed: number;
  promptTokens: number;
  completionTokens: number;
  finishReason: LlmFinishReason;
  /** True when the result came from the response cache. */
  cached: boolean;
  timings: LlmTimings;
}

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
  /** Checks that the backend can serve calls. Never throws: problems are reported as `ok: false`. */
  healthCheck(): Promise<HealthStatus>;
  /** Releases the model or aborts in-flight requests; later calls reject with ERR_DISPOSED. Idempotent. */
  dispose(): Promise<void>;
}
