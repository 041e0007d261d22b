import { rerank } from 'ai';
import { describe, expect, it } from 'vitest';

import { loadModel, LocalLlmBackend } from '../lib';
import { createTeaLlama } from '../lib/adapters/ai-sdk';
import { haveModel } from './support/models';
import { BERT_VOCAB, syntheticReranker } from './support/synthetic';

const DOCUMENTS = ['hi', 'it is a bear', 'The giant panda is a bear species endemic to China.', 'Pandas eat bamboo.'];

describe.runIf(haveModel(BERT_VOCAB))('AI SDK rerank() through tea-llama/ai-sdk', () => {
  it('gives the model\'s ranking and scores, topN included', async () => {
    const path = await syntheticReranker();
    const model = await loadModel(path, { threads: 2 });
    const expected = await model.rerank('What is a panda?', DOCUMENTS, { topN: 3 });
    await model.dispose();
    const backend = new LocalLlmBackend({ modelPath: path, threads: 2, contextSize: 512 });
    try {
      const teaLlama = createTeaLlama({ backend });
      const result = await rerank({ model: teaLlama.rerankingModel(), query: 'What is a panda?', documents: DOCUMENTS, topN: 3 });
      expect(result.ranking.map((r) => r.originalIndex)).toEqual(expected.map((e) => e.index));
      result.ranking.forEach((r, i) => {
        expect(Math.abs(r.score - expected[i]!.score)).toBeLessThan(1e-5);
        expect(r.document).toBe(DOCUMENTS[r.originalIndex]);
      });
      await expect(rerank({ model: teaLlama.rerankingModel(), query: 'q', documents: [{ a: 1 }], maxRetries: 0 })).rejects.toThrow(/object/);
    } finally {
      await backend.dispose();
    }
  });
});
