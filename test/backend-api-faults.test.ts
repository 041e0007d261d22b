import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';

import { LlamaError } from '../lib';
import { parseSse, type SseEvent } from '../lib/backends/sse';
import { captureLogger } from './support/capture-logger';
import { apiTestScope } from './support/api-scope';
import { completionBody, json } from './support/http-fixture';
import { freePort } from './support/llama-server';
import { failure } from './support/failure';

// Every fault is served by a real HTTP server on 127.0.0.1 (node:http); fetch is never mocked.

const { fixture, backend } = apiTestScope({ apiKey: '', maxRetries: 2, retryDelayMs: 10 });

async function timed<T>(work: () => Promise<T>): Promise<{ value: T; ms: number }> {
  const started = performance.now();
  const value = await work();
  return { value, ms: performance.now() - started };
}

function sse(res: import('node:http').ServerResponse, events: string[]): void {
  res.writeHead(200, { 'content-type': 'text/event-stream' });
  for (const e of events) res.write(e);
  res.end();
}

const PROMPT = { prompt: 'hello', maxTokens: 5, temperature: 0 };

describe('ApiLlmBackend against faulty servers', () => {
  it('connection refused: ERR_API_CONNECTION at once, no retries, health not ok', async () => {
    const port = await freePort();
    const logger = captureLogger();
    const b = backend({ baseUrl: `http://127.0.0.1:${port}`, logger });
    const { value: error, ms } = await timed(() => failure(b.call(PROMPT)));
    expect(error.code).toBe('ERR_API_CONNECTION');
    expect(error.message).toContain(`127.0.0.1:${port}/v1/completions`);
    expect(error.message).toContain('ECONNREFUSED');
    expect(ms).toBeLessThan(2000);
    expect(logger.lines).toEqual([]);
    const health = await b.healthCheck();
    expect(health).toMatchObject({ ok: false, backend: 'api' });
    expect(health.detail).toContain('ERR_API_CONNECTION');
  });

  it('a server that never answers: ERR_API_TIMEOUT after timeoutMs, not a hang', async () => {
    const f = await fixture(() => {
      // accept the request and never answer
    });
    const b = backend({ baseUrl: f.url, timeoutMs: 300 });
    const { value: error, ms } = await timed(() => failure(b.call(PROMPT)));
    expect(error.code).toBe('ERR_API_TIMEOUT');
    expect(error.message).toMatch(/no answer within 0\.3 s/);
    expect(ms).toBeGreaterThanOrEqual(290);
    expect(ms).toBeLessThan(3000);
    // Timeouts are not retried.
    expect(f.requests).toHaveLength(1);

    const embedError = await failure(b.embed('x'));
    expect(embedError.code).toBe('ERR_API_TIMEOUT');
    const health = await b.healthCheck();
    expect(health.ok).toBe(false);
    expect(health.detail).toContain('ERR_API_TIMEOUT');
  });

  it('a stream that stalls after its first event: ERR_API_TIMEOUT (the timeout is per read)', async () => {
    const f = await fixture((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(`data: ${JSON.stringify({ choices: [{ text: 'first', finish_reason: null }] })}\n\n`);
      // ...and nothing more
    });
    const b = backend({ baseUrl: f.url, timeoutMs: 400 });
    const chunks: string[] = [];
    const { value: error, ms } = await timed(() => failure(b.stream(PROMPT, (c) => chunks.push(c)).result));
    expect(error.code).toBe('ERR_API_TIMEOUT');
    expect(chunks).toEqual(['first']);
    expect(ms).toBeLessThan(3000);
  });

  it('a stream slower than timeoutMs in total but never idle that long completes', async () => {
    const f = await fixture(async (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      for (const word of ['a', ' b', ' c', ' d', ' e']) {
        res.write(`data: ${JSON.stringify({ choices: [{ text: word, finish_reason: null }] })}\n\n`);
        await new Promise((r) => setTimeout(r, 150));
      }
      res.end(`data: ${JSON.stringify({ choices: [{ text: '', finish_reason: 'stop' }] })}\n\ndata: [DONE]\n\n`);
    });
    const b = backend({ baseUrl: f.url, timeoutMs: 400 });
    const r = await b.stream(PROMPT);
    expect(r.content).toBe('a b c d e');
    expect(r.timings.totalMs).toBeGreaterThan(600);
  });

  it('500 then success: retried with backoff, and the retry is logged', async () => {
    const f = await fixture((_req, res, i) => {
      if (i === 0) json(res, 500, { error: { message: 'model is warming up' } });
      else json(res, 200, completionBody('recovered'));
    });
    const logger = captureLogger();
    const b = backend({ baseUrl: f.url, logger, retryDelayMs: 200 });
    const { value: r, ms } = await timed(() => b.call(PROMPT));
    expect(r.content).toBe('recovered');
    expect(r.model).toBe('fixture-model');
    expect(r).toMatchObject({ promptTokens: 3, completionTokens: 2, tokensUsed: 5, finishReason: 'stop', backend: 'api' });
    expect(f.requests).toHaveLength(2);
    expect(f.requests[1].body).toBe(f.requests[0].body);
    expect(ms).toBeGreaterThanOrEqual(190);
    expect(logger.text('warn')).toMatch(/answered 500 \(model is warming up\); retry 1 of 2 in 0\.2 s/);
  });

  it('429 with Retry-After: waits as long as the server asks', async () => {
    const f = await fixture((_req, res, i) => {
      if (i === 0) json(res, 429, { error: { message: 'slow down' } }, { 'retry-after': '1' });
      else json(res, 200, completionBody('after waiting'));
    });
    const logger = captureLogger();
    const b = backend({ baseUrl: f.url, logger, retryDelayMs: 10 });
    const { value: r, ms } = await timed(() => b.call(PROMPT));
    expect(r.content).toBe('after waiting');
    expect(ms).toBeGreaterThanOrEqual(950);
    expect(logger.text('warn')).toContain('(Retry-After)');
  });

  it('5xx every time: gives up after maxRetries with ERR_API_HTTP and the server message', async () => {
    const f = await fixture((_req, res) => json(res, 503, { error: { message: 'overloaded' } }));
    const b = backend({ baseUrl: f.url, maxRetries: 3, retryDelayMs: 5, logger: captureLogger() });
    const error = await failure(b.call(PROMPT));
    expect(error.code).toBe('ERR_API_HTTP');
    expect(error.message).toMatch(/answered 503 Service Unavailable after 4 attempts: overloaded/);
    expect(f.requests).toHaveLength(4);
  });

  it('a 4xx is not retried', async () => {
    const f = await fixture((_req, res) => json(res, 400, { error: { message: 'prompt is required' } }));
    const b = backend({ baseUrl: f.url });
    const error = await failure(b.call(PROMPT));
    expect(error.code).toBe('ERR_API_HTTP');
    expect(error.message).toContain('400');
    expect(error.message).toContain('prompt is required');
    expect(f.requests).toHaveLength(1);
  });

  it('aborting during a retry wait or a silent server returns at once', async () => {
    const f = await fixture((_req, res) => json(res, 503, {}, { 'retry-after': '30' }));
    const b = backend({ baseUrl: f.url, maxRetryDelayMs: 60_000, logger: captureLogger() });
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 200);
    const { value: r, ms } = await timed(() => b.call({ ...PROMPT, signal: controller.signal }));
    expect(r).toMatchObject({ finishReason: 'abort', content: '' });
    expect(ms).toBeLessThan(3000);
    expect(f.requests).toHaveLength(1);

    const silent = await fixture(() => undefined);
    const b2 = backend({ baseUrl: silent.url, timeoutMs: 60_000 });
    const c2 = new AbortController();
    setTimeout(() => c2.abort(), 200);
    const { value: r2, ms: ms2 } = await timed(() => b2.call({ ...PROMPT, signal: c2.signal }));
    expect(r2.finishReason).toBe('abort');
    expect(ms2).toBeLessThan(3000);
    await expect(b2.call({ ...PROMPT, signal: AbortSignal.abort() })).rejects.toMatchObject({ code: 'ERR_ABORTED' });
  });

  it('dispose() aborts a request in flight and refuses later calls', async () => {
    const f = await fixture(() => undefined);
    const b = backend({ baseUrl: f.url, timeoutMs: 60_000 });
    const pending = b.call(PROMPT);
    await new Promise((r) => setTimeout(r, 100));
    await b.dispose();
    expect((await pending).finishReason).toBe('abort');
    await expect(b.call(PROMPT)).rejects.toMatchObject({ code: 'ERR_DISPOSED' });
    expect((await b.healthCheck()).ok).toBe(false);
  });

  it('malformed server-sent events: ERR_API_PROTOCOL; JSON of the wrong shape: ERR_API_RESPONSE', async () => {
    const cases: Array<[string, string[], string]> = [
      ['broken JSON', [`data: {"choices":[{"text":"ok"`, '\n\n'], 'ERR_API_PROTOCOL'],
      ['a JSON number', ['data: 42\n\n', 'data: [DONE]\n\n'], 'ERR_API_RESPONSE'],
      ['the stream ends early', [`data: ${JSON.stringify({ choices: [{ text: 'half', finish_reason: null }] })}\n\n`], 'ERR_API_PROTOCOL'],
    ];
    for (const [name, events, code] of cases) {
      const f = await fixture((_req, res) => sse(res, events));
      const b = backend({ baseUrl: f.url });
      const error = await failure(b.stream(PROMPT).result);
      expect(error.code, name).toBe(code);
    }

    const notSse = await fixture((_req, res) => json(res, 200, completionBody('not streamed')));
    const error = await failure(backend({ baseUrl: notSse.url }).stream(PROMPT).result);
    expect(error.code).toBe('ERR_API_PROTOCOL');
    expect(error.message).toContain('text/event-stream');

    const notJson = await fixture((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end('<html>proxy login</html>');
    });
    const e2 = await failure(backend({ baseUrl: notJson.url }).call(PROMPT));
    expect(e2.code).toBe('ERR_API_PROTOCOL');
    const noChoices = await fixture((_req, res) => json(res, 200, { choices: [] }));
    expect((await failure(backend({ baseUrl: noChoices.url }).call(PROMPT))).code).toBe('ERR_API_RESPONSE');
    const badEmbeddings = await fixture((_req, res) => json(res, 200, { data: [{ index: 0, embedding: 'nope' }] }));
    expect((await failure(backend({ baseUrl: badEmbeddings.url }).embed('x'))).code).toBe('ERR_API_RESPONSE');
  });

  it('an error event mid-stream is ERR_API_HTTP with the server message', async () => {
    const f = await fixture((_req, res) =>
      sse(res, [
        `data: ${JSON.stringify({ choices: [{ text: 'par', finish_reason: null }] })}\n\n`,
        `data: ${JSON.stringify({ error: { message: 'context overflow' } })}\n\n`,
      ]),
    );
    const error = await failure(backend({ baseUrl: f.url }).stream(PROMPT).result);
    expect(error.code).toBe('ERR_API_HTTP');
    expect(error.message).toContain('context overflow');
  });

  it('parses events split at any byte, CRLF and CR line ends, comments and multi-byte characters', async () => {
    const body =
      ': keep-alive comment\r\n\r\n' +
      `data: ${JSON.stringify({ choices: [{ text: 'Grüße', finish_reason: null }] })}\r\n\r\n` +
      `event: message\rdata: ${JSON.stringify({ choices: [{ text: ' 🐕', finish_reason: null }] })}\r\r` +
      `data: ${JSON.stringify({ choices: [{ text: '!', finish_reason: 'length' }], usage: { prompt_tokens: 4, completion_tokens: 3 } })}\n\n` +
      'data: [DONE]\n\n';
    const bytes = Buffer.from(body);
    const f = await fixture(async (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8' });
      // One byte per write, flushed separately: splits CRLFs, JSON and UTF-8 sequences.
      for (let i = 0; i < bytes.length; i += 7) {
        res.write(bytes.subarray(i, i + 7));
        await new Promise((r) => setImmediate(r));
      }
      res.end();
    });
    const chunks: string[] = [];
    const r = await backend({ baseUrl: f.url }).stream(PROMPT, (c) => chunks.push(c));
    expect(chunks).toEqual(['Grüße', ' 🐕', '!']);
    expect(r).toMatchObject({ content: 'Grüße 🐕!', finishReason: 'length', promptTokens: 4, completionTokens: 3 });
  });

  it('the SSE parser gives the same events wherever the bytes are split (CRLF split into CR | LF included)', async () => {
    const body = Buffer.from('\uFEFF: comment\r\ndata: a\r\ndata: b\r\n\r\nevent: e\rdata: ü\r\rdata:no-space\n\ndata: last');
    const parse = async (parts: Buffer[]) => {
      const events: SseEvent[] = [];
      for await (const e of parseSse((async function* () {
        yield* parts;
      })())) events.push(e);
      return events;
    };
    const expected = [
      { event: 'message', data: 'a\nb' },
      { event: 'e', data: 'ü' },
      { event: 'message', data: 'no-space' },
      { event: 'message', data: 'last' },
    ];
    expect(await parse([body])).toEqual(expected);
    for (let i = 1; i < body.length; i++) {
      expect(await parse([body.subarray(0, i), body.subarray(i)]), `split at ${i}`).toEqual(expected);
    }
  });

  it('health: /health when the server has it, else /v1/models; a loading server is not ok', async () => {
    const noHealth = await fixture((req, res) => {
      if (req.url === '/v1/models') json(res, 200, { data: [{ id: 'm' }] });
      else json(res, 404, { error: 'not found' });
    });
    const h1 = await backend({ baseUrl: `${noHealth.url}/v1`, apiKey: 'k-123' }).healthCheck();
    expect(h1).toMatchObject({ ok: true, backend: 'api' });
    expect(h1.detail).toContain('/v1/models: 200');
    expect(noHealth.requests.map((r) => r.url)).toEqual(['/health', '/v1/models']);
    expect(noHealth.requests[1].headers.authorization).toBe('Bearer k-123');

    const loading = await fixture((_req, res) => json(res, 503, { error: { message: 'Loading model' } }));
    const h2 = await backend({ baseUrl: loading.url }).healthCheck();
    expect(h2.ok).toBe(false);
    expect(h2.detail).toContain('503');
    expect(loading.requests).toHaveLength(1); // health checks are not retried
  });

  it('never prints the API key: not in errors, logs, health details, or the backend object', async () => {
    const key = 'sk-test-7f3a9c1e5b2d4f6a8c0e';
    // A hostile server that echoes the Authorization header back in every answer.
    const f = await fixture((req, res, i) => {
      const echo = `you sent ${req.headers.authorization}; key=${key}`;
      if (req.url === '/health') return json(res, 503, { error: { message: echo } });
      if (i < 2) return json(res, 500, { error: { message: echo } });
      if (req.url?.endsWith('/embeddings')) return json(res, 200, { data: 'x' });
      if (req.url?.endsWith('/chat/completions')) return sse(res, [`data: {"bad": ${echo}\n\n`]);
      return json(res, 401, { error: { message: echo } });
    });
    const logger = captureLogger();
    const b = backend({ baseUrl: f.url, apiKey: key, logger, maxRetries: 1 });
    const errors = [
      await failure(b.call(PROMPT)), // 500, retried, then 500 again
      await failure(b.call(PROMPT)), // 401
      await failure(b.embed('x')),
      await failure(b.streamChat([{ role: 'user', content: 'hi' }]).result),
    ];
    // data: 'x' is JSON of the wrong shape (ERR_API_RESPONSE); the stream's event is not JSON at all (ERR_API_PROTOCOL).
    expect(errors.map((e) => e.code)).toEqual(['ERR_API_HTTP', 'ERR_API_HTTP', 'ERR_API_RESPONSE', 'ERR_API_PROTOCOL']);
    expect(errors[1].message).toContain('check the API key');
    const health = await b.healthCheck();
    const port = await freePort();
    const refused = await failure(backend({ baseUrl: `http://127.0.0.1:${port}`, apiKey: key }).call(PROMPT));

    // The key was sent...
    expect(f.requests[0].headers.authorization).toBe(`Bearer ${key}`);
    // ...and appears nowhere we produce.
    const everything = [
      ...[...errors, refused].map((e) => inspect(e, { depth: Infinity, showHidden: true })),
      ...[...errors, refused].map((e) => JSON.stringify(e)),
      logger.text(),
      JSON.stringify(health),
      inspect(b, { depth: Infinity, showHidden: true }),
      JSON.stringify(b),
      String(b),
    ].join('\n');
    expect(logger.lines.length).toBeGreaterThan(0);
    expect(everything).toContain('[redacted]');
    expect(everything).not.toContain(key);
    expect(everything).not.toContain(key.slice(0, 12));
  });
});
