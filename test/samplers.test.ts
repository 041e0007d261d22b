import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { loadModel, type LlamaModel, type SamplingOptions } from '../lib';
import { startLlamaServer, type LlamaServer } from './support/llama-server';
import { haveModel, modelPath, STORIES } from './support/models';

// Each sampler through our Model and through llama-server (same file, prompt, seed and settings): the seeded
// sampled text must be equal, and must differ from the same seed without the setting (or the comparison would
// not show that the setting reached llama.cpp).

const PROMPT = 'Once upon a time, there was a little girl named Lily. She';
const BASE = { maxTokens: 48, temperature: 1, seed: 1234 } as const;
const SERVER_BASE = { prompt: PROMPT, n_predict: 48, temperature: 1, seed: 1234, cache_prompt: false };

interface ServerCompletion {
  content: string;
  completion_probabilities?: { id: number; token: string; bytes: number[]; logprob: number; top_logprobs: { id: number; token: string; bytes: number[]; logprob: number }[] }[];
}

const CASES: { name: string; ours: SamplingOptions; server: Record<string, unknown>; without?: SamplingOptions }[] = [
  { name: 'topK', ours: { topK: 3 }, server: { top_k: 3 } },
  { name: 'topP', ours: { topP: 0.5 }, server: { top_p: 0.5 } },
  { name: 'minP', ours: { minP: 0.2 }, server: { min_p: 0.2 } },
  { name: 'typicalP', ours: { typicalP: 0.5 }, server: { typical_p: 0.5 } },
  { name: 'dynatemp', ours: { temperature: 1.5, dynatempRange: 1, dynatempExponent: 2 }, server: { temperature: 1.5, dynatemp_range: 1, dynatemp_exponent: 2 } },
  { name: 'topNSigma', ours: { temperature: 2, topK: 0, topP: 1, minP: 0, topNSigma: 0.5 }, server: { temperature: 2, top_k: 0, top_p: 1, min_p: 0, top_n_sigma: 0.5 },
    without: { temperature: 2, topK: 0, topP: 1, minP: 0 } },
  { name: 'xtc', ours: { xtcProbability: 0.9, xtcThreshold: 0.05 }, server: { xtc_probability: 0.9, xtc_threshold: 0.05 } },
  { name: 'mirostat 1', ours: { mirostat: 1, mirostatTau: 3, mirostatEta: 0.2 }, server: { mirostat: 1, mirostat_tau: 3, mirostat_eta: 0.2 } },
  { name: 'mirostat 2', ours: { mirostat: 2, mirostatTau: 2, mirostatEta: 0.3 }, server: { mirostat: 2, mirostat_tau: 2, mirostat_eta: 0.3 } },
  {
    name: 'penalties',
    ours: { repeatPenalty: 1.5, repeatLastN: 32, frequencyPenalty: 0.5, presencePenalty: 0.5 },
    server: { repeat_penalty: 1.5, repeat_last_n: 32, frequency_penalty: 0.5, presence_penalty: 0.5 },
  },
  {
    name: 'DRY',
    ours: { dryMultiplier: 2, dryBase: 2, dryAllowedLength: 1, dryPenaltyLastN: 128, drySequenceBreakers: ['.'] },
    server: { dry_multiplier: 2, dry_base: 2, dry_allowed_length: 1, dry_penalty_last_n: 128, dry_sequence_breakers: ['.'] },
  },
  { name: 'samplers order', ours: { samplers: ['temperature', 'top_k'], topK: 2 }, server: { samplers: ['temperature', 'top_k'], top_k: 2 } },
  { name: 'minKeep', ours: { minP: 0.9, minKeep: 5 }, server: { min_p: 0.9, min_keep: 5 } },
  { name: 'logitBias (ids, object)', ours: { logitBias: { '400': 5, '500': false } }, server: { logit_bias: { '400': 5, '500': false } } },
  { name: 'logitBias (text, pairs)', ours: { logitBias: [[' dog', 8], [' the', -Infinity]] }, server: { logit_bias: [[' dog', 8], [' the', false]] } },
];

describe.runIf(haveModel(STORIES))('samplers on stories260K equal llama-server', () => {
  // llama-server with cache_prompt false decodes the prompt from scratch; a reused KV prefix here rounds the
  // logits slightly differently (by up to 2e-3), enough to move a threshold sampler (XTC): so each comparison
  // starts from a sequence that shares nothing with the prompt.
  const fresh = () => model.complete('Zoo', { maxTokens: 1, temperature: 0 });
  let model: LlamaModel;
  let server: LlamaServer;
  let baseline: string;

  beforeAll(async () => {
    [model, server] = await Promise.all([
      // One sequence as llama-server's -np 1: the same KV cache shape gives the same float rounding of the logits.
      loadModel(modelPath(STORIES), { contextSize: 512, threads: 2, sequences: 1 }),
      startLlamaServer(modelPath(STORIES), ['-c', '512', '-np', '1']),
    ]);
    const reference = await server.post<ServerCompletion>('/completion', SERVER_BASE);
    baseline = (await model.complete(PROMPT, BASE)).text;
    expect(baseline).toBe(reference.content);
  });
  afterAll(async () => {
    await model?.dispose();
    await server?.stop();
  });

  for (const c of CASES) {
    it(`${c.name}: the seeded text equals llama-server's and differs from the text without it`, async () => {
      const reference = await server.post<ServerCompletion>('/completion', { ...SERVER_BASE, ...c.server });
      await fresh();
      const ours = await model.complete(PROMPT, { ...BASE, ...c.ours });
      expect(ours.text).toBe(reference.content);
      const without = c.without ? (await fresh(), (await model.complete(PROMPT, { ...BASE, ...c.without })).text) : baseline;
      expect(ours.text, `${c.name} changes nothing at this seed`).not.toBe(without);
    });
  }

  it('ignoreEos generates past the end token, as llama-server', async () => {
    // stories260K seldom ends by itself: a bias on its end token makes it end at once, and ignoreEos overrides it.
    const eos = String(model.info.eosToken);
    const ends = { prompt: PROMPT, n_predict: 40, temperature: 0, logit_bias: { [eos]: 30 }, cache_prompt: false };
    const plain = await model.complete(PROMPT, { maxTokens: 40, temperature: 0, logitBias: { [eos]: 30 } });
    expect(plain.finishReason).toBe('stop');
    expect(plain.completionTokens).toBeLessThan(40);
    expect(plain.text).toBe((await server.post<ServerCompletion>('/completion', ends)).content);
    const ours = await model.complete(PROMPT, { maxTokens: 40, temperature: 0, logitBias: { [eos]: 30 }, ignoreEos: true });
    const reference = await server.post<ServerCompletion>('/completion', { ...ends, ignore_eos: true });
    expect(ours.finishReason).toBe('length');
    expect(ours.completionTokens).toBe(40);
    expect(ours.text).toBe(reference.content);
  });

  it('logprobs and topLogprobs equal llama-server n_probs within 1e-4 (greedy and sampled)', async () => {
    // A prompt unlike the previous request's each time: a reused KV prefix changes the logits' float rounding by
    // up to 2e-3 in later tokens (the text stays the same), which is no measure of the logprobs themselves.
    const cases = [
      { prompt: 'The little dog', sampling: { temperature: 0 } },
      { prompt: 'Lily and Ben went to the park. They', sampling: { temperature: 1, seed: 99, topK: 10 } },
    ];
    for (const { prompt, sampling } of cases) {
      const ours = await model.complete(prompt, { maxTokens: 24, ...sampling, logprobs: true, topLogprobs: 5 });
      const reference = await server.post<ServerCompletion>('/completion', {
        prompt,
        n_predict: 24,
        ...sampling,
        ...('topK' in sampling ? { top_k: sampling.topK } : {}),
        n_probs: 5,
        cache_prompt: false,
      });
      const expected = reference.completion_probabilities!;
      expect(ours.text).toBe(reference.content);
      expect(ours.logprobs).toHaveLength(expected.length);
      ours.logprobs!.forEach((entry, i) => {
        const e = expected[i]!;
        expect(entry.id).toBe(e.id);
        expect(entry.token).toBe(e.token);
        expect(entry.bytes).toEqual(e.bytes);
        expect(Math.abs(entry.logprob - e.logprob)).toBeLessThan(1e-4);
        expect(entry.topLogprobs.map((t) => t.id)).toEqual(e.top_logprobs.map((t) => t.id));
        entry.topLogprobs.forEach((t, k) => {
          expect(t.token).toBe(e.top_logprobs[k]!.token);
          expect(Math.abs(t.logprob - e.top_logprobs[k]!.logprob)).toBeLessThan(1e-4);
        });
      });
    }
  });

  it('logprobs with a stop string leave out the stop string tokens, as llama-server', async () => {
    const ours = await model.complete(PROMPT, { maxTokens: 64, temperature: 0, stop: ['.'], logprobs: true, topLogprobs: 2 });
    const reference = await server.post<ServerCompletion>('/completion', { prompt: PROMPT, n_predict: 64, temperature: 0, stop: ['.'], n_probs: 2, cache_prompt: false });
    expect(ours.finishReason).toBe('stop');
    expect(ours.logprobs!.map((e) => e.id)).toEqual(reference.completion_probabilities!.map((e) => e.id));
  });

  it('without logprobs there is no logprobs field; logprobs without alternatives gives empty lists', async () => {
    expect((await model.complete(PROMPT, { maxTokens: 4, temperature: 0 })).logprobs).toBeUndefined();
    const r = await model.complete(PROMPT, { maxTokens: 4, temperature: 0, logprobs: true });
    expect(r.logprobs).toHaveLength(4);
    for (const entry of r.logprobs!) {
      expect(entry.topLogprobs).toEqual([]);
      expect(entry.logprob).toBeLessThanOrEqual(0);
    }
  });

  it('rejects bad sampler options with ERR_INVALID_ARGUMENT before anything runs', async () => {
    const bad: [Record<string, unknown>, RegExp][] = [
      [{ samplers: ['top_kk'] }, /did you mean 'top_k'/],
      [{ samplers: 'top_k' }, /samplers must be an array/],
      [{ mirostat: 3 }, /mirostat/],
      [{ xtcProbability: 2 }, /xtcProbability/],
      [{ topLogprobs: 3 }, /topLogprobs requires logprobs/],
      [{ logprobs: true, topLogprobs: 21 }, /topLogprobs/],
      [{ logitBias: { '12': 'x' } }, /logitBias/],
      [{ logitBias: [[1.5, 1]] }, /logitBias\[0\]\[0\]/],
      [{ logitBias: [[1, Infinity]] }, /logitBias\[0\]\[1\]/],
      [{ logitBias: { '99999999': 1 } }, /vocabulary size/],
      [{ drySequenceBreakers: [] }, /drySequenceBreakers/],
      [{ ignoreEos: 1 }, /ignoreEos must be a boolean/],
      [{ dryMultipler: 1 }, /did you mean 'dryMultiplier'/],
    ];
    for (const [options, message] of bad) {
      await expect(model.complete(PROMPT, { maxTokens: 2, ...options } as SamplingOptions)).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT', message: expect.stringMatching(message) });
    }
    // and the model still works
    expect((await model.complete(PROMPT, { maxTokens: 3, temperature: 0 })).completionTokens).toBe(3);
  });
});
