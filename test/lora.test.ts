import { readFile, writeFile } from 'node:fs/promises';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { ApiLlmBackend, loadModel, LocalLlmBackend, type LlamaModel } from '../lib';
import type { LoraAdapter } from '../lib/lora';
import { startLlamaServer, type LlamaServer } from './support/llama-server';
import { cacheDir, haveModel, modelPath, STORIES } from './support/models';

// LoRA adapters against llama-server with --lora / --lora-scaled and the per-request `lora` field, on stories260K
// with random adapters made by scripts/synthetic-lora.mjs (attn_q and attn_v of every block).

const PROMPTS = ['Once upon a time', 'The little dog', 'Lily and Ben went to the park. They'];
const GREEDY = { temperature: 0, maxTokens: 48 } as const;

async function adapter(name: string, options: { seed?: number; mismatch?: boolean } = {}): Promise<string> {
  // @ts-expect-error plain ESM script without type declarations
  const { ensureSyntheticLora } = await import('../scripts/synthetic-lora.mjs');
  return ensureSyntheticLora({ base: modelPath(STORIES), out: resolve(cacheDir, 'models', name), ...options }) as Promise<string>;
}

interface ServerCompletion {
  content: string;
}

describe.runIf(haveModel(STORIES))('LoRA adapters on stories260K', () => {
  let model: LlamaModel;
  let server: LlamaServer;
  let first: LoraAdapter;
  let second: LoraAdapter;
  let paths: { first: string; second: string; mismatch: string };

  const reference = (prompt: string, lora?: { id: number; scale: number }[]) =>
    server.post<ServerCompletion>('/completion', { prompt, n_predict: GREEDY.maxTokens, temperature: 0, cache_prompt: false, ...(lora ? { lora } : {}) });

  beforeAll(async () => {
    paths = {
      first: await adapter('lora-stories260K-s1.gguf', { seed: 1 }),
      second: await adapter('lora-stories260K-s2.gguf', { seed: 2 }),
      mismatch: await adapter('lora-stories260K-mismatch.gguf', { mismatch: true }),
    };
    // The server starts with both adapters (ids 0 and 1); requests choose with `lora`.
    [model, server] = await Promise.all([
      loadModel(modelPath(STORIES), { contextSize: 512, threads: 2 }),
      startLlamaServer(modelPath(STORIES), ['-c', '512', '-np', '1', '--lora', paths.first, '--lora', paths.second]),
    ]);
    first = await model.loadLora(paths.first);
    second = await model.loadLora(paths.second);
  });
  afterAll(async () => {
    await model?.dispose();
    await server?.stop();
  });

  it('per-request adapters and scales equal llama-server per-request lora', async () => {
    const configs = [
      { ours: [{ adapter: first }], server: [{ id: 0, scale: 1 }] },
      { ours: [{ adapter: first, scale: 0.5 }], server: [{ id: 0, scale: 0.5 }] },
      { ours: [{ adapter: 1, scale: 0.3 }], server: [{ id: 1, scale: 0.3 }] },
      { ours: [{ adapter: first, scale: 0.4 }, { adapter: second, scale: 0.6 }], server: [{ id: 0, scale: 0.4 }, { id: 1, scale: 0.6 }] },
      { ours: [], server: [{ id: 0, scale: 0 }, { id: 1, scale: 0 }] },
    ];
    for (const prompt of PROMPTS) {
      const base = (await model.complete(prompt, GREEDY)).text;
      for (const config of configs) {
        const expected = (await reference(prompt, config.server)).content;
        const got = (await model.complete(prompt, { ...GREEDY, lora: config.ours })).text;
        expect(got, `${prompt} with ${JSON.stringify(config.server)}`).toBe(expected);
        // Every adapter set but the empty one changes the output.
        if (config.ours.length > 0 && prompt === PROMPTS[0]) expect(got).not.toBe(base);
      }
      expect(base).toBe((await reference(prompt, [{ id: 0, scale: 0 }, { id: 1, scale: 0 }])).content);
    }
  });

  it('a default set at load time equals llama-server --lora-scaled', async () => {
    const scaled = await startLlamaServer(modelPath(STORIES), ['-c', '512', '-np', '1', '--lora-scaled', `${paths.first}:0.7`]);
    try {
      await using withDefault = await loadModel(modelPath(STORIES), { contextSize: 512, threads: 2, lora: [{ path: paths.first, scale: 0.7 }] });
      expect(withDefault.loras.map((l) => l.path)).toEqual([paths.first]);
      expect(withDefault.defaultLora.map((l) => l.scale)).toEqual([0.7]);
      for (const prompt of PROMPTS) {
        const expected = await scaled.post<ServerCompletion>('/completion', { prompt, n_predict: GREEDY.maxTokens, temperature: 0, cache_prompt: false });
        expect((await withDefault.complete(prompt, GREEDY)).text).toBe(expected.content);
      }
      // Removed from the default set: the base model again.
      withDefault.setLora([]);
      expect((await withDefault.complete(PROMPTS[0]!, GREEDY)).text).toBe((await model.complete(PROMPTS[0]!, GREEDY)).text);
    } finally {
      await scaled.stop();
    }
  });

  it('concurrent requests with different adapters each equal their own single answer', async () => {
    // Flash attention off: its tiles make the last bits depend on where other sequences' cells lie in the shared
    // cache, and these random adapters leave near-ties among the logits; plain attention does not.
    await using plain = await loadModel(modelPath(STORIES), { contextSize: 1024, threads: 2, flashAttention: 'off' });
    const [a, b] = [await plain.loadLora(paths.first), await plain.loadLora(paths.second)];
    const configs = [undefined, [{ adapter: a }], [{ adapter: b, scale: 0.5 }], [{ adapter: a, scale: 0.5 }, { adapter: b, scale: 0.5 }]];
    const single: string[] = [];
    for (const lora of configs) single.push((await plain.complete(PROMPTS[2]!, { ...GREEDY, lora })).text);
    expect(new Set(single).size).toBe(configs.length);
    const together = await Promise.all(configs.map((lora) => plain.complete(PROMPTS[2]!, { ...GREEDY, lora })));
    expect(together.map((r) => r.text)).toEqual(single);
  });

  it('a cached prefix computed under other adapters is not reused', async () => {
    await using one = await loadModel(modelPath(STORIES), { contextSize: 512, threads: 2, sequences: 1 });
    const a = await one.loadLora(paths.first);
    const prompt = PROMPTS[2]!;
    const plain = await one.complete(prompt, GREEDY);
    const adapted = await one.complete(prompt, { ...GREEDY, lora: [{ adapter: a }] });
    expect(adapted.reusedPromptTokens).toBe(0);
    expect(adapted.text).toBe((await reference(prompt, [{ id: 0, scale: 1 }])).content);
    const again = await one.complete(prompt, { ...GREEDY, lora: [{ adapter: a }] });
    expect(again.reusedPromptTokens).toBeGreaterThan(0);
    expect(again.text).toBe(adapted.text);
    const back = await one.complete(prompt, GREEDY);
    expect(back.reusedPromptTokens).toBe(0);
    expect(back.text).toBe(plain.text);
  });

  it('a disposed adapter is refused, and one in use stays alive until its request ends', async () => {
    const extra = await model.loadLora(paths.second);
    // Disposed while its request runs (at the first chunk): the request goes on with it.
    const running = model.complete(PROMPTS[0]!, { ...GREEDY, lora: [{ adapter: extra, scale: 0.5 }], onChunk: () => extra.dispose() });
    expect((await running).text).toBe((await reference(PROMPTS[0]!, [{ id: 1, scale: 0.5 }])).content);
    expect(extra.disposed).toBe(true);
    await expect(model.complete(PROMPTS[0]!, { ...GREEDY, lora: [{ adapter: extra }] })).rejects.toMatchObject({ code: 'ERR_DISPOSED' });
  });

  it('through LlmBackend: a local backend with lora, and an API backend sending llama-server its per-request lora', async () => {
    await using local = new LocalLlmBackend({ modelPath: modelPath(STORIES), contextSize: 512, threads: 2, lora: [paths.first, { path: paths.second, scale: 0 }] });
    await using api = new ApiLlmBackend({ baseUrl: server.baseUrl, model: 'stories' });
    for (const lora of [undefined, [{ adapter: 1, scale: 0.5 }], [{ adapter: 0, scale: 0.3 }, { adapter: 1, scale: 0.3 }]]) {
      const expected = (await reference(PROMPTS[0]!, lora ? lora.map((l) => ({ id: l.adapter, scale: l.scale })) : [{ id: 0, scale: 1 }])).content;
      expect((await local.call({ prompt: PROMPTS[0]!, ...GREEDY, ...(lora ? { lora } : {}) })).text, JSON.stringify(lora)).toBe(expected);
      if (lora) expect((await api.call({ prompt: PROMPTS[0]!, ...GREEDY, lora })).text, JSON.stringify(lora)).toBe(expected);
    }
    await expect(api.call({ prompt: 'x', lora: [] })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    await expect(api.call({ prompt: 'x', lora: [{ adapter: first }] })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
  });

  it('bad adapters and options are typed errors, and the process goes on', async () => {
    await expect(model.loadLora(paths.mismatch)).rejects.toMatchObject({ code: 'ERR_LORA_INVALID' });
    await expect(model.loadLora(modelPath(STORIES))).rejects.toMatchObject({ code: 'ERR_LORA_INVALID', message: expect.stringContaining('not an adapter') });
    await expect(model.loadLora(join(tmpdir(), 'no-such-adapter.gguf'))).rejects.toMatchObject({ code: 'ERR_MODEL_NOT_FOUND' });
    await expect(model.complete('x', { lora: [{ adapter: 99 }] })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    await expect(model.complete('x', { lora: [{ adapter: first, scale: Number.NaN }] })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    await expect(model.complete('x', { lora: [{ adapter: first, wieght: 1 } as never] })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    await expect(model.complete('x', { lora: { adapter: first } as never })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    // An adapter of another model (even the same file) is not this model's.
    await using other = await loadModel(modelPath(STORIES), { contextSize: 128, threads: 1 });
    const foreign = await other.loadLora(paths.first);
    await expect(model.complete('x', { lora: [{ adapter: foreign }] })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT', message: expect.stringContaining('another model') });
    // A truncated file and a few mutated ones: typed errors (the fuzz harness runs many more in its own process).
    const dir = mkdtempSync(join(tmpdir(), 'tea-lora-'));
    const bytes = await readFile(paths.first);
    const truncated = join(dir, 'truncated.gguf');
    await writeFile(truncated, bytes.subarray(0, Math.floor(bytes.length * 0.6)));
    await expect(model.loadLora(truncated)).rejects.toMatchObject({ code: 'ERR_LORA_INVALID' });
    expect((await model.complete(PROMPTS[0]!, { ...GREEDY, lora: [{ adapter: first }] })).text).toBe((await reference(PROMPTS[0]!, [{ id: 0, scale: 1 }])).content);
  });
});
