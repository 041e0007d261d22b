import { createServer as createTcpServer, type Server as TcpServer, type Socket } from 'node:net';
import type { ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

import { ApiLlmBackend, LlamaError, type ApiLlmBackendOptions, type LlmResult } from '../../lib';
import { captureLogger } from '../support/capture-logger';
import { completionBody, json, startHttpFixture, type HttpFixture } from '../support/http-fixture';
import { freePort } from '../support/llama-server';
import { figure, rng, SEED, sleep } from './helpers';

// The API backend against misbehaving servers, beyond test/backend-api-faults.test.ts: every entry point (call,
// chat, stream, streamChat, embed) on refused and reset connections; stalls before and inside a body; answers
// dribbled byte by byte (headers and chunked framing included) and a stream that trickles bytes without ever
// finishing an event; connections closed in the middle of a body or a stream, then recovery; 429 with Retry-After
// as a date, above the cap, on streams and embeddings; 500 on each entry point, then recovery; invalid JSON of
// every shape; streams without [DONE]; and a seeded mix of all of these, 40 requests at once. Each ends in a result
// or a typed error within its time limit, with no unhandled rejection and no request left hanging on the server.

const fixtures: HttpFixture[] = [];
const tcpServers: TcpServer[] = [];
const backends: ApiLlmBackend[] = [];
const unhandled: unknown[] = [];
const onUnhandled = (reason: unknown) => unhandled.push(reason);

beforeAll(() => {
  process.on('unhandledRejection', onUnhandled);
});
afterAll(() => {
  process.off('unhandledRejection', onUnhandled);
});
afterEach(async () => {
  await Promise.all(backends.splice(0).map((b) => b.dispose()));
  await Promise.all(fixtures.splice(0).map((f) => f.close()));
  await Promise.all(tcpServers.splice(0).map((s) => new Promise((done) => s.close(done))));
  // Give a stray rejection a few turns of the event loop to surface, then demand there was none.
  await sleep(20);
  expect(unhandled.map(String)).toEqual([]);
});

async function fixture(handler: Parameters<typeof startHttpFixture>[0]): Promise<HttpFixture> {
  const f = await startHttpFixture(handler);
  fixtures.push(f);
  return f;
}

/** A raw TCP server, for what node:http will not do: answer bytes one at a time, or hang up at once. */
async function tcpServer(onSocket: (socket: Socket) => void): Promise<string> {
  const server = createTcpServer((socket) => {
    socket.on('error', () => undefined);
    onSocket(socket);
  });
  tcpServers.push(server);
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

function backend(options: ApiLlmBackendOptions): ApiLlmBackend {
  const b = new ApiLlmBackend({ apiKey: '', maxRetries: 2, retryDelayMs: 10, logger: captureLogger(), ...options });
  backends.push(b);
  return b;
}

/** Fails the test if `work` takes longer than `ms` (a hang), else returns its outcome and how long it took. */
async function within<T>(ms: number, work: () => Promise<T>): Promise<{ value?: T; error?: LlamaError; ms: number }> {
  const started = performance.now();
  let timer: NodeJS.Timeout | undefined;
  const hang = new Promise<never>((_, fail) => {
    timer = setTimeout(() => fail(new Error(`no result within ${ms} ms: a hang`)), ms);
  });
  try {
    const value = await Promise.race([work(), hang]);
    return { value, ms: performance.now() - started };
  } catch (error) {
    if (error instanceof Error && error.message.includes('a hang')) throw error;
    expect(error, String(error)).toBeInstanceOf(LlamaError);
    return { error: error as LlamaError, ms: performance.now() - started };
  } finally {
    clearTimeout(timer);
  }
}

const PROMPT = { prompt: 'hello', maxTokens: 5, temperature: 0 };
const MESSAGES = [{ role: 'user', content: 'hello' }];
const event = (text: string, finish: string | null = null) => `data: ${JSON.stringify({ choices: [{ text, finish_reason: finish }] })}\n\n`;
const chatEvent = (text: string, finish: string | null = null) => `data: ${JSON.stringify({ choices: [{ delta: { content: text }, finish_reason: finish }] })}\n\n`;

/** Every entry point of the backend, each returning the text it produced. Streams are read with for-await. */
function entryPoints(b: ApiLlmBackend): Array<[string, () => Promise<unknown>]> {
  const iterate = async (stream: AsyncIterable<string>) => {
    let text = '';
    for await (const chunk of stream) text += chunk;
    return text;
  };
  return [
    ['call', () => b.call(PROMPT)],
    ['chat', () => b.chat(MESSAGES, { maxTokens: 5 })],
    ['stream (callback)', () => b.stream(PROMPT, () => undefined).result],
    ['stream (for await)', () => iterate(b.stream(PROMPT))],
    ['streamChat (for await)', () => iterate(b.streamChat(MESSAGES))],
    ['embed', () => b.embed('x')],
  ];
}

/** An OpenAI-style answer for whatever was asked (a completion, a chat completion, embeddings; streamed or not). */
function answer(req: { url: string; body: string }, res: ServerResponse, text = 'fine'): void {
  const body = JSON.parse(req.body || '{}') as { stream?: boolean; input?: string[] };
  if (req.url.endsWith('/embeddings')) {
    json(res, 200, { data: (body.input ?? []).map((_, index) => ({ index, embedding: [0.6, 0.8] })) });
  } else if (body.stream) {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    const make = req.url.endsWith('/chat/completions') ? chatEvent : event;
    res.end(`${make(text)}${make('', 'stop')}data: [DONE]\n\n`);
  } else if (req.url.endsWith('/chat/completions')) {
    json(res, 200, { choices: [{ message: { role: 'assistant', content: text }, finish_reason: 'stop' }] });
  } else {
    json(res, 200, completionBody(text));
  }
}

describe('ApiLlmBackend under faults (reliability)', () => {
  it('refused, and reset right after accept: every entry point fails at once with ERR_API_CONNECTION, no retry', async () => {
    const refused = backend({ baseUrl: `http://127.0.0.1:${await freePort()}` });
    let accepted = 0;
    const resetUrl = await tcpServer((socket) => {
      accepted++;
      socket.destroy();
    });
    const reset = backend({ baseUrl: resetUrl });
    for (const [server, b] of [['refused', refused], ['reset', reset]] as const) {
      for (const [name, call] of entryPoints(b)) {
        const r = await within(3000, call);
        expect(r.error?.code, `${server}: ${name}`).toBe('ERR_API_CONNECTION');
      }
    }
    // A connection error is not retried: one connection per call.
    expect(accepted).toBe(6);
    // Streams nobody reads or awaits: the failure must not become an unhandled rejection (checked after each test).
    refused.stream(PROMPT);
    reset.streamChat(MESSAGES);
    await sleep(100);
    expect((await refused.healthCheck()).ok).toBe(false);
  });

  it('stalls: before the headers, after the headers, inside a JSON body, before the first event: ERR_API_TIMEOUT within timeoutMs', async () => {
    const f = await fixture((req, res) => {
      if (req.url === '/v1/embeddings') return; // never answers
      const body = JSON.parse(req.body) as { stream?: boolean };
      if (body.stream) {
        res.writeHead(200, { 'content-type': 'text/event-stream' }); // headers, then silence
        res.flushHeaders();
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{"choices":[{"text":"par'); // half a body, then silence
    });
    const b = backend({ baseUrl: f.url, timeoutMs: 400 });
    for (const [name, call] of entryPoints(b)) {
      const r = await within(3000, call);
      expect(r.error?.code, name).toBe('ERR_API_TIMEOUT');
      expect(r.ms, name).toBeGreaterThanOrEqual(380);
    }
    // Timeouts are not retried.
    expect(f.requests).toHaveLength(6);
  });

  it('an answer dribbled one byte per write, headers and chunked framing included, is parsed exactly', async () => {
    const sse = `${event('Grü')}${event('ße 🐕')}${event('!', 'stop')}data: [DONE]\n\n`;
    const chunked = (text: string) => `${Buffer.byteLength(text).toString(16)}\r\n${text}\r\n`;
    const raw = Buffer.from(
      'HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n' +
        sse.match(/[\s\S]{1,9}/g)!.map(chunked).join('') +
        '0\r\n\r\n',
    );
    const url = await tcpServer((socket) => {
      socket.once('data', async () => {
        for (const byte of raw) {
          if (socket.destroyed) return;
          socket.write(Buffer.from([byte]));
          await new Promise((r) => setImmediate(r));
        }
        socket.end();
      });
    });
    const chunks: string[] = [];
    const r = await within(10_000, () => backend({ baseUrl: url, timeoutMs: 2000 }).stream(PROMPT, (c) => chunks.push(c)).result);
    expect(r.value).toMatchObject({ content: 'Grüße 🐕!', finishReason: 'stop' });
    expect(chunks).toEqual(['Grü', 'ße 🐕', '!']);
  });

  it('slow answers: a JSON body slower than timeoutMs times out; a stream slower in total but with every event in time completes', async () => {
    const jsonBody = Buffer.from(JSON.stringify(completionBody('slowly')));
    const f = await fixture(async (req, res) => {
      const body = JSON.parse(req.body) as { stream?: boolean; max_tokens?: number };
      if (!body.stream) {
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(jsonBody.length) });
        const pause = body.max_tokens === 1 ? 1 : 15; // max_tokens 1: fast enough; otherwise ~3 s in all
        for (const byte of jsonBody) {
          if (res.destroyed) return;
          res.write(Buffer.from([byte]));
          await sleep(pause);
        }
        return void res.end();
      }
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      // Each event dribbled over ~250 ms, five events: over a second in all, never 600 ms without an event.
      for (const e of [event('one'), event(' two'), event(' three'), event(' four'), event('', 'stop'), 'data: [DONE]\n\n']) {
        for (const part of e.match(/[\s\S]{1,8}/g)!) {
          if (res.destroyed) return;
          res.write(part);
          await sleep(250 / Math.ceil(e.length / 8));
        }
      }
      res.end();
    });
    const b = backend({ baseUrl: f.url, timeoutMs: 600 });
    const slow = await within(3000, () => b.call(PROMPT));
    expect(slow.error?.code).toBe('ERR_API_TIMEOUT');
    expect(slow.ms).toBeLessThan(1500);
    const fast = await within(5000, () => b.call({ ...PROMPT, maxTokens: 1 }));
    expect(fast.value).toMatchObject({ content: 'slowly' });
    const streamed = await within(10_000, () => b.stream(PROMPT).result);
    expect(streamed.value).toMatchObject({ content: 'one two three four', finishReason: 'stop' });
    expect(streamed.ms).toBeGreaterThan(1000);
  });

  it('a stream that trickles bytes but never completes an event: ERR_API_TIMEOUT, not a hang', async () => {
    // A byte every 50 ms keeps the connection busy, but no event ever ends: timeoutMs is the gap between events.
    const f = await fixture(async (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(event('first'));
      res.write('data: {"choices":[{"text":"');
      while (!res.destroyed) {
        res.write('a');
        await sleep(50);
      }
    });
    const chunks: string[] = [];
    const r = await within(5000, () => backend({ baseUrl: f.url, timeoutMs: 500 }).stream(PROMPT, (c) => chunks.push(c)).result);
    expect(r.error?.code).toBe('ERR_API_TIMEOUT');
    expect(chunks).toEqual(['first']);
    // Keep-alive comments are not events either.
    const comments = await fixture(async (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      while (!res.destroyed) {
        res.write(': keep-alive\n\n');
        await sleep(50);
      }
    });
    const c = await within(5000, () => backend({ baseUrl: comments.url, timeoutMs: 500 }).stream(PROMPT).result);
    expect(c.error?.code).toBe('ERR_API_TIMEOUT');
  });

  it('connections closed mid-body and mid-stream: a typed error with what arrived, then the next call recovers', async () => {
    let mode = 'cut';
    const f = await fixture((req, res) => {
      if (mode === 'ok') return answer(req, res, 'recovered');
      const body = JSON.parse(req.body || '{}') as { stream?: boolean };
      if (body.stream) {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        const make = req.url.endsWith('/chat/completions') ? chatEvent : event;
        res.write(make('par'));
        res.write(make('tial'));
        setTimeout(() => res.socket?.destroy(), 20);
      } else {
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': '500' });
        res.write('{"choices":[{"te');
        setTimeout(() => res.socket?.destroy(), 20);
      }
    });
    const b = backend({ baseUrl: f.url, timeoutMs: 5000 });
    const codes: string[] = [];
    for (const [name, call] of entryPoints(b)) {
      const r = await within(3000, call);
      expect(r.error, name).toBeDefined();
      codes.push(`${name}: ${r.error!.code}`);
      expect(r.error!.code, name).toBe('ERR_API_CONNECTION');
    }
    const chunks: string[] = [];
    expect((await within(3000, () => b.stream(PROMPT, (c) => chunks.push(c)).result)).error?.code).toBe('ERR_API_CONNECTION');
    expect(chunks).toEqual(['par', 'tial']);
    // The same backend (and its connection pool) serves the next calls normally.
    mode = 'ok';
    for (const [name, call] of entryPoints(b)) {
      const r = await within(3000, call);
      expect(r.error, name).toBeUndefined();
    }
    expect((await b.call(PROMPT)).content).toBe('recovered');
  });

  it('429 with Retry-After as an HTTP date, above the cap, on streams and embeddings, and for ever', async () => {
    let plan: Array<{ status: number; retryAfter?: string }> = [];
    const f = await fixture((req, res) => {
      const step = plan.shift();
      if (!step) return answer(req, res, 'after 429');
      json(res, step.status, { error: { message: 'rate limited' } }, step.retryAfter === undefined ? {} : { 'retry-after': step.retryAfter });
    });
    const logger = captureLogger();
    const b = backend({ baseUrl: f.url, logger, maxRetries: 2, retryDelayMs: 50, maxRetryDelayMs: 400 });

    // An HTTP date 2 s ahead: at least ~1 s (the date has whole seconds), capped at maxRetryDelayMs = 0.4 s here.
    plan = [{ status: 429, retryAfter: new Date(Date.now() + 2000).toUTCString() }];
    const dated = await within(5000, () => b.call(PROMPT));
    expect(dated.value?.content).toBe('after 429');
    expect(dated.ms).toBeGreaterThanOrEqual(390);
    expect(logger.text('warn')).toMatch(/answered 429 \(rate limited\); retry 1 of 2 in 0\.4 s \(Retry-After\)/);

    // Retry-After of an hour: capped, not obeyed.
    plan = [{ status: 429, retryAfter: '3600' }];
    expect((await within(3000, () => b.call(PROMPT))).value?.content).toBe('after 429');

    // Unparsable Retry-After: the exponential backoff.
    plan = [{ status: 429, retryAfter: 'soon' }, { status: 429, retryAfter: '' }];
    expect((await within(3000, () => b.call(PROMPT))).value?.content).toBe('after 429');

    // A streamed call and an embedding retry the same way.
    plan = [{ status: 429, retryAfter: '0' }];
    const chunks: string[] = [];
    expect((await within(3000, () => b.stream(PROMPT, (c) => chunks.push(c)).result)).value?.content).toBe('after 429');
    expect(chunks).toEqual(['after 429']);
    plan = [{ status: 429, retryAfter: '0' }];
    expect(Array.from((await within(3000, () => b.embed('x'))).value!)).toEqual([Math.fround(0.6), Math.fround(0.8)]);

    // 429 for ever: ERR_API_HTTP after 1 + maxRetries attempts, each wait capped.
    plan = Array.from({ length: 10 }, () => ({ status: 429, retryAfter: '30' }));
    const before = f.requests.length;
    const gaveUp = await within(5000, () => b.call(PROMPT));
    expect(gaveUp.error?.code).toBe('ERR_API_HTTP');
    expect(gaveUp.error?.message).toMatch(/429 Too Many Requests after 3 attempts: rate limited/);
    expect(f.requests.length - before).toBe(3);
    expect(gaveUp.ms).toBeLessThan(2000);
  });

  it('500 on every entry point, then success: each recovers; 500 with an HTML body gives its text', async () => {
    const failures = new Map<string, number>();
    const f = await fixture((req, res) => {
      const seen = failures.get(req.url) ?? 0;
      if (seen % 2 === 0) {
        failures.set(req.url, seen + 1);
        res.writeHead(500, { 'content-type': 'text/html' });
        return void res.end('<html><body>Internal Server Error</body></html>');
      }
      failures.set(req.url, seen + 1);
      answer(req, res, 'second try');
    });
    const logger = captureLogger();
    const b = backend({ baseUrl: f.url, logger });
    for (const [name, call] of entryPoints(b)) {
      const r = await within(3000, call);
      expect(r.error, name).toBeUndefined();
    }
    expect(logger.text('warn')).toContain('answered 500 (<html><body>Internal Server Error</body></html>); retry 1 of 2');
    expect(f.requests).toHaveLength(12);
  });

  it('answers that are not JSON: ERR_API_PROTOCOL; JSON of a wrong shape: ERR_API_RESPONSE; never a TypeError', async () => {
    const bodies = [
      '{"choices":[{"text":"hi"', // cut
      'null',
      '[]',
      '"a string"',
      '{"choices":"not a list"}',
      '{"choices":[null]}',
      '{"choices":[{"text":5}]}',
      '{"choices":[{"message":null}]}',
      '{"choices":[{"message":{"content":7}}]}',
      '{"data":[{"index":0,"embedding":[1,"x"]}]}',
      '{"data":[{"index":5,"embedding":[1,2]}]}',
      '{"data":{"0":[1,2]}}',
      '\u0000\u0001binary',
      '',
    ];
    let body = '';
    const f = await fixture((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(body);
    });
    const b = backend({ baseUrl: f.url });
    const seen: string[] = [];
    for (body of bodies) {
      const calls: Array<[string, () => Promise<unknown>]> = [
        ['call', () => b.call(PROMPT)],
        ['chat', () => b.chat(MESSAGES)],
        ['embed', () => b.embed('x')],
      ];
      for (const [name, call] of calls) {
        const r = await within(3000, call);
        let parses = true;
        try {
          JSON.parse(body);
        } catch {
          parses = false;
        }
        expect(r.error?.code, `${name} with ${JSON.stringify(body)}`).toBe(parses ? 'ERR_API_RESPONSE' : 'ERR_API_PROTOCOL');
        seen.push(r.error!.code);
      }
    }
    expect(seen).toHaveLength(bodies.length * 3);
  });

  it('streams without [DONE]: complete after a final event; an error when cut before it; a final event then silence is still a result', async () => {
    let events: string[] = [];
    let keepOpen = false;
    const f = await fixture((req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      for (const e of events) res.write(e);
      if (!keepOpen) res.end();
    });
    const b = backend({ baseUrl: f.url, timeoutMs: 500 });
    // The final event (a finish_reason), then the end of the body: a complete answer.
    events = [event('all'), event(' there', 'length')];
    expect((await within(3000, () => b.stream(PROMPT).result)).value).toMatchObject({ content: 'all there', finishReason: 'length' });
    events = [chatEvent('chat'), chatEvent('', 'stop')];
    expect((await within(3000, () => b.streamChat(MESSAGES).result)).value).toMatchObject({ content: 'chat', finishReason: 'stop' });
    // [DONE] alone: an empty answer.
    events = ['data: [DONE]\n\n'];
    expect((await within(3000, () => b.stream(PROMPT).result)).value).toMatchObject({ content: '', finishReason: 'stop' });
    // Cut before the final event: an error, with the chunks that arrived delivered.
    events = [event('half')];
    const chunks: string[] = [];
    const cut = await within(3000, () => b.stream(PROMPT, (c) => chunks.push(c)).result);
    expect(cut.error?.code).toBe('ERR_API_PROTOCOL');
    expect(chunks).toEqual(['half']);
    // The final event, and then the server neither sends [DONE] nor closes: the answer is complete, so it is
    // returned once the stream has been idle for timeoutMs.
    keepOpen = true;
    events = [event('done'), event(' but open', 'stop')];
    const open = await within(3000, () => b.stream(PROMPT).result);
    expect(open.value).toMatchObject({ content: 'done but open', finishReason: 'stop' });
    expect(open.ms).toBeGreaterThanOrEqual(450);
    // Without a final event, the same silence is a timeout.
    events = [event('no end')];
    expect((await within(3000, () => b.stream(PROMPT).result)).error?.code).toBe('ERR_API_TIMEOUT');
  });

  it(`40 requests at once against a server with a seeded mix of faults: each settles in time, typed, no request left hanging`, async () => {
    const random = rng(SEED + 7);
    const FAULTS = ['ok', 'ok', 'ok', 'stall', 'slow', 'cut', 'reset', '429', '500', 'bad-json', 'no-done', 'early-end'] as const;
    const plan = new Map<number, string>();
    const inFlight = new Set<ServerResponse>();
    let index = 0;
    const f = await fixture(async (req, res, i) => {
      const fault = FAULTS[random.int(FAULTS.length)]!;
      plan.set(i, fault);
      index++;
      // Open until the answer is complete or its connection is gone.
      inFlight.add(res);
      res.on('close', () => inFlight.delete(res));
      const body = JSON.parse(req.body || '{}') as { stream?: boolean };
      switch (fault) {
        case 'stall':
          return;
        case 'slow': {
          res.writeHead(200, { 'content-type': body.stream ? 'text/event-stream' : 'application/json' });
          const text = body.stream ? `${event('slow')}${event('', 'stop')}data: [DONE]\n\n` : JSON.stringify(completionBody('slow'));
          for (const part of text.match(/[\s\S]{1,16}/g)!) {
            if (res.destroyed) return;
            res.write(part);
            await sleep(20);
          }
          return void res.end();
        }
        case 'cut':
          res.writeHead(200, { 'content-type': body.stream ? 'text/event-stream' : 'application/json' });
          res.write(body.stream ? event('cu') : '{"choi');
          return void setTimeout(() => res.socket?.destroy(), 10);
        case 'reset':
          return void res.socket?.destroy();
        case '429':
          return json(res, 429, { error: { message: 'busy' } }, { 'retry-after': '0' });
        case '500':
          return json(res, 500, { error: { message: 'oops' } });
        case 'bad-json':
          res.writeHead(200, { 'content-type': body.stream ? 'text/event-stream' : 'application/json' });
          return void res.end(body.stream ? 'data: {oops\n\n' : '{oops');
        case 'no-done':
          if (!body.stream) return answer(req, res, 'plain');
          res.writeHead(200, { 'content-type': 'text/event-stream' });
          return void res.end(`${event('no')}${event(' done', 'stop')}`);
        case 'early-end':
          if (!body.stream) return answer(req, res, 'plain');
          res.writeHead(200, { 'content-type': 'text/event-stream' });
          return void res.end(event('early'));
        default:
          return answer(req, res);
      }
    });
    const timeoutMs = 400;
    const b = backend({ baseUrl: f.url, timeoutMs, maxRetries: 2, retryDelayMs: 20 });
    const kinds = ['call', 'chat', 'stream', 'streamChat', 'embed'] as const;
    const requests = Array.from({ length: 40 }, (_, i) => kinds[i % kinds.length]!);
    // The worst case: every attempt times out (3 attempts at most), plus backoff; anything longer is a hang.
    const limit = 3 * (timeoutMs + 100) + 2000;
    const outcomes = await Promise.all(
      requests.map((kind) =>
        within(limit, async (): Promise<LlmResult | Float32Array> => {
          switch (kind) {
            case 'call':
              return b.call(PROMPT);
            case 'chat':
              return b.chat(MESSAGES);
            case 'stream': {
              const s = b.stream(PROMPT);
              for await (const _chunk of s) void _chunk;
              return s.result;
            }
            case 'streamChat':
              return b.streamChat(MESSAGES, () => undefined).result;
            default:
              return b.embed('x');
          }
        }),
      ),
    );
    const tally = new Map<string, number>();
    for (const o of outcomes) {
      const key = o.error ? o.error.code : 'ok';
      tally.set(key, (tally.get(key) ?? 0) + 1);
      // ERR_API_RESPONSE: a 'slow' answer in the completion's shape to a chat or an embeddings request.
      if (o.error) expect(['ERR_API_TIMEOUT', 'ERR_API_CONNECTION', 'ERR_API_HTTP', 'ERR_API_PROTOCOL', 'ERR_API_RESPONSE']).toContain(o.error.code);
    }
    await b.dispose();
    await sleep(100);
    figure(
      `API chaos (seed ${SEED + 7}): ${requests.length} requests, ${index} HTTP requests served (${[...new Set(plan.values())].length} kinds of fault); ` +
        `outcomes ${[...tally].map(([k, v]) => `${k} ${v}`).join(', ')}; slowest ${Math.round(Math.max(...outcomes.map((o) => o.ms)))} ms (limit ${limit} ms)`,
    );
    expect(tally.get('ok') ?? 0).toBeGreaterThan(0);
    expect(tally.size).toBeGreaterThan(2);
    // Every request the client gave up on (a timeout, a cut, an error) had its connection closed: none is left
    // hanging on the server.
    expect(inFlight.size).toBe(0);
  });
});
