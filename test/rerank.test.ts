import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { AddressInfo } from 'node:net';

import { ApiLlmBackend, createServer, loadModel, LlamaError, LocalLlmBackend, MockLlmBackend, silentLogger, type LlamaModel } from '../lib';
import { startLlamaServer, type LlamaServer } from './support/llama-server';
import { haveModel, modelPath, STORIES } from './support/models';
import { BERT_VOCAB, syntheticReranker } from './support/synthetic';

const QUERY = 'What is a panda?';
const DOCUMENTS = [
  'hi',
  'it is a bear',
  'The giant panda (Ailuropoda melanoleuca), sometimes called a panda bear or simply panda, is a bear species endemic to China.',
  'Pandas eat bamboo.',
  'The stock market fell sharply on Monday.',
  'A red panda is not a bear.',
  '熊猫是一种熊。',
  '',
];

/** 64 documents of different lengths: more than one decode of the embedding context. */
const MANY = Array.from({ length: 64 }, (_, i) => `document ${i}: ${'the quick brown fox jumps over the lazy dog '.repeat(1 + (i % 7))}`);

interface ServerRank {
  index: number;
  relevance_score: number;
}

describe.runIf(haveModel(BERT_VOCAB))('rerank on a synthetic BERT reranker', () => {
  const models: Partial<Record<'plain' | 'template', LlamaModel>> = {};
  const servers: Partial<Record<'plain' | 'template', LlamaServer>> = {};

  beforeAll(async () => {
    for (const kind of ['plain', 'template'] as const) {
      const path = await syntheticReranker(kind === 'template');
      models[kind] = await loadModel(path, { threads: 2, pooling: 'rank' });
      servers[kind] = await startLlamaServer(path, ['--reranking', '-c', '2048', '-ub', '512', '-b', '512']);
    }
  }, 120_000);
  afterAll(async () => {
    await Promise.all(Object.values(models).map((m) => m?.dispose()));
    await Promise.all(Object.values(servers).map((s) => s?.stop()));
  });

  async function reference(kind: 'plain' | 'template', query: string, documents: string[], topN?: number): Promise<ServerRank[]> {
    const answer = await servers[kind]!.post<{ results: ServerRank[] }>('/v1/rerank', { query, documents, ...(topN !== undefined ? { top_n: topN } : {}) });
    return answer.results;
  }

  function expectSame(ours: { index: number; score: number; document: string }[], theirs: ServerRank[], documents: string[]): void {
    expect(ours.map((r) => r.index)).toEqual(theirs.map((r) => r.index));
    for (let i = 0; i < ours.length; i++) {
      expect(Math.abs(ours[i]!.score - theirs[i]!.relevance_score)).toBeLessThan(1e-4);
      expect(ours[i]!.document).toBe(documents[ours[i]!.index]);
    }
  }

  it.each(['plain', 'template'] as const)('scores and order equal llama-server /v1/rerank (%s prompt layout)', async (kind) => {
    const ours = await models[kind]!.rerank(QUERY, DOCUMENTS);
    const theirs = await reference(kind, QUERY, DOCUMENTS);
    expect(ours).toHaveLength(DOCUMENTS.length);
    expectSame(ours, theirs, DOCUMENTS);
    // The scores tell documents apart (a constant would pass the order check only by accident).
    const scores = ours.map((r) => r.score);
    expect(Math.max(...scores) - Math.min(...scores)).toBeGreaterThan(1e-3);
  });

  it('the two prompt layouts give different scores for the same pairs (the template is used)', async () => {
    // Same weights, different tokens: identical layouts would score exactly alike (F32, same batch shape).
    const plain = await models.plain!.rerank(QUERY, DOCUMENTS, { topN: DOCUMENTS.length });
    const templated = await models.template!.rerank(QUERY, DOCUMENTS);
    const byIndex = (rs: { index: number; score: number }[]) => rs.slice().sort((a, b) => a.index - b.index).map((r) => r.score);
    const a = byIndex(plain);
    const b = byIndex(templated);
    expect(Math.max(...a.map((x, i) => Math.abs(x - b[i]!)))).toBeGreaterThan(1e-5);
  });

  it('64 documents, and concurrent calls sharing batches, equal llama-server', async () => {
    const [all, again] = await Promise.all([models.plain!.rerank('lazy dog', MANY), models.plain!.rerank(QUERY, DOCUMENTS)]);
    expectSame(all, await reference('plain', 'lazy dog', MANY), MANY);
    expectSame(again, await reference('plain', QUERY, DOCUMENTS), DOCUMENTS);
  });

  it('topN keeps the best documents, as llama-server top_n', async () => {
    const ours = await models.plain!.rerank(QUERY, DOCUMENTS, { topN: 3 });
    expect(ours).toHaveLength(3);
    expectSame(ours, await reference('plain', QUERY, DOCUMENTS, 3), DOCUMENTS);
    expect(await models.plain!.rerank(QUERY, DOCUMENTS, { topN: 0 })).toEqual([]);
  });

  it('normalize maps each raw score through the logistic function', async () => {
    const raw = await models.plain!.rerank(QUERY, DOCUMENTS);
    const unit = await models.plain!.rerank(QUERY, DOCUMENTS, { normalize: true });
    expect(unit.map((r) => r.index)).toEqual(raw.map((r) => r.index));
    for (let i = 0; i < raw.length; i++) {
      expect(unit[i]!.score).toBeGreaterThan(0);
      expect(unit[i]!.score).toBeLessThan(1);
      expect(Math.abs(unit[i]!.score - 1 / (1 + Math.exp(-raw[i]!.score)))).toBeLessThan(1e-6);
    }
  });

  it('LlmBackend.rerank: the local backend and the API backend (llama-server /v1/rerank) give the model\'s answer', async () => {
    const path = await syntheticReranker();
    const local = new LocalLlmBackend({ modelPath: path, threads: 2, contextSize: 512 });
    const api = new ApiLlmBackend({ baseUrl: servers.plain!.baseUrl, maxRetries: 0 });
    try {
      const direct = await models.plain!.rerank(QUERY, DOCUMENTS, { topN: 5, normalize: true });
      for (const backend of [local, api]) {
        const ours = await backend.rerank(QUERY, DOCUMENTS, { topN: 5, normalize: true });
        expect(ours.map((r) => r.index)).toEqual(direct.map((r) => r.index));
        ours.forEach((r, i) => {
          expect(Math.abs(r.score - direct[i]!.score)).toBeLessThan(1e-4);
          expect(r.document).toBe(direct[i]!.document);
        });
        expect(await backend.rerank(QUERY, [])).toEqual([]);
        await expect(backend.rerank(QUERY, DOCUMENTS, { topn: 1 } as never)).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
      }
      // A server without --reranking answers with an error status: a typed API error.
      const plain = await startLlamaServer(path, ['-c', '512']);
      try {
        await expect(new ApiLlmBackend({ baseUrl: plain.baseUrl, maxRetries: 0 }).rerank(QUERY, DOCUMENTS)).rejects.toMatchObject({ code: expect.stringMatching(/^ERR_API_/) });
      } finally {
        await plain.stop();
      }
    } finally {
      await local.dispose();
      await api.dispose();
    }
    // The mock backend: the share of the query's words in each document.
    const mock = new MockLlmBackend();
    const ranked = await mock.rerank('red ball', ['a blue car', 'the red ball', 'a red car']);
    expect(ranked.map((r) => [r.index, r.score])).toEqual([[1, 1], [2, 0.5], [0, 0]]);
  });

  it('tea-llama serve answers /v1/rerank as llama-server does', async () => {
    const backend = new LocalLlmBackend({ modelPath: await syntheticReranker(), threads: 2, contextSize: 512 });
    const server = createServer(backend, { logger: silentLogger });
    try {
      await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const post = (body: unknown) => fetch(`${url}/v1/rerank`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
      const ours = (await (await post({ query: QUERY, documents: DOCUMENTS, top_n: 4 })).json()) as { results: ServerRank[] };
      const theirs = await reference('plain', QUERY, DOCUMENTS, 4);
      expect(ours.results.map((r) => r.index)).toEqual(theirs.map((r) => r.index));
      ours.results.forEach((r, i) => expect(Math.abs(r.relevance_score - theirs[i]!.relevance_score)).toBeLessThan(1e-4));
      // Through the API backend, as against llama-server.
      const api = new ApiLlmBackend({ baseUrl: url, maxRetries: 0 });
      expect((await api.rerank(QUERY, DOCUMENTS)).map((r) => r.index)).toEqual((await reference('plain', QUERY, DOCUMENTS)).map((r) => r.index));
      await api.dispose();
      expect((await post({ query: QUERY, documents: [] })).status).toBe(400);
      expect((await post({ query: QUERY, documents: DOCUMENTS, top_n: -1 })).status).toBe(400);
      expect((await post({ query: QUERY, documents: DOCUMENTS, topN: 1 })).status).toBe(400);
      expect((await post({ query: 7, documents: DOCUMENTS })).status).toBe(400);
    } finally {
      await server.shutdown();
      await backend.dispose();
    }
  });

  it('rejects bad arguments with typed errors and survives them', async () => {
    const m = models.plain!;
    expect(await m.rerank(QUERY, [])).toEqual([]);
    await expect(m.rerank(QUERY, 'one document' as never)).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    await expect(m.rerank(42 as never, DOCUMENTS)).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    await expect(m.rerank(QUERY, ['ok', 7 as never])).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT', message: expect.stringContaining('documents[1]') });
    await expect(m.rerank(QUERY, DOCUMENTS, { topN: -1 })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    await expect(m.rerank(QUERY, DOCUMENTS, { top_n: 2 } as never)).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT', message: expect.stringContaining('topN') });
    const aborted = AbortSignal.abort();
    await expect(m.rerank(QUERY, DOCUMENTS, { signal: aborted })).rejects.toMatchObject({ code: 'ERR_ABORTED' });
    const tooLong = 'panda '.repeat(2000);
    await expect(m.rerank(QUERY, [tooLong])).rejects.toMatchObject({ code: 'ERR_CONTEXT_OVERFLOW' });
    expect(await m.rerank(QUERY, DOCUMENTS.slice(0, 2))).toHaveLength(2);
  });
});

describe.runIf(haveModel(STORIES))('rerank on a model without a classifier head', () => {
  it('is ERR_MODEL_UNSUPPORTED at load with pooling rank, and from rerank() or embed(), never an abort', async () => {
    await expect(loadModel(modelPath(STORIES), { pooling: 'rank' })).rejects.toMatchObject({ code: 'ERR_MODEL_UNSUPPORTED' });
    await expect(loadModel(modelPath(STORIES), { pooling: 'ranked' as never })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    const model = await loadModel(modelPath(STORIES), { threads: 2 });
    try {
      const error = await model.rerank('q', ['d']).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(LlamaError);
      expect(error).toMatchObject({ code: 'ERR_MODEL_UNSUPPORTED' });
      await expect(model.embed('text', { pooling: 'rank' })).rejects.toMatchObject({ code: 'ERR_MODEL_UNSUPPORTED' });
      // Still alive and working.
      expect((await model.embed('text')).length).toBe(model.info.embeddingLength);
    } finally {
      await model.dispose();
    }
  });
});
