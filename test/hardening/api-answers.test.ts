import type { ServerResponse } from 'node:http';
import { describe, expect, it } from 'vitest';

import { LlamaError } from '../../lib';
import { captureLogger } from '../support/capture-logger';
import { apiTestScope } from '../support/api-scope';
import { completionBody, json } from '../support/http-fixture';

// Answers from a server we do not control, each served by a real HTTP server on 127.0.0.1: a stream without end,
// answers of any size, fields of the wrong shape, redirects to another origin. Each ends in a result or a typed
// error, in bounded time and memory.

const { fixture, backend } = apiTestScope({ apiKey: '', maxRetries: 0, retryDelayMs: 10, logger: captureLogger() });

/** Runs `work`, returning its value or typed error, how long it took, and how much the resident memory grew. */
async function measured<T>(work: () => Promise<T>): Promise<{ value?: T; error?: LlamaError; ms: number; rssGrowth: number }> {
  const rss = process.memoryUsage().rss;
  const started = performance.now();
  let value: T | undefined;
  let error: LlamaError | undefined;
  try {
    value = await work();
  } catch (e) {
    expect(e).toBeInstanceOf(LlamaError);
    error = e as LlamaError;
  }
  return { value, error, ms: performance.now() - started, rssGrowth: process.memoryUsage().rss - rss };
}

const MiB = 1024 * 1024;

/** Writes `piece` for ever (as fast as the client reads), until the connection closes; `closed` then resolves. */
function pumpForever(res: ServerResponse, piece: () => string): Promise<void> {
  const closed = new Promise<void>((done) => res.on('close', () => done()));
  const pump = () => {
    while (!res.destroyed && res.write(piece()));
    if (!res.destroyed) res.once('drain', pump);
  };
  pump();
  return closed;
}

const textEvent = (text: string) => `data: ${JSON.stringify({ choices: [{ index: 0, text, finish_reason: null }] })}\n\n`;
const chatEvent = (content: string) => `data: ${JSON.stringify({ choices: [{ index: 0, delta: { content }, finish_reason: null }] })}\n\n`;

describe('an SSE stream that never ends', () => {
  it('is stopped by maxTokens: 5 chunks, finish_reason length, the connection closed, memory flat', async () => {
    let closed: Promise<void> | undefined;
    let sent = 0;
    const f = await fixture((req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      const chat = req.url.endsWith('/chat/completions');
      closed = pumpForever(res, () => (sent++, chat ? chatEvent('tok ') : textEvent('tok ')));
    });
    const b = backend({ baseUrl: f.url });
    const chunks: string[] = [];
    const r = await measured(() => b.stream({ prompt: 'hi', maxTokens: 5 }, (c) => chunks.push(c)).result);
    expect(r.error).toBeUndefined();
    expect(r.value).toMatchObject({ content: 'tok tok tok tok tok ', finishReason: 'length', completionTokens: 5 });
    expect(chunks).toHaveLength(5);
    expect(r.ms).toBeLessThan(5000);
    expect(r.rssGrowth).toBeLessThan(100 * MiB);
    // The server sees the connection end: it stops writing.
    await expect(Promise.race([closed!.then(() => 'closed'), new Promise((done) => setTimeout(done, 3000, 'open'))])).resolves.toBe('closed');
    const after = sent;
    await new Promise((done) => setTimeout(done, 100));
    expect(sent).toBe(after);

    const chat = await measured(() => b.streamChat([{ role: 'user', content: 'hi' }], undefined, { maxTokens: 3 }).result);
    expect(chat.value).toMatchObject({ content: 'tok tok tok ', finishReason: 'length' });
    expect(chat.ms).toBeLessThan(5000);
  });

  it('without a token limit, or without text, is stopped by totalTimeoutMs: ERR_API_TIMEOUT', async () => {
    let empty = false;
    const f = await fixture((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      // Events as fast as the client takes them: the idle timeout (timeoutMs) never fires.
      void pumpForever(res, () => (empty ? `data: ${JSON.stringify({ choices: [] })}\n\n` : textEvent('x')));
    });
    const b = backend({ baseUrl: f.url, totalTimeoutMs: 1000, timeoutMs: 60_000 });
    for (const without of ['a token limit', 'text']) {
      empty = without === 'text';
      const r = await measured(() => b.stream({ prompt: 'hi', maxTokens: empty ? 5 : -1 }).result);
      expect(r.error?.code, without).toBe('ERR_API_TIMEOUT');
      expect(r.error?.message).toContain('totalTimeoutMs');
      expect(r.ms).toBeGreaterThanOrEqual(900);
      expect(r.ms).toBeLessThan(4000);
      expect(r.rssGrowth).toBeLessThan(150 * MiB);
    }
    // The deadline covers whole answers too.
    const silentish = await fixture((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      const timer = setInterval(() => res.write(' '), 50);
      res.on('close', () => clearInterval(timer));
    });
    const r = await measured(() => backend({ baseUrl: silentish.url, totalTimeoutMs: 500 }).call({ prompt: 'hi' }));
    expect(r.error?.code).toBe('ERR_API_TIMEOUT');
    expect(r.ms).toBeLessThan(3000);
  });

  it('an event that never ends (data lines without the blank line) is ERR_API_PROTOCOL, not unbounded memory', async () => {
    const f = await fixture((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      void pumpForever(res, () => `data: ${'y'.repeat(64 * 1024)}\n`);
    });
    const r = await measured(() => backend({ baseUrl: f.url }).stream({ prompt: 'hi', maxTokens: 5 }).result);
    expect(r.error?.code).toBe('ERR_API_PROTOCOL');
    expect(r.error?.message).toMatch(/an event longer than \d+ bytes/);
    expect(r.ms).toBeLessThan(10_000);
    expect(r.rssGrowth).toBeLessThan(300 * MiB);
  });
});

describe('the size of a non-streamed answer', () => {
  it('past maxResponseBytes: ERR_API_RESPONSE, the rest unread, memory flat', async () => {
    let closed: Promise<void> | undefined;
    const f = await fixture((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{"choices":[{"text":"');
      closed = pumpForever(res, () => 'a'.repeat(64 * 1024));
    });
    const r = await measured(() => backend({ baseUrl: f.url, maxResponseBytes: MiB }).call({ prompt: 'hi' }));
    expect(r.error?.code).toBe('ERR_API_RESPONSE');
    expect(r.error?.message).toContain(`larger than ${MiB} bytes (maxResponseBytes)`);
    expect(r.ms).toBeLessThan(5000);
    expect(r.rssGrowth).toBeLessThan(100 * MiB);
    await expect(Promise.race([closed!.then(() => 'closed'), new Promise((done) => setTimeout(done, 3000, 'open'))])).resolves.toBe('closed');
  });

  it('the default limit (64 MiB) refuses a 2 GB answer from its Content-Length, before reading it', async () => {
    const f = await fixture((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(2 * 1024 * MiB) });
      void pumpForever(res, () => 'b'.repeat(64 * 1024));
    });
    const b = backend({ baseUrl: f.url });
    for (const call of [() => b.call({ prompt: 'hi' }), () => b.embed('x')]) {
      const r = await measured(call);
      expect(r.error?.code).toBe('ERR_API_RESPONSE');
      expect(r.error?.message).toContain(`larger than ${64 * MiB} bytes`);
      expect(r.ms).toBeLessThan(3000);
      expect(r.rssGrowth).toBeLessThan(100 * MiB);
    }
  });
});

describe('answers of the wrong shape: ERR_API_RESPONSE naming the field', () => {
  const cases: Array<[string, 'call' | 'chat' | 'embed', unknown, RegExp]> = [
    ['embedding index 0.5', 'embed', { data: [{ index: 0.5, embedding: [1, 2] }] }, /data\[0\]\.index should be an integer from 0 to 0, got number 0\.5/],
    ['embedding index out of range', 'embed', { data: [{ index: 1, embedding: [1, 2] }] }, /data\[0\]\.index should be an integer from 0 to 0/],
    ['embedding index as text', 'embed', { data: [{ index: '0', embedding: [1, 2] }] }, /data\[0\]\.index/],
    ['a NaN-like value', 'embed', { data: [{ index: 0, embedding: [1, null] }] }, /data\[0\]\.embedding\[1\] should be a finite number, got null/],
    ['an empty vector', 'embed', { data: [{ index: 0, embedding: [] }] }, /data\[0\]\.embedding should be a non-empty list/],
    ['no data', 'embed', { object: 'list' }, /data should be a list of 1 embeddings, got nothing/],
    ['__proto__ as data', 'embed', JSON.parse('{"__proto__": {"data": [{"index": 0, "embedding": [1]}]}}'), /data should be a list/],
    ['text a number', 'call', { choices: [{ text: 5 }] }, /choices\[0\]\.text should be a string, got number 5/],
    ['no choices', 'call', { choices: [] }, /choices should be a list with one choice/],
    ['choices an object', 'call', { choices: { 0: { text: 'x' } } }, /choices should be a list, got an object/],
    ['finish_reason a number', 'call', { choices: [{ text: 'x', finish_reason: 1 }] }, /choices\[0\]\.finish_reason should be a string/],
    ['usage negative', 'call', { choices: [{ text: 'x' }], usage: { prompt_tokens: -1 } }, /usage\.prompt_tokens should be a whole number ≥ 0/],
    ['usage a string', 'call', { choices: [{ text: 'x' }], usage: 'lots' }, /usage should be an object/],
    ['timings NaN-like', 'call', { choices: [{ text: 'x' }], timings: { predicted_ms: 'fast' } }, /timings\.predicted_ms should be a finite number/],
    ['model a number', 'call', { model: 7, choices: [{ text: 'x' }] }, /model should be a string, got number 7/],
    ['chat content a number', 'chat', { choices: [{ message: { content: 7 } }] }, /choices\[0\]\.message\.content should be a string/],
    ['chat message missing', 'chat', { choices: [{ text: 'x' }] }, /choices\[0\]\.message should be an object with content/],
    ['chat message a string', 'chat', { choices: [{ message: 'hi' }] }, /choices\[0\]\.message should be an object/],
  ];
  it.each(cases)('%s', async (_name, entry, body, message) => {
    const f = await fixture((_req, res) => json(res, 200, body));
    const b = backend({ baseUrl: f.url });
    const call = { call: () => b.call({ prompt: 'hi' }), chat: () => b.chat([{ role: 'user', content: 'hi' }]), embed: () => b.embed('x') }[entry];
    const r = await measured(call);
    expect(r.error?.code).toBe('ERR_API_RESPONSE');
    expect(r.error?.message).toMatch(message);
    expect(r.ms).toBeLessThan(3000);
  });

  it('a stream event of the wrong shape, and a models list that is not one', async () => {
    const f = await fixture((req, res) => {
      if (req.url === '/health') return json(res, 404, { error: 'no' });
      if (req.url.endsWith('/models')) return json(res, 200, { data: [{ id: 7 }] });
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.end(`${textEvent('ok')}data: ${JSON.stringify({ choices: [{ text: ['x'] }] })}\n\ndata: [DONE]\n\n`);
    });
    const b = backend({ baseUrl: f.url });
    const r = await measured(() => b.stream({ prompt: 'hi' }).result);
    expect(r.error?.code).toBe('ERR_API_RESPONSE');
    expect(r.error?.message).toMatch(/\(event 2\): malformed answer: choices\[0\]\.text should be a string, got a list of 1/);
    const health = await b.healthCheck();
    expect(health.ok).toBe(false);
    expect(health.detail).toMatch(/ERR_API_RESPONSE: .*data\[0\]\.id should be a string, got number 7/);

    // A well-formed answer still passes (null content, absent usage and timings).
    const good = await fixture((req, res) => {
      if (req.url.endsWith('/chat/completions')) return json(res, 200, { choices: [{ message: { role: 'assistant', content: null }, finish_reason: 'stop' }] });
      if (req.url.endsWith('/embeddings')) return json(res, 200, { data: [{ index: 1, embedding: [0, 2] }, { index: 0, embedding: [3, 0] }] });
      return json(res, 200, completionBody('fine'));
    });
    const g = backend({ baseUrl: good.url });
    expect((await g.call({ prompt: 'hi' })).content).toBe('fine');
    expect((await g.chat([{ role: 'user', content: 'hi' }])).content).toBe('');
    expect((await g.embed(['a', 'b'])).map((v) => Array.from(v))).toEqual([[1, 0], [0, 1]]);
  });
});

describe('redirects', () => {
  it('to another origin: not followed (ERR_API_HTTP naming both origins); the body and the key never reach it', async () => {
    const other = await fixture((_req, res) => json(res, 200, completionBody('from the other server')));
    const first = await fixture((req, res) => {
      if (req.url.startsWith('/moved')) return json(res, 200, completionBody('same origin'));
      res.writeHead(req.url.endsWith('/chat/completions') ? 308 : 307, { location: req.url.endsWith('/embeddings') ? '/moved/v1/completions' : `${other.url}/v1/completions` }).end();
    });
    const key = 'sk-redirect-5e1f0c9a7b3d';
    const b = backend({ baseUrl: first.url, apiKey: key, headers: { 'x-team-secret': 'team-1234' } });
    for (const call of [() => b.call({ prompt: 'the secret prompt' }), () => b.chat([{ role: 'user', content: 'the secret prompt' }])]) {
      const r = await measured(call);
      expect(r.error?.code).toBe('ERR_API_HTTP');
      expect(r.error?.message).toContain(`from ${first.url} to another origin, ${other.url}`);
      expect(r.error?.message).toContain('allowCrossOriginRedirects');
      expect(r.ms).toBeLessThan(3000);
    }
    expect(other.requests).toHaveLength(0);
    // Within the origin, a redirect is followed (with the key).
    const same = await b.embed('x').catch((e: LlamaError) => e);
    expect(same).toMatchObject({ code: 'ERR_API_RESPONSE' }); // /moved answers a completion, not embeddings
    expect(first.requests.at(-1)).toMatchObject({ url: '/moved/v1/completions' });
    expect(first.requests.at(-1)!.headers.authorization).toBe(`Bearer ${key}`);

    // Allowed: followed, without the Authorization header and the extra headers.
    const allowed = backend({ baseUrl: first.url, apiKey: key, headers: { 'x-team-secret': 'team-1234' }, allowCrossOriginRedirects: true });
    expect((await allowed.call({ prompt: 'p' })).content).toBe('from the other server');
    expect(other.requests).toHaveLength(1);
    expect(other.requests[0].headers.authorization).toBeUndefined();
    expect(other.requests[0].headers['x-team-secret']).toBeUndefined();
    expect(JSON.stringify(other.requests[0].headers)).not.toContain(key);
  });

  it('a redirect loop ends after 5 hops', async () => {
    const f = await fixture((req, res) => {
      res.writeHead(307, { location: `/loop${req.url}` }).end();
    });
    const r = await measured(() => backend({ baseUrl: f.url }).call({ prompt: 'hi' }));
    expect(r.error?.code).toBe('ERR_API_HTTP');
    expect(r.error?.message).toContain('more than 5 redirects');
    expect(f.requests).toHaveLength(6);
  });
});
