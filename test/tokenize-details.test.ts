import { existsSync } from 'node:fs';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { loadModel, type LlamaModel } from '../lib';
import { startLlamaServer, type LlamaServer } from './support/llama-server';
import { haveModel, modelPath, STORIES } from './support/models';
import { BERT_VOCAB, STARCODER_VOCAB, syntheticFimModel, syntheticReranker } from './support/synthetic';

// tokenize / detokenize / pieces / vocabulary facts against llama-server's /tokenize (with_pieces) and /detokenize,
// one model per tokenizer family: stories260K (SentencePiece), the StarCoder-vocabulary model (BPE, FIM tokens),
// the bert-bge reranker (WordPiece).
const TEXTS = [
  'Once upon a time, there was a little girl.',
  ' leading space and  double  spaces\n\ttabs',
  'special tokens: <s></s><fim_prefix>[CLS][SEP]<|endoftext|>',
  'émoji 🦙 and 中文 and ünïcödé',
  'def f(x):\n    return x ** 2  # comment',
  '',
];

interface Family {
  name: string;
  present: () => boolean;
  path: () => Promise<string>;
  serverArgs: string[];
  /** llama_detokenize equals the server's concatenation of pieces (no space cleaning, or a BOS first). */
  detokenizeEqual: (addSpecial: boolean) => boolean;
}

const FAMILIES: Family[] = [
  { name: 'SentencePiece (stories260K)', present: () => haveModel(STORIES), path: async () => modelPath(STORIES), serverArgs: [], detokenizeEqual: (add) => add },
  { name: 'BPE (StarCoder vocabulary)', present: () => existsSync(STARCODER_VOCAB), path: syntheticFimModel, serverArgs: [], detokenizeEqual: () => true },
  // WordPiece: llama_detokenize cleans the spaces before punctuation and drops a word's leading space; the
  // server's /detokenize joins the raw pieces. Pieces and ids are compared.
  { name: 'WordPiece (bert-bge reranker)', present: () => haveModel(BERT_VOCAB), path: () => syntheticReranker(), serverArgs: ['--reranking'], detokenizeEqual: () => false },
];

type ServerPiece = { id: number; piece: string | number[] };

describe.each(FAMILIES.filter((f) => f.present()))('tokenizer details on $name', (family) => {
  let model: LlamaModel;
  let server: LlamaServer;

  beforeAll(async () => {
    const path = await family.path();
    model = await loadModel(path, { threads: 2 });
    server = await startLlamaServer(path, ['-c', '512', ...family.serverArgs]);
  }, 120_000);
  afterAll(async () => {
    await model?.dispose();
    await server?.stop();
  });

  it.each([
    [false, true],
    [true, true],
    [false, false],
    [true, false],
  ])('tokenize({ addSpecial: %s, parseSpecial: %s }) and its pieces equal /tokenize with_pieces', async (addSpecial, parseSpecial) => {
    for (const text of TEXTS) {
      const ids = Array.from(model.tokenize(text, { addSpecial, parseSpecial }));
      const asyncIds = Array.from(await model.tokenizeAsync(text, { addSpecial, parseSpecial }));
      const { tokens } = await server.post<{ tokens: ServerPiece[] }>('/tokenize', { content: text, add_special: addSpecial, parse_special: parseSpecial, with_pieces: true });
      expect(ids, text).toEqual(tokens.map((t) => t.id));
      expect(asyncIds).toEqual(ids);
      const pieces = model.tokenPieces(ids);
      pieces.forEach((p, i) => {
        const theirs = tokens[i]!.piece;
        expect(p.id).toBe(ids[i]);
        if (typeof theirs === 'string') {
          expect(p.text).toBe(theirs);
          expect(Buffer.from(p.bytes).toString('utf8')).toBe(theirs);
        } else {
          expect(p.text).toBeNull();
          expect(Array.from(p.bytes)).toEqual(theirs);
        }
      });
      if (ids.length > 0) expect(model.tokenToPiece(ids[0]!)).toEqual(pieces[0]);

      const { content } = await server.post<{ content: string }>('/detokenize', { tokens: ids });
      // The pieces are what the server joins.
      expect(Buffer.concat(pieces.map((p) => p.bytes)).toString('utf8')).toBe(content);
      if (family.detokenizeEqual(addSpecial)) {
        expect(model.detokenize(ids, { removeSpecial: false, unparseSpecial: true })).toBe(content);
        expect(await model.detokenizeAsync(ids, { removeSpecial: false, unparseSpecial: true })).toBe(content);
      }
    }
  });

  it('detokenize flags: removeSpecial drops the added BOS/EOS, unparseSpecial renders control tokens', () => {
    const v = model.vocabulary;
    const text = 'Once upon a time';
    const ids = model.tokenize(text, { addSpecial: true, parseSpecial: false });
    const rendered = model.detokenize(ids, { removeSpecial: false, unparseSpecial: true });
    const plain = model.detokenize(ids, { removeSpecial: true, unparseSpecial: false });
    expect(plain.toLowerCase()).toContain('upon a time');
    if (v.addBos && v.bos !== null) {
      expect(ids[0]).toBe(v.bos);
      expect(rendered.startsWith(model.tokenToPiece(v.bos).text!)).toBe(true);
      expect(plain.startsWith(model.tokenToPiece(v.bos).text!)).toBe(false);
    }
    // The older `special` option is both flags at once.
    expect(model.detokenize(ids, { special: true })).toBe(model.detokenize(ids, { removeSpecial: false, unparseSpecial: true }));
    expect(model.detokenize(ids)).toBe(plain);
    expect(Array.from(model.tokenize(text, { special: false }))).toEqual(Array.from(model.tokenize(text, { addSpecial: false, parseSpecial: false })));
  });

  it('vocabulary facts agree with the model info and the tokenizer', () => {
    const v = model.vocabulary;
    expect(v.size).toBe(model.info.vocabSize);
    expect(v.bos ?? -1).toBe(model.info.bosToken);
    expect(v.eos ?? -1).toBe(model.info.eosToken);
    expect(['spm', 'bpe', 'wpm']).toContain(v.type);
    const framed = Array.from(model.tokenize('hello', { addSpecial: true, parseSpecial: false }));
    const bare = Array.from(model.tokenize('hello', { addSpecial: false, parseSpecial: false }));
    expect(framed[0] === v.bos).toBe(v.addBos);
    expect(framed.length - bare.length).toBe(Number(v.addBos) + Number(v.addEos) + Number(v.addSep));
    for (const id of [v.bos, v.eos, v.eot, v.sep, v.fimPre, v.fimSuf, v.fimMid]) {
      if (id !== null) {
        expect(id).toBeGreaterThanOrEqual(0);
        expect(id).toBeLessThan(v.size);
      }
    }
  });

  it('rejects bad arguments with typed errors', () => {
    expect(() => model.tokenize('x', { addSpecial: 'yes' } as never)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }));
    expect(() => model.tokenize('x', { add_special: true } as never)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }));
    expect(() => model.detokenize([1], { removespecial: true } as never)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }));
    expect(() => model.tokenPieces([model.vocabulary.size])).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }));
    expect(() => model.tokenPieces([-1])).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }));
    expect(() => model.tokenToPiece(1.5)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }));
    expect(() => model.tokenPieces('12' as never)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }));
  });
});
