import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

import { loadModel } from '../lib';
import { haveModel, modelPath, TOKENIZER_VOCABS } from './support/models';

// llama.cpp's own tokenizer test vectors (tests/test-tokenizer-0): `.inp` holds strings separated by
// "\n__ggml_vocab_test__\n", `.out` one line of token ids per string, tokenized without special tokens.
function vectors(vocab: string): Array<{ text: string; ids: number[] }> {
  const inputs = readFileSync(modelPath(`${vocab}.inp`), 'utf8').split('\n__ggml_vocab_test__\n');
  const outputs = readFileSync(modelPath(`${vocab}.out`), 'utf8').split('\n');
  if (inputs.at(-1) === '') inputs.pop();
  if (outputs.at(-1) === '') outputs.pop();
  expect(outputs.length).toBe(inputs.length);
  return inputs.map((text, i) => ({ text, ids: outputs[i].split(/\s+/).filter(Boolean).map(Number) }));
}

describe.each(TOKENIZER_VOCABS.filter(haveModel))('tokenizer vectors of %s', (vocab) => {
  it('match llama.cpp exactly, and detokenize back', async () => {
    const cases = vectors(vocab);
    expect(cases.length).toBeGreaterThan(40);
    await using model = await loadModel(modelPath(vocab), { vocabOnly: true });
    const mismatches = cases
      .map(({ text, ids }) => ({ text, expected: ids, actual: Array.from(model.tokenize(text, { special: false })) }))
      .filter((c) => JSON.stringify(c.actual) !== JSON.stringify(c.expected));
    expect(mismatches).toEqual([]);
    // A plain ASCII sentence survives the round trip on every tokenizer family.
    const sentence = 'Hello world, this is a test.';
    const back = model.detokenize(model.tokenize(sentence, { special: false }));
    expect(back.trim().toLowerCase()).toBe(sentence.toLowerCase());
  });
});

describe.runIf(haveModel('ggml-vocab-phi-3.gguf'))('special tokens', () => {
  it('are added and parsed only when asked', async () => {
    await using model = await loadModel(modelPath('ggml-vocab-phi-3.gguf'), { vocabOnly: true });
    const withSpecial = Array.from(model.tokenize('<|user|>hi'));
    const plain = Array.from(model.tokenize('<|user|>hi', { special: false }));
    expect(withSpecial[0]).toBe(model.info.bosToken);
    expect(withSpecial).toContain(32010); // <|user|> as one control token
    expect(plain).not.toContain(32010);
    expect(plain[0]).not.toBe(model.info.bosToken);
    expect(model.detokenize(withSpecial, { special: true })).toContain('<|user|>');
  });
});
