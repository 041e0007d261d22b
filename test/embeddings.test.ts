import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { loadModel, type LlamaModel } from '../lib';
import { startLlamaServer, type LlamaServer } from './support/llama-server';
import { haveModel, modelPath, STORIES } from './support/models';

const TEXTS = ['Once upon a time there was a cat.', 'The sun was hot.', 'Lily liked her red ball very much.'];

function norm(v: Float32Array): number {
  return Math.sqrt(v.reduce((s, x) => s + x * x, 0));
}

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
  return worst;
}

describe.runIf(haveModel(STORIES))('embeddings on stories260K', () => {
  let model: LlamaModel;
  const servers: Partial<Record<'mean' | 'cls' | 'last', LlamaServer>> = {};

  beforeAll(async () => {
    model = await loadModel(modelPath(STORIES), { threads: 2 });
    for (const pooling of ['mean', 'cls', 'last'] as const) {
      servers[pooling] = await startLlamaServer(modelPath(STORIES), ['--embeddings', '--pooling', pooling, '-c', '512', '-ub', '512', '-b', '512']);
    }
  });
  afterAll(async () => {
    await model?.dispose();
    await Promise.all(Object.values(servers).map((s) => s?.stop()));
  });

  async function reference(pooling: 'mean' | 'cls' | 'last', text: string, normalize: boolean): Promise<number[]> {
    const body = { content: text, embd_normalize: normalize ? 2 : -1 };
    const answer = await servers[pooling]!.post<Array<{ embedding: number[][] | number[] }>>('/embedding', body);
    const embedding = answer[0].embedding;
    return (Array.isArray(embedding[0]) ? embedding[0] : embedding) as number[];
  }

  it.each(['mean', 'cls', 'last'] as const)('%s pooling equals llama-server within 1e-4', async (pooling) => {
    const raw = await model.embed(TEXTS, { pooling, normalize: false });
    const unit = await model.embed(TEXTS, { pooling });
    for (let i = 0; i < TEXTS.length; i++) {
      expect(raw[i]).toBeInstanceOf(Float32Array);
      expect(raw[i].length).toBe(model.info.embeddingLength);
      expect(maxDiff(raw[i], await reference(pooling, TEXTS[i], false))).toBeLessThan(1e-4);
      expect(maxDiff(unit[i], await reference(pooling, TEXTS[i], true))).toBeLessThan(1e-4);
      expect(Math.abs(norm(unit[i]) - 1)).toBeLessThan(1e-5);
    }
  });

  it('embeds a single string as one vector and distinguishes texts', async () => {
    const one = await model.embed(TEXTS[0]);
    const batch = await model.embed(TEXTS);
    expect(one).toBeInstanceOf(Float32Array);
    expect(maxDiff(one, batch[0])).toBeLessThan(1e-6);
    expect(maxDiff(batch[0], batch[1])).toBeGreaterThan(1e-3);
    expect(await model.embed([])).toEqual([]);
  });

  it('rejects a text longer than the embedding context', async () => {
    await using small = await loadModel(modelPath(STORIES), { embeddingContextSize: 16 });
    await expect(small.embed('word '.repeat(100))).rejects.toMatchObject({ code: 'ERR_CONTEXT_OVERFLOW' });
  });
});
