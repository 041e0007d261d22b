import { existsSync } from 'node:fs';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { loadModel, type LlamaModel } from '../lib';
import { startLlamaServer, type LlamaServer } from './support/llama-server';
import { haveModel, modelPath, STORIES } from './support/models';
import { STARCODER_VOCAB, syntheticFimModel } from './support/synthetic';

// A small batch, so that the prefix (3/4 of a batch) and the suffix (1/4, less the prompt) are cut as llama-server
// cuts them; `-n` is the server's n_predict, which its layout uses to size the extra context (ours: maxTokens).
const BATCH = 64;
const PREDICT = 12;
const CONTEXT = 256;

const PREFIX = 'def fibonacci(n):\n    """Return the n-th Fibonacci number."""\n    if n < 2:\n';
const SUFFIX = '\n    return fibonacci(n - 1) + fibonacci(n - 2)\n\nprint(fibonacci(10))\n';
const LONG_PREFIX = Array.from({ length: 30 }, (_, i) => `x${i} = compute(${i}, "value ${i}")\n`).join('');
const LONG_SUFFIX = Array.from({ length: 20 }, (_, i) => `assert check(x${i})\n`).join('');
const EXTRA = [
  { filename: 'utils.py', text: 'def compute(a, b):\n    return str(a) + b\n' },
  { filename: 'checks.py', text: 'def check(x):\n    return len(x) > 0\n' },
];
const LONG_EXTRA = Array.from({ length: 12 }, (_, i) => ({ filename: `mod${i}.py`, text: `def helper_${i}(value):\n    return value * ${i} + ${i * 7}\n`.repeat(3) }));

interface Case {
  name: string;
  input: { prefix: string; suffix: string; prompt?: string; extra?: { filename?: string; text: string }[] };
}

const CASES: Case[] = [
  { name: 'prefix and suffix', input: { prefix: PREFIX, suffix: SUFFIX } },
  { name: 'with a prompt', input: { prefix: PREFIX, suffix: SUFFIX, prompt: '        return' } },
  { name: 'with extra files', input: { prefix: PREFIX, suffix: SUFFIX, extra: EXTRA } },
  { name: 'an extra file without a name', input: { prefix: PREFIX, suffix: SUFFIX, extra: [{ text: 'import math\n' }] } },
  { name: 'prefix and suffix longer than the batch', input: { prefix: LONG_PREFIX, suffix: LONG_SUFFIX, extra: EXTRA } },
  { name: 'extra context longer than the context', input: { prefix: PREFIX, suffix: SUFFIX, extra: LONG_EXTRA } },
  { name: 'empty parts', input: { prefix: '', suffix: '' } },
];

describe.runIf(existsSync(STARCODER_VOCAB))('infill on a synthetic model with the StarCoder vocabulary', () => {
  let model: LlamaModel;
  let server: LlamaServer;

  beforeAll(async () => {
    const path = await syntheticFimModel();
    model = await loadModel(path, { threads: 2, contextSize: CONTEXT, batchSize: BATCH, sequences: 1 });
    server = await startLlamaServer(path, ['-c', String(CONTEXT), '-b', String(BATCH), '-ub', String(BATCH), '-np', '1', '-n', String(PREDICT)]);
  }, 120_000);
  afterAll(async () => {
    await model?.dispose();
    await server?.stop();
  });

  it('the vocabulary has the FIM tokens, as their text tokenizes', () => {
    const v = model.vocabulary;
    expect(v.hasFim).toBe(true);
    const id = (text: string) => {
      const t = model.tokenize(text, { addSpecial: false, parseSpecial: true });
      expect(t).toHaveLength(1);
      return t[0];
    };
    expect(v.fimPre).toBe(id('<fim_prefix>'));
    expect(v.fimSuf).toBe(id('<fim_suffix>'));
    expect(v.fimMid).toBe(id('<fim_middle>'));
    // llama.cpp knows StarCoder's <repo_name> and <file_sep> under other spellings only (<|repo_name|>, <|file_sep|>):
    // without them the extra files go in as "--- snippet ---" chunks, as llama-server puts them.
    expect(id('<repo_name>')).toBeGreaterThan(0);
    expect(v.fimRep).toBeNull();
    expect(v.fimSep).toBeNull();
  });

  it.each(CASES)('greedy text and prompt size equal llama-server /infill: $name', async ({ input }) => {
    const ours = await model.infill(input, { maxTokens: PREDICT, temperature: 0 });
    const theirs = await server.post<{ content: string; tokens_evaluated: number; tokens_predicted: number }>('/infill', {
      input_prefix: input.prefix,
      input_suffix: input.suffix,
      ...(input.prompt !== undefined ? { prompt: input.prompt } : {}),
      ...(input.extra !== undefined ? { input_extra: input.extra } : {}),
      n_predict: PREDICT,
      temperature: 0,
      cache_prompt: false,
    });
    expect(ours.promptTokens).toBe(theirs.tokens_evaluated);
    expect(ours.completionTokens).toBe(theirs.tokens_predicted);
    expect(ours.text).toBe(theirs.content);
  });

  it('streams, and the streamed text is the result', async () => {
    const chunks: string[] = [];
    const r = await model.infill(CASES[2]!.input, { maxTokens: PREDICT, temperature: 0, onChunk: (c) => chunks.push(c) });
    expect(chunks.join('')).toBe(r.text);
  });

  it('rejects bad input with typed errors', async () => {
    await expect(model.infill({ prefix: 'a' } as never)).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT', message: expect.stringContaining('suffix') });
    await expect(model.infill({ prefix: 'a', suffix: 'b', extra: 'c' } as never)).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    await expect(model.infill({ prefix: 'a', suffix: 'b', extra: [{ name: 'x', text: 'y' }] } as never)).rejects.toMatchObject({
      code: 'ERR_INVALID_ARGUMENT',
      message: expect.stringContaining('filename'),
    });
    await expect(model.infill({ prefix: 'a', suffix: 'b', sufix: 'c' } as never)).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    await expect(model.infill({ prefix: 'a', suffix: 'b' }, { tools: [] } as never)).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
  });
});

describe.runIf(haveModel(STORIES))('infill on a model without FIM tokens', () => {
  it('is ERR_MODEL_UNSUPPORTED, and the model keeps working', async () => {
    const model = await loadModel(modelPath(STORIES), { threads: 2 });
    try {
      expect(model.vocabulary.hasFim).toBe(false);
      expect(model.vocabulary.fimPre).toBeNull();
      await expect(model.infill({ prefix: 'Once', suffix: 'end' })).rejects.toMatchObject({ code: 'ERR_MODEL_UNSUPPORTED' });
      expect((await model.complete('Once', { maxTokens: 4, temperature: 0 })).completionTokens).toBe(4);
    } finally {
      await model.dispose();
    }
  });
});
