// Issue 18, no silent wrong answers: a GGUF whose metadata makes llama.cpp compute NaN (here `rope.freq_base = 0`:
// the rope frequencies are 0^-x) gave NaN embedding vectors and generated garbage tokens. Both are now ERR_NUMERIC,
// naming the key at fault. The same file with a sane freq_base embeds and generates, so the metadata is the cause.
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

import { beforeAll, describe, expect, it } from 'vitest';

import { LlamaError, loadModel } from '../../lib';
import { GgufValueType, readGguf, writeGguf } from '../../lib/gguf';
import { cacheDir, haveModel, modelPath, STORIES } from '../support/models';
import { failure } from '../support/failure';

/** stories260K.gguf with llama.rope.freq_base set to `value`, written by the project's GGUF writer. */
async function withFreqBase(value: number): Promise<string> {
  const src = modelPath(STORIES);
  const f = await readGguf(src, { maxArrayLength: Infinity });
  const raw = readFileSync(src);
  const tensors = f.tensors.map((t) => {
    const start = raw.byteOffset + f.dataOffset + t.offset;
    return { name: t.name, dims: t.dims, type: t.typeName as 'F32', data: new Float32Array(raw.buffer.slice(start, start + t.byteSize)) };
  });
  const metadata = [
    ...f.entries.filter((e) => e.key !== 'llama.rope.freq_base'),
    { key: 'llama.rope.freq_base', type: GgufValueType.FLOAT32, value },
  ];
  const dir = join(cacheDir, 'hardening');
  mkdirSync(dir, { recursive: true });
  const path = join(dir, `stories260K-freq-base-${value}.gguf`);
  await writeGguf(path, { metadata, tensors });
  return path;
}

describe.runIf(haveModel(STORIES))('a model that computes NaN', () => {
  let broken: string;
  let sane: string;
  beforeAll(async () => {
    broken = await withFreqBase(0);
    sane = await withFreqBase(10000);
  });

  it('embed() is ERR_NUMERIC naming rope.freq_base, not NaN vectors', async () => {
    await using model = await loadModel(broken);
    for (const normalize of [true, false]) {
      const error = await failure(model.embed('a sentence to embed', { normalize }));
      expect(error.code).toBe('ERR_NUMERIC');
      expect(error.message).toMatch(/NaN\/Inf in the embedding of text 0: check llama\.rope\.freq_base = 0/);
    }
    const batch = await failure(model.embed(['one', 'two', 'three']));
    expect(batch.code).toBe('ERR_NUMERIC');

    await using control = await loadModel(sane);
    const vector = await control.embed('a sentence to embed');
    expect(vector.every(Number.isFinite)).toBe(true);
  });

  it('generation is ERR_NUMERIC, greedy and sampled, streamed or not', async () => {
    await using model = await loadModel(broken);
    for (const temperature of [0, 0.8]) {
      const started = performance.now();
      const error = await failure(model.complete('Once upon a time', { maxTokens: 32, temperature }));
      expect(error.code).toBe('ERR_NUMERIC');
      expect(error.message).toMatch(/NaN\/Inf in the logits: check llama\.rope\.freq_base = 0/);
      expect(performance.now() - started).toBeLessThan(10_000);
    }
    const chunks: string[] = [];
    const streamed = model.stream('Once upon a time', { maxTokens: 32, temperature: 0 });
    const error = await failure(
      (async () => {
        for await (const chunk of streamed) chunks.push(chunk);
      })(),
    );
    expect(error.code).toBe('ERR_NUMERIC');
    expect(chunks.join('')).toBe(''); // not one garbage token got out
    // Several requests at once: each fails on its own, and the model still serves the next one the same way.
    const all = await Promise.allSettled(['a', 'b', 'c'].map((p) => model.complete(p, { maxTokens: 8 })));
    expect(all.map((r) => (r.status === 'rejected' ? (r.reason as LlamaError).code : 'fulfilled'))).toEqual(['ERR_NUMERIC', 'ERR_NUMERIC', 'ERR_NUMERIC']);

    await using control = await loadModel(sane);
    const result = await control.complete('Once upon a time', { maxTokens: 16, temperature: 0 });
    expect(result.completionTokens).toBeGreaterThan(0);
    expect(result.text.length).toBeGreaterThan(0);
  });
});
