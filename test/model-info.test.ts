import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

import { FAMILY_CONTEXT, getModelInfo, LocalLlmBackend } from '../lib';
import { GgufValueType, writeGguf, type GgufWriteMetadataEntry } from '../lib/gguf';
import { captureLogger } from './support/capture-logger';
import { haveModel, modelPath, STORIES } from './support/models';

const dir = mkdtempSync(join(tmpdir(), 'tea-model-info-'));
const PLENTY = 2 ** 50;

interface Header {
  arch?: string;
  name?: string;
  contextLength?: number;
  layers?: number;
  embd?: number;
  heads?: number;
  kvHeads?: number | number[];
  template?: string;
}

/** A GGUF file with only a header (no tensors): enough for getModelInfo. */
async function header(file: string, h: Header): Promise<string> {
  const arch = h.arch ?? 'llama';
  const u32 = (key: string, value: number): GgufWriteMetadataEntry => ({ key, type: GgufValueType.UINT32, value });
  const metadata: GgufWriteMetadataEntry[] = [{ key: 'general.architecture', type: GgufValueType.STRING, value: arch }];
  if (h.name) metadata.push({ key: 'general.name', type: GgufValueType.STRING, value: h.name });
  if (h.contextLength !== undefined) metadata.push(u32(`${arch}.context_length`, h.contextLength));
  metadata.push(u32(`${arch}.block_count`, h.layers ?? 4), u32(`${arch}.embedding_length`, h.embd ?? 256), u32(`${arch}.attention.head_count`, h.heads ?? 4));
  if (Array.isArray(h.kvHeads)) {
    metadata.push({ key: `${arch}.attention.head_count_kv`, type: GgufValueType.ARRAY, itemType: GgufValueType.UINT32, value: h.kvHeads });
  } else if (h.kvHeads !== undefined) {
    metadata.push(u32(`${arch}.attention.head_count_kv`, h.kvHeads));
  }
  if (h.template) metadata.push({ key: 'tokenizer.chat_template', type: GgufValueType.STRING, value: h.template });
  const path = join(dir, file);
  await writeGguf(path, { metadata, tensors: [] });
  return path;
}

/** Phi-4-mini's attention shape: 32 layers, 24 heads, 8 KV heads of 128 → 128 KiB of f16 KV cache per token. */
const PHI4_MINI: Header = { arch: 'phi3', contextLength: 131072, layers: 32, embd: 3072, heads: 24, kvHeads: 8 };
const PHI4_MINI_KV_PER_TOKEN = 32 * 8 * (128 + 128) * 2;

describe('getModelInfo: auto-configuration', () => {
  it('falls back to the file name: phi → 128K, gemma → 32K, anything else 4096', async () => {
    const cases: Array<[string, string, number, string]> = [
      ['microsoft_Phi-4-mini-instruct-Q3_K_S.gguf', 'phi', 131072, 'phi3'],
      ['gemma-3n-E4B-it-Q4_K_M.gguf', 'gemma', 32768, 'gemma'],
      ['tinyllama-1.1b-chat.Q4_K_M.gguf', 'other', 4096, 'chatml'],
      ['dolphin-2.9-llama3-8b.gguf', 'other', 4096, 'chatml'], // "phi" inside a word is not Phi
    ];
    for (const [file, family, context, chatFormat] of cases) {
      // No context_length in the header and a neutral architecture: only the name can tell.
      const info = await getModelInfo(await header(file, {}), { freeMemory: PLENTY, logger: captureLogger() });
      expect(info, file).toMatchObject({ family, contextSize: context, chatFormat, trainedContextLength: null, chatTemplate: null });
      expect(info.familySource, file).toBe(family === 'other' ? 'default' : 'file-name');
    }
    expect(FAMILY_CONTEXT).toEqual({ phi: 131072, gemma: 32768, other: 4096 });
  });

  it('the GGUF metadata decides first: architecture, name and chat template', async () => {
    const byArch = await getModelInfo(await header('model-a.gguf', { arch: 'phi3' }), { freeMemory: PLENTY });
    expect(byArch).toMatchObject({ family: 'phi', familySource: 'gguf', architecture: 'phi3' });
    const byName = await getModelInfo(await header('model-b.gguf', { name: 'Gemma 3n E4B It' }), { freeMemory: PLENTY });
    expect(byName).toMatchObject({ family: 'gemma', familySource: 'gguf', contextSize: 32768 });
    // Metadata wins over a misleading file name.
    const renamed = await getModelInfo(await header('gemma-renamed.gguf', { arch: 'phi3' }), { freeMemory: PLENTY });
    expect(renamed.family).toBe('phi');
    const template = '{% for m in messages %}{{ m.content }}{% endfor %}';
    const own = await getModelInfo(await header('phi-own-template.gguf', { template }), { freeMemory: PLENTY });
    expect(own).toMatchObject({ chatFormat: 'gguf', chatTemplate: template });
  });

  it('never configures more context than the model was trained for', async () => {
    const smallPhi = await getModelInfo(await header('Phi-3-mini-4k-instruct.gguf', { arch: 'phi3', contextLength: 4096 }), { freeMemory: PLENTY });
    expect(smallPhi).toMatchObject({ contextSize: 4096, contextSource: 'trained', trainedContextLength: 4096 });
    const longLlama = await getModelInfo(await header('llama-long.gguf', { contextLength: 1_048_576 }), { freeMemory: PLENTY });
    expect(longLlama).toMatchObject({ contextSize: 4096, contextSource: 'family' });
    if (haveModel(STORIES)) {
      expect(await getModelInfo(modelPath(STORIES), { freeMemory: PLENTY })).toMatchObject({ contextSize: 2048, trainedContextLength: 2048, contextSource: 'trained' });
    }
  });

  it('estimates the KV cache from the attention shape, per-layer KV head counts included', async () => {
    const phi = await getModelInfo(await header('phi4-shape.gguf', PHI4_MINI), { freeMemory: PLENTY });
    expect(phi.kvBytesPerToken).toBe(PHI4_MINI_KV_PER_TOKEN);
    expect(phi.kvCacheBytes).toBe(PHI4_MINI_KV_PER_TOKEN * 131072); // 16 GiB
    const mixed = await getModelInfo(await header('mixed-kv.gguf', { layers: 3, embd: 256, heads: 4, kvHeads: [4, 0, 2] }), { freeMemory: PLENTY });
    expect(mixed.kvBytesPerToken).toBe((4 + 0 + 2) * (64 + 64) * 2);
  });

  it('lowers a context whose KV cache would not fit in free memory, and logs why', async () => {
    const path = await header('microsoft_Phi-4-mini-instruct-Q3_K_S.gguf', PHI4_MINI);
    const logger = captureLogger();
    const freeMemory = 2 * 2 ** 30;
    const info = await getModelInfo(path, { freeMemory, logger });
    const budget = (freeMemory - info.fileSize) * 0.8;
    expect(info.contextSource).toBe('memory');
    expect(info.contextSize % 256).toBe(0);
    expect(info.contextSize * PHI4_MINI_KV_PER_TOKEN).toBeLessThanOrEqual(budget);
    expect((info.contextSize + 256) * PHI4_MINI_KV_PER_TOKEN).toBeGreaterThan(budget); // the largest that fits
    expect(logger.text('warn')).toContain(`lowered the context of microsoft_Phi-4-mini-instruct-Q3_K_S.gguf from 131072 to ${info.contextSize} tokens`);
    expect(logger.text('warn')).toContain('16.0 GiB');
    expect(info.notes).toHaveLength(1);

    const roomy = await getModelInfo(path, { freeMemory: 64 * 2 ** 30, logger: captureLogger() });
    expect(roomy).toMatchObject({ contextSize: 131072, contextSource: 'family', notes: [] });
  });

  it('an impossible context is lowered to the minimum instead of failing; real free memory is the default', async () => {
    const path = await header('phi-impossible.gguf', { ...PHI4_MINI, layers: 512, heads: 64, kvHeads: 64, embd: 65536 });
    const logger = captureLogger();
    const none = await getModelInfo(path, { freeMemory: 0, logger });
    expect(none).toMatchObject({ contextSize: 256, contextSource: 'memory' });
    expect(logger.text('warn')).toContain('even 256 tokens may not fit');

    // 512 layers × 64 KV heads × (128 + 128) dims × 2 bytes = 16 MiB per token: 128K tokens would be 2 TiB.
    const big = await header('phi-huge.gguf', { ...PHI4_MINI, layers: 512, heads: 64, kvHeads: 64, embd: 8192 });
    const real = await getModelInfo(big, { logger: captureLogger() });
    expect(real.kvBytesPerToken).toBe(512 * 64 * (128 + 128) * 2);
    expect(real.contextSource).toBe('memory');
    expect(real.contextSize).toBeLessThan(131072);
    expect(real.kvCacheBytes!).toBeLessThanOrEqual(totalmem());
  });

  it('an explicit n_ctx always wins, with a warning above the trained length or the memory estimate', async () => {
    const path = await header('Phi-3-mini-4k.gguf', { arch: 'phi3', contextLength: 4096, layers: 32, embd: 3072, heads: 32, kvHeads: 32 });
    const logger = captureLogger();
    const above = await getModelInfo(path, { contextSize: 8192, freeMemory: PLENTY, logger });
    expect(above).toMatchObject({ contextSize: 8192, contextSource: 'explicit' });
    expect(logger.text('warn')).toContain('n_ctx 8192 for Phi-3-mini-4k.gguf is above its trained context length 4096');

    const quiet = captureLogger();
    expect((await getModelInfo(path, { contextSize: 2048, freeMemory: PLENTY, logger: quiet })).contextSize).toBe(2048);
    expect(quiet.text('warn')).toBe('');

    const tight = captureLogger();
    expect((await getModelInfo(path, { contextSize: 4096, freeMemory: 2 ** 20, logger: tight })).contextSize).toBe(4096);
    expect(tight.text('warn')).toContain('using it as configured');
  });

  it('rejects a missing or invalid file with the GGUF reader’s typed errors', async () => {
    await expect(getModelInfo(join(dir, 'nope.gguf'))).rejects.toMatchObject({ code: 'ERR_MODEL_NOT_FOUND' });
    const junk = join(dir, 'junk-phi.gguf');
    writeFileSync(junk, 'not a model');
    await expect(getModelInfo(junk)).rejects.toMatchObject({ code: 'ERR_MODEL_INVALID' });
  });
});

describe.runIf(haveModel(STORIES))('the memory cap on a real load', () => {
  it('loads a model whose auto context would not fit with a lowered context, and it generates the same text', async () => {
    // stories260K with its trained length patched to 1M and a phi name: auto-config asks for 128K tokens.
    const original = readFileSync(modelPath(STORIES));
    const key = Buffer.from('llama.context_length');
    const at = original.indexOf(key) + key.length + 4;
    expect(original.readUInt32LE(at)).toBe(2048);
    const patched = Buffer.from(original);
    patched.writeUInt32LE(1_048_576, at);
    const path = join(dir, 'phi-stories260K.gguf');
    writeFileSync(path, patched);

    // 5 layers × 4 KV heads × (8 + 8) dims × 2 bytes = 640 bytes per token; allow 10 MiB beside the weights.
    const freeMemory = patched.length + 10 * 2 ** 20;
    const logger = captureLogger();
    await using backend = new LocalLlmBackend({ modelPath: path, threads: 2, freeMemory, logger });
    const model = await backend.load();
    expect(backend.config).toMatchObject({ family: 'phi', familySource: 'file-name', kvBytesPerToken: 640, contextSource: 'memory' });
    expect(backend.config!.contextSize).toBe(Math.floor((10 * 2 ** 20 * 0.8) / 640 / 256) * 256);
    expect(model.contextSize).toBe(backend.config!.contextSize);
    expect(logger.text('warn')).toContain('lowered the context of phi-stories260K.gguf from 131072');

    await using reference = new LocalLlmBackend({ modelPath: modelPath(STORIES), threads: 2, logger: captureLogger() });
    const params = { prompt: 'Once upon a time', maxTokens: 32, temperature: 0 };
    expect((await backend.call(params)).content).toBe((await reference.call(params)).content);
  });
});
