import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { LlamaError, loadModel, type LlamaModel } from '../lib';
import { startLlamaServer, type LlamaServer } from './support/llama-server';
import { haveModel, modelPath, STORIES } from './support/models';

// Context shift for raw completion (issue 16): contextShift / nKeep / nDiscard, per request, against llama-server
// started with --context-shift on the same file, greedy, generating well past the context's end.

interface ServerCompletion {
  content: string;
  tokens_predicted: number;
  tokens_evaluated: number;
  truncated: boolean;
}

const CONTEXT = 256;

describe.runIf(haveModel(STORIES))('context shift on stories260K', () => {
  let model: LlamaModel;
  let server: LlamaServer;

  beforeAll(async () => {
    [model, server] = await Promise.all([
      loadModel(modelPath(STORIES), { contextSize: CONTEXT, threads: 2, sequences: 2 }),
      startLlamaServer(modelPath(STORIES), ['-c', String(CONTEXT), '-np', '1', '--context-shift']),
    ]);
  });
  afterAll(async () => {
    await model?.dispose();
    await server?.stop();
  });

  const cases = [
    { prompt: 'Once upon a time', nKeep: 0, nDiscard: 0, maxTokens: 600 },
    { prompt: 'The little dog ran to the park and', nKeep: -1, nDiscard: 0, maxTokens: 500 },
    { prompt: 'Lily and Ben went to the park. They', nKeep: 4, nDiscard: 60, maxTokens: 450 },
  ];

  it.each(cases)('equals llama-server --context-shift (n_keep $nKeep, n_discard $nDiscard)', async ({ prompt, nKeep, nDiscard, maxTokens }) => {
    const reference = await server.post<ServerCompletion>('/completion', {
      prompt,
      n_predict: maxTokens,
      n_keep: nKeep,
      n_discard: nDiscard,
      temperature: 0,
      repeat_penalty: 1,
      cache_prompt: false,
    });
    const ours = await model.complete(prompt, { maxTokens, temperature: 0, contextShift: true, nKeep, nDiscard });
    // It went past the context's end: at least one shift happened, on both sides.
    expect(reference.tokens_predicted + reference.tokens_evaluated).toBeGreaterThan(CONTEXT);
    expect(reference.truncated).toBe(true);
    expect(ours.contextShifts).toBeGreaterThanOrEqual(1);
    expect(ours.contextFull).toBe(false);
    expect(ours.completionTokens).toBe(reference.tokens_predicted);
    expect(ours.text).toBe(reference.content);
  });

  it('without contextShift the sequence still ends with "length" at the context end', async () => {
    const r = await model.complete(cases[0]!.prompt, { maxTokens: 600, temperature: 0 });
    expect(r.finishReason).toBe('length');
    expect(r.contextFull).toBe(true);
    expect(r.promptTokens + r.completionTokens).toBeLessThanOrEqual(CONTEXT);
    expect(r.contextShifts).toBeUndefined();
  });

  it('rejects bad values before native code', async () => {
    await expect(model.complete('x', { contextShift: 'yes' as never })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    await expect(model.complete('x', { nKeep: -2 })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    await expect(model.complete('x', { nDiscard: 1.5 })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    await expect(model.complete('x', { sequence: 2 })).rejects.toThrow(LlamaError);
    await expect(model.complete('x', { contextShfit: true } as never)).rejects.toThrow(/did you mean 'contextShift'/);
  });
});
