// Faults at tea-llama's HTTP server, each reproduced on 127.0.0.1: a client that leaves mid-stream, bodies over the
// limit, malformed JSON, slow and stalled readers, a full queue, SIGTERM during streams. Each answer is typed (the
// OpenAI error shape with its status), in bounded time and memory, and the server goes on serving.
import { mkdtempSync } from 'node:fs';
import { request, type ClientRequest, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { createServer, LocalLlmBackend, silentLogger, type TeaServer } from '../lib';
import { startServeCli } from './support/cli';
import { haveModel, PHI3_VOCAB } from './support/models';
import { syntheticModel } from './support/synthetic';

const run = haveModel(PHI3_VOCAB) ? describe : describe.skip;

interface Raw {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** One request with node:http, the body written as given (or streamed by `write`). */
function raw(url: string, path: string, options: { body?: string | Buffer; headers?: Record<string, string>; write?: (req: ReturnType<typeof request>) => void } = {}): Promise<Raw> {
  return new Promise((resolve, reject) => {
    const req = request(`${url}${path}`, { method: options.body !== undefined || options.write ? 'POST' : 'GET', headers: options.headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
      res.on('error', reject);
    });
    // The server closes the connection after a 413 without reading the rest: writing more then fails.
    req.on('error', (error) => reject(error));
    if (options.write) options.write(req);
    else req.end(options.body);
  });
}

/** The data of each event of an SSE body. */
function events(body: string): string[] {
  return body
    .split('\n\n')
    .filter((e) => e.length > 0)
    .map((e) => {
      expect(e.startsWith('data: '), e).toBe(true);
      return e.slice('data: '.length);
    });
}

/** The text of a completions SSE body, and how it ended. */
function streamedText(body: string): { text: string; finish: string | null; error: { code: string } | null; done: boolean } {
  let text = '';
  let finish: string | null = null;
  let error: { code: string } | null = null;
  const data = events(body);
  for (const d of data.slice(0, -1)) {
    const parsed = JSON.parse(d) as { choices?: { text?: string; finish_reason: string | null }[]; error?: { code: string } };
    if (parsed.error) error = parsed.error;
    for (const c of parsed.choices ?? []) {
      text += c.text ?? '';
      finish = c.finish_reason ?? finish;
    }
  }
  return { text, finish, error, done: data.at(-1) === '[DONE]' };
}

async function metric(url: string, pattern: RegExp): Promise<number> {
  const text = (await raw(url, '/metrics')).body;
  return Number(pattern.exec(text)?.[1] ?? 0);
}

async function until(check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function listen(server: TeaServer): Promise<string> {
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

const LONG = { prompt: 'Once upon a time', max_tokens: 1500, temperature: 0, stream: true };
const ABORTS = /^tea_generations_total\{endpoint="\/v1\/completions",finish_reason="abort"\} (\d+)$/m;

run('tea-llama serve under faults', () => {
  let model: string;
  let backend: LocalLlmBackend;
  let server: TeaServer;
  let url: string;

  beforeAll(async () => {
    // A synthetic model with random weights (no end-of-text for thousands of tokens), fast enough for 1,500 tokens in about a second.
    model = await syntheticModel('tiny', 'F16');
    backend = new LocalLlmBackend({ modelPath: model, contextSize: 4096, threads: 2, sequences: 1, maxQueued: 0 });
    await backend.load();
    server = createServer(backend, { maxBodyBytes: 64 * 1024, stallTimeoutMs: 1000, logger: silentLogger });
    url = await listen(server);
  });
  afterAll(async () => {
    await server?.shutdown({ timeoutMs: 0 });
    await backend?.dispose();
  });

  it('aborts the generation of a client that leaves mid-stream and frees its sequence for the next request', async () => {
    const before = await metric(url, ABORTS);
    const tokensBefore = await metric(url, /^tea_completion_tokens_total (\d+)$/m);
    await new Promise<void>((resolve, reject) => {
      const req = request(`${url}/v1/completions`, { method: 'POST' }, (res) => {
        expect(res.statusCode).toBe(200);
        res.once('data', () => {
          req.destroy();
          resolve();
        });
      });
      req.on('error', () => undefined);
      req.on('close', () => resolve());
      req.end(JSON.stringify(LONG));
      setTimeout(() => reject(new Error('no first event')), 10_000);
    });
    await until(async () => (await metric(url, ABORTS)) === before + 1, 30_000);
    // It stopped when the client left, far short of its 1,500 tokens.
    expect((await metric(url, /^tea_completion_tokens_total (\d+)$/m)) - tokensBefore).toBeLessThan(1000);
    // One sequence and no queue: the next request is served only if the first one's sequence was freed.
    const next = await raw(url, '/v1/completions', { body: JSON.stringify({ prompt: 'The little dog', max_tokens: 8, temperature: 0 }) });
    expect(next.status).toBe(200);
    expect(JSON.parse(next.body).usage.completion_tokens).toBe(8);
    expect(await metric(url, /^tea_requests_in_flight (\d+)$/m)).toBe(0);
  });

  it('answers a full queue with 503 queue_full and Retry-After, then serves again', async () => {
    const first = raw(url, '/v1/completions', { body: JSON.stringify({ ...LONG, max_tokens: 400 }) });
    await until(async () => (await metric(url, /^tea_requests_in_flight (\d+)$/m)) === 1, 5000);
    const second = await raw(url, '/v1/chat/completions', { body: JSON.stringify({ messages: [{ role: 'user', content: 'hi' }], max_tokens: 4 }) });
    expect(second.status).toBe(503);
    expect(second.headers['retry-after']).toBe('1');
    expect(JSON.parse(second.body).error).toMatchObject({ type: 'server_error', code: 'queue_full', param: null });
    const done = streamedText((await first).body);
    expect(done).toMatchObject({ finish: 'length', done: true, error: null });
  });

  it('answers a body over the limit with 413 without reading it, in bounded time and memory', async () => {
    const rss = process.memoryUsage().rss;
    const started = performance.now();
    // Announced: refused from the Content-Length alone.
    const announced = await raw(url, '/v1/completions', {
      headers: { 'content-type': 'application/json', 'content-length': String(512 * 1024 * 1024) },
      write: (req) => req.write('{"prompt": "'),
    });
    expect(announced.status).toBe(413);
    expect(JSON.parse(announced.body).error).toMatchObject({ code: 'request_too_large', type: 'invalid_request_error' });
    // Chunked, without a length: cut at the limit while it streams in (64 MiB offered).
    const chunked = await raw(url, '/v1/completions', {
      headers: { 'content-type': 'application/json' },
      write: (req) => {
        const piece = Buffer.alloc(1024 * 1024, 0x61);
        let sent = 0;
        const more = () => {
          while (sent < 64 && !req.destroyed) {
            sent++;
            if (!req.write(piece)) return void req.once('drain', more);
          }
          req.end();
        };
        req.write('{"prompt": "');
        more();
      },
    }).catch((error: NodeJS.ErrnoException) => ({ status: -1, headers: {}, body: error.code ?? '' }));
    expect(chunked.status).toBe(413);
    expect(performance.now() - started).toBeLessThan(10_000);
    expect(process.memoryUsage().rss - rss).toBeLessThan(48 * 1024 * 1024);
    const after = await raw(url, '/v1/models');
    expect(after.status).toBe(200);
  });

  it('answers malformed JSON, a non-object body, an unknown route and a wrong method with 400/404/405 in OpenAI shape', async () => {
    const shape = (r: Raw) => expect(Object.keys(JSON.parse(r.body).error).sort()).toEqual(['code', 'message', 'param', 'type']);
    const malformed = await raw(url, '/v1/chat/completions', { body: '{"messages": [' });
    expect(malformed.status).toBe(400);
    expect(JSON.parse(malformed.body).error.code).toBe('invalid_json');
    shape(malformed);
    const list = await raw(url, '/v1/completions', { body: '[1, 2]' });
    expect(list.status).toBe(400);
    shape(list);
    const unknown = await raw(url, '/v1/nothing');
    expect(unknown.status).toBe(404);
    expect(JSON.parse(unknown.body).error.code).toBe('unknown_url');
    const method = await raw(url, '/v1/completions');
    expect(method.status).toBe(405);
    expect(method.headers.allow).toBe('POST');
    shape(method);
    const encoding = await raw(url, '/v1/models/%E0%A4%A');
    expect(encoding.status).toBe(400);
    shape(encoding);
    const proto = await raw(url, '/v1/completions', { body: '{"prompt": "x", "__proto__": {"max_tokens": 5}}' });
    expect(proto.status).toBe(400);
    expect(JSON.parse(proto.body).error.param).toBe('__proto__');
    const deep = await raw(url, '/v1/completions', { body: '['.repeat(60_000) });
    expect(deep.status).toBe(400);
    const nul = await raw(url, '/v1/embeddings', { body: JSON.stringify({ input: [] }) });
    expect(nul.status).toBe(400);
    expect(JSON.parse(nul.body).error.param).toBe('input');
  });

  // TCP on loopback grows its buffers to megabytes, more than a small model's whole answer: over a Unix socket
  // (about 200 KB of buffer) the same server feels a reader that does not keep up.
  async function unixServer(stallTimeoutMs: number): Promise<{ path: string; server: TeaServer }> {
    const path = join(mkdtempSync(join(tmpdir(), 'tea-serve-')), 'sock');
    const unix = createServer(backend, { stallTimeoutMs, logger: silentLogger });
    await new Promise<void>((done) => unix.listen(path, done));
    return { path, server: unix };
  }

  function unixStream(socketPath: string, body: unknown, reader: (res: IncomingMessage) => void, onRequest: (req: ClientRequest) => void = () => undefined): Promise<string> {
    return new Promise((resolve, reject) => {
      const req = request({ socketPath, path: '/v1/completions', method: 'POST', headers: { 'content-type': 'application/json' } }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (text += d));
        res.on('end', () => resolve(text));
        res.on('error', () => resolve(text));
        res.on('close', () => resolve(text));
        reader(res);
      });
      req.on('error', reject);
      req.end(JSON.stringify(body));
      onRequest(req);
    });
  }

  it('waits for a slow reader (backpressure) and delivers the whole text', async () => {
    const { path, server: unix } = await unixServer(10_000);
    try {
      const expected = await backend.call({ prompt: 'Lily wanted to', maxTokens: 3500, temperature: 0 });
      const body = { prompt: 'Lily wanted to', max_tokens: 3500, temperature: 0, stream: true };
      const text = await unixStream(path, body, (res) => {
        // Reads nothing until the server has had to wait for it (its buffers are full), then reads on.
        res.pause();
        void until(async () => unix.metrics.writeWaits > 0, 150_000).then(
          () => res.resume(),
          () => res.destroy(),
        );
      });
      const got = streamedText(text);
      expect(got.text).toBe(expected.text);
      expect(got).toMatchObject({ finish: 'length', done: true });
      expect(unix.metrics.writeWaits).toBeGreaterThan(0);
      expect(unix.metrics.render(undefined)).not.toMatch(/finish_reason="abort"/);
    } finally {
      await unix.shutdown({ timeoutMs: 0 });
    }
  }, 600_000);

  it('closes the connection of a reader that stalls past stallTimeoutMs and aborts its generation', async () => {
    const { path, server: unix } = await unixServer(1000);
    try {
      let client: ClientRequest | undefined;
      // Reads nothing at all: once the socket's buffers are full, the server waits stallTimeoutMs, then gives up.
      const answer = unixStream(path, { ...LONG, max_tokens: 3500 }, (res) => res.pause(), (req) => (client = req)).catch(() => '');
      await until(async () => /finish_reason="abort"\} 1$/m.test(unix.metrics.render(undefined)), 150_000);
      expect(unix.metrics.writeWaits).toBeGreaterThan(0);
      expect(unix.metrics.completionTokens).toBeLessThan(3500);
      await until(async () => unix.metrics.inFlight === 0, 5000);
      client!.destroy();
      await answer;
      const next = await raw(url, '/v1/completions', { body: JSON.stringify({ prompt: 'x', max_tokens: 2 }) });
      expect(next.status).toBe(200);
    } finally {
      await unix.shutdown({ timeoutMs: 0 });
    }
  }, 600_000);

  it('drains on SIGTERM during 4 streams: each completes or ends with a clean terminal event, and the process exits 0', async () => {
    const serve = await startServeCli(['--model', model, '--port', '0', '--parallel', '4', '--ctx-size', '8192', '--drain-timeout', '60000', '--threads', '2']);
    const { address, child, exited } = serve;
    expect(address).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const streams = [30, 40, 3500, 3500].map((max_tokens, i) =>
      raw(address, '/v1/completions', { body: JSON.stringify({ prompt: `Story ${i}:`, max_tokens, temperature: 0, stream: true }) }),
    );
    await until(async () => (await metric(address, /^tea_requests_in_flight (\d+)$/m)) === 4, 10_000);
    // The first SIGTERM lets running requests finish (--drain-timeout); a second one ends the rest at once.
    child.kill('SIGTERM');
    const short = await Promise.all(streams.slice(0, 2));
    child.kill('SIGTERM');
    const answers = [...short, ...(await Promise.all(streams.slice(2)))];
    const code = await exited;
    expect(code, serve.output.stderr).toBe(0);
    const outcomes = answers.map((a) => {
      expect(a.status).toBe(200);
      const s = streamedText(a.body);
      expect(s.done).toBe(true);
      if (s.error) expect(s.error.code).toBe('server_shutting_down');
      else expect(s.finish).toBe('length');
      return s.error ? 'ended' : 'completed';
    });
    expect(outcomes).toEqual(['completed', 'completed', 'ended', 'ended']);
  });
});
