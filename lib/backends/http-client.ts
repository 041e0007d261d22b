import { LlamaError } from '../errors';
import type { Logger } from '../logger';
import type { Endpoint, EndpointPool } from './endpoints';
import { redactText, redactUrl } from '../redact';

export interface HttpClientOptions {
  /** Bearer token; sent in the Authorization header only, and scrubbed from every message. */
  apiKey?: string;
  /** Longest wait for a response, and between two reads of a streamed body. */
  timeoutMs: number;
  /** Retries after a 429 or 5xx answer. */
  maxRetries: number;
  /** First backoff delay; each retry doubles it. */
  retryDelayMs: number;
  /** Longest backoff, also the cap on a server's Retry-After. */
  maxRetryDelayMs: number;
  headers: Record<string, string>;
  logger: Logger;
  /** Follow a redirect to another origin (without the Authorization header and the extra headers). Default false. */
  allowCrossOriginRedirects?: boolean;
  /** The servers requests go to (one or several), and their health. */
  pool: EndpointPool;
}

/** Redirects followed for one request; more is an error (a loop). */
const MAX_REDIRECTS = 5;
/** Of an error answer only its message is shown: the rest of a huge error body is never read. */
const MAX_ERROR_BODY = 64 * 1024;

/** A timer that aborts a request when the server is silent for too long; `touch()` restarts it. */
export class IdleTimer {
  readonly #controller = new AbortController();
  readonly #ms: number;
  #timer: NodeJS.Timeout | undefined;

  constructor(ms: number) {
    this.#ms = ms;
    this.touch();
  }

  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  get fired(): boolean {
    return this.#controller.signal.aborted;
  }

  touch(): void {
    clearTimeout(this.#timer);
    if (!this.fired) this.#timer = setTimeout(() => this.#controller.abort(), this.#ms);
  }

  clear(): void {
    clearTimeout(this.#timer);
  }
}

/** An answer (with a 2xx status unless probing). The caller reads the body and must `timer.clear()` when done. */
export interface HttpAnswer {
  response: Response;
  timer: IdleTimer;
  /** The endpoint that answered. */
  endpoint: Endpoint;
  /** Ends the request's count on its endpoint (least-outstanding balancing); call once its body is read. */
  release: () => void;
}

const RETRYABLE = (status: number) => status === 429 || status >= 500;

/**
 * Scrubs a text for a message: `secret` in its plain, URL-encoded and Base64 forms, Bearer and Basic credentials,
 * Authorization header values, and URL credentials and secret query parameters (see {@link redactText}).
 */
export function redact(text: string, secret: string | undefined): string {
  return redactText(text, [secret]);
}

/** A URL for messages: credentials and secret query parameters redacted ({@link redactUrl}). */
export function displayUrl(url: string): string {
  return redactUrl(url);
}

/**
 * Reads a body as text, at most `limit` bytes (after any content decoding). Past it, the body is cancelled (which
 * closes the connection) and `onLimit` says what happens: throw, or keep the start (`truncate`).
 */
export async function readLimited(response: Response, limit: number, onLimit: 'truncate' | (() => Error)): Promise<string> {
  const length = Number(response.headers.get('content-length'));
  if (onLimit !== 'truncate' && Number.isFinite(length) && length > limit && !response.headers.get('content-encoding')) {
    await response.body?.cancel().catch(() => undefined);
    throw onLimit();
  }
  if (!response.body) return '';
  const reader = response.body.getReader();
  const decoder = new TextDecoder('utf-8');
  let text = '';
  let bytes = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      bytes += value.byteLength;
      if (bytes > limit) {
        if (onLimit !== 'truncate') throw onLimit();
        text += decoder.decode(value.subarray(0, value.byteLength - (bytes - limit)), { stream: true });
        break;
      }
      text += decoder.decode(value, { stream: true });
    }
  } finally {
    if (bytes > limit) await reader.cancel().catch(() => undefined);
    reader.releaseLock();
  }
  return text + decoder.decode();
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((done) => {
    if (signal.aborted) return done();
    const timer = setTimeout(finish, ms);
    function finish() {
      clearTimeout(timer);
      signal.removeEventListener('abort', finish);
      done();
    }
    signal.addEventListener('abort', finish, { once: true });
  });
}

/** Retry-After in milliseconds (seconds or an HTTP date), or undefined. */
export function retryAfterMs(header: string | null, now = Date.now()): number | undefined {
  if (!header) return undefined;
  const trimmed = header.trim();
  if (/^\d+(\.\d+)?$/.test(trimmed)) return Number(trimmed) * 1000;
  const date = Date.parse(trimmed);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

/** The network-level reason of a failed fetch: ECONNREFUSED, ENOTFOUND, UND_ERR_SOCKET, ... */
function networkReason(error: unknown): string {
  let e: unknown = error;
  for (let depth = 0; depth < 4 && e; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string') return code;
    e = (e as { cause?: unknown }).cause;
  }
  return error instanceof Error ? error.message : String(error);
}

/**
 * fetch() with what an API client needs: a timeout, retries with exponential backoff on 429 and 5xx (honouring
 * Retry-After), the caller's AbortSignal, and typed errors (ERR_API_HTTP, ERR_API_TIMEOUT, ERR_API_CONNECTION,
 * ERR_ABORTED) whose messages never contain the API key.
 */
export class HttpClient {
  readonly #o: HttpClientOptions;

  constructor(options: HttpClientOptions) {
    this.#o = options;
  }

  /** Scrubs the API key from a text. */
  redact(text: string): string {
    return redact(text, this.#o.apiKey);
  }

  /**
   * Sends a request to `path` under an endpoint of the pool (its API base, or its root with `root: true`), retrying
   * 429/5xx answers, and returns the first 2xx answer with its body unread; `release()` must be called once the
   * body is read (or given up), which ends the request's count on its endpoint. With several endpoints, a
   * connection error fails over at once to an endpoint not yet tried by this call (a request that reached no server
   * costs no retry), and a 429/5xx is retried on another endpoint when one is healthy (without the backoff delay),
   * within `maxRetries`. When every endpoint failed, the error names each with its failure. `probe: true` makes one
   * attempt and returns whatever status the server answered (health checks); `endpoint` pins the endpoint.
   */
  async send(
    method: 'GET' | 'POST',
    path: string,
    body: unknown,
    signal: AbortSignal | undefined,
    { probe = false, endpoint: pinned, root = false }: { probe?: boolean; endpoint?: Endpoint; root?: boolean } = {},
  ): Promise<HttpAnswer> {
    const pool = this.#o.pool;
    const several = pool.endpoints.length > 1 && !pinned;
    const headers: Record<string, string> = { accept: 'application/json, text/event-stream', ...this.#o.headers };
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (this.#o.apiKey) headers.authorization = `Bearer ${this.#o.apiKey}`;
    const attempts = probe ? 1 : this.#o.maxRetries + 1;
    const unreachable = new Set<Endpoint>();
    const failures: string[] = [];
    const urlOf = (e: Endpoint) => (root ? e.root : e.api) + path;

    // Serialized once for every attempt and endpoint (an embeddings body may be megabytes).
    const payload = body === undefined ? undefined : JSON.stringify(body);
    for (let attempt = 1; ; ) {
      const endpoint = pinned ?? pool.pick(unreachable);
      if (!endpoint) throw this.#allFailed(method, path, failures);
      const url = urlOf(endpoint);
      const where = `${method} ${displayUrl(url)}`;
      if (signal?.aborted) throw new LlamaError('ERR_ABORTED', `${where} aborted`);
      const timer = new IdleTimer(this.#o.timeoutMs);
      endpoint.outstanding++;
      let released = false;
      const release = () => {
        if (!released) endpoint.outstanding--;
        released = true;
      };
      let response: Response;
      try {
        response = await this.#fetchFollowing(method, url, headers, payload, signal ? AbortSignal.any([signal, timer.signal]) : timer.signal, where);
      } catch (error) {
        timer.clear();
        release();
        const failure = this.failure(error, where, timer, signal);
        if (failure.code !== 'ERR_API_CONNECTION' || probe) throw failure;
        const reason = (failure.cause as { code?: string } | undefined)?.code ?? failure.message;
        pool.markDown(endpoint, reason);
        if (!several) throw failure;
        unreachable.add(endpoint);
        failures.push(`${displayUrl(endpoint.api)} (${reason})`);
        this.#o.logger.warn(`${where}: cannot reach the server (${reason}); failing over to the next endpoint`);
        continue;
      }
      if (response.ok || probe) {
        if (!probe) pool.markUp(endpoint);
        return { response, timer, endpoint, release };
      }

      // An error answer: read its start (under the same timer) for the server's message, then retry or throw.
      let text = '';
      try {
        text = await readLimited(response, MAX_ERROR_BODY, 'truncate');
      } catch (error) {
        timer.clear();
        release();
        throw this.failure(error, where, timer, signal);
      }
      timer.clear();
      release();
      const message = this.#serverMessage(text);
      if (response.status >= 500) pool.markDown(endpoint, `answered ${response.status}`);
      else if (response.status !== 429) pool.markUp(endpoint);
      if (RETRYABLE(response.status) && attempt < attempts) {
        attempt++;
        const why = `${where} answered ${response.status}${message ? ` (${message})` : ''}`;
        const other = several && pool.endpoints.some((e) => e !== endpoint && e.healthy && !unreachable.has(e));
        if (other) {
          failures.push(`${displayUrl(endpoint.api)} (answered ${response.status})`);
          this.#o.logger.warn(`${why}; retry ${attempt - 1} of ${attempts - 1} on another endpoint`);
          continue;
        }
        const backoff = this.#o.retryDelayMs * 2 ** (attempt - 2);
        const asked = retryAfterMs(response.headers.get('retry-after'));
        const delay = Math.min(asked ?? backoff, this.#o.maxRetryDelayMs);
        const when = `in ${(delay / 1000).toFixed(1)} s${asked !== undefined ? ' (Retry-After)' : ''}`;
        this.#o.logger.warn(`${why}; retry ${attempt - 1} of ${attempts - 1} ${when}`);
        await sleep(delay, signal ?? new AbortController().signal);
        continue;
      }
      const tried = attempt > 1 ? ` after ${attempt} attempts` : '';
      const hint = response.status === 401 || response.status === 403 ? ': check the API key (LLM_API_KEY or llm.api.api_key)' : '';
      const detail = `${tried}${hint}${message ? `: ${message}` : ''}`;
      const earlier = failures.length > 0 ? `; before it: ${failures.join(', ')}` : '';
      throw new LlamaError('ERR_API_HTTP', this.redact(`${where} answered ${response.status} ${response.statusText}${detail}${earlier}`));
    }
  }

  /** Every endpoint failed: one error naming each with its failure. */
  #allFailed(method: string, path: string, failures: string[]): LlamaError {
    const n = this.#o.pool.endpoints.length;
    return new LlamaError('ERR_API_CONNECTION', this.redact(`${method} ${path}: all ${n} API endpoints failed: ${failures.join('; ')}`));
  }

  /**
   * fetch() that follows redirects itself: within the origin as fetch would (303, and 301/302 after a POST, become
   * a GET without a body); to another origin only with `allowCrossOriginRedirects`, and then without the
   * Authorization header and the extra headers. Otherwise a redirect to another origin is ERR_API_HTTP naming both
   * origins: the prompt (a 307/308 repeats the body) and the key stay with the server they were meant for.
   */
  async #fetchFollowing(method: string, url: string, headers: Record<string, string>, body: string | undefined, signal: AbortSignal, where: string): Promise<Response> {
    let current = url;
    let currentMethod = method;
    let currentBody = body;
    let currentHeaders = headers;
    const origin = new URL(url).origin;
    for (let hop = 0; ; hop++) {
      const response = await fetch(current, { method: currentMethod, headers: currentHeaders, body: currentBody, signal, redirect: 'manual' });
      const location = response.headers.get('location');
      if (![301, 302, 303, 307, 308].includes(response.status) || location === null) return response;
      await response.body?.cancel().catch(() => undefined);
      let next: URL;
      try {
        next = new URL(location, current);
      } catch {
        throw new LlamaError('ERR_API_HTTP', `${where} answered ${response.status} with an invalid Location ${JSON.stringify(this.redact(location).slice(0, 200))}`);
      }
      if (next.protocol !== 'http:' && next.protocol !== 'https:') {
        throw new LlamaError('ERR_API_HTTP', `${where} answered ${response.status} redirecting to a ${next.protocol} URL, which is not followed`);
      }
      if (hop + 1 > MAX_REDIRECTS) throw new LlamaError('ERR_API_HTTP', `${where}: more than ${MAX_REDIRECTS} redirects (a loop?)`);
      if (next.origin !== origin) {
        if (!this.#o.allowCrossOriginRedirects) {
          throw new LlamaError(
            'ERR_API_HTTP',
            `${where} answered ${response.status} redirecting from ${origin} to another origin, ${next.origin}: not followed, so the request ` +
              `and the API key stay with ${origin} (set allowCrossOriginRedirects to follow it, without the key)`,
          );
        }
        // Credentials and the caller's extra headers were meant for the first server only.
        currentHeaders = Object.fromEntries(Object.entries(currentHeaders).filter(([k]) => k === 'accept' || k === 'content-type'));
      }
      if (response.status === 303 || ((response.status === 301 || response.status === 302) && currentMethod === 'POST')) {
        currentMethod = 'GET';
        currentBody = undefined;
        const { ['content-type']: _dropped, ...rest } = currentHeaders;
        currentHeaders = rest;
      }
      this.#o.logger.debug(`${where}: ${response.status} redirect to ${displayUrl(next.href)}`);
      current = next.href;
    }
  }

  /** Converts a fetch or body-read failure into a typed error. */
  failure(error: unknown, where: string, timer: IdleTimer, signal: AbortSignal | undefined): LlamaError {
    if (error instanceof LlamaError) return error;
    if (signal?.aborted) return new LlamaError('ERR_ABORTED', `${where} aborted`);
    if (timer.fired) {
      return new LlamaError('ERR_API_TIMEOUT', `${where}: no answer within ${(this.#o.timeoutMs / 1000).toFixed(1)} s (timeout)`);
    }
    const reason = this.redact(networkReason(error));
    const cause = Object.assign(new Error(reason), { code: reason });
    return new LlamaError('ERR_API_CONNECTION', `${where}: cannot reach the server (${reason})`, { cause });
  }

  /** The message from an OpenAI-style error body ({ error: { message } }), or the start of the text. */
  #serverMessage(text: string): string {
    let message = text.trim();
    try {
      const parsed = JSON.parse(text) as { error?: { message?: unknown } | string; message?: unknown };
      const inner = typeof parsed.error === 'string' ? parsed.error : parsed.error?.message ?? parsed.message;
      if (typeof inner === 'string') message = inner;
    } catch {
      // not JSON: keep the text
    }
    message = this.redact(message);
    return message.length > 300 ? `${message.slice(0, 300)}…` : message;
  }
}
