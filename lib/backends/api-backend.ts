import { LlamaError } from '../errors';
import { optionalInt, optionalNumber, requireObject, requireString } from '../validate';
import { BaseLlmBackend, type BackendCommonOptions, type EngineResult, type GenerationRequest, type Sampling } from './base-backend';
import { displayUrl, HttpClient } from './http-client';
import type { HealthStatus, LlmFinishReason } from './llm-backend';
import { parseSse } from './sse';

export interface ApiLlmBackendOptions extends BackendCommonOptions {
  /**
   * The server: `http://127.0.0.1:8080` (llama-server), `http://localhost:11434/v1` (Ollama), `https://api.openai.com/v1`.
   * Requests go to `<base>/v1/...`; a base that already ends in `/v1` is used as is.
   */
  baseUrl: string;
  /** Sent as a Bearer token; never logged or put in an error. Default: `LLM_API_KEY` from the environment, else none. */
  apiKey?: string;
  /** Model name sent with each request. Default: none (llama-server answers with the model it serves). */
  model?: string;
  /** Longest wait for an answer, and between two events of a stream, in ms. Default 60000. */
  timeoutMs?: number;
  /** Retries after a 429 or 5xx answer. Default 2. */
  maxRetries?: number;
  /** First retry delay in ms; each retry doubles it. Default 500. */
  retryDelayMs?: number;
  /** Longest retry delay in ms, also the cap on a server's Retry-After. Default 30000. */
  maxRetryDelayMs?: number;
  /** Extra request headers. */
  headers?: Record<string, string>;
}

interface Usage {
  prompt_tokens?: number;
  completion_tokens?: number;
}

interface ServerTimings {
  prompt_ms?: number;
  predicted_ms?: number;
  predicted_per_second?: number;
}

interface Choice {
  text?: string;
  message?: { content?: string | null };
  delta?: { content?: string | null };
  finish_reason?: string | null;
}

interface CompletionBody {
  model?: string;
  choices?: Choice[];
  usage?: Usage;
  timings?: ServerTimings;
  error?: { message?: string } | string;
}

/** Splits a base URL into the server root (for /health) and the OpenAI API base (…/v1). */
export function apiUrls(baseUrl: string): { root: string; api: string } {
  let url: URL;
  try {
    url = new URL(baseUrl);
  } catch {
    throw new LlamaError('ERR_INVALID_ARGUMENT', `baseUrl must be an http(s) URL (got ${JSON.stringify(displayUrl(baseUrl))})`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new LlamaError('ERR_INVALID_ARGUMENT', `baseUrl must be an http(s) URL (got protocol ${url.protocol})`);
  }
  if (url.username || url.password) throw new LlamaError('ERR_INVALID_ARGUMENT', 'baseUrl must not contain credentials: use apiKey');
  const path = url.pathname.replace(/\/+$/, '');
  const root = `${url.origin}${path.replace(/\/v1$/, '')}`;
  return { root, api: path.endsWith('/v1') ? `${url.origin}${path}` : `${root}/v1` };
}

function finish(reason: string | null | undefined): LlmFinishReason {
  return reason ?? 'stop';
}

/**
 * An {@link LlmBackend} over any OpenAI-compatible HTTP API: llama-server, Ollama's `/v1`, vLLM, OpenAI. Uses
 * `/v1/completions` for call(), `/v1/chat/completions` for chat(), `/v1/embeddings`, and server-sent events for
 * the streamed forms.
 */
export class ApiLlmBackend extends BaseLlmBackend {
  readonly kind = 'api' as const;
  /** The configured model name, or 'default' when none is sent. */
  readonly model: string;
  /** The OpenAI API base, e.g. `http://127.0.0.1:8080/v1`. */
  readonly apiBase: string;
  /** The server root, where `/health` is. */
  readonly serverRoot: string;
  readonly #model: string | undefined;
  readonly #http: HttpClient;
  readonly #inFlight = new Set<AbortController>();

  constructor(options: ApiLlmBackendOptions) {
    const opts = requireObject(options, 'options') as unknown as ApiLlmBackendOptions;
    super(opts);
    const { root, api } = apiUrls(requireString(opts.baseUrl, 'baseUrl'));
    this.serverRoot = root;
    this.apiBase = api;
    this.#model = opts.model === undefined ? undefined : requireString(opts.model, 'model');
    this.model = this.#model ?? 'default';
    const apiKey = opts.apiKey === undefined ? process.env.LLM_API_KEY || undefined : requireString(opts.apiKey, 'apiKey');
    const headers = requireObject(opts.headers, 'headers');
    for (const [name, value] of Object.entries(headers)) requireString(value, `headers.${name}`);
    this.#http = new HttpClient({
      apiKey: apiKey || undefined,
      timeoutMs: optionalNumber(opts.timeoutMs, 'timeoutMs', 1, 2 ** 31 - 1) ?? 60_000,
      maxRetries: optionalInt(opts.maxRetries, 'maxRetries', 0, 100) ?? 2,
      retryDelayMs: optionalNumber(opts.retryDelayMs, 'retryDelayMs', 0, 2 ** 31 - 1) ?? 500,
      maxRetryDelayMs: optionalNumber(opts.maxRetryDelayMs, 'maxRetryDelayMs', 0, 2 ** 31 - 1) ?? 30_000,
      headers: headers as Record<string, string>,
      logger: this.logger,
    });
  }

  protected override cacheIdentity(): string {
    return `${this.apiBase}#${this.model}`;
  }

  #body(request: GenerationRequest, stream: boolean): Record<string, unknown> {
    const s: Sampling = request.sampling;
    return {
      ...(this.#model !== undefined ? { model: this.#model } : {}),
      ...(request.kind === 'prompt' ? { prompt: request.prompt } : { messages: request.messages }),
      ...(s.maxTokens >= 0 ? { max_tokens: s.maxTokens } : {}),
      temperature: s.temperature,
      // Beyond max_tokens and temperature, only what the caller (or the backend's defaults) asked for is sent, so
      // the server's own defaults apply otherwise. top_k, min_p and the repeat penalty are not in OpenAI's API;
      // llama-server, vLLM and Ollama accept them.
      ...(s.explicit.has('topP') ? { top_p: s.topP } : {}),
      ...(s.explicit.has('topK') ? { top_k: s.topK } : {}),
      ...(s.explicit.has('minP') ? { min_p: s.minP } : {}),
      ...(s.explicit.has('repeatPenalty') ? { repeat_penalty: s.repeatPenalty } : {}),
      ...(s.explicit.has('repeatLastN') ? { repeat_last_n: s.repeatLastN } : {}),
      ...(s.explicit.has('frequencyPenalty') ? { frequency_penalty: s.frequencyPenalty } : {}),
      ...(s.explicit.has('presencePenalty') ? { presence_penalty: s.presencePenalty } : {}),
      ...(s.stop !== undefined ? { stop: s.stop } : {}),
      ...(s.seed !== undefined ? { seed: s.seed } : {}),
      ...(stream ? { stream: true, stream_options: { include_usage: true } } : {}),
    };
  }

  /** Runs `work` with an AbortController that dispose() fires, linked to the request's signal. */
  async #tracked<T>(signal: AbortSignal | undefined, work: (signal: AbortSignal) => Promise<T>): Promise<T> {
    this.checkOpen();
    const controller = new AbortController();
    this.#inFlight.add(controller);
    try {
      return await work(signal ? AbortSignal.any([signal, controller.signal]) : controller.signal);
    } finally {
      this.#inFlight.delete(controller);
    }
  }

  protected generate(request: GenerationRequest, onChunk: ((chunk: string) => void) | undefined): Promise<EngineResult> {
    const path = request.kind === 'prompt' ? '/completions' : '/chat/completions';
    return this.#tracked(request.signal, async (signal) => {
      const partial = { text: '', chunks: 0 };
      try {
        return onChunk
          ? await this.#streamed(path, { ...request, signal }, onChunk, partial)
          : await this.#whole(path, { ...request, signal });
      } catch (error) {
        // Aborted while running: the call resolves with what arrived, as the local backend does.
        if (signal.aborted && (error as LlamaError).code === 'ERR_ABORTED') {
          return { content: partial.text, promptTokens: 0, completionTokens: partial.chunks, finishReason: 'abort' };
        }
        throw error;
      }
    });
  }

  async #whole(path: string, request: GenerationRequest): Promise<EngineResult> {
    const where = `POST ${displayUrl(this.apiBase + path)}`;
    const body = await this.#json<CompletionBody>(where, this.apiBase + path, this.#body(request, false), request.signal);
    const choice = body.choices?.[0];
    const content = request.kind === 'prompt' ? choice?.text : choice?.message?.content ?? (choice?.message ? '' : undefined);
    if (!choice || typeof content !== 'string') {
      throw new LlamaError('ERR_API_PROTOCOL', `${where}: the answer has no ${request.kind === 'prompt' ? 'choices[0].text' : 'choices[0].message'}`);
    }
    return {
      content,
      model: typeof body.model === 'string' ? body.model : undefined,
      promptTokens: body.usage?.prompt_tokens ?? 0,
      completionTokens: body.usage?.completion_tokens ?? 0,
      finishReason: finish(choice.finish_reason),
      timings: this.#timings(body.timings),
    };
  }

  async #streamed(
    path: string,
    request: GenerationRequest,
    onChunk: (chunk: string) => void,
    partial: { text: string; chunks: number },
  ): Promise<EngineResult> {
    const where = `POST ${displayUrl(this.apiBase + path)}`;
    const { response, timer } = await this.#http.send('POST', this.apiBase + path, this.#body(request, true), request.signal);
    const type = response.headers.get('content-type') ?? '';
    if (!type.includes('text/event-stream')) {
      timer.clear();
      await response.body?.cancel().catch(() => undefined);
      throw new LlamaError('ERR_API_PROTOCOL', `${where}: expected a text/event-stream answer, got ${JSON.stringify(type)}`);
    }
    let model: string | undefined;
    let reason: string | null | undefined;
    let usage: Usage | undefined;
    let timings: ServerTimings | undefined;
    let done = false;
    try {
      for await (const event of parseSse(this.#bytes(response))) {
        // timeoutMs is the longest gap between two events: bytes that never complete one, or keep-alive comments,
        // do not hold a stream open for ever.
        timer.touch();
        // Events already received stay buffered after an abort: stop at the next one.
        if (request.signal.aborted) throw new LlamaError('ERR_ABORTED', `${where} aborted`);
        if (event.data === '[DONE]') {
          done = true;
          break;
        }
        let chunk: CompletionBody;
        try {
          chunk = JSON.parse(event.data) as CompletionBody;
        } catch {
          const shown = JSON.stringify(this.#http.redact(event.data).slice(0, 120));
          throw new LlamaError('ERR_API_PROTOCOL', `${where}: malformed event in the stream: ${shown}`);
        }
        if (typeof chunk !== 'object' || chunk === null) throw new LlamaError('ERR_API_PROTOCOL', `${where}: an event in the stream is not an object`);
        if (chunk.error !== undefined) {
          const message = typeof chunk.error === 'string' ? chunk.error : chunk.error.message ?? JSON.stringify(chunk.error);
          throw new LlamaError('ERR_API_HTTP', this.#http.redact(`${where}: the server reported an error mid-stream: ${message}`));
        }
        if (typeof chunk.model === 'string') model = chunk.model;
        if (chunk.usage) usage = chunk.usage;
        if (chunk.timings) timings = chunk.timings;
        const choice = chunk.choices?.[0];
        if (!choice) continue;
        const text = request.kind === 'prompt' ? choice.text : choice.delta?.content;
        if (typeof text === 'string' && text.length > 0) {
          partial.text += text;
          partial.chunks++;
          onChunk(text);
        }
        if (choice.finish_reason) reason = choice.finish_reason;
      }
    } catch (error) {
      // The final event (with its finish reason) came, then the server went quiet without [DONE] and without
      // closing: the answer is complete.
      if (!(timer.fired && reason && !request.signal.aborted)) throw this.#http.failure(error, where, timer, request.signal);
    } finally {
      timer.clear();
      if (!done) await response.body?.cancel().catch(() => undefined);
    }
    if (request.signal.aborted) throw new LlamaError('ERR_ABORTED', `${where} aborted`);
    if (!done && !reason) throw new LlamaError('ERR_API_PROTOCOL', `${where}: the stream ended before its last event`);
    return {
      content: partial.text,
      model,
      promptTokens: usage?.prompt_tokens ?? 0,
      completionTokens: usage?.completion_tokens ?? partial.chunks,
      finishReason: finish(reason),
      timings: this.#timings(timings),
    };
  }

  /** The response body's bytes (none when there is no body). */
  async *#bytes(response: Response): AsyncGenerator<Uint8Array> {
    if (!response.body) return;
    yield* response.body as unknown as AsyncIterable<Uint8Array>;
  }

  #timings(t: ServerTimings | undefined): EngineResult['timings'] {
    if (!t) return undefined;
    return { promptMs: t.prompt_ms, generationMs: t.predicted_ms, tokensPerSecond: t.predicted_per_second };
  }

  /** POSTs (or GETs, without a body) and parses a JSON answer. */
  async #json<T>(where: string, url: string, body: unknown, signal: AbortSignal | undefined): Promise<T> {
    const { response, timer } = await this.#http.send(body === undefined ? 'GET' : 'POST', url, body, signal);
    let text: string;
    try {
      text = await response.text();
    } catch (error) {
      throw this.#http.failure(error, where, timer, signal);
    } finally {
      timer.clear();
    }
    try {
      const parsed = JSON.parse(text) as T;
      if (typeof parsed !== 'object' || parsed === null) throw new Error('not an object');
      return parsed;
    } catch {
      throw new LlamaError('ERR_API_PROTOCOL', `${where}: the answer is not a JSON object: ${JSON.stringify(this.#http.redact(text).slice(0, 120))}`);
    }
  }

  protected embedTexts(texts: string[], signal: AbortSignal | undefined): Promise<Float32Array[]> {
    const url = `${this.apiBase}/embeddings`;
    const where = `POST ${displayUrl(url)}`;
    return this.#tracked(signal, async (linked) => {
      const body = { ...(this.#model !== undefined ? { model: this.#model } : {}), input: texts, encoding_format: 'float' };
      const answer = await this.#json<{ data?: Array<{ index?: number; embedding?: unknown }> }>(where, url, body, linked);
      const data = answer.data;
      if (!Array.isArray(data) || data.length !== texts.length) {
        throw new LlamaError('ERR_API_PROTOCOL', `${where}: expected ${texts.length} embeddings, got ${Array.isArray(data) ? data.length : 'none'}`);
      }
      const vectors: Float32Array[] = new Array(texts.length);
      data.forEach((item, i) => {
        const index = typeof item.index === 'number' ? item.index : i;
        const values = item.embedding;
        if (!Array.isArray(values) || !values.every((v) => typeof v === 'number') || index < 0 || index >= texts.length) {
          throw new LlamaError('ERR_API_PROTOCOL', `${where}: data[${i}] is not a { index, embedding: number[] } item`);
        }
        const vector = Float32Array.from(values as number[]);
        const norm = Math.sqrt(vector.reduce((sum, x) => sum + x * x, 0));
        if (norm > 0) for (let k = 0; k < vector.length; k++) vector[k] /= norm;
        vectors[index] = vector;
      });
      if (vectors.some((v) => v === undefined)) {
        throw new LlamaError('ERR_API_PROTOCOL', `${where}: embedding indices are not 0…${texts.length - 1}`);
      }
      return vectors;
    });
  }

  /** GET /health; when the server has none (404/405), GET /v1/models. One attempt each, no retries. */
  async healthCheck(): Promise<HealthStatus> {
    const started = performance.now();
    const status = (ok: boolean, detail: string): HealthStatus => ({
      ok,
      backend: this.kind,
      model: this.model,
      detail: this.#http.redact(detail),
      latencyMs: performance.now() - started,
    });
    if (this.disposed) return status(false, 'ERR_DISPOSED: the api backend has been disposed');
    const probe = async (url: string): Promise<{ status: number; text: string }> => {
      const { response, timer } = await this.#http.send('GET', url, undefined, undefined, { probe: true });
      try {
        return { status: response.status, text: this.#http.redact(await response.text()).slice(0, 200) };
      } catch (error) {
        throw this.#http.failure(error, `GET ${displayUrl(url)}`, timer, undefined);
      } finally {
        timer.clear();
      }
    };
    try {
      const health = await probe(`${this.serverRoot}/health`);
      if (health.status !== 404 && health.status !== 405) {
        return status(health.status < 300, `GET /health: ${health.status}${health.status < 300 ? '' : ` (${health.text})`}`);
      }
      const models = await probe(`${this.apiBase}/models`);
      return status(models.status < 300, `no /health (${health.status}); GET ${new URL(this.apiBase).pathname}/models: ${models.status}`);
    } catch (error) {
      const e = error as LlamaError;
      return status(false, `${e.code ?? 'ERR_INTERNAL'}: ${e.message}`);
    }
  }

  protected async release(): Promise<void> {
    for (const controller of this.#inFlight) controller.abort();
  }

  /** For tests and logs: the API base and model, never the key. */
  override toString(): string {
    return `ApiLlmBackend(${this.apiBase}, model ${this.model})`;
  }
}
