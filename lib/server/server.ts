import { createHash, randomUUID, timingSafeEqual } from 'node:crypto';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';

import type { LlmBackend, LlmResult, LlmStream } from '../backends/llm-backend';
import { LocalLlmBackend } from '../backends/local-backend';
import type { GenerationDelta } from '../engine/structured';
import { rejectUnknownKeys } from '../engine/request';
import { LlamaError, toLlamaError } from '../errors';
import { defaultLogger, type Logger } from '../logger';
import type { TokenAlternative, TokenLogprob } from '../types';
import { optionalBool, optionalInt, requireObject, requireString } from '../validate';
import { ServerMetrics } from './metrics';
import { badRequest, HttpError, parseEmbeddings, parseGeneration, requestError, type ParsedGeneration } from './openai-request';

export interface CreateServerOptions {
  /**
   * Clients must send `Authorization: Bearer <apiKey>` (compared in constant time); others get 401. `GET /health`
   * needs no key (for load balancers). Default: none, every client is served.
   */
  apiKey?: string;
  /** Largest request body, in bytes; a larger one is 413. Default 4194304 (4 MiB). */
  maxBodyBytes?: number;
  /**
   * CORS: `true` answers any origin (`Access-Control-Allow-Origin: *`), a string answers that origin only.
   * Default false: no CORS headers, so browsers on other origins cannot read the answers.
   */
  cors?: boolean | string;
  /** The model id `/v1/models` lists and answers carry. Default: the backend's `model`. */
  modelName?: string;
  /** How long `shutdown()` lets running requests finish before it ends them, in ms. Default 10000. */
  drainTimeoutMs?: number;
  /**
   * How long a stream waits for a client that reads nothing before closing its connection (and aborting its
   * generation), in ms. Default 60000.
   */
  stallTimeoutMs?: number;
  /** Default: warnings to stderr. */
  logger?: Logger;
  /**
   * Every generation shifts its context when full instead of ending with 'length' (`contextShift` of the request
   * model), keeping the request's `n_keep` tokens and dropping `n_discard`: as `llama-server --context-shift`. A
   * local backend only (an API server is started with its own flag). Default false.
   */
  contextShift?: boolean;
}

const OPTION_KEYS = ['apiKey', 'maxBodyBytes', 'cors', 'modelName', 'drainTimeoutMs', 'stallTimeoutMs', 'logger', 'contextShift'];

/** A node:http server answering the OpenAI API over an {@link LlmBackend}. */
export interface TeaServer extends Server {
  /** The server's counters, as `GET /metrics` renders them. */
  readonly metrics: ServerMetrics;
  /**
   * Stops accepting connections, lets running requests finish for up to `timeoutMs` (default: `drainTimeoutMs`),
   * then ends the rest (a stream with an error event and `[DONE]`, a waiting request with 503) and closes every
   * connection. Resolves when the server is closed. The backend is not disposed. Idempotent.
   */
  shutdown(options?: { timeoutMs?: number }): Promise<void>;
}

/** One running generation or embedding. */
interface Running {
  controller: AbortController;
  /** Set when shutdown() ended it (its answer says so) rather than the client leaving. */
  stopped: boolean;
  done: Promise<void>;
}

type Route = 'health' | 'metrics' | 'models' | 'model' | 'completions' | 'chat' | 'embeddings' | 'rerank';

const ROUTES: Record<string, { method: string; route: Route }> = {
  '/health': { method: 'GET', route: 'health' },
  '/metrics': { method: 'GET', route: 'metrics' },
  '/v1/models': { method: 'GET', route: 'models' },
  '/v1/completions': { method: 'POST', route: 'completions' },
  '/v1/chat/completions': { method: 'POST', route: 'chat' },
  '/v1/embeddings': { method: 'POST', route: 'embeddings' },
  '/v1/rerank': { method: 'POST', route: 'rerank' },
};

/** A backend error as the status and OpenAI error a client gets. A client's mistake is never a 500. */
function httpError(error: unknown, param: string | null): HttpError {
  if (error instanceof HttpError) return error;
  const mapped = requestError(error);
  if (mapped instanceof HttpError) return mapped;
  const e = toLlamaError(mapped);
  switch (e.code) {
    case 'ERR_INVALID_ARGUMENT':
    case 'ERR_TEMPLATE':
      return new HttpError(400, e.message, 'invalid_request_error', param, 'invalid_request');
    case 'ERR_CONTEXT_OVERFLOW':
      return new HttpError(400, e.message, 'invalid_request_error', param, 'context_length_exceeded');
    case 'ERR_MODEL_UNSUPPORTED':
      // As llama-server answers a request its model cannot serve (reranking without --reranking).
      return new HttpError(501, e.message, 'not_supported_error', null, 'not_supported');
    case 'ERR_QUEUE_FULL':
      return new HttpError(503, e.message, 'server_error', null, 'queue_full', { 'retry-after': '1' });
    case 'ERR_DISPOSED':
    case 'ERR_ABORTED':
      return new HttpError(503, 'the server is shutting down', 'server_error', null, 'server_shutting_down');
    case 'ERR_API_TIMEOUT':
      return new HttpError(504, e.message, 'server_error', null, 'upstream_timeout');
    case 'ERR_API_HTTP':
    case 'ERR_API_CONNECTION':
    case 'ERR_API_PROTOCOL':
    case 'ERR_API_RESPONSE':
      return new HttpError(502, e.message, 'server_error', null, 'upstream_error');
    default:
      return new HttpError(500, `${e.code}: ${e.message}`, 'server_error', null, 'internal_error');
  }
}

/** What a request that the server's shutdown ended answers (503, or a stream's last event). */
function shutdownError(): HttpError {
  return httpError(new LlamaError('ERR_DISPOSED', 'shutdown'), null);
}

/** A request's path without its query and trailing slashes: what routes and metrics go by. */
function routePath(url: string | undefined): string {
  return new URL(url ?? '/', 'http://host').pathname.replace(/\/+$/, '') || '/';
}

function errorBody(e: HttpError): string {
  return JSON.stringify({ error: { message: e.message, type: e.type, param: e.param, code: e.code } });
}

function finishReason(reason: string): string {
  return reason === 'length' || reason === 'tool_calls' || reason === 'content_filter' ? reason : 'stop';
}

/** A chat answer in OpenAI's message shape: tool calls as `tool_calls` (content null when there is none, as OpenAI). */
function assistantMessage(r: LlmResult): Record<string, unknown> {
  const calls = r.toolCalls ?? [];
  return {
    role: 'assistant',
    content: calls.length > 0 && r.content === '' ? null : r.content,
    refusal: null,
    ...(calls.length > 0 ? { tool_calls: calls.map((c) => ({ id: c.id, type: 'function', function: { name: c.function.name, arguments: c.function.arguments } })) } : {}),
    ...(r.reasoningContent !== undefined ? { reasoning_content: r.reasoningContent } : {}),
  };
}

/** A result's log-probabilities as llama-server answers them (`to_json_oaicompat`): OpenAI's chat shape with `id`s. */
function wireLogprobs(logprobs: readonly TokenLogprob[]): { content: Record<string, unknown>[] } {
  const alternative = (t: TokenAlternative) => ({ id: t.id, token: t.token, bytes: t.bytes, logprob: t.logprob });
  return { content: logprobs.map((t) => ({ ...alternative(t), top_logprobs: t.topLogprobs.map(alternative) })) };
}

/** A streamed step in OpenAI's chunk-delta shape (snake_case). */
function chunkDelta(d: GenerationDelta): Record<string, unknown> {
  return {
    ...(d.content !== undefined ? { content: d.content } : {}),
    ...(d.reasoningContent !== undefined ? { reasoning_content: d.reasoningContent } : {}),
    ...(d.toolCalls !== undefined ? { tool_calls: d.toolCalls } : {}),
  };
}

/** The whole of a result as deltas, for a stream whose backend gave none (a response-cache hit). */
function resultDeltas(r: LlmResult): GenerationDelta[] {
  return [
    ...(r.reasoningContent ? [{ reasoningContent: r.reasoningContent }] : []),
    ...(r.content ? [{ content: r.content }] : []),
    ...(r.toolCalls?.length ? [{ toolCalls: r.toolCalls.map((c, index) => ({ index, id: c.id, type: 'function' as const, function: { name: c.function.name, arguments: c.function.arguments } })) }] : []),
  ];
}

interface DeltaQueue {
  push: (delta: GenerationDelta) => void;
  /** The deltas pushed, in order, until `done` settles and all are taken. */
  iterate: (done: Promise<unknown>) => AsyncGenerator<GenerationDelta>;
}

/** The backend's onDelta callbacks as an async iterable, so the stream's writes can wait for a slow reader. */
function deltaQueue(): DeltaQueue {
  const queue: GenerationDelta[] = [];
  let wake: (() => void) | undefined;
  return {
    push: (delta) => {
      queue.push(delta);
      wake?.();
    },
    async *iterate(done) {
      let finished = false;
      const end = () => {
        finished = true;
        wake?.();
      };
      done.then(end, end); // a rejection is the caller's, from awaiting the stream's result
      for (;;) {
        if (queue.length > 0) yield queue.shift()!;
        else if (finished) return;
        else await new Promise<void>((resolve) => (wake = resolve));
      }
    },
  };
}

function usage(r: LlmResult) {
  return { prompt_tokens: r.promptTokens, completion_tokens: r.completionTokens, total_tokens: r.promptTokens + r.completionTokens };
}

/**
 * An OpenAI-compatible HTTP server over any {@link LlmBackend} (local in-process, or an API backend as a
 * gateway), on `node:http` alone: no framework, so an application can mount its handler anywhere and nothing
 * sits between the socket and the backend's stream (write backpressure and disconnects reach the generation).
 * Endpoints: `GET /v1/models`, `POST /v1/completions`, `POST /v1/chat/completions` (server-sent events with
 * `stream: true`), `POST /v1/embeddings`, `POST /v1/rerank` (llama-server's shape), `GET /health`, `GET /metrics` (Prometheus text). Concurrency is the
 * backend's: requests go straight to it, and a local model runs `sequences` at once and queues the rest
 * (`maxQueued`, then 503). Call `listen()` on the result; everything runs on the JS thread.
 */
export function createServer(backend: LlmBackend, options: CreateServerOptions = {}): TeaServer {
  if (typeof backend !== 'object' || backend === null || typeof backend.call !== 'function') {
    throw new LlamaError('ERR_INVALID_ARGUMENT', 'createServer(backend): backend must be an LlmBackend');
  }
  const opts = requireObject(options, 'options') as CreateServerOptions;
  rejectUnknownKeys(opts, OPTION_KEYS, 'createServer() options');
  const apiKey = opts.apiKey === undefined ? undefined : requireString(opts.apiKey, 'apiKey');
  if (apiKey === '') throw new LlamaError('ERR_INVALID_ARGUMENT', 'apiKey must not be empty (leave it out to serve without a key)');
  const maxBodyBytes = optionalInt(opts.maxBodyBytes, 'maxBodyBytes', 1, 2 ** 31 - 1) ?? 4 * 1024 * 1024;
  const drainTimeoutMs = optionalInt(opts.drainTimeoutMs, 'drainTimeoutMs', 0, 2 ** 31 - 1) ?? 10_000;
  const stallTimeoutMs = optionalInt(opts.stallTimeoutMs, 'stallTimeoutMs', 1, 2 ** 31 - 1) ?? 60_000;
  if (opts.cors !== undefined && typeof opts.cors !== 'boolean' && typeof opts.cors !== 'string') {
    throw new LlamaError('ERR_INVALID_ARGUMENT', 'cors must be a boolean or an origin string');
  }
  const cors = opts.cors === true ? '*' : opts.cors || undefined;
  const modelName = opts.modelName === undefined ? backend.model : requireString(opts.modelName, 'modelName');
  const logger = opts.logger ?? defaultLogger;
  const contextShift = optionalBool(opts.contextShift, 'contextShift') ?? false;
  if (contextShift && backend.kind === 'api') {
    throw new LlamaError('ERR_INVALID_ARGUMENT', 'contextShift: an API backend shifts as its server was started (llama-server --context-shift); n_keep and n_discard are passed on');
  }
  // Hashes of equal length compared with timingSafeEqual: the time says nothing of the key, its length included.
  const keyDigest = apiKey === undefined ? undefined : createHash('sha256').update(apiKey).digest();
  const created = Math.floor(Date.now() / 1000);
  const metrics = new ServerMetrics();
  const running = new Set<Running>();
  let sequences: number | undefined;
  let draining = false;
  let shuttingDown: Promise<void> | undefined;

  function authorized(req: IncomingMessage): boolean {
    const match = /^Bearer\s+(.+)$/i.exec(req.headers.authorization ?? '');
    const digest = createHash('sha256').update(match?.[1]?.trim() ?? '').digest();
    return timingSafeEqual(digest, keyDigest!) && match !== null;
  }

  function send(res: ServerResponse, status: number, body: string, type = 'application/json', headers: Record<string, string> = {}): void {
    if (res.headersSent || res.destroyed) return;
    if (draining) res.setHeader('connection', 'close');
    res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body), ...headers });
    res.end(body);
  }

  function sendError(res: ServerResponse, e: HttpError): void {
    send(res, e.status, errorBody(e), 'application/json', e.headers);
  }

  /** The body as JSON, at most maxBodyBytes (413 past it, with the connection closed: the rest is not read). */
  function readJson(req: IncomingMessage, res: ServerResponse): Promise<Record<string, unknown>> {
    const tooLarge = () => {
      res.setHeader('connection', 'close');
      res.once('finish', () => req.destroy());
      return new HttpError(413, `the request body is larger than ${maxBodyBytes} bytes`, 'invalid_request_error', null, 'request_too_large');
    };
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > maxBodyBytes) return Promise.reject(tooLarge());
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      let size = 0;
      const onData = (chunk: Buffer) => {
        size += chunk.length;
        if (size > maxBodyBytes) {
          req.off('data', onData);
          req.pause();
          reject(tooLarge());
          return;
        }
        chunks.push(chunk);
      };
      req.on('data', onData);
      req.on('error', reject);
      // A client that leaves mid-body: nothing to answer, but nothing left waiting either.
      req.on('close', () => {
        if (!req.complete) reject(new HttpError(400, 'the request body ended early', 'invalid_request_error', null, 'incomplete_body'));
      });
      req.on('end', () => {
        if (size > maxBodyBytes) return;
        const text = Buffer.concat(chunks).toString('utf8');
        let parsed: unknown;
        try {
          parsed = JSON.parse(text);
        } catch (error) {
          reject(new HttpError(400, `the request body is not valid JSON: ${(error as Error).message}`, 'invalid_request_error', null, 'invalid_json'));
          return;
        }
        if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
          reject(badRequest('the request body must be a JSON object'));
          return;
        }
        resolve(parsed as Record<string, unknown>);
      });
    });
  }

  /** Tracks one backend call: a client that leaves (or shutdown) aborts it, which frees its sequence. */
  function track(res: ServerResponse): { entry: Running; end: () => void } {
    let end!: () => void;
    const entry: Running = { controller: new AbortController(), stopped: false, done: new Promise<void>((r) => (end = r)) };
    res.on('close', () => {
      if (!res.writableFinished) entry.controller.abort();
    });
    running.add(entry);
    metrics.inFlight++;
    return {
      entry,
      end: () => {
        running.delete(entry);
        metrics.inFlight--;
        end();
        if (draining) server.closeIdleConnections();
      },
    };
  }

  /** Resolves when `res` may take more (true), or false when the client left or read nothing for stallTimeoutMs. */
  function drained(res: ServerResponse): Promise<boolean> {
    metrics.writeWaits++;
    return new Promise((resolve) => {
      const done = (ok: boolean) => {
        clearTimeout(timer);
        res.off('drain', onDrain);
        res.off('close', onClose);
        resolve(ok);
      };
      const onDrain = () => done(true);
      const onClose = () => done(false);
      const timer = setTimeout(() => {
        logger.warn(`a client read nothing for ${stallTimeoutMs} ms (stallTimeoutMs): its connection is closed`);
        res.destroy();
        done(false);
      }, stallTimeoutMs);
      res.on('drain', onDrain);
      res.on('close', onClose);
    });
  }

  async function generation(res: ServerResponse, route: 'completions' | 'chat', body: Record<string, unknown>): Promise<void> {
    const parsed: ParsedGeneration = parseGeneration(body, route === 'chat' ? 'chat' : 'prompt');
    const param = route === 'chat' ? 'messages' : 'prompt';
    const id = `${route === 'chat' ? 'chatcmpl' : 'cmpl'}-${randomUUID()}`;
    const object = route === 'chat' ? 'chat.completion' : 'text_completion';
    const started = performance.now();
    const { entry, end } = track(res);
    const signal = entry.controller.signal;
    // A streamed chat is written from the backend's deltas (content, reasoning, tool calls), never its raw text.
    const deltas = parsed.stream && route === 'chat' ? deltaQueue() : undefined;
    const options = { ...parsed.options, ...(contextShift ? { contextShift } : {}), signal, ...(deltas ? { onDelta: deltas.push } : {}) };
    const input = parsed.input;
    try {
      if (!parsed.stream) {
        const result = await (input.kind === 'prompt' ? backend.call({ prompt: input.prompt, ...options }) : backend.chat(input.messages, options));
        metrics.finish(route === 'chat' ? '/v1/chat/completions' : '/v1/completions', result.finishReason, result.promptTokens, result.completionTokens);
        if (result.finishReason === 'abort') {
          if (entry.stopped) throw shutdownError();
          return; // the client left
        }
        const logprobs = result.logprobs ? wireLogprobs(result.logprobs) : null;
        const choice =
          route === 'chat'
            ? { index: 0, message: assistantMessage(result), logprobs, finish_reason: finishReason(result.finishReason) }
            : { index: 0, text: result.content, logprobs, finish_reason: finishReason(result.finishReason) };
        send(res, 200, JSON.stringify({ id, object, created: Math.floor(Date.now() / 1000), model: modelName, choices: [choice], usage: usage(result) }));
        return;
      }
      await streamed(res, route, parsed, id, started, entry, input.kind === 'prompt' ? backend.stream({ prompt: input.prompt, ...options }) : backend.streamChat(input.messages, undefined, options), deltas);
    } catch (error) {
      if (res.destroyed) return;
      let e = httpError(error, param);
      // llama.cpp's schema errors name no field: the schema came from response_format, else from the tools.
      if (e.param === null && (e.code === 'invalid_schema' || e.code === 'invalid_grammar')) {
        e = new HttpError(e.status, e.message, e.type, body.json_schema != null ? 'json_schema' : body.grammar != null ? 'grammar' : body.response_format != null ? 'response_format' : body.tools != null ? 'tools' : null, e.code);
      }
      if (!res.headersSent) throw e;
      // Headers of a stream went out already: the error is its last event (OpenAI's clients raise it).
      res.end(`data: ${errorBody(e)}\n\ndata: [DONE]\n\n`);
    } finally {
      end();
    }
  }

  async function streamed(
    res: ServerResponse,
    route: 'completions' | 'chat',
    parsed: ParsedGeneration,
    id: string,
    started: number,
    entry: Running,
    stream: LlmStream,
    deltas: DeltaQueue | undefined,
  ): Promise<void> {
    const object = route === 'chat' ? 'chat.completion.chunk' : 'text_completion';
    const createdAt = Math.floor(Date.now() / 1000);
    const event = (choice: Record<string, unknown> | null, extra: Record<string, unknown> = {}) =>
      `data: ${JSON.stringify({ id, object, created: createdAt, model: modelName, choices: choice ? [choice] : [], ...extra })}\n\n`;
    const piece = (text: string, finish: string | null) =>
      route === 'chat' ? { index: 0, delta: text === '' && finish ? {} : { content: text }, logprobs: null, finish_reason: finish } : { index: 0, text, logprobs: null, finish_reason: finish };
    // Headers go out with the first text, so an error before it (a prompt too long, a full queue) is a real status.
    const start = () => {
      if (res.headersSent) return;
      if (draining) res.setHeader('connection', 'close');
      res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', 'x-accel-buffering': 'no' });
      if (route === 'chat') res.write(event({ index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }));
    };
    const choices: AsyncIterable<Record<string, unknown>> = deltas
      ? (async function* () {
          for await (const d of deltas.iterate(stream.result)) yield { index: 0, delta: chunkDelta(d), logprobs: null, finish_reason: null };
        })()
      : (async function* () {
          for await (const chunk of stream) yield piece(chunk, null);
        })();
    let sent = 0;
    for await (const choice of choices) {
      if (!res.headersSent) metrics.firstToken(route === 'chat' ? '/v1/chat/completions' : '/v1/completions', (performance.now() - started) / 1000);
      start();
      sent++;
      // Backpressure: a slow reader is waited for; what the model makes meanwhile is one generation's text at most.
      if (!res.write(event(choice)) && !(await drained(res))) break;
    }
    const result = await stream.result;
    metrics.finish(route === 'chat' ? '/v1/chat/completions' : '/v1/completions', result.finishReason, result.promptTokens, result.completionTokens);
    if (res.destroyed) return;
    if (result.finishReason === 'abort') {
      if (!entry.stopped) return;
      if (!res.headersSent) throw shutdownError();
      res.end(`data: ${errorBody(shutdownError())}\n\ndata: [DONE]\n\n`);
      return;
    }
    start();
    // A cached answer comes whole, without deltas.
    if (deltas && sent === 0) for (const d of resultDeltas(result)) res.write(event({ index: 0, delta: chunkDelta(d), logprobs: null, finish_reason: null }));
    // The engine's stream carries text, not tokens: every token's log-probability comes in one chunk, before the
    // finish chunk (OpenAI's clients concatenate logprobs.content across chunks).
    if (result.logprobs) {
      const logprobs = wireLogprobs(result.logprobs);
      res.write(event(route === 'chat' ? { index: 0, delta: {}, logprobs, finish_reason: null } : { index: 0, text: '', logprobs, finish_reason: null }));
    }
    res.write(event(piece('', finishReason(result.finishReason))));
    if (parsed.includeUsage) res.write(event(null, { usage: usage(result) }));
    res.end('data: [DONE]\n\n');
  }

  async function embeddings(res: ServerResponse, body: Record<string, unknown>): Promise<void> {
    const { texts, base64 } = parseEmbeddings(body);
    const { entry, end } = track(res);
    try {
      const vectors = await backend.embed(texts, { signal: entry.controller.signal });
      let tokens = 0;
      if (backend instanceof LocalLlmBackend) {
        const model = await backend.load();
        for (const text of texts) tokens += (await model.tokenizeAsync(text)).length;
      }
      const data = vectors.map((v, index) => ({
        object: 'embedding',
        index,
        embedding: base64 ? Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64') : Array.from(v),
      }));
      send(res, 200, JSON.stringify({ object: 'list', data, model: modelName, usage: { prompt_tokens: tokens, total_tokens: tokens } }));
    } catch (error) {
      if (res.destroyed) return;
      throw httpError(error, 'input');
    } finally {
      end();
    }
  }

  /** llama-server's (and Jina's) `/v1/rerank`: { query, documents, top_n } → results best first, index and relevance_score. */
  async function rerank(res: ServerResponse, body: Record<string, unknown>): Promise<void> {
    const { query, documents, top_n: topN, model: _model, ...rest } = body;
    const unknown = Object.keys(rest);
    if (unknown.length > 0) throw badRequest(`unknown field '${unknown[0]}' (known: query, documents, top_n, model)`);
    if (topN !== undefined && (typeof topN !== 'number' || !Number.isInteger(topN) || topN < 0)) throw badRequest('top_n must be an integer >= 0');
    if (!Array.isArray(documents) || documents.length === 0) throw badRequest('"documents" must be a non-empty string array');
    const { entry, end } = track(res);
    try {
      const ranked = await backend.rerank(query as string, documents as string[], { ...(topN !== undefined ? { topN } : {}), signal: entry.controller.signal });
      let tokens = 0;
      if (backend instanceof LocalLlmBackend) {
        const model = await backend.load();
        for (const text of [query as string, ...(documents as string[])]) tokens += (await model.tokenizeAsync(text)).length;
      }
      const results = ranked.map((r) => ({ index: r.index, relevance_score: r.score }));
      send(res, 200, JSON.stringify({ model: modelName, object: 'list', usage: { prompt_tokens: tokens, total_tokens: tokens }, results }));
    } catch (error) {
      if (res.destroyed) return;
      throw httpError(error, 'documents');
    } finally {
      end();
    }
  }

  async function health(res: ServerResponse): Promise<void> {
    const status = await backend.healthCheck();
    if (sequences === undefined && status.ok && backend instanceof LocalLlmBackend) sequences = (await backend.load()).sequences;
    send(res, status.ok && !draining ? 200 : 503, JSON.stringify({ status: draining ? 'shutting down' : status.ok ? 'ok' : 'error', model: modelName, detail: status.detail }));
  }

  async function handle(req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    if (cors) {
      res.setHeader('access-control-allow-origin', cors);
      res.setHeader('vary', 'Origin');
      if (req.method === 'OPTIONS') {
        res.setHeader('access-control-allow-methods', 'GET, POST, OPTIONS');
        res.setHeader('access-control-allow-headers', 'authorization, content-type');
        res.setHeader('access-control-max-age', '600');
        send(res, 204, '');
        return;
      }
    }
    const model = path.startsWith('/v1/models/') ? { method: 'GET', route: 'model' as const } : undefined;
    const known = Object.hasOwn(ROUTES, path) ? ROUTES[path] : model;
    if (!known) throw new HttpError(404, `Unknown request URL: ${req.method} ${path}`, 'invalid_request_error', null, 'unknown_url');
    if (req.method !== known.method) {
      throw new HttpError(405, `${req.method} is not allowed on ${path}: use ${known.method}`, 'invalid_request_error', null, 'method_not_allowed', { allow: known.method });
    }
    if (keyDigest && known.route !== 'health' && !authorized(req)) {
      throw new HttpError(401, 'Incorrect API key provided. Send it as Authorization: Bearer <key>.', 'invalid_request_error', null, 'invalid_api_key');
    }
    switch (known.route) {
      case 'health':
        return health(res);
      case 'metrics':
        if (sequences === undefined && backend instanceof LocalLlmBackend && backend.loaded) sequences = (await backend.load()).sequences;
        return send(res, 200, metrics.render(sequences), 'text/plain; version=0.0.4; charset=utf-8');
      case 'models':
        return send(res, 200, JSON.stringify({ object: 'list', data: [{ id: modelName, object: 'model', created, owned_by: 'tea-llama' }] }));
      case 'model': {
        let name: string;
        try {
          name = decodeURIComponent(path.slice('/v1/models/'.length));
        } catch {
          throw badRequest('the model id in the URL is not valid percent-encoding');
        }
        if (name !== modelName) throw new HttpError(404, `The model '${name}' does not exist`, 'invalid_request_error', 'model', 'model_not_found');
        return send(res, 200, JSON.stringify({ id: modelName, object: 'model', created, owned_by: 'tea-llama' }));
      }
    }
    if (draining) throw new HttpError(503, 'the server is shutting down', 'server_error', null, 'server_shutting_down');
    const body = await readJson(req, res);
    if (known.route === 'embeddings') return embeddings(res, body);
    if (known.route === 'rerank') return rerank(res, body);
    return generation(res, known.route, body);
  }

  const server = createHttpServer((req, res) => {
    const started = performance.now();
    let path: string;
    try {
      path = routePath(req.url);
    } catch {
      path = String(req.url).slice(0, 200); // not a URL the parser takes: no route matches it (404)
    }
    const endpoint = Object.hasOwn(ROUTES, path) ? path : path.startsWith('/v1/models/') ? '/v1/models/{id}' : 'other';
    res.on('close', () => metrics.request(endpoint, res.headersSent ? res.statusCode : 499, (performance.now() - started) / 1000));
    handle(req, res, path).catch((error: unknown) => {
      const e = httpError(error, null);
      if (e.status >= 500) logger.warn(`${req.method} ${path}: ${e.status} ${e.message}`);
      if (res.headersSent) res.destroy();
      else sendError(res, e);
    });
  }) as TeaServer;

  Object.defineProperty(server, 'metrics', { value: metrics, enumerable: true });
  server.shutdown = ({ timeoutMs = drainTimeoutMs } = {}) => {
    if (shuttingDown) {
      // A second call with a shorter wait (a second Ctrl+C) ends what runs now.
      if (timeoutMs === 0) for (const entry of running) stop(entry);
      return shuttingDown;
    }
    draining = true;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeIdleConnections();
    shuttingDown = (async () => {
      const all = () => Promise.all([...running].map((r) => r.done));
      let timer: NodeJS.Timeout | undefined;
      const expired = new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)));
      await Promise.race([all(), expired]);
      clearTimeout(timer);
      for (const entry of running) stop(entry);
      // Ended generations answer at their next step; a connection still open after that is closed.
      await Promise.race([all(), new Promise((r) => setTimeout(r, 5000).unref())]);
      server.closeAllConnections();
      await closed;
    })();
    return shuttingDown;
  };
  function stop(entry: Running): void {
    entry.stopped = true;
    entry.controller.abort();
  }
  return server;
}
