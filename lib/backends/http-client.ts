import { LlamaError } from '../errors';
import type { Logger } from '../logger';

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
}

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
}

const RETRYABLE = (status: number) => status === 429 || status >= 500;

/** Replaces every occurrence of `secret` (and any Bearer token) in `text`. */
export function redact(text: string, secret: string | undefined): string {
  let out = text.replace(/Bearer\s+[^\s"',]+/gi, 'Bearer [redacted]');
  if (secret) out = out.split(secret).join('[redacted]');
  return out;
}

/** A URL for messages: no credentials, no query string. */
export function displayUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname}`;
  } catch {
    return '(invalid URL)';
  }
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
   * Sends a request, retrying 429/5xx answers, and returns the first 2xx answer with its body unread.
   * `probe: true` makes one attempt and returns whatever status the server answered (health checks).
   */
  async send(
    method: 'GET' | 'POST',
    url: string,
    body: unknown,
    signal: AbortSignal | undefined,
    { probe = false }: { probe?: boolean } = {},
  ): Promise<HttpAnswer> {
    const where = `${method} ${displayUrl(url)}`;
    const headers: Record<string, string> = { accept: 'application/json, text/event-stream', ...this.#o.headers };
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (this.#o.apiKey) headers.authorization = `Bearer ${this.#o.apiKey}`;
    const attempts = probe ? 1 : this.#o.maxRetries + 1;

    for (let attempt = 1; ; attempt++) {
      if (signal?.aborted) throw new LlamaError('ERR_ABORTED', `${where} aborted`);
      const timer = new IdleTimer(this.#o.timeoutMs);
      let response: Response;
      try {
        response = await fetch(url, {
          method,
          headers,
          body: body === undefined ? undefined : JSON.stringify(body),
          signal: signal ? AbortSignal.any([signal, timer.signal]) : timer.signal,
        });
      } catch (error) {
        timer.clear();
        throw this.failure(error, where, timer, signal);
      }
      if (response.ok || probe) return { response, timer };

      // An error answer: read it (under the same timer) for the server's message, then retry or throw.
      let text = '';
      try {
        text = await response.text();
      } catch (error) {
        timer.clear();
        throw this.failure(error, where, timer, signal);
      }
      timer.clear();
      const message = this.#serverMessage(text);
      if (RETRYABLE(response.status) && attempt < attempts) {
        const backoff = this.#o.retryDelayMs * 2 ** (attempt - 1);
        const asked = retryAfterMs(response.headers.get('retry-after'));
        const delay = Math.min(asked ?? backoff, this.#o.maxRetryDelayMs);
        const why = `${where} answered ${response.status}${message ? ` (${message})` : ''}`;
        const when = `in ${(delay / 1000).toFixed(1)} s${asked !== undefined ? ' (Retry-After)' : ''}`;
        this.#o.logger.warn(`${why}; retry ${attempt} of ${attempts - 1} ${when}`);
        await sleep(delay, signal ?? new AbortController().signal);
        continue;
      }
      const tried = attempt > 1 ? ` after ${attempt} attempts` : '';
      const hint = response.status === 401 || response.status === 403 ? ': check the API key (LLM_API_KEY or llm.api.api_key)' : '';
      const detail = `${tried}${hint}${message ? `: ${message}` : ''}`;
      throw new LlamaError('ERR_API_HTTP', this.redact(`${where} answered ${response.status} ${response.statusText}${detail}`));
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
