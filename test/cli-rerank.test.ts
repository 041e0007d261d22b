import { beforeAll, describe, expect, it } from 'vitest';

import { loadModel } from '../lib';
import { cliEnv, ensureCliBuilt, runCli } from './support/cli';
import { haveModel, modelPath, STORIES } from './support/models';
import { BERT_VOCAB, syntheticReranker } from './support/synthetic';

beforeAll(() => ensureCliBuilt(), 300_000);

const DOCUMENTS = ['hi', 'it is a bear', 'The giant panda is a bear species endemic to China.'];

describe.runIf(haveModel(BERT_VOCAB))('tea-llama rerank', () => {
  it('prints the model\'s ranking as JSON lines, from arguments or stdin', async () => {
    const path = await syntheticReranker();
    const env = cliEnv();
    const model = await loadModel(path, { threads: 2 });
    const expected = await model.rerank('What is a panda?', DOCUMENTS, { topN: 2, normalize: true });
    await model.dispose();
    const r = await runCli(['rerank', '-m', path, '-t', '2', '--top-n', '2', '--normalize', 'What is a panda?', ...DOCUMENTS], { env });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { index: number; score: number; document: string });
    expect(lines.map((l) => l.index)).toEqual(expected.map((e) => e.index));
    lines.forEach((l, i) => expect(Math.abs(l.score - expected[i]!.score)).toBeLessThan(1e-5));
    const piped = await runCli(['rerank', '-m', path, '-t', '2', 'What is a panda?'], { env, input: DOCUMENTS.join('\n') + '\n' });
    expect(piped.code).toBe(0);
    expect(piped.stdout.trim().split('\n')).toHaveLength(DOCUMENTS.length);
    expect((await runCli(['rerank', '-m', path, '--top-n', 'x', 'q', 'd'], { env })).code).toBe(2);
    expect((await runCli(['rerank', '-m', path], { env })).code).toBe(2);
  }, 120_000);

  it.runIf(haveModel(STORIES))('fails with ERR_MODEL_UNSUPPORTED on a model without a classifier head', async () => {
    const r = await runCli(['rerank', '-m', modelPath(STORIES), 'q', 'd'], { env: cliEnv() });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('ERR_MODEL_UNSUPPORTED');
  });
});
