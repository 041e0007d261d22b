import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { ApiLlmBackend, LlamaError, resolveSettings } from '../lib';
import { apiTestScope } from './support/api-scope';
import { captureLogger } from './support/capture-logger';
import { completionBody, json } from './support/http-fixture';
import { freePort, startLlamaServer, type LlamaServer } from './support/llama-server';
import { haveModel, modelPath, STORIES, STORY_PROMPTS } from './support/models';
import { failure } from './support/failure';

// Several OpenAI-compatible servers behind one ApiLlmBackend: real llama-server processes on loopback (one
// stopped, one killed mid-run, one killed mid-stream, all down), and node:http fixtures for 5xx answers and
// the probes that bring an endpoint back.

const { fixture, backend } = apiTestScope({ apiKey: '', maxRetries: 2, retryDelayMs: 10 });

async function until(condition: () => boolean, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const CALL = { maxTokens: 24, temperature: 0 };

describe.runIf(haveModel(STORIES))('ApiLlmBackend over several llama-server processes', () => {
  // a, b, c for the slow and killed-mid-run cases; d is killed mid-stream.
  let servers: LlamaServer[] = [];
  const reference = new Map<string, string>();

  beforeAll(async () => {
    servers = await Promise.all([0, 1, 2, 3].map(() => startLlamaServer(modelPath(STORIES), ['-c', '512', '-np', '2', '-t', '1'])));
    // Every server runs the same model: greedy text is the same whichever answers.
    const one = new ApiLlmBackend({ baseUrl: servers[0].baseUrl, apiKey: '' });
    for (const prompt of STORY_PROMPTS) reference.set(prompt, (await one.call({ prompt, ...CALL })).content);
    await one.dispose();
  });
  afterAll(async () => {
    for (const s of servers) {
      try {
        process.kill(s.pid, 'SIGCONT');
      } catch {
        // already gone
      }
    }
    await Promise.all(servers.map((s) => s.stop()));
  });

  /** `workers` loops that each make `perWorker` calls in turn, prompts in order. */
  async function run(api: ApiLlmBackend, workers: number, perWorker: number, afterEach?: (done: number) => void) {
    let done = 0;
    const results: { prompt: string; content: string }[] = [];
    await Promise.all(
      Array.from({ length: workers }, async (_, w) => {
        for (let k = 0; k < perWorker; k++) {
          const prompt = STORY_PROMPTS[(w * perWorker + k) % STORY_PROMPTS.length];
          results.push({ prompt, content: (await api.call({ prompt, ...CALL })).content });
          afterEach?.(++done);
        }
      }),
    );
    return results;
  }

  it('one slow server (stopped): the others take the load, its one request completes when it resumes', async () => {
    const [a, b, c] = servers;
    const api = backend({ baseUrl: [a.baseUrl, b.baseUrl, c.baseUrl], logger: captureLogger() });
    process.kill(c.pid, 'SIGSTOP');
    let resumed = false;
    const started = performance.now();
    try {
      // Three workers: the first calls tie at no outstanding request, so c gets one, which hangs (and holds its
      // worker); from then on c has more outstanding requests than a or b whenever a worker picks.
      const results = await run(api, 3, 5, (done) => {
        // The two other workers' 10 calls are done, all on a and b.
        if (done === 10) {
          expect(api.endpoints[2].served).toBe(1);
          expect(api.endpoints[0].served + api.endpoints[1].served).toBe(10);
          expect(performance.now() - started).toBeLessThan(20_000);
          resumed = true;
          process.kill(c.pid, 'SIGCONT');
        }
      });
      expect(resumed).toBe(true);
      expect(results).toHaveLength(15);
      for (const r of results) expect(r.content).toBe(reference.get(r.prompt));
      expect(api.endpoints.map((e) => e.outstanding)).toEqual([0, 0, 0]);
    } finally {
      if (!resumed) process.kill(c.pid, 'SIGCONT');
    }
  });

  it('one server killed mid-run: its requests fail over, the run completes with the same text', async () => {
    const [a, b, c] = servers;
    const logger = captureLogger();
    const api = backend({ baseUrl: [a.baseUrl, b.baseUrl, c.baseUrl], logger, probeDelayMs: 60_000 });
    const started = performance.now();
    const results = await run(api, 3, 8, (done) => {
      if (done === 4) process.kill(b.pid, 'SIGKILL');
    });
    expect(performance.now() - started).toBeLessThan(30_000);
    expect(results).toHaveLength(24);
    for (const r of results) expect(r.content).toBe(reference.get(r.prompt));
    expect(api.endpoints[1].healthy).toBe(false);
    expect(logger.text('warn')).toContain(`API endpoint ${b.baseUrl} is down`);
    // Once down, b gets no more requests: the calls after the kill went to a and c.
    const servedByB = api.endpoints[1].served;
    await run(api, 2, 3);
    expect(api.endpoints[1].served).toBe(servedByB);
    const health = await api.healthCheck();
    expect(health.ok).toBe(true);
    expect(health.detail).toMatch(/^2 of 3 endpoints healthy; /);
    expect(health.detail).toContain(`${b.baseUrl}: ERR_API_CONNECTION`);
  });

  it('a stream never fails over after its first event: the server killed mid-stream is a typed error, no text twice', async () => {
    const [a, , , d] = servers;
    const api = backend({ baseUrl: [d.baseUrl, a.baseUrl], logger: captureLogger() });
    const full = await new ApiLlmBackend({ baseUrl: d.baseUrl, apiKey: '' }).call({ prompt: STORY_PROMPTS[0], maxTokens: 400, temperature: 0 });
    const chunks: string[] = [];
    const servedByA = api.endpoints[1].served;
    const started = performance.now();
    const error = await failure(
      api.stream({ prompt: STORY_PROMPTS[0], maxTokens: 400, temperature: 0 }, (chunk) => {
        if (chunks.length === 0) process.kill(d.pid, 'SIGKILL');
        chunks.push(chunk);
      }),
    );
    expect(performance.now() - started).toBeLessThan(10_000);
    expect(['ERR_API_CONNECTION', 'ERR_API_PROTOCOL']).toContain(error.code);
    expect(chunks.length).toBeGreaterThan(0);
    expect(full.content.startsWith(chunks.join(''))).toBe(true);
    expect(chunks.join('').length).toBeLessThan(full.content.length);
    expect(api.endpoints[1].served).toBe(servedByA);
    // The next call goes to a.
    const next = await api.call({ prompt: STORY_PROMPTS[1], ...CALL });
    expect(next.content).toBe(reference.get(STORY_PROMPTS[1]));
    expect(api.endpoints[1].served).toBe(servedByA + 1);
  });

  it('all down: a typed error naming each endpoint, at once', async () => {
    const [, b, , d] = servers; // both killed above
    const spare = `http://127.0.0.1:${await freePort()}`;
    const api = backend({ baseUrl: [b.baseUrl, d.baseUrl, spare], logger: captureLogger() });
    for (const attempt of [() => api.call({ prompt: 'x', ...CALL }), () => api.stream({ prompt: 'x', ...CALL }), () => api.embed('x')]) {
      const started = performance.now();
      const error = await failure(attempt());
      expect(performance.now() - started).toBeLessThan(3000);
      expect(error.code).toBe('ERR_API_CONNECTION');
      expect(error.message).toContain('all 3 API endpoints failed');
      for (const url of [b.baseUrl, d.baseUrl, spare]) expect(error.message).toContain(`${url}/v1 (ECONNREFUSED)`);
    }
    const health = await api.healthCheck();
    expect(health.ok).toBe(false);
    expect(health.detail).toMatch(/^0 of 3 endpoints healthy; /);
  });

  it('a 5xx fails over to the next endpoint at once (no backoff wait), and the failing one is skipped after', async () => {
    const [a] = servers;
    const broken = await fixture((_req, res) => json(res, 500, { error: { message: 'out of memory' } }));
    const api = backend({ baseUrl: [broken.url, a.baseUrl], retryDelayMs: 20_000, probeDelayMs: 60_000, logger: captureLogger() });
    const started = performance.now();
    const r = await api.call({ prompt: STORY_PROMPTS[2], ...CALL });
    expect(performance.now() - started).toBeLessThan(5000);
    expect(r.content).toBe(reference.get(STORY_PROMPTS[2]));
    expect(broken.requests).toHaveLength(1);
    await api.call({ prompt: STORY_PROMPTS[3], ...CALL });
    expect(broken.requests).toHaveLength(1);
  });
});

describe('ApiLlmBackend endpoint pool (loopback fixtures)', () => {
  it('a down endpoint is probed with doubling delays up to the cap, and taken back when healthy', async () => {
    let up = false;
    const probes: number[] = [];
    const flaky = await fixture((req, res) => {
      if (req.url === '/health') probes.push(performance.now());
      if (!up) return json(res, 503, { error: { message: 'loading model' } });
      if (req.url === '/health') return json(res, 200, { status: 'ok' });
      json(res, 200, completionBody('from flaky'));
    });
    const steady = await fixture((req, res) => json(res, 200, req.url === '/health' ? { status: 'ok' } : completionBody('from steady')));
    const logger = captureLogger();
    const api = backend({ baseUrl: [flaky.url, steady.url], probeDelayMs: 50, maxProbeDelayMs: 200, logger });
    expect((await api.call({ prompt: 'x', ...CALL })).content).toBe('from steady');
    expect(api.endpoints[0].healthy).toBe(false);
    await until(() => probes.length >= 5, 3000);
    const gaps = probes.slice(1).map((t, k) => t - probes[k]);
    // 50 → 100 → 200 → 200: each gap at least the previous one's doubled delay (timers never fire early), capped.
    expect(gaps[0]).toBeGreaterThanOrEqual(95);
    expect(gaps[1]).toBeGreaterThanOrEqual(195);
    expect(gaps[2]).toBeGreaterThanOrEqual(195);
    expect(gaps[2]).toBeLessThan(600);
    // While down, calls go to steady only.
    for (let k = 0; k < 3; k++) expect((await api.call({ prompt: 'x', ...CALL })).content).toBe('from steady');
    up = true;
    await until(() => api.endpoints[0].healthy, 2000);
    expect(logger.text('info')).toContain(`API endpoint ${flaky.url} is back`);
    const texts = [];
    for (let k = 0; k < 4; k++) texts.push((await api.call({ prompt: 'x', ...CALL })).content);
    expect(texts.filter((t) => t === 'from flaky')).toHaveLength(2);
    expect(texts.filter((t) => t === 'from steady')).toHaveLength(2);
  });

  it('a connection error before any answer fails over even with maxRetries 0; a 4xx does not fail over', async () => {
    const dead = `http://127.0.0.1:${await freePort()}`;
    const bad = await fixture((_req, res) => json(res, 400, { error: { message: 'bad prompt' } }));
    const good = await fixture((_req, res) => json(res, 200, completionBody('good')));
    const api = backend({ baseUrl: [dead, good.url], maxRetries: 0, logger: captureLogger() });
    expect((await api.call({ prompt: 'x', ...CALL })).content).toBe('good');
    const strict = backend({ baseUrl: [bad.url, good.url], logger: captureLogger() });
    const error = await failure(strict.call({ prompt: 'x', ...CALL }));
    expect(error.code).toBe('ERR_API_HTTP');
    expect(error.message).toContain('bad prompt');
    expect(good.requests).toHaveLength(1);
  });

  it('a 429 moves to another server at once without marking the busy one down', async () => {
    const busy = await fixture((_req, res) => json(res, 429, { error: { message: 'slow down' } }, { 'retry-after': '30' }));
    const good = await fixture((_req, res) => json(res, 200, completionBody('good')));
    const api = backend({ baseUrl: [busy.url, good.url], retryDelayMs: 20_000, logger: captureLogger() });
    const started = performance.now();
    expect((await api.call({ prompt: 'x', ...CALL })).content).toBe('good');
    expect(performance.now() - started).toBeLessThan(2000);
    expect(busy.requests).toHaveLength(1);
    expect(api.endpoints.map((e) => e.healthy)).toEqual([true, true]);
  });

  it('options: an empty list or a repeated server is ERR_INVALID_ARGUMENT', () => {
    expect(() => new ApiLlmBackend({ baseUrl: [] })).toThrow(/non-empty list/);
    expect(() => new ApiLlmBackend({ baseUrl: ['http://127.0.0.1:1', 'http://127.0.0.1:1/v1'] })).toThrow(/twice/);
    expect(() => new ApiLlmBackend({ baseUrl: ['http://127.0.0.1:1', 'ftp://x'] })).toThrow(/http\(s\) URL/);
  });

  it('settings: llm.api.base_url as a list, LLM_API_BASE comma-separated; a bad item is named', async () => {
    const fromYaml = await resolveSettings({ yaml: 'llm:\n  api:\n    base_url: [http://127.0.0.1:1/, http://127.0.0.1:2]\n', env: {} });
    expect(fromYaml.api).toMatchObject({ baseUrl: 'http://127.0.0.1:1', endpoints: ['http://127.0.0.1:1', 'http://127.0.0.1:2'] });
    const fromEnv = await resolveSettings({ env: { LLM_API_BASE: 'http://127.0.0.1:1, http://127.0.0.1:2' } });
    expect(fromEnv.api.endpoints).toEqual(['http://127.0.0.1:1', 'http://127.0.0.1:2']);
    const one = await resolveSettings({ env: { LLM_API_BASE: 'http://127.0.0.1:1' } });
    expect(one.api).toMatchObject({ baseUrl: 'http://127.0.0.1:1', endpoints: ['http://127.0.0.1:1'] });
    const error = await failure(resolveSettings({ yaml: 'llm:\n  api:\n    base_url: [http://127.0.0.1:1, 42]\n', env: {} }));
    expect(error.code).toBe('ERR_SETTINGS_INVALID');
    expect(error.message).toContain('llm.api.base_url[1]: expected an http:// or https:// URL, got 42 (number)');
    const envError = await failure(resolveSettings({ env: { LLM_API_BASE: 'http://127.0.0.1:1,,' } }));
    expect(envError.message).toContain('LLM_API_BASE: expected http:// or https:// URLs separated by commas');
  });
});
