// Issue 18, tokenizer input: text full of special-token markup took llama.cpp's tokenizer quadratic time (80,000
// "<s></s>" pairs: 56 s) on the main thread. Long texts are now tokenized in pieces cut before special tokens
// (binding/core/special_split.h), off the main thread with tokenizeAsync(), abortable, and give exactly the tokens of
// llama.cpp's own llama-tokenize over the whole text.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

import { describe, expect, it } from 'vitest';

import { LlamaError, loadModel, readGguf, SYNC_DETOKENIZE_MAX_TOKENS, SYNC_TOKENIZE_MAX_CHARS } from '../../lib';
import { writeGguf } from '../../lib/gguf';
import { toolPath } from '../support/llama-server';
import { cacheDir, haveModel, modelPath, modelsDir, repoRoot, STORIES } from '../support/models';

const PAIRS = 80_000;

async function codeOf(promise: Promise<unknown>): Promise<string | undefined> {
  try {
    await promise;
    return undefined;
  } catch (error) {
    expect(error).toBeInstanceOf(LlamaError);
    return (error as LlamaError).code;
  }
}

describe.runIf(haveModel(STORIES))('tokenizing special-token markup', () => {
  it(`tokenizes ${PAIRS} "<s></s>" pairs in bounded time and memory, as llama.cpp does`, async () => {
    await using model = await loadModel(modelPath(STORIES), { vocabOnly: true });
    const text = '<s></s>'.repeat(PAIRS);
    const rss = process.memoryUsage().rss;
    const started = performance.now();
    const tokens = await model.tokenizeAsync(text);
    const ms = performance.now() - started;
    // llama-tokenize gives BOS, then <s> </s> (1, 2) for every pair (see the equality test below on a sample).
    expect(tokens.length).toBe(1 + 2 * PAIRS);
    expect(tokens[0]).toBe(model.info.bosToken);
    expect(tokens.subarray(1).every((t, i) => t === (i % 2 === 0 ? 1 : 2))).toBe(true);
    expect(ms).toBeLessThan(10_000); // about 0.1 s; llama.cpp in one call: about a minute
    expect(process.memoryUsage().rss - rss).toBeLessThan(256 * 2 ** 20);
  });

  it('a prompt of that markup fails fast, without holding the scheduler', async () => {
    await using model = await loadModel(modelPath(STORIES), { contextSize: 256 });
    const started = performance.now();
    const error = await model.complete('<s></s>'.repeat(PAIRS), { maxTokens: 4 }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'ERR_CONTEXT_OVERFLOW' });
    expect(performance.now() - started).toBeLessThan(10_000);
    const next = await model.complete('Once upon a time', { maxTokens: 4, temperature: 0 });
    expect(next.completionTokens).toBe(4);
  });

  it('keeps the main thread free while it tokenizes', async () => {
    await using model = await loadModel(modelPath(STORIES), { vocabOnly: true });
    const text = '<s></s>'.repeat(10 * PAIRS); // about a second of work
    const ticks: number[] = [];
    const timer = setInterval(() => ticks.push(performance.now()), 5);
    const started = performance.now();
    try {
      await model.tokenizeAsync(text);
    } finally {
      clearInterval(timer);
    }
    const ms = performance.now() - started;
    expect(ms).toBeGreaterThan(50);
    expect(ticks.length).toBeGreaterThan(3);
    const gaps = ticks.slice(1).map((t, i) => t - ticks[i]!);
    expect(Math.max(...gaps, ticks[0]! - started)).toBeLessThan(Math.max(500, ms / 2));
  });

  it('aborts through the signal, before and while it runs', async () => {
    await using model = await loadModel(modelPath(STORIES), { vocabOnly: true });
    const text = '<s></s>'.repeat(20 * PAIRS);
    expect(await codeOf(model.tokenizeAsync(text, { signal: AbortSignal.abort() }))).toBe('ERR_ABORTED');
    expect(await codeOf(model.detokenizeAsync([1, 2], { signal: AbortSignal.abort() }))).toBe('ERR_ABORTED');

    const controller = new AbortController();
    const started = performance.now();
    const running = model.tokenizeAsync(text, { signal: controller.signal });
    setTimeout(() => controller.abort(), 20);
    expect(await codeOf(running)).toBe('ERR_ABORTED');
    expect(performance.now() - started).toBeLessThan(2_000); // the whole text takes several seconds
    // The model is fine afterwards.
    expect(Array.from(await model.tokenizeAsync('<s></s>'))).toEqual([model.info.bosToken, 1, 2]);
  });

  it('bounds the synchronous forms and points to the async ones', async () => {
    await using model = await loadModel(modelPath(STORIES), { vocabOnly: true });
    const long = 'a'.repeat(SYNC_TOKENIZE_MAX_CHARS + 1);
    expect(() => model.tokenize(long)).toThrow(/tokenizeAsync/);
    expect(() => model.tokenize(long)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }));
    expect(Array.from(model.tokenize('a'.repeat(SYNC_TOKENIZE_MAX_CHARS)))).toEqual(Array.from(await model.tokenizeAsync('a'.repeat(SYNC_TOKENIZE_MAX_CHARS))));
    const story = 'Once upon a time there was a little girl. '.repeat(12_000);
    const tokens = await model.tokenizeAsync(story);
    expect(tokens.length).toBeGreaterThan(SYNC_DETOKENIZE_MAX_TOKENS);
    expect(() => model.detokenize(tokens)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT', message: expect.stringMatching(/detokenizeAsync/) }));
    const text = await model.detokenizeAsync(tokens);
    expect(text.trim() === story.trim()).toBe(true); // (not toBe: a mismatch would print half a megabyte)
    expect(text.startsWith(model.detokenize(tokens.subarray(0, 1000)))).toBe(true);
    expect(await codeOf(model.tokenizeAsync(42 as never))).toBe('ERR_INVALID_ARGUMENT');
    expect(await codeOf(model.tokenizeAsync('x', { specail: true } as never))).toBe('ERR_INVALID_ARGUMENT');
    expect(await codeOf(model.detokenizeAsync([1e9]))).toBe('ERR_INVALID_ARGUMENT');
  });

  it('refuses markup that cannot be cut apart instead of taking quadratic time', async () => {
    // User-defined tokens "@#" and "#@" overlap everywhere in "@#@#…": no cut is safe, and llama.cpp needs
    // 0.3 s for 10,000 of them in one call (7 s for 50,000). Past 16,384 the answer is a typed error, at once.
    const f = await readGguf(modelPath(STORIES), { maxArrayLength: Infinity });
    const texts = [...(f.metadata['tokenizer.ggml.tokens'] as string[])];
    const types = [...(f.metadata['tokenizer.ggml.token_type'] as number[])];
    [texts[300], texts[301], types[300], types[301]] = ['@#', '#@', 4, 4];
    const path = join(cacheDir, 'hardening', 'overlapping-user-tokens.gguf');
    mkdirSync(join(cacheDir, 'hardening'), { recursive: true });
    await writeGguf(path, {
      metadata: f.entries.map((e) =>
        e.key === 'tokenizer.ggml.tokens' ? { ...e, value: texts } : e.key === 'tokenizer.ggml.token_type' ? { ...e, value: types } : e,
      ),
      tensors: [],
    });
    await using model = await loadModel(path, { vocabOnly: true });
    const started = performance.now();
    const error = await model.tokenizeAsync('@#'.repeat(50_000)).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'ERR_INVALID_ARGUMENT', message: expect.stringMatching(/cannot|no place/) });
    expect(performance.now() - started).toBeLessThan(2_000);
    // Fewer of them are tokenized, as llama.cpp does.
    const few = '@#'.repeat(3_000);
    expect(Array.from(await model.tokenizeAsync(few))).toEqual(llamaTokenize(path, few, true));
  });
});

// ---- equality with llama-tokenize on every real vocabulary -------------------------------------------------------

const VOCAB_DIRS = [modelsDir, resolve(repoRoot, 'vendor', 'llama.cpp', 'models')];
const vocabs = [
  ...new Map(
    VOCAB_DIRS.filter((d) => existsSync(d)).flatMap((d) =>
      readdirSync(d)
        .filter((f) => /^ggml-vocab-.*\.gguf$/.test(f))
        .map((f) => [f, join(d, f)] as const),
    ),
  ).values(),
];

/** llama.cpp's llama-tokenize over the whole text: with the model's BOS and special tokens parsed, or neither. */
function llamaTokenize(model: string, text: string, special: boolean): number[] {
  const dir = join(cacheDir, 'hardening');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, 'llama-tokenize-input.txt');
  writeFileSync(file, text);
  const args = ['-m', model, '-f', file, '--ids', '--log-disable', ...(special ? [] : ['--no-bos', '--no-parse-special'])];
  return JSON.parse(execFileSync(toolPath('llama-tokenize'), args, { maxBuffer: 1 << 28 }).toString()) as number[];
}

function seeded(seed: number): () => number {
  return () => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed / 0x7fffffff;
  };
}

describe.runIf(vocabs.length > 0)('long texts give the tokens llama-tokenize gives', () => {
  it.each(vocabs)('%s', async (path) => {
    const f = await readGguf(path, { maxArrayLength: Infinity });
    const names = f.metadata['tokenizer.ggml.tokens'] as string[];
    const types = f.metadata['tokenizer.ggml.token_type'] as number[];
    const special = names.filter((_, i) => types[i] === 2 || types[i] === 3 || types[i] === 4); // unknown, control, user-defined
    const inp = existsSync(`${path}.inp`) ? readFileSync(`${path}.inp`, 'utf8').split('\n__ggml_vocab_test__\n') : ['Hello world', ' a  b\n\tc'];
    const random = seeded(names.length);
    const pick = <T>(list: T[]): T => list[Math.floor(random() * list.length)]!;
    // Mixed: llama.cpp's own test strings and special tokens, with spaces around (strip rules); dense: special
    // tokens only; code: indentation runs (gpt-neox and mpt have user-defined whitespace tokens).
    let mixed = '';
    while (mixed.length < 12_000) mixed += (special.length && random() < 0.5 ? pick(special) : pick(inp)) + pick(['', ' ', '  ', '\n']);
    let dense = '';
    while (dense.length < 6_000) dense += special.length ? pick(special) : 'x';
    let code = '';
    while (code.length < 8_000) code += `\n${' '.repeat(Math.floor(random() * 40))}${pick(['foo()', 'if (x) {', '}', ''])}`;
    await using model = await loadModel(path, { vocabOnly: true });
    // llama-tokenize adds the special tokens only when the model asks for a BOS; tokenize({ special }) always.
    const framed = f.metadata['tokenizer.ggml.add_bos_token'] === true;
    for (const text of [mixed, dense, code]) {
      expect(Buffer.byteLength(text)).toBeGreaterThan(4096); // past the one-call size: cut into pieces
      expect(Array.from(await model.tokenizeAsync(text, { special: false }))).toEqual(llamaTokenize(path, text, false));
      if (framed) expect(Array.from(await model.tokenizeAsync(text))).toEqual(llamaTokenize(path, text, true));
    }
  });

  it.runIf(haveModel(STORIES))('and on the first pairs of the 80,000', async () => {
    await using model = await loadModel(modelPath(STORIES), { vocabOnly: true });
    const text = `Once upon a time <s>there</s> was${'<s></s>'.repeat(3_000)} the end</s>`;
    expect(Array.from(await model.tokenizeAsync(text))).toEqual(llamaTokenize(modelPath(STORIES), text, true));
  });
});
