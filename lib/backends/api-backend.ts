import { parseJson, toOpenAiMessage, type GenerationDelta, type ToolCall } from '../engine/structured';
import type { ResolvedLora } from '../lora';
import { LlamaError } from '../errors';
import { SAMPLING_FIELDS, type SamplingField, type SamplingOptions } from '../engine/request';
import { optionalInt, optionalNumber, requireObject, requireString } from '../validate';
import { BaseLlmBackend, type BackendCommonOptions, type EngineResult, type GenerationRequest, type Sampling } from './base-backend';
import { checkCompletion, checkEmbeddings, checkModels, checkRerank, malformed, type ServerTimings, type Usage } from './api-response';
import { parseLogprobs } from './api-logprobs';
import { EndpointPool, type Endpoint } from './endpoints';
import { displayUrl, HttpClient, readLimited } from './http-client';
import type { HealthStatus, LlmFinishReason } from './llm-backend';
import type { TokenLogprob } from '../types';
import { parseSse } from './sse';

export interface ApiLlmBackendOptions extends BackendCommonOptions {
  /**
   * The server: `http://127.0.0.1:8080` (llama-server), `http://localhost:11434/v1` (Ollama), `https://api.openai.com/v1`.
   * Requests go to `<base>/v1/...`; a base that already ends in `/v1` is used as is. A list of servers serving the
   * same model spreads the requests over them (the healthy one with the fewest outstanding requests, ties round
   * robin) and fails over between them: see {@link EndpointPool}.
   */
  baseUrl: string | readonly string[];
  /** With several servers: first wait before a down one is probed again, in ms (doubling per failed probe). Default 1000. */
  probeDelayMs?: number;
  /** With several servers: longest wait between two probes of a down one, in ms. Default 30000. */
  maxProbeDelayMs?: number;
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
  /**
   * Longest time one call may take in all, in ms: every attempt, retry delay and streamed event included. A server
   * that streams events without end (and no `[DONE]`) is stopped by this and by `maxTokens`. Past it the call
   * rejects with ERR_API_TIMEOUT. Default 600000 (10 minutes).
   */
  totalTimeoutMs?: number;
  /**
   * Largest non-streamed answer read, in bytes (after any content decoding); a larger one is cancelled unread and
   * is ERR_API_RESPONSE. Default 67108864 (64 MiB: 2048 embeddings of 3072 dimensions as JSON fit, with room).
   */
  maxResponseBytes?: number;
  /**
   * Follow a redirect to another origin. Default false: such a redirect is ERR_API_HTTP naming both origins, so
   * neither the prompt nor the API key reaches a server that was not configured. When true, the request is repeated
   * there without the Authorization header and without `headers`.
   */
  allowCrossOriginRedirects?: boolean;
  /**
   * The request fields the server takes. 'llama-server': OpenAI's and llama-server's extensions (its samplers,
   * `grammar`, `n_keep`, `id_slot`, `lora`, ...; vLLM and Ollama take most of them). 'openai': OpenAI's API alone,
   * so an option it has no field for (topK, minP, mirostat, DRY, grammar, lora, a text in logitBias, ...) is
   * ERR_INVALID_ARGUMENT before anything is sent, rather than a server's 400 or a field silently ignored. Default
   * 'openai' when every server is api.openai.com, else 'llama-server'.
   */
  compat?: ApiCompat;
}

/** Which request fields an API server takes: see {@link ApiLlmBackendOptions.compat}. */
export type ApiCompat = 'llama-server' | 'openai';
export const API_COMPATS: readonly ApiCompat[] = ['llama-server', 'openai'];

/** Longest single event of a stream (its data lines together), in bytes. */
const MAX_EVENT_BYTES = 16 * 1024 * 1024;

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
  /** The OpenAI API base, e.g. `http://127.0.0.1:8080/v1` (of the first server, when there are several). */
  readonly apiBase: string;
  /** The server root, where `/health` is (of the first server). */
  readonly serverRoot: string;
  /** Every server, with its health and outstanding requests. */
  readonly endpoints: readonly Endpoint[];
  readonly #pool: EndpointPool;
  readonly #model: string | undefined;
  readonly #http: HttpClient;
  readonly #inFlight = new Set<AbortController>();
  readonly #totalTimeoutMs: number;
  readonly #maxResponseBytes: number;
  /** The request fields the servers take (the `compat` option). */
  readonly compat: ApiCompat;

  constructor(options: ApiLlmBackendOptions) {
    const opts = requireObject(options, 'options') as unknown as ApiLlmBackendOptions;
    super(opts);
    const bases = typeof opts.baseUrl === 'string' || !Array.isArray(opts.baseUrl) ? [requireString(opts.baseUrl, 'baseUrl')] : opts.baseUrl;
    if (bases.length === 0) throw new LlamaError('ERR_INVALID_ARGUMENT', 'baseUrl must be a URL or a non-empty list of URLs');
    const urls = bases.map((b, k) => apiUrls(requireString(b, `baseUrl[${k}]`)));
    const duplicate = urls.find((u, k) => urls.findIndex((v) => v.api === u.api) !== k);
    if (duplicate) throw new LlamaError('ERR_INVALID_ARGUMENT', `baseUrl lists ${displayUrl(duplicate.api)} twice`);
    this.serverRoot = urls[0].root;
    this.apiBase = urls[0].api;
    this.#model = opts.model === undefined ? undefined : requireString(opts.model, 'model');
    this.model = this.#model ?? 'default';
    const apiKey = opts.apiKey === undefined ? process.env.LLM_API_KEY || undefined : requireString(opts.apiKey, 'apiKey');
    const headers = requireObject(opts.headers, 'headers');
    for (const [name, value] of Object.entries(headers)) requireString(value, `headers.${name}`);
    this.#totalTimeoutMs = optionalNumber(opts.totalTimeoutMs, 'totalTimeoutMs', 1, 2 ** 31 - 1) ?? 600_000;
    this.#maxResponseBytes = optionalInt(opts.maxResponseBytes, 'maxResponseBytes', 1, Number.MAX_SAFE_INTEGER) ?? 64 * 1024 * 1024;
    if (opts.allowCrossOriginRedirects !== undefined && typeof opts.allowCrossOriginRedirects !== 'boolean') {
      throw new LlamaError('ERR_INVALID_ARGUMENT', 'allowCrossOriginRedirects must be a boolean');
    }
    if (opts.compat !== undefined && !API_COMPATS.includes(opts.compat)) {
      throw new LlamaError('ERR_INVALID_ARGUMENT', `compat must be ${API_COMPATS.map((c) => `'${c}'`).join(' or ')}, not ${JSON.stringify(opts.compat)}`);
    }
    this.compat = opts.compat ?? (urls.every((u) => new URL(u.api).hostname === 'api.openai.com') ? 'openai' : 'llama-server');
    const probeDelayMs = optionalNumber(opts.probeDelayMs, 'probeDelayMs', 1, 2 ** 31 - 1) ?? 1000;
    const maxProbeDelayMs = optionalNumber(opts.maxProbeDelayMs, 'maxProbeDelayMs', 1, 2 ** 31 - 1) ?? 30_000;
    this.#pool = new EndpointPool(urls, { probeDelayMs, maxProbeDelayMs, logger: this.logger, probe: (e) => this.#probeEndpoint(e) });
    this.endpoints = this.#pool.endpoints;
    this.#http = new HttpClient({
      pool: this.#pool,
      apiKey: apiKey || undefined,
      timeoutMs: optionalNumber(opts.timeoutMs, 'timeoutMs', 1, 2 ** 31 - 1) ?? 60_000,
      maxRetries: optionalInt(opts.maxRetries, 'maxRetries', 0, 100) ?? 2,
      retryDelayMs: optionalNumber(opts.retryDelayMs, 'retryDelayMs', 0, 2 ** 31 - 1) ?? 500,
      maxRetryDelayMs: optionalNumber(opts.maxRetryDelayMs, 'maxRetryDelayMs', 0, 2 ** 31 - 1) ?? 30_000,
      headers: headers as Record<string, string>,
      logger: this.logger,
      allowCrossOriginRedirects: opts.allowCrossOriginRedirects ?? false,
    });
  }

  protected override cacheIdentity(): string {
    return `${this.endpoints.map((e) => e.api).join(',')}#${this.model}`;
  }

  /** The structured fields as llama-server (and OpenAI, for response_format and tools) take them. */
  #structuredBody(request: GenerationRequest): Record<string, unknown> {
    const st = request.structured;
    const kwargs = { ...(st.chatTemplateKwargs ?? {}), ...(st.enableThinking !== undefined ? { enable_thinking: st.enableThinking } : {}) };
    const schemaField =
      st.jsonSchema === undefined
        ? {}
        : request.kind === 'prompt'
          ? { json_schema: st.jsonSchema }
          : { response_format: st.responseFormat ?? { type: 'json_schema', json_schema: { name: 'response', schema: st.jsonSchema } } };
    return {
      ...(st.grammar !== undefined ? { grammar: st.grammar } : {}),
      ...schemaField,
      ...(st.responseFormat?.type === 'text' && request.kind === 'chat' ? { response_format: st.responseFormat } : {}),
      ...(st.tools !== undefined ? { tools: st.tools } : {}),
      // A named tool choice goes as 'required' with only that tool (resolveStructured filtered them): the same
      // for OpenAI, and what llama-server understands (it takes tool_choice as a string only).
      ...(st.toolChoice !== undefined ? { tool_choice: st.toolChoice } : {}),
      ...(st.parallelToolCalls !== undefined ? { parallel_tool_calls: st.parallelToolCalls } : {}),
      ...(st.reasoningFormat !== undefined ? { reasoning_format: st.reasoningFormat } : {}),
      ...(Object.keys(kwargs).length > 0 ? { chat_template_kwargs: kwargs } : {}),
    };
  }

  #body(request: GenerationRequest, stream: boolean): Record<string, unknown> {
    const s: Sampling = request.sampling;
    const q = request.sequence;
    // llama-server's context shift is a server setting (--context-shift): a request can only say what it keeps.
    if (q.contextShift) {
      throw new LlamaError('ERR_INVALID_ARGUMENT', 'contextShift is not a request option of an API server: start llama-server with --context-shift (nKeep and nDiscard are sent as n_keep and n_discard)');
    }
    if (this.compat === 'openai') refuseBeyondOpenAi(request);
    return {
      ...(this.#model !== undefined ? { model: this.#model } : {}),
      ...(request.kind === 'prompt' ? { prompt: request.prompt } : { messages: request.messages.map(toOpenAiMessage) }),
      ...this.#structuredBody(request),
      ...(s.maxTokens >= 0 ? { max_tokens: s.maxTokens } : {}),
      temperature: s.temperature,
      ...samplerFields(s, request.kind, this.compat),
      ...(s.stop !== undefined ? { stop: s.stop } : {}),
      ...(q.sequence !== undefined ? { id_slot: q.sequence } : {}),
      ...(q.nKeep !== 0 ? { n_keep: q.nKeep } : {}),
      ...(q.nDiscard !== 0 ? { n_discard: q.nDiscard } : {}),
      ...(stream ? { stream: true, stream_options: { include_usage: true } } : {}),
      ...(request.lora ? { lora: apiLora(request.lora) } : {}),
    };
  }

  /**
   * Runs `work` with a signal that dispose(), the request's signal and the `totalTimeoutMs` deadline fire. Past the
   * deadline the call rejects with ERR_API_TIMEOUT (`expired()` tells `work` that it was the deadline, not an abort).
   */
  async #tracked<T>(signal: AbortSignal | undefined, what: string, work: (signal: AbortSignal, expired: () => boolean) => Promise<T>): Promise<T> {
    this.checkOpen();
    const controller = new AbortController();
    const deadline = new AbortController();
    const timer = setTimeout(() => deadline.abort(), this.#totalTimeoutMs);
    const expired = () => deadline.signal.aborted && !signal?.aborted && !controller.signal.aborted;
    this.#inFlight.add(controller);
    try {
      return await work(AbortSignal.any([...(signal ? [signal] : []), controller.signal, deadline.signal]), expired);
    } catch (error) {
      if (expired()) {
        throw new LlamaError('ERR_API_TIMEOUT', `${what}: no complete answer within ${(this.#totalTimeoutMs / 1000).toFixed(1)} s (totalTimeoutMs)`, { cause: error });
      }
      throw error;
    } finally {
      clearTimeout(timer);
      this.#inFlight.delete(controller);
    }
  }

  protected generate(request: GenerationRequest, onChunk: ((chunk: string) => void) | undefined): Promise<EngineResult> {
    const path = request.kind === 'prompt' ? '/completions' : '/chat/completions';
    return this.#tracked(request.signal, `POST ${this.#display(path)}`, async (signal, expired) => {
      const partial = { text: '', chunks: 0 };
      try {
        const result =
          onChunk || request.structured.onDelta
            ? await this.#streamed(path, { ...request, signal }, onChunk ?? (() => undefined), partial)
            : await this.#whole(path, { ...request, signal });
        return request.structured.json ? { ...result, parsed: parseJson(result.content) } : result;
      } catch (error) {
        // Aborted while running: the call resolves with what arrived, as the local backend does.
        if (signal.aborted && !expired() && (error as LlamaError).code === 'ERR_ABORTED') {
          return { content: partial.text, promptTokens: 0, completionTokens: partial.chunks, finishReason: 'abort' };
        }
        throw error;
      }
    });
  }

  async #whole(path: string, request: GenerationRequest): Promise<EngineResult> {
    const { where, answer } = await this.#json(path, this.#body(request, false), request.signal);
    const body = checkCompletion(where, answer, request.kind, false);
    if (body.error !== undefined) throw new LlamaError('ERR_API_HTTP', this.#http.redact(`${where}: the server reported an error: ${body.error}`));
    const choice = body.choice!;
    const toolCalls = choice.toolCalls?.map((c, i): ToolCall => ({ id: c.id ?? `call_${i}`, type: 'function', function: { name: c.name!, arguments: c.arguments! } }));
    return {
      content: choice.text ?? '',
      model: body.model,
      promptTokens: body.usage?.prompt_tokens ?? 0,
      completionTokens: body.usage?.completion_tokens ?? 0,
      finishReason: finish(choice.finishReason),
      timings: this.#timings(body.timings),
      ...(toolCalls && toolCalls.length > 0 ? { toolCalls } : {}),
      ...(choice.reasoning !== undefined ? { reasoningContent: choice.reasoning } : {}),
      ...(request.sampling.logprobs ? { logprobs: parseLogprobs(where, firstChoice(answer)?.logprobs, request.sampling.topLogprobs) ?? [] } : {}),
    };
  }

  async #streamed(
    path: string,
    request: GenerationRequest,
    onChunk: (chunk: string) => void,
    partial: { text: string; chunks: number },
  ): Promise<EngineResult> {
    // Once a server has answered with a success status the stream stays with it: failing over after that could
    // repeat text already passed to onChunk.
    const { response, timer, endpoint, release } = await this.#http.send('POST', path, this.#body(request, true), request.signal);
    const where = `POST ${displayUrl(endpoint.api + path)}`;
    const type = response.headers.get('content-type') ?? '';
    if (!type.includes('text/event-stream')) {
      timer.clear();
      release();
      await response.body?.cancel().catch(() => undefined);
      throw new LlamaError('ERR_API_PROTOCOL', `${where}: expected a text/event-stream answer, got ${JSON.stringify(type)}`);
    }
    let model: string | undefined;
    let reason: string | null | undefined;
    let usage: Usage | undefined;
    let timings: ServerTimings | undefined;
    let done = false;
    const onDelta = request.structured.onDelta;
    const calls: { id: string; name: string; arguments: string }[] = [];
    let reasoning: string | undefined;
    const logprobs: TokenLogprob[] | undefined = request.sampling.logprobs ? [] : undefined;
    // maxTokens bounds what a server may stream: a text event past it ends the answer ('length') and the
    // connection, however the server goes on (one text event per token is what every server sends).
    const limit = request.sampling.maxTokens >= 0 ? request.sampling.maxTokens : Infinity;
    try {
      for await (const event of parseSse(this.#bytes(response), { maxEventBytes: MAX_EVENT_BYTES })) {
        // timeoutMs is the longest gap between two events: bytes that never complete one, or keep-alive comments,
        // do not hold a stream open for ever.
        timer.touch();
        // Events already received stay buffered after an abort: stop at the next one.
        if (request.signal.aborted) throw new LlamaError('ERR_ABORTED', `${where} aborted`);
        if (event.data === '[DONE]') {
          done = true;
          break;
        }
        let parsed: unknown;
        try {
          parsed = JSON.parse(event.data);
        } catch {
          const shown = JSON.stringify(this.#http.redact(event.data.slice(0, 4096)).slice(0, 120));
          throw new LlamaError('ERR_API_PROTOCOL', `${where}: malformed event in the stream: ${shown}`);
        }
        const chunk = checkCompletion(`${where} (event ${partial.chunks + 1})`, parsed, request.kind, true);
        if (chunk.error !== undefined) {
          throw new LlamaError('ERR_API_HTTP', this.#http.redact(`${where}: the server reported an error mid-stream: ${chunk.error}`));
        }
        if (chunk.model !== undefined) model = chunk.model;
        if (chunk.usage) usage = chunk.usage;
        if (chunk.timings) timings = chunk.timings;
        const choice = chunk.choice;
        if (!choice) continue;
        const text = choice.text;
        if (text !== undefined && text.length > 0) {
          if (partial.chunks >= limit) {
            // More text than maxTokens allows: the server does not stop, so we do (the finally closes the connection).
            reason = 'length';
            break;
          }
          partial.text += text;
          partial.chunks++;
          onChunk(text);
        }
        // Each event carries the log-probabilities of its own tokens (llama-server, OpenAI): the answer's are all of them.
        if (logprobs) logprobs.push(...(parseLogprobs(`${where} (event ${partial.chunks})`, firstChoice(parsed)?.logprobs, request.sampling.topLogprobs) ?? []));
        const delta: GenerationDelta = {};
        if (text) delta.content = text;
        if (choice.reasoning) {
          reasoning = (reasoning ?? '') + choice.reasoning;
          delta.reasoningContent = choice.reasoning;
        }
        if (choice.toolCalls && choice.toolCalls.length > 0) {
          delta.toolCalls = choice.toolCalls.map((c) => {
            const call = (calls[c.index] ??= { id: '', name: '', arguments: '' });
            if (c.id) call.id = c.id;
            call.name += c.name ?? '';
            call.arguments += c.arguments ?? '';
            return { index: c.index, ...(c.id ? { id: c.id, type: 'function' as const } : {}), function: { ...(c.name ? { name: c.name } : {}), ...(c.arguments ? { arguments: c.arguments } : {}) } };
          });
        }
        if (onDelta && (delta.content || delta.reasoningContent || delta.toolCalls)) onDelta(delta);
        if (choice.finishReason) reason = choice.finishReason;
      }
    } catch (error) {
      // The final event (with its finish reason) came, then the server went quiet without [DONE] and without
      // closing: the answer is complete.
      if (!(timer.fired && reason && !request.signal.aborted)) {
        const failure = this.#http.failure(error, where, timer, request.signal);
        // A server that went away mid-stream is down for the next requests too (this one cannot move: text was sent).
        if (failure.code === 'ERR_API_CONNECTION') this.#pool.markDown(endpoint, 'connection lost mid-stream');
        throw failure;
      }
    } finally {
      timer.clear();
      if (!done) await response.body?.cancel().catch(() => undefined);
      release();
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
      ...(calls.length > 0 ? { toolCalls: calls.map((c, i): ToolCall => ({ id: c.id || `call_${i}`, type: 'function', function: { name: c.name, arguments: c.arguments } })) } : {}),
      ...(reasoning !== undefined ? { reasoningContent: reasoning } : {}),
      ...(logprobs ? { logprobs } : {}),
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

  /**
   * POSTs (or GETs, without a body) and parses a JSON answer of at most `maxResponseBytes`. Text that is not JSON
   * is ERR_API_PROTOCOL; JSON that is not an object is ERR_API_RESPONSE (the callers check the fields).
   */
  async #json(path: string, body: unknown, signal: AbortSignal | undefined): Promise<{ where: string; answer: Record<string, unknown> }> {
    const method = body === undefined ? 'GET' : 'POST';
    const { response, timer, endpoint, release } = await this.#http.send(method, path, body, signal);
    const where = `${method} ${displayUrl(endpoint.api + path)}`;
    let text: string;
    const limit = this.#maxResponseBytes;
    try {
      text = await readLimited(
        response,
        limit,
        () => new LlamaError('ERR_API_RESPONSE', `${where}: the answer is larger than ${limit} bytes (maxResponseBytes): not read`),
      );
    } catch (error) {
      throw this.#http.failure(error, where, timer, signal);
    } finally {
      timer.clear();
      release();
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new LlamaError('ERR_API_PROTOCOL', `${where}: the answer is not JSON: ${JSON.stringify(this.#http.redact(text.slice(0, 4096)).slice(0, 120))}`);
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
      throw new LlamaError('ERR_API_RESPONSE', `${where}: malformed answer: the answer should be a JSON object, got ${parsed === null ? 'null' : Array.isArray(parsed) ? 'a list' : typeof parsed}`);
    }
    return { where, answer: parsed as Record<string, unknown> };
  }

  /** A path under the API base for messages: the one server's URL, or `…/path` when there are several. */
  #display(path: string): string {
    return this.endpoints.length === 1 ? displayUrl(this.apiBase + path) : `${this.endpoints.length} endpoints ${path}`;
  }

  protected embedTexts(texts: string[], signal: AbortSignal | undefined): Promise<Float32Array[]> {
    return this.#tracked(signal, `POST ${this.#display('/embeddings')}`, async (linked) => {
      const body = { ...(this.#model !== undefined ? { model: this.#model } : {}), input: texts, encoding_format: 'float' };
      const { where, answer } = await this.#json('/embeddings', body, linked);
      const vectors = checkEmbeddings(where, answer, texts.length);
      for (const vector of vectors) {
        const norm = Math.sqrt(vector.reduce((sum, x) => sum + x * x, 0));
        if (norm > 0) for (let k = 0; k < vector.length; k++) vector[k] /= norm;
      }
      return vectors;
    });
  }

  /** POST /v1/rerank (llama-server started with `--reranking`; also Jina's and Cohere's API): every document's score. */
  protected override rankDocuments(query: string, documents: string[], signal: AbortSignal | undefined): Promise<number[]> {
    return this.#tracked(signal, `POST ${this.#display('/rerank')}`, async (linked) => {
      const body = { ...(this.#model !== undefined ? { model: this.#model } : {}), query, documents, top_n: documents.length };
      const { where, answer } = await this.#json('/rerank', body, linked);
      const scores = checkRerank(where, answer, documents.length);
      const missing = scores.findIndex((s) => Number.isNaN(s));
      if (missing >= 0) malformed(where, 'results', `a score for each of the ${documents.length} documents (top_n was all of them)`, answer.results);
      return scores;
    });
  }

  /**
   * GET /health; when the server has none (404/405), GET /v1/models. One attempt each, no retries. With several
   * servers each is probed: ok when one is, and `detail` lists each one's answer.
   */
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
    if (this.endpoints.length === 1) {
      const one = await this.#health(this.endpoints[0]);
      return status(one.ok, one.detail);
    }
    const each = await Promise.all(this.endpoints.map((e) => this.#health(e)));
    const healthy = each.filter((h) => h.ok).length;
    const lines = each.map((h, k) => `${displayUrl(this.endpoints[k].root)}: ${h.detail}`);
    return status(healthy > 0, `${healthy} of ${each.length} endpoints healthy; ${lines.join('; ')}`);
  }

  /** A probe of the pool (bringing a down endpoint back): the health check of that one server. */
  async #probeEndpoint(endpoint: Endpoint): Promise<boolean> {
    return this.disposed ? false : (await this.#health(endpoint)).ok;
  }

  /** One server's health. Never throws. */
  async #health(endpoint: Endpoint): Promise<{ ok: boolean; detail: string }> {
    const probe = async (path: string, root: boolean): Promise<{ status: number; text: string }> => {
      const { response, timer, release } = await this.#http.send('GET', path, undefined, undefined, { probe: true, endpoint, root });
      try {
        return { status: response.status, text: await readLimited(response, this.#maxResponseBytes, 'truncate') };
      } catch (error) {
        throw this.#http.failure(error, `GET ${displayUrl((root ? endpoint.root : endpoint.api) + path)}`, timer, undefined);
      } finally {
        timer.clear();
        release();
      }
    };
    try {
      const health = await probe('/health', true);
      if (health.status !== 404 && health.status !== 405) {
        return { ok: health.status < 300, detail: `GET /health: ${health.status}${health.status < 300 ? '' : ` (${health.text.slice(0, 200)})`}` };
      }
      const models = await probe('/models', false);
      const listed = `no /health (${health.status}); GET ${new URL(endpoint.api).pathname}/models: ${models.status}`;
      if (models.status >= 300) return { ok: false, detail: listed };
      // A 2xx that is not a models list (a proxy's page, a captive portal) is not a healthy API.
      let parsed: unknown;
      try {
        parsed = JSON.parse(models.text);
      } catch {
        return { ok: false, detail: `${listed}, but ERR_API_PROTOCOL: the answer is not JSON` };
      }
      try {
        checkModels(`GET ${displayUrl(`${endpoint.api}/models`)}`, parsed);
      } catch (error) {
        return { ok: false, detail: `${listed}, but ${(error as LlamaError).code}: ${(error as LlamaError).message}` };
      }
      return { ok: true, detail: listed };
    } catch (error) {
      const e = error as LlamaError;
      return { ok: false, detail: `${e.code ?? 'ERR_INTERNAL'}: ${e.message}` };
    }
  }

  protected async release(): Promise<void> {
    this.#pool.dispose();
    for (const controller of this.#inFlight) controller.abort();
  }

  /** For tests and logs: the API base and model, never the key. */
  override toString(): string {
    return `ApiLlmBackend(${this.endpoints.map((e) => e.api).join(', ')}, model ${this.model})`;
  }
}

/**
 * A request's `lora` as llama-server's per-request field, `[{ id, scale }]`: adapters by the server's ids (the order
 * of its --lora flags). llama-server reads an empty list as "its default set", not "none", so `[]` cannot be sent.
 */
function apiLora(lora: ResolvedLora[]): { id: number; scale: number }[] {
  if (lora.length === 0) {
    throw new LlamaError('ERR_INVALID_ARGUMENT', "lora: [] cannot be sent to an API server (llama-server reads it as its default adapters): list them with scale 0 to turn them off");
  }
  return lora.map(({ adapter, scale }, i) => {
    if (typeof adapter !== 'number') throw new LlamaError('ERR_INVALID_ARGUMENT', `lora[${i}].adapter: an API backend takes the server's adapter ids, not a LoraAdapter of a local model`);
    return { id: adapter, scale };
  });
}

/** llama-server's names of the sampler options beyond OpenAI's (tools/server/server-schema.cpp). */
/** Sampling options sent on their own terms (below) rather than by their wire name as they are. */
const SENT_APART = new Set<keyof SamplingOptions>(['maxTokens', 'temperature', 'stop', 'logitBias', 'logprobs', 'topLogprobs']);

/**
 * The explicitly set sampling options by their wire names (SAMPLING_FIELDS: llama-server's, OpenAI's where it has
 * them), so the server's own defaults apply to the rest; logit_bias as llama-server's [token or text, bias] pairs
 * (a ban is `false`: JSON has no -Infinity), or for OpenAI its map of token ids to -100..100; and the
 * log-probability fields: `logprobs`/`top_logprobs` for chat, `logprobs: N` (llama-server's n_probs alias, OpenAI's
 * completions form) for a completion.
 */
function samplerFields(s: Sampling, kind: 'prompt' | 'chat', compat: ApiCompat): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, field] of Object.entries(SAMPLING_FIELDS) as [keyof SamplingOptions, SamplingField][]) {
    if (!SENT_APART.has(key) && s.explicit.has(key)) out[field.wire] = s[key];
  }
  if (s.logitBias) {
    out.logit_bias =
      compat === 'openai'
        ? Object.fromEntries(s.logitBias.map((b) => ['token' in b ? String(b.token) : b.text, Math.max(-100, Math.min(100, b.bias))]))
        : s.logitBias.map((b) => ['token' in b ? b.token : b.text, b.bias === -Infinity ? false : b.bias]);
  }
  if (s.logprobs) {
    // llama-server reports nothing for n_probs 0: at least one alternative is asked for, and cut off on return.
    const n = Math.max(1, s.topLogprobs);
    if (kind === 'chat') Object.assign(out, { logprobs: true, top_logprobs: n });
    else out.logprobs = n;
  }
  return out;
}

/** With compat 'openai': what OpenAI's API has no field for is refused before anything is sent. */
function refuseBeyondOpenAi(request: GenerationRequest): void {
  const refuse = (what: string) => {
    throw new LlamaError('ERR_INVALID_ARGUMENT', `${what} is not part of OpenAI's API (this API backend has compat: 'openai'): leave it out, or use compat: 'llama-server' for a server that takes it`);
  };
  const s = request.sampling;
  for (const [key, field] of Object.entries(SAMPLING_FIELDS) as [keyof SamplingOptions, SamplingField][]) {
    if (!field.openai && s.explicit.has(key)) refuse(key);
  }
  if (s.logitBias?.some((b) => 'text' in b)) refuse('a text in logitBias (OpenAI takes token ids)');
  if (s.logprobs && request.kind === 'prompt') refuse('logprobs on a completion (OpenAI answers those in another shape: use chat)');
  const st = request.structured;
  if (st.grammar !== undefined) refuse('grammar');
  if (st.jsonSchema !== undefined && request.kind === 'prompt') refuse('jsonSchema on a completion (OpenAI takes it on chat, as response_format)');
  if (st.reasoningFormat !== undefined) refuse('reasoningFormat');
  if (st.chatTemplateKwargs !== undefined || st.enableThinking !== undefined) refuse('chatTemplateKwargs and enableThinking');
  const q = request.sequence;
  if (q.sequence !== undefined) refuse('sequence');
  if (q.nKeep !== 0 || q.nDiscard !== 0) refuse('nKeep and nDiscard');
  if (request.lora) refuse('lora');
}

function firstChoice(answer: unknown): Record<string, unknown> | undefined {
  const choices = (answer as { choices?: unknown[] } | null)?.choices;
  const first = Array.isArray(choices) ? choices[0] : undefined;
  return typeof first === 'object' && first !== null ? (first as Record<string, unknown>) : undefined;
}
