import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { LlamaError, loadModel, type LlamaModel } from '../lib';
import { haveModel, modelPath, PHI3_VOCAB, STORIES } from './support/models';

async function code(promise: Promise<unknown> | (() => unknown)): Promise<string> {
  try {
    await (typeof promise === 'function' ? promise() : promise);
  } catch (error) {
    expect(error).toBeInstanceOf(LlamaError);
    return (error as LlamaError).code;
  }
  throw new Error('expected an error');
}

describe.runIf(haveModel(STORIES) && haveModel(PHI3_VOCAB))('bad input gets a typed error and the process lives on', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tea-llama-bad-'));
  const stories = readFileSync(modelPath(STORIES));
  let model: LlamaModel;

  beforeAll(async () => {
    model = await loadModel(modelPath(STORIES), { contextSize: 64, threads: 2 });
  });
  afterAll(async () => {
    await model?.dispose();
  });

  it('rejects files that are not models', async () => {
    const empty = join(dir, 'empty.gguf');
    writeFileSync(empty, '');
    const text = join(dir, 'text.gguf');
    writeFileSync(text, 'this is not a model\n'.repeat(100));
    const truncated = join(dir, 'truncated.gguf');
    writeFileSync(truncated, stories.subarray(0, 4096));
    const cutTensors = join(dir, 'cut-tensors.gguf');
    writeFileSync(cutTensors, stories.subarray(0, stories.length - 1000));

    expect(await code(loadModel(join(dir, 'missing.gguf')))).toBe('ERR_MODEL_NOT_FOUND');
    expect(await code(loadModel(dir))).toBe('ERR_MODEL_INVALID');
    expect(await code(loadModel(empty))).toBe('ERR_MODEL_INVALID');
    expect(await code(loadModel(text))).toBe('ERR_MODEL_INVALID');
    expect(await code(loadModel(truncated))).toBe('ERR_MODEL_INVALID');
    expect(await code(loadModel(cutTensors))).toBe('ERR_MODEL_INVALID');
  });

  it('rejects hyperparameters that would make llama.cpp abort the process', async () => {
    // llama.block_count is a uint32 right after its key and its type tag.
    const key = Buffer.from('llama.block_count');
    const at = stories.indexOf(key) + key.length + 4;
    expect(stories.readUInt32LE(at)).toBe(5);
    for (const layers of [0, 513, 100000]) {
      const patched = Buffer.from(stories);
      patched.writeUInt32LE(layers, at);
      const file = join(dir, `layers-${layers}.gguf`);
      writeFileSync(file, patched);
      expect(await code(loadModel(file))).toBe('ERR_MODEL_INVALID');
    }
  });

  it('refuses to generate with a vocabulary-only model', async () => {
    expect(await code(loadModel(modelPath(PHI3_VOCAB)))).toBe('ERR_MODEL_VOCAB_ONLY');
    await using vocab = await loadModel(modelPath(PHI3_VOCAB), { vocabOnly: true });
    expect(await code(vocab.complete('Hello'))).toBe('ERR_MODEL_VOCAB_ONLY');
    expect(await code(vocab.embed('Hello'))).toBe('ERR_MODEL_VOCAB_ONLY');
  });

  it('rejects a prompt longer than the context', async () => {
    expect(await code(model.complete('Once upon a time '.repeat(40)))).toBe('ERR_CONTEXT_OVERFLOW');
    // ... and the model still works afterwards.
    expect((await model.complete('Once upon a time', { maxTokens: 4, temperature: 0 })).completionTokens).toBe(4);
  });

  it('stops a generation that fills the context with finishReason length', async () => {
    const r = await model.complete('Once upon a time', { maxTokens: -1, temperature: 0, repeatPenalty: 1.5 });
    if (r.finishReason === 'length') expect(r.contextFull).toBe(true);
    expect(r.promptTokens + r.completionTokens).toBeLessThanOrEqual(64);
  });

  it.each([
    ['negative maxTokens', { maxTokens: -2 }],
    ['NaN temperature', { temperature: Number.NaN }],
    ['negative temperature', { temperature: -1 }],
    ['Infinity topP', { topP: Number.POSITIVE_INFINITY }],
    ['topP above 1', { topP: 1.5 }],
    ['fractional topK', { topK: 1.5 }],
    ['string seed', { seed: '1' }],
    ['empty stop string', { stop: [''] }],
    ['non-function onChunk', { onChunk: 5 }],
    ['zero repeatPenalty', { repeatPenalty: 0 }],
  ])('rejects %s', async (_name, options) => {
    expect(await code(model.complete('Hi', options as never))).toBe('ERR_INVALID_ARGUMENT');
  });

  it.each([
    ['NaN contextSize', { contextSize: Number.NaN }],
    ['negative threads', { threads: -1 }],
    ['zero batchSize', { batchSize: 0 }],
    ['string vocabOnly', { vocabOnly: 'yes' }],
  ])('rejects load option %s', async (_name, options) => {
    expect(await code(loadModel(modelPath(STORIES), options as never))).toBe('ERR_INVALID_ARGUMENT');
  });

  it('rejects wrong argument types', async () => {
    expect(await code(loadModel(42 as never))).toBe('ERR_INVALID_ARGUMENT');
    expect(await code(model.complete(undefined as never))).toBe('ERR_INVALID_ARGUMENT');
    expect(await code(() => model.tokenize(null as never))).toBe('ERR_INVALID_ARGUMENT');
    expect(await code(() => model.detokenize([1, -5]))).toBe('ERR_INVALID_ARGUMENT');
    expect(await code(() => model.detokenize([1e9]))).toBe('ERR_INVALID_ARGUMENT');
    expect(await code(model.embed([1 as never]))).toBe('ERR_INVALID_ARGUMENT');
  });

  it('fails calls after dispose, and dispose is idempotent', async () => {
    const m = await loadModel(modelPath(STORIES), { contextSize: 64 });
    await m.complete('Hi', { maxTokens: 2 });
    await m.dispose();
    await m.dispose();
    expect(m.disposed).toBe(true);
    expect(await code(m.complete('Hi'))).toBe('ERR_DISPOSED');
    expect(await code(m.embed('Hi'))).toBe('ERR_DISPOSED');
    expect(await code(() => m.tokenize('Hi'))).toBe('ERR_DISPOSED');
  });
});
