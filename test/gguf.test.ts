import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { loadModel } from '../lib';
import { LlamaError } from '../lib/errors';
import {
  float16BitsToFloat32,
  float32ToFloat16Bits,
  GgmlType,
  GGML_TYPES,
  GgufValueType,
  ggufValueToString,
  readGguf,
  writeGguf,
  type GgufFile,
  type GgufWriteMetadataEntry,
} from '../lib/gguf';
import { haveModel, modelPath, modelsDir, repoRoot } from './support/models';

const STORIES = 'stories260K.gguf';
const PHI3 = 'ggml-vocab-phi-3.gguf';
const GPT2 = 'ggml-vocab-gpt-2.gguf';
const BERT = 'ggml-vocab-bert-bge.gguf';
const ALL = [STORIES, PHI3, GPT2, BERT];
const haveAll = ALL.every((f) => haveModel(f));

let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'tea-gguf-test-'));
});
afterAll(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

let counter = 0;
function tmpFile(name = 'f.gguf'): string {
  return join(tmp, `${counter++}-${name}`);
}

/** Awaits readGguf and returns the error, asserting it is a LlamaError with the expected code. */
async function rejection(path: string, code: string, pattern?: RegExp, options?: Parameters<typeof readGguf>[1]): Promise<LlamaError> {
  let error: unknown;
  try {
    await readGguf(path, options);
  } catch (e) {
    error = e;
  }
  expect(error, `expected ${path} to be rejected`).toBeInstanceOf(LlamaError);
  const err = error as LlamaError;
  expect(err.code, err.message).toBe(code);
  if (pattern) expect(err.message).toMatch(pattern);
  if (code === 'ERR_MODEL_INVALID') expect(err.message).toMatch(/byte offset \d+|directory/);
  return err;
}

// ---- real files ---------------------------------------------------------------------------------

describe.runIf(haveAll)('readGguf on the shared test models', () => {
  it('reads stories260K.gguf as documented in MODELS.md', async () => {
    const f = await readGguf(modelPath(STORIES));
    expect(f.version).toBe(3);
    expect(f.alignment).toBe(32);
    expect(f.fileSize).toBe(1185376);
    expect(f.metadata['general.architecture']).toBe('llama');
    expect(f.metadata['general.name']).toBe('llama');
    expect(f.metadata['general.file_type']).toBeUndefined();
    expect(f.metadata['llama.context_length']).toBe(2048);
    expect(f.metadata['llama.embedding_length']).toBe(64);
    expect(f.metadata['llama.block_count']).toBe(5);
    expect(f.metadata['llama.feed_forward_length']).toBe(172);
    expect(f.metadata['llama.attention.head_count']).toBe(8);
    expect(f.metadata['llama.attention.head_count_kv']).toBe(4);
    expect(f.metadata['llama.rope.dimension_count']).toBe(8);
    expect(f.metadata['llama.attention.layer_norm_rms_epsilon']).toBe(Math.fround(1e-5));
    expect(f.metadata['tokenizer.ggml.model']).toBe('llama');
    expect(f.metadata['tokenizer.ggml.pre']).toBeUndefined();
    expect(f.metadata['tokenizer.ggml.bos_token_id']).toBe(1);
    expect(f.metadata['tokenizer.ggml.eos_token_id']).toBe(2);
    expect(f.metadata['tokenizer.ggml.padding_token_id']).toBe(4294967295);
    expect(f.metadata['tokenizer.chat_template']).toBeUndefined();
    // 512 tokens: loaded (default maxArrayLength is 1024)
    const tokens = f.metadata['tokenizer.ggml.tokens'] as string[];
    expect(tokens).toHaveLength(512);
    expect(tokens.slice(0, 3)).toEqual(['<unk>', '<s>', '</s>']);
    expect(f.entries.find((e) => e.key === 'tokenizer.ggml.tokens')).toMatchObject({ type: GgufValueType.ARRAY, itemType: GgufValueType.STRING });

    expect(f.tensors).toHaveLength(48);
    expect(f.tensors.every((t) => t.typeName === 'F32' && t.type === GgmlType.F32)).toBe(true);
    expect(f.tensors[0]).toEqual({ name: 'token_embd.weight', dims: [64, 512], type: 0, typeName: 'F32', offset: 0, byteSize: 64 * 512 * 4 });
    const params = f.tensors.reduce((n, t) => n + t.dims.reduce((a, b) => a * b, 1), 0);
    expect(params).toBeGreaterThan(250_000);
    expect(params).toBeLessThan(300_000);
    const last = f.tensors[f.tensors.length - 1]!;
    expect(f.dataOffset % 32).toBe(0);
    expect(f.dataOffset + last.offset + last.byteSize).toBeLessThanOrEqual(f.fileSize);
  });

  it('reads the phi-3 vocab with its chat template', async () => {
    const f = await readGguf(modelPath(PHI3));
    expect(f.metadata['general.architecture']).toBe('phi3');
    expect(f.metadata['general.name']).toBe('Phi3');
    expect(f.metadata['phi3.context_length']).toBe(4096);
    expect(f.metadata['phi3.embedding_length']).toBe(3072);
    expect(f.metadata['phi3.block_count']).toBe(32);
    expect(f.metadata['general.file_type']).toBe(1);
    expect(f.metadata['tokenizer.ggml.model']).toBe('llama');
    expect(f.metadata['tokenizer.ggml.pre']).toBe('default');
    expect(f.metadata['tokenizer.ggml.bos_token_id']).toBe(1);
    expect(f.metadata['tokenizer.ggml.eos_token_id']).toBe(32000);
    expect(f.metadata['tokenizer.ggml.add_bos_token']).toBe(true);
    const template = f.metadata['tokenizer.chat_template'];
    expect(typeof template).toBe('string');
    expect(template as string).toMatch(/^\{\{ bos_token \}\}\{% for message in messages %\}/);
    expect(template as string).toContain("'<|user|>'");
    // 32064 tokens: longer than the default maxArrayLength, so validated and skipped
    expect(f.metadata['tokenizer.ggml.tokens']).toEqual({ kind: 'skipped-array', itemType: GgufValueType.STRING, length: 32064 });
    expect(f.metadata['tokenizer.ggml.scores']).toEqual({ kind: 'skipped-array', itemType: GgufValueType.FLOAT32, length: 32064 });
    expect(ggufValueToString(f.metadata['tokenizer.ggml.tokens']!)).toMatch(/32064/);
    expect(f.tensors).toHaveLength(0);
    expect(f.dataOffset).toBe(f.fileSize);

    const full = await readGguf(modelPath(PHI3), { maxArrayLength: Infinity });
    const tokens = full.metadata['tokenizer.ggml.tokens'] as string[];
    expect(tokens).toHaveLength(32064);
    expect(tokens[32000]).toBe('<|endoftext|>');
    expect(tokens[32007]).toBe('<|end|>');
    expect((full.metadata['tokenizer.ggml.token_type'] as number[])[1]).toBe(3);
  });

  it('reads the gpt-2 and bert vocabs', async () => {
    const gpt2 = await readGguf(modelPath(GPT2), { maxArrayLength: Infinity });
    expect(gpt2.metadata['general.architecture']).toBe('gpt2');
    expect(gpt2.metadata['gpt2.context_length']).toBe(1024);
    expect(gpt2.metadata['gpt2.embedding_length']).toBe(768);
    expect(gpt2.metadata['tokenizer.ggml.model']).toBe('gpt2');
    expect(gpt2.metadata['tokenizer.ggml.pre']).toBe('gpt-2');
    expect(gpt2.metadata['tokenizer.ggml.tokens']).toHaveLength(50257);
    expect(gpt2.metadata['tokenizer.ggml.merges']).toHaveLength(50000);
    expect(gpt2.metadata['tokenizer.ggml.bos_token_id']).toBe(50256);
    expect(gpt2.metadata['tokenizer.chat_template']).toBeUndefined();
    expect(gpt2.tensors).toHaveLength(0);

    const bert = await readGguf(modelPath(BERT));
    expect(bert.metadata['general.architecture']).toBe('bert');
    expect(bert.metadata['bert.context_length']).toBe(512);
    expect(bert.metadata['bert.embedding_length']).toBe(384);
    expect(bert.metadata['bert.block_count']).toBe(12);
    expect(bert.metadata['tokenizer.ggml.model']).toBe('bert');
    expect(bert.metadata['tokenizer.ggml.pre']).toBe('bert-bge');
    expect((bert.metadata['tokenizer.ggml.tokens'] as { length: number }).length).toBe(30522);
    expect(bert.metadata['tokenizer.chat_template']).toBeUndefined();
  });

  it('reads every .gguf in the models folder', async () => {
    const files = readdirSync(modelsDir).filter((f) => f.endsWith('.gguf'));
    expect(files.length).toBeGreaterThanOrEqual(4);
    for (const name of files) {
      const f = await readGguf(join(modelsDir, name), { maxArrayLength: Infinity });
      expect(f.version).toBe(3);
      expect(typeof f.metadata['general.architecture']).toBe('string');
      expect(f.entries.length).toBe(Object.keys(f.metadata).length);
    }
  });

  it('rewrites each shared file byte for byte from what it read', async () => {
    for (const name of ALL) {
      const src = modelPath(name);
      const f = await readGguf(src, { maxArrayLength: Infinity });
      const raw = readFileSync(src);
      const tensors = f.tensors.map((t) => {
        const start = f.dataOffset + t.offset;
        const data = new Float32Array(raw.buffer.slice(raw.byteOffset + start, raw.byteOffset + start + t.byteSize));
        return { name: t.name, dims: t.dims, type: t.typeName as 'F32', data };
      });
      const out = tmpFile(name);
      await writeGguf(out, { metadata: f.entries, tensors });
      expect(Buffer.compare(readFileSync(out), raw), name).toBe(0);
    }
  });
});

// ---- writer round trip ----------------------------------------------------------------------------

describe('writeGguf', () => {
  const metadata: GgufWriteMetadataEntry[] = [
    { key: 'general.architecture', type: GgufValueType.STRING, value: 'llama' },
    { key: 'test.u8', type: GgufValueType.UINT8, value: 255 },
    { key: 'test.i8', type: GgufValueType.INT8, value: -128 },
    { key: 'test.u16', type: GgufValueType.UINT16, value: 65535 },
    { key: 'test.i16', type: GgufValueType.INT16, value: -32768 },
    { key: 'test.u32', type: GgufValueType.UINT32, value: 4294967295 },
    { key: 'test.i32', type: GgufValueType.INT32, value: -2147483648 },
    { key: 'test.f32', type: GgufValueType.FLOAT32, value: 0.1 },
    { key: 'test.bool', type: GgufValueType.BOOL, value: true },
    { key: 'test.string', type: GgufValueType.STRING, value: 'héllo ✓ 🦙' },
    { key: 'test.empty', type: GgufValueType.STRING, value: '' },
    { key: 'test.u64', type: GgufValueType.UINT64, value: 2n ** 64n - 1n },
    { key: 'test.i64', type: GgufValueType.INT64, value: -(2n ** 63n) },
    { key: 'test.f64', type: GgufValueType.FLOAT64, value: Math.PI },
    { key: 'test.arr.str', type: GgufValueType.ARRAY, itemType: GgufValueType.STRING, value: ['a', '', 'ü'] },
    { key: 'test.arr.i32', type: GgufValueType.ARRAY, itemType: GgufValueType.INT32, value: [1, -2, 3] },
    { key: 'test.arr.f32', type: GgufValueType.ARRAY, itemType: GgufValueType.FLOAT32, value: new Float32Array([0.5, -1.25]) },
    { key: 'test.arr.bool', type: GgufValueType.ARRAY, itemType: GgufValueType.BOOL, value: [true, false] },
    { key: 'test.arr.u64', type: GgufValueType.ARRAY, itemType: GgufValueType.UINT64, value: [1n, 2n] },
    { key: 'test.arr.empty', type: GgufValueType.ARRAY, itemType: GgufValueType.UINT8, value: [] },
    { key: 'test.arr.long', type: GgufValueType.ARRAY, itemType: GgufValueType.UINT16, value: Array.from({ length: 3000 }, (_, i) => i) },
  ];

  it('round-trips metadata of every type and F32/F16 tensors, with a custom alignment', async () => {
    const a = new Float32Array(64 * 3).map((_, i) => i / 7 - 10);
    const calls: Array<[number, number]> = [];
    const path = tmpFile('roundtrip.gguf');
    const result = await writeGguf(
      path,
      {
        metadata,
        alignment: 64,
        tensors: [
          { name: 'a', dims: [64, 3], type: 'F32', data: a },
          {
            name: 'b',
            dims: [100, 25],
            type: 'F16',
            data: (index, out) => {
              calls.push([index, out.length]);
              for (let i = 0; i < out.length; i++) out[i] = (index + i) / 1000;
            },
          },
          { name: 'c', dims: [7], type: 'F16', data: new Float32Array([0, -0, 1, -2.5, 65504, 1e-8, 70000]) },
          { name: 'd', dims: [2, 3, 4, 5], type: 'F32', data: (index, out) => out.fill(index) },
        ],
      },
      { chunkElements: 1000 },
    );
    expect(calls).toEqual([
      [0, 1000],
      [1000, 1000],
      [2000, 500],
    ]);

    const f = await readGguf(path, { maxArrayLength: Infinity });
    expect(result).toEqual({ path, fileSize: f.fileSize, dataOffset: f.dataOffset });
    expect(f.version).toBe(3);
    expect(f.alignment).toBe(64);
    expect(f.metadata['general.alignment']).toBe(64);
    expect(f.dataOffset % 64).toBe(0);
    for (const m of metadata) {
      const e = f.entries.find((x) => x.key === m.key)!;
      expect(e.type).toBe(m.type);
      expect(e.itemType).toBe(m.itemType);
      const expected = ArrayBuffer.isView(m.value) ? Array.from(m.value as Float32Array) : m.value;
      expect(e.value, m.key).toEqual(m.type === GgufValueType.FLOAT32 ? Math.fround(m.value as number) : expected);
    }
    const skipped = await readGguf(path);
    expect(skipped.metadata['test.arr.long']).toEqual({ kind: 'skipped-array', itemType: GgufValueType.UINT16, length: 3000 });

    expect(f.tensors.map((t) => [t.name, t.typeName, t.dims, t.byteSize, t.offset])).toEqual([
      ['a', 'F32', [64, 3], 768, 0],
      ['b', 'F16', [100, 25], 5000, 768],
      ['c', 'F16', [7], 14, 768 + 5056],
      ['d', 'F32', [2, 3, 4, 5], 480, 768 + 5056 + 64],
    ]);
    const raw = readFileSync(path);
    const at = (name: string) => f.dataOffset + f.tensors.find((t) => t.name === name)!.offset;
    expect(Array.from({ length: 192 }, (_, i) => raw.readFloatLE(at('a') + 4 * i))).toEqual(Array.from(a));
    for (let i = 0; i < 2500; i += 97) {
      expect(float16BitsToFloat32(raw.readUInt16LE(at('b') + 2 * i))).toBeCloseTo(i / 1000, 2);
    }
    const c = Array.from({ length: 7 }, (_, i) => float16BitsToFloat32(raw.readUInt16LE(at('c') + 2 * i)));
    expect(c).toEqual([0, -0, 1, -2.5, 65504, 0, Infinity]);
    expect(raw.readFloatLE(at('d') + 4 * 119)).toBe(0);
    // padding after each tensor is zero-filled
    expect(raw.subarray(at('b') + 5000, at('b') + 5056).every((x) => x === 0)).toBe(true);
    expect(readdirSync(tmp).some((n) => n.endsWith('.partial'))).toBe(false);
  });

  it('writes a file with no tensors exactly up to the end of the metadata', async () => {
    const path = tmpFile('empty.gguf');
    await writeGguf(path, { metadata: [{ key: 'general.architecture', type: GgufValueType.STRING, value: 'x' }], tensors: [] });
    const f = await readGguf(path);
    expect(f.tensors).toEqual([]);
    expect(f.dataOffset).toBe(f.fileSize);
    expect(f.fileSize).toBe(24 + 8 + 20 + 4 + 8 + 1);
  });

  it('rejects bad specs with ERR_INVALID_ARGUMENT and leaves no file behind', async () => {
    const dir = join(tmp, 'bad-specs');
    mkdirSync(dir);
    const path = join(dir, 'x.gguf');
    const t = { name: 't', dims: [4], type: 'F32' as const, data: new Float32Array(4) };
    const cases: Array<[string, Parameters<typeof writeGguf>[1]]> = [
      ['duplicate key', { metadata: [metadata[0]!, metadata[0]!], tensors: [] }],
      ['empty key', { metadata: [{ key: '', type: GgufValueType.UINT8, value: 1 }], tensors: [] }],
      ['u8 out of range', { metadata: [{ key: 'k', type: GgufValueType.UINT8, value: 256 }], tensors: [] }],
      ['i32 not an integer', { metadata: [{ key: 'k', type: GgufValueType.INT32, value: 1.5 }], tensors: [] }],
      ['string given a number', { metadata: [{ key: 'k', type: GgufValueType.STRING, value: 5 }], tensors: [] }],
      ['u64 negative', { metadata: [{ key: 'k', type: GgufValueType.UINT64, value: -1n }], tensors: [] }],
      ['array without itemType', { metadata: [{ key: 'k', type: GgufValueType.ARRAY, value: [1] }], tensors: [] }],
      ['array of arrays', { metadata: [{ key: 'k', type: GgufValueType.ARRAY, itemType: GgufValueType.ARRAY, value: [] }], tensors: [] }],
      [
        'skipped array',
        { metadata: [{ key: 'k', type: GgufValueType.ARRAY, itemType: GgufValueType.STRING, value: { kind: 'skipped-array', itemType: GgufValueType.STRING, length: 5000 } }], tensors: [] },
      ],
      ['unknown value type', { metadata: [{ key: 'k', type: 42 as GgufValueType, value: 1 }], tensors: [] }],
      ['bad alignment', { metadata: [], tensors: [], alignment: 48 }],
      ['duplicate tensor', { metadata: [], tensors: [t, t] }],
      ['data length', { metadata: [], tensors: [{ ...t, dims: [5] }] }],
      ['zero dim', { metadata: [], tensors: [{ ...t, dims: [0] }] }],
      ['five dims', { metadata: [], tensors: [{ ...t, dims: [1, 1, 4, 1, 1] }] }],
      ['long name', { metadata: [], tensors: [{ ...t, name: 'x'.repeat(64) }] }],
      ['quantized type', { metadata: [], tensors: [{ ...t, type: 'Q4_0' as 'F32' }] }],
    ];
    for (const [what, spec] of cases) {
      const err = await writeGguf(path, spec).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err, what).toBeInstanceOf(LlamaError);
      expect((err as LlamaError).code, what).toBe('ERR_INVALID_ARGUMENT');
    }
    expect(readdirSync(dir)).toEqual([]);
  });

  it('removes the partial file when a generator throws', async () => {
    const dir = join(tmp, 'gen-throws');
    mkdirSync(dir);
    const err = await writeGguf(
      join(dir, 'x.gguf'),
      {
        metadata: [],
        tensors: [
          {
            name: 't',
            dims: [4096],
            type: 'F16',
            data: (index) => {
              if (index > 0) throw new Error('boom');
            },
          },
        ],
      },
      { chunkElements: 1024 },
    ).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(LlamaError);
    expect((err as Error).message).toBe('boom');
    expect(readdirSync(dir)).toEqual([]);
  });

  it('converts float32 to float16 with round-to-nearest-even', () => {
    // every half value survives half -> float -> half
    const all = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) all[h] = float16BitsToFloat32(h);
    const back = new Uint16Array(65536);
    float32ToFloat16Bits(all, back);
    for (let h = 0; h < 65536; h++) {
      const isNaN16 = (h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0;
      if (isNaN16) expect((back[h]! & 0x7c00) === 0x7c00 && (back[h]! & 0x3ff) !== 0).toBe(true);
      else if (back[h] !== h) expect.fail(`half 0x${h.toString(16)} came back as 0x${back[h]!.toString(16)}`);
    }
    const cases: Array<[number, number]> = [
      [1 + 2 ** -11, 0x3c00], // halfway between 1 and the next half: ties to even (down)
      [1 + 3 * 2 ** -11, 0x3c02], // halfway, ties to even (up)
      [1 + 2 ** -11 + 2 ** -20, 0x3c01], // just above halfway
      [65504, 0x7bff],
      [65519, 0x7bff],
      [65520, 0x7c00], // rounds to infinity
      [-1e10, 0xfc00],
      [2 ** -24, 0x0001], // smallest subnormal
      [2 ** -25, 0x0000], // halfway to zero: ties to even
      [2 ** -25 * 1.5, 0x0001],
      [3 * 2 ** -25, 0x0002], // halfway between subnormals 1 and 2: ties to even
      [2 ** -14 - 2 ** -25, 0x0400], // rounds up from the largest subnormal into the smallest normal
      [-0, 0x8000],
    ];
    const src = new Float32Array(cases.map((c) => c[0]));
    const out = new Uint16Array(src.length);
    float32ToFloat16Bits(src, out);
    expect(Array.from(out)).toEqual(cases.map((c) => c[1]));
  });
});

// ---- malformed files ------------------------------------------------------------------------------

/** Byte positions of a key or tensor name in a GGUF buffer (checked against its length prefix). */
function locate(buf: Buffer, name: string, from = 0): { lenAt: number; end: number } {
  const bytes = Buffer.from(name, 'utf8');
  let idx = buf.indexOf(bytes, from);
  while (idx >= 0 && !(idx >= 8 && buf.readBigUInt64LE(idx - 8) === BigInt(bytes.length))) idx = buf.indexOf(bytes, idx + 1);
  if (idx < 0) throw new Error(`'${name}' not found`);
  return { lenAt: idx - 8, end: idx + bytes.length };
}

/** Positions inside the tensor info of `name`. */
function tensorInfo(buf: Buffer, name: string) {
  const { lenAt, end } = locate(buf, name);
  const nDims = buf.readUInt32LE(end);
  const dims = end + 4;
  const type = dims + 8 * nDims;
  return { lenAt, nDimsAt: end, dimsAt: dims, typeAt: type, offsetAt: type + 4 };
}

describe.runIf(haveModel(STORIES))('readGguf rejects malformed files', () => {
  let original: Buffer;
  let info: GgufFile;
  beforeAll(async () => {
    original = readFileSync(modelPath(STORIES));
    info = await readGguf(modelPath(STORIES));
  });

  /** Writes a mutated copy of stories260K.gguf. */
  function mutate(name: string, edit: (b: Buffer) => Buffer | void): string {
    const b = Buffer.from(original);
    const result = edit(b) ?? b;
    const path = tmpFile(name);
    writeFileSync(path, result);
    return path;
  }

  it('accepts an unmodified copy and version 2', async () => {
    await expect(readGguf(mutate('copy.gguf', () => {}))).resolves.toMatchObject({ version: 3 });
    await expect(readGguf(mutate('v2.gguf', (b) => void b.writeUInt32LE(2, 4)))).resolves.toMatchObject({ version: 2 });
  });

  it('header: magic, version and counts', async () => {
    await rejection(mutate('magic.gguf', (b) => void b.write('GGML', 0)), 'ERR_MODEL_INVALID', /bad magic 'GGML'.*at byte offset 0/);
    await rejection(mutate('v99.gguf', (b) => void b.writeUInt32LE(99, 4)), 'ERR_MODEL_INVALID', /version 99.*byte offset 4/);
    await rejection(mutate('v1.gguf', (b) => void b.writeUInt32LE(1, 4)), 'ERR_MODEL_INVALID', /version 1 /);
    await rejection(mutate('v0.gguf', (b) => void b.writeUInt32LE(0, 4)), 'ERR_MODEL_INVALID', /version 0/);
    await rejection(mutate('be.gguf', (b) => void b.writeUInt32LE(0x03000000, 4)), 'ERR_MODEL_INVALID', /big-endian/);
    await rejection(mutate('kv-huge.gguf', (b) => void b.writeBigInt64LE(1n << 40n, 16)), 'ERR_MODEL_INVALID', /key\/value count 1099511627776 cannot fit/);
    await rejection(mutate('kv-max.gguf', (b) => void b.writeBigUInt64LE(2n ** 64n - 1n, 16)), 'ERR_MODEL_INVALID', /negative metadata key\/value count/);
    await rejection(mutate('kv-plus1.gguf', (b) => void b.writeBigInt64LE(BigInt(info.entries.length + 1), 16)), 'ERR_MODEL_INVALID');
    await rejection(mutate('t-huge.gguf', (b) => void b.writeBigInt64LE(1n << 50n, 8)), 'ERR_MODEL_INVALID', /tensor count .* cannot fit/);
    await rejection(mutate('t-neg.gguf', (b) => void b.writeBigInt64LE(-1n, 8)), 'ERR_MODEL_INVALID', /negative tensor count/);
    await rejection(mutate('t-plus1.gguf', (b) => void b.writeBigInt64LE(49n, 8)), 'ERR_MODEL_INVALID');
  });

  it('metadata: string and array lengths, value types, duplicate and empty keys', async () => {
    // the first key is tokenizer.ggml.tokens (an array of 512 strings)
    const tokens = locate(original, 'tokenizer.ggml.tokens');
    expect(tokens.lenAt).toBe(24);
    await rejection(mutate('keylen.gguf', (b) => void b.writeBigUInt64LE(1n << 40n, 24)), 'ERR_MODEL_INVALID', /length 1099511627776 of key of metadata entry 0 exceeds .*byte offset 24/);
    await rejection(mutate('keylen-max.gguf', (b) => void b.writeBigUInt64LE(2n ** 64n - 1n, 24)), 'ERR_MODEL_INVALID', /exceeds the \d+ bytes left/);
    await rejection(mutate('keylen0.gguf', (b) => void b.writeBigUInt64LE(0n, 24)), 'ERR_MODEL_INVALID', /empty key/);
    // array header: item type (i32) and count (u64) follow the value type
    const itemTypeAt = tokens.end + 4;
    const countAt = itemTypeAt + 4;
    expect(original.readInt32LE(tokens.end)).toBe(GgufValueType.ARRAY);
    expect(original.readBigUInt64LE(countAt)).toBe(512n);
    for (const count of [1n << 50n, 2n ** 64n - 1n, 200_000n]) {
      const p = mutate(`arrlen-${count}.gguf`, (b) => void b.writeBigUInt64LE(count, countAt));
      await rejection(p, 'ERR_MODEL_INVALID', /array length \d+ of key 'tokenizer.ggml.tokens'/);
      await rejection(p, 'ERR_MODEL_INVALID', /array length/, { maxArrayLength: 0 });
    }
    // one string too many: runs into the following bytes and fails somewhere later, still cleanly
    await rejection(mutate('arrlen-513.gguf', (b) => void b.writeBigUInt64LE(513n, countAt)), 'ERR_MODEL_INVALID');
    // a token's string length
    const firstTokenLenAt = countAt + 8;
    await rejection(mutate('strlen.gguf', (b) => void b.writeBigUInt64LE(1n << 31n, firstTokenLenAt)), 'ERR_MODEL_INVALID', /element of array 'tokenizer.ggml.tokens' exceeds/);
    await rejection(mutate('strlen-skip.gguf', (b) => void b.writeBigUInt64LE(1n << 31n, firstTokenLenAt)), 'ERR_MODEL_INVALID', /exceeds/, { maxArrayLength: 0 });
    await rejection(mutate('nested.gguf', (b) => void b.writeInt32LE(GgufValueType.ARRAY, itemTypeAt)), 'ERR_MODEL_INVALID', /array of arrays/);
    await rejection(mutate('itemtype.gguf', (b) => void b.writeInt32LE(13, itemTypeAt)), 'ERR_MODEL_INVALID', /unknown value type 13/);

    const arch = locate(original, 'general.architecture');
    for (const t of [13, -1, 0x7fffffff]) {
      await rejection(mutate(`vtype-${t}.gguf`, (b) => void b.writeInt32LE(t, arch.end)), 'ERR_MODEL_INVALID', new RegExp(`key 'general.architecture' has unknown value type ${t}.*byte offset ${arch.end}`));
    }
    await rejection(mutate('valstr.gguf', (b) => void b.writeBigUInt64LE(1n << 33n, arch.end + 4)), 'ERR_MODEL_INVALID', /value of key 'general.architecture' exceeds/);
    // tokenizer.ggml.eos_token_id -> tokenizer.ggml.bos_token_id
    const eos = locate(original, 'tokenizer.ggml.eos_token_id');
    await rejection(mutate('dupkey.gguf', (b) => void b.write('bos', eos.lenAt + 8 + 'tokenizer.ggml.'.length)), 'ERR_MODEL_INVALID', /duplicate metadata key 'tokenizer.ggml.bos_token_id'/);
  });

  it('tensor infos: names, dims, types', async () => {
    const q = tensorInfo(original, 'blk.0.attn_q.weight');
    await rejection(mutate('dupname.gguf', (b) => void b.write('k', q.lenAt + 8 + 'blk.0.attn_'.length)), 'ERR_MODEL_INVALID', /duplicate tensor name 'blk.0.attn_k.weight'/);
    await rejection(mutate('ndims0.gguf', (b) => void b.writeUInt32LE(0, q.nDimsAt)), 'ERR_MODEL_INVALID', /has 0 dimensions/);
    await rejection(mutate('ndims5.gguf', (b) => void b.writeUInt32LE(5, q.nDimsAt)), 'ERR_MODEL_INVALID', /has 5 dimensions.*byte offset/);
    await rejection(mutate('ndimsbig.gguf', (b) => void b.writeUInt32LE(0xffffffff, q.nDimsAt)), 'ERR_MODEL_INVALID', /dimensions/);
    await rejection(mutate('dim0.gguf', (b) => void b.writeBigInt64LE(0n, q.dimsAt)), 'ERR_MODEL_INVALID', /dimension 0 is 0, must be at least 1/);
    await rejection(mutate('dimneg.gguf', (b) => void b.writeBigInt64LE(-64n, q.dimsAt + 8)), 'ERR_MODEL_INVALID', /dimension 1 is -64/);
    await rejection(
      mutate('overflow.gguf', (b) => {
        b.writeBigInt64LE(1n << 32n, q.dimsAt);
        b.writeBigInt64LE(1n << 32n, q.dimsAt + 8);
      }),
      'ERR_MODEL_INVALID',
      /overflows 2\^53/,
    );
    await rejection(mutate('int64max.gguf', (b) => void b.writeBigInt64LE(2n ** 63n - 1n, q.dimsAt)), 'ERR_MODEL_INVALID', /overflows/);
    await rejection(mutate('bigdata.gguf', (b) => void b.writeBigInt64LE(1n << 40n, q.dimsAt + 8)), 'ERR_MODEL_INVALID', /needs \d+ bytes of data, more than the file size/);
    for (const t of [4, 31, 43, 99, -1]) {
      await rejection(mutate(`ttype${t}.gguf`, (b) => void b.writeInt32LE(t, q.typeAt)), 'ERR_MODEL_INVALID', new RegExp(`unknown ggml type ${t}`));
    }
    const norm = tensorInfo(original, 'output_norm.weight');
    await rejection(mutate('block.gguf', (b) => void b.writeInt32LE(GgmlType.Q4_K, norm.typeAt)), 'ERR_MODEL_INVALID', /rows of 64 elements, not a multiple of the block size 256/);
  });

  it('tensor data: offsets past EOF, misaligned, overlapping, out of order', async () => {
    const last = info.tensors[info.tensors.length - 1]!;
    const lastInfo = tensorInfo(original, last.name);
    await rejection(mutate('off-eof.gguf', (b) => void b.writeBigUInt64LE(BigInt(info.fileSize) * 2n, lastInfo.offsetAt)), 'ERR_MODEL_INVALID', /past the end of the file/);
    await rejection(mutate('off-huge.gguf', (b) => void b.writeBigUInt64LE(2n ** 64n - 32n, lastInfo.offsetAt)), 'ERR_MODEL_INVALID', /past the end of the file/);
    await rejection(mutate('off-tail.gguf', (b) => void b.writeBigUInt64LE(BigInt(last.offset + 64), lastInfo.offsetAt)), 'ERR_MODEL_INVALID', /extends past the end of the file/);
    const q = tensorInfo(original, 'blk.0.attn_q.weight');
    const qOffset = Number(original.readBigUInt64LE(q.offsetAt));
    await rejection(mutate('misaligned.gguf', (b) => void b.writeBigUInt64LE(BigInt(qOffset + 4), q.offsetAt)), 'ERR_MODEL_INVALID', /not a multiple of the alignment 32/);
    await rejection(mutate('overlap.gguf', (b) => void b.writeBigUInt64LE(BigInt(qOffset + 32), q.offsetAt)), 'ERR_MODEL_INVALID', /overlaps/);
    await rejection(mutate('overlap0.gguf', (b) => void b.writeBigUInt64LE(0n, tensorInfo(b, 'output.weight').offsetAt)), 'ERR_MODEL_INVALID', /overlaps/);
    // swapping two same-sized tensors keeps everything aligned and disjoint, but llama.cpp requires file order
    const o = tensorInfo(original, 'blk.0.attn_output.weight');
    await rejection(
      mutate('swapped.gguf', (b) => {
        const oOffset = b.readBigUInt64LE(o.offsetAt);
        b.writeBigUInt64LE(oOffset, q.offsetAt);
        b.writeBigUInt64LE(BigInt(qOffset), o.offsetAt);
      }),
      'ERR_MODEL_INVALID',
      /contiguously in tensor-info order/,
    );
  });

  it('truncation anywhere is rejected', async () => {
    const cuts = [1, 3, 4, 6, 8, 15, 20, 24, 30, 60, 500, 5_000, 10_000, info.dataOffset - 200, info.dataOffset - 1, info.dataOffset, info.dataOffset + 100, info.fileSize - 1];
    for (const cut of cuts) {
      const err = await rejection(mutate(`cut-${cut}.gguf`, (b) => b.subarray(0, cut)), 'ERR_MODEL_INVALID');
      expect(err.message).toMatch(/end of (the )?file|too short|past the end|left in the file|more than the file size/);
    }
  });

  it('empty files, directories and missing files', async () => {
    const empty = tmpFile('empty.gguf');
    writeFileSync(empty, '');
    await rejection(empty, 'ERR_MODEL_INVALID', /empty/);
    const dir = join(tmp, 'a-directory.gguf');
    mkdirSync(dir);
    await rejection(dir, 'ERR_MODEL_INVALID', /directory/);
    await rejection(join(tmp, 'missing.gguf'), 'ERR_MODEL_NOT_FOUND', /not found/);
    await rejection(join(tmp, 'no-such-dir', 'x.gguf'), 'ERR_MODEL_NOT_FOUND');
    await rejection(join(empty, 'x.gguf'), 'ERR_MODEL_NOT_FOUND'); // ENOTDIR
    await expect(readGguf('')).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    await expect(readGguf(modelPath(STORIES), { maxArrayLength: -1 })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
  });

  it('random corruption of the header only ever yields a result or a LlamaError', async () => {
    let state = 12345;
    const rand = (n: number) => {
      state = (Math.imul(state, 1103515245) + 12345) >>> 0;
      return state % n;
    };
    let rejected = 0;
    for (let i = 0; i < 300; i++) {
      const path = mutate(`fuzz-${i}.gguf`, (b) => {
        const n = 1 + rand(4);
        for (let k = 0; k < n; k++) {
          // bias towards the fixed header and the tensor infos, where lengths and counts live
          const region = rand(3);
          const pos = region === 0 ? rand(64) : region === 1 ? info.dataOffset - 1 - rand(3000) : rand(info.dataOffset);
          b[pos] = rand(3) === 0 ? 0xff : rand(256);
        }
      });
      try {
        await readGguf(path, { maxArrayLength: i % 2 ? 0 : Infinity });
      } catch (e) {
        expect(e).toBeInstanceOf(LlamaError);
        expect((e as LlamaError).code).toBe('ERR_MODEL_INVALID');
        rejected++;
      }
      rmSync(path);
    }
    expect(rejected).toBeGreaterThan(30);
  });
});

describe('readGguf on synthetic headers', () => {
  /** Hand-built GGUF header (little-endian) with the given tensor infos and raw metadata bytes. */
  function rawGguf(parts: { kv?: Buffer; nKv?: number; tensors?: Array<{ name: string; dims: bigint[]; type: number; offset: bigint }> }): Buffer {
    const chunks: Buffer[] = [];
    const u32 = (v: number) => {
      const b = Buffer.alloc(4);
      b.writeUInt32LE(v);
      chunks.push(b);
    };
    const i64 = (v: bigint) => {
      const b = Buffer.alloc(8);
      b.writeBigInt64LE(v);
      chunks.push(b);
    };
    const str = (s: string) => {
      i64(BigInt(Buffer.byteLength(s)));
      chunks.push(Buffer.from(s));
    };
    chunks.push(Buffer.from('GGUF'));
    u32(3);
    i64(BigInt(parts.tensors?.length ?? 0));
    i64(BigInt(parts.nKv ?? 0));
    if (parts.kv) chunks.push(parts.kv);
    for (const t of parts.tensors ?? []) {
      str(t.name);
      u32(t.dims.length);
      t.dims.forEach(i64);
      u32(t.type);
      i64(t.offset);
    }
    return Buffer.concat(chunks);
  }

  it('rejects tensor names of 64 bytes or more (GGML_MAX_NAME)', async () => {
    const ok = rawGguf({ tensors: [{ name: 'n'.repeat(63), dims: [8n], type: GgmlType.F32, offset: 0n }] });
    const okPath = tmpFile('name63.gguf');
    writeFileSync(okPath, Buffer.concat([ok, Buffer.alloc(64)]));
    await expect(readGguf(okPath)).resolves.toMatchObject({ tensors: [{ byteSize: 32 }] });
    const bad = rawGguf({ tensors: [{ name: 'n'.repeat(64), dims: [8n], type: GgmlType.F32, offset: 0n }] });
    const badPath = tmpFile('name64.gguf');
    writeFileSync(badPath, Buffer.concat([bad, Buffer.alloc(64)]));
    await rejection(badPath, 'ERR_MODEL_INVALID', /64 bytes long, the maximum is 63/);
  });

  it('rejects a data section that would start past the end of the file', async () => {
    const h = rawGguf({ tensors: [{ name: 't', dims: [1n], type: GgmlType.F32, offset: 0n }] });
    const path = tmpFile('nodata.gguf');
    writeFileSync(path, h); // header not padded to 32 and no data
    await rejection(path, 'ERR_MODEL_INVALID', /data section would start at 64, past the end of the file \(57 bytes\)/);
  });

  it('checks general.alignment: type UINT32, non-zero power of 2', async () => {
    const kv = (type: number, value: Buffer) => {
      const key = Buffer.from('general.alignment');
      const len = Buffer.alloc(8);
      len.writeBigUInt64LE(BigInt(key.length));
      const t = Buffer.alloc(4);
      t.writeInt32LE(type);
      return Buffer.concat([len, key, t, value]);
    };
    const u32 = (v: number) => {
      const b = Buffer.alloc(4);
      b.writeUInt32LE(v);
      return b;
    };
    const tensors = [
      { name: 'a', dims: [8n], type: GgmlType.F32, offset: 0n },
      { name: 'b', dims: [8n], type: GgmlType.F32, offset: 64n },
    ];
    const write = (name: string, kvBuf: Buffer) => {
      const h = rawGguf({ kv: kvBuf, nKv: 1, tensors });
      const padded = Math.ceil(h.length / 64) * 64;
      const path = tmpFile(name);
      writeFileSync(path, Buffer.concat([h, Buffer.alloc(padded - h.length + 128)]));
      return path;
    };
    const good = await readGguf(write('align64.gguf', kv(GgufValueType.UINT32, u32(64))));
    expect(good.alignment).toBe(64);
    expect(good.dataOffset % 64).toBe(0);
    await rejection(write('align48.gguf', kv(GgufValueType.UINT32, u32(48))), 'ERR_MODEL_INVALID', /48 is not a non-zero power of 2/);
    await rejection(write('align0.gguf', kv(GgufValueType.UINT32, u32(0))), 'ERR_MODEL_INVALID', /power of 2/);
    await rejection(write('align-i32.gguf', kv(GgufValueType.INT32, u32(64))), 'ERR_MODEL_INVALID', /must be of type UINT32 but is INT32/);
    // with alignment 32 the second tensor at 64 leaves a gap, which llama.cpp refuses
    await rejection(write('align32-gap.gguf', kv(GgufValueType.UINT32, u32(32))), 'ERR_MODEL_INVALID', /requires 32/);
  });

  it('reads the header of a 2 GiB (sparse) file quickly without reading the data', async () => {
    const path = tmpFile('big.gguf');
    await writeGguf(path, {
      metadata: [{ key: 'general.architecture', type: GgufValueType.STRING, value: 'llama' }],
      tensors: [{ name: 'big', dims: [1024], type: 'F32', data: new Float32Array(1024) }],
    });
    const small = await readGguf(path);
    const buf = readFileSync(path);
    const t = tensorInfo(buf, 'big');
    // rebuild the tensor info with dims [1024, 524288] (2 GiB of F32): one more 8-byte dimension
    const dims = Buffer.alloc(4 + 16);
    dims.writeUInt32LE(2, 0);
    dims.writeBigInt64LE(1024n, 4);
    dims.writeBigInt64LE(524288n, 12);
    const header = Buffer.concat([buf.subarray(0, t.nDimsAt), dims, buf.subarray(t.typeAt, t.offsetAt + 8)]);
    const dataOffset = Math.ceil(header.length / 32) * 32;
    writeFileSync(path, Buffer.concat([header, Buffer.alloc(dataOffset - header.length)]));
    truncateSync(path, dataOffset + 2 ** 31);
    const before = process.memoryUsage();
    const started = performance.now();
    const f = await readGguf(path);
    const elapsed = performance.now() - started;
    expect(small.tensors[0]!.dims).toEqual([1024]);
    expect(f.fileSize).toBe(dataOffset + 2 ** 31);
    expect(f.tensors[0]).toMatchObject({ dims: [1024, 524288], byteSize: 2 ** 31 });
    expect(elapsed).toBeLessThan(1000);
    expect(process.memoryUsage().arrayBuffers - before.arrayBuffers).toBeLessThan(16 * 1024 * 1024);
    rmSync(path);
  });

  it('knows the block sizes of all ggml types of the pinned llama.cpp', () => {
    expect(GGML_TYPES[GgmlType.Q4_K]).toMatchObject({ name: 'Q4_K', blockSize: 256, bytesPerBlock: 144 });
    expect(GGML_TYPES[GgmlType.Q8_0]).toMatchObject({ blockSize: 32, bytesPerBlock: 34 });
    expect(GGML_TYPES[GgmlType.Q6_K]).toMatchObject({ blockSize: 256, bytesPerBlock: 210 });
    expect(GGML_TYPES[GgmlType.IQ4_XS]).toMatchObject({ blockSize: 256, bytesPerBlock: 136 });
    expect(GGML_TYPES[GgmlType.MXFP4]).toMatchObject({ blockSize: 32, bytesPerBlock: 17 });
    expect(GGML_TYPES[GgmlType.TQ1_0]).toMatchObject({ blockSize: 256, bytesPerBlock: 54 });
    expect(GGML_TYPES[4]).toBeUndefined();
    expect(Object.keys(GGML_TYPES)).toHaveLength(35);
    // cross-check against gguf-py's table when the vendored sources are present
    const constants = resolve(repoRoot, 'vendor/llama.cpp/gguf-py/gguf/constants.py');
    if (existsSync(constants)) {
      const text = readFileSync(constants, 'utf8');
      const section = text.slice(text.indexOf('GGML_QUANT_SIZES: dict'));
      const qkK = 256;
      for (const t of Object.values(GGML_TYPES)) {
        const m = new RegExp(`GGMLQuantizationType\\.${t!.name}:\\s*\\((\\d+),\\s*([^)]+)\\)`).exec(section);
        expect(m, t!.name).not.toBeNull();
        const bytes = Function('QK_K', `return ${m![2]!.replace(/\/\//g, '/')}`)(qkK) as number;
        expect([Number(m![1]), bytes], t!.name).toEqual([t!.blockSize, t!.bytesPerBlock]);
      }
    }
  });
});

// ---- synthetic models -----------------------------------------------------------------------------

const distGguf = resolve(repoRoot, 'dist/cjs/gguf/index.js');
const quantizeBin = resolve(repoRoot, 'build/tools/llama-quantize');

describe.runIf(existsSync(distGguf) && haveModel(PHI3))('scripts/synthetic-model.mjs', () => {
  it('writes a llama model with the tensors llama.cpp expects and the phi-3 tokenizer, then quantizes it', async () => {
    const cacheDir = join(tmp, 'synthetic');
    const mod = await import('../scripts/synthetic-model.mjs');
    const quants = existsSync(quantizeBin) ? ['F16', 'Q4_K_M'] : ['F16'];
    const { paths, params } = await mod.ensureSyntheticModels({ preset: 'tiny', quants, vocab: modelPath(PHI3), cacheDir, quantizeBin, seed: 1 });
    expect(params).toBe(17_990_912);
    const f16 = await readGguf(paths.F16, { maxArrayLength: Infinity });
    const vocab = await readGguf(modelPath(PHI3), { maxArrayLength: Infinity });
    expect(f16.metadata['general.architecture']).toBe('llama');
    expect(f16.metadata['general.name']).toBe('tea-synthetic-tiny');
    expect(f16.metadata['general.file_type']).toBe(1);
    expect(f16.metadata['llama.context_length']).toBe(4096);
    expect(f16.metadata['llama.embedding_length']).toBe(256);
    expect(f16.metadata['llama.block_count']).toBe(2);
    expect(f16.metadata['llama.feed_forward_length']).toBe(768);
    expect(f16.metadata['llama.attention.head_count']).toBe(4);
    expect(f16.metadata['llama.attention.head_count_kv']).toBe(2);
    expect(f16.metadata['llama.rope.dimension_count']).toBe(64);
    expect(f16.metadata['llama.vocab_size']).toBe(32064);
    for (const e of vocab.entries.filter((x) => x.key.startsWith('tokenizer.'))) {
      expect(f16.entries.find((x) => x.key === e.key), e.key).toEqual(e);
    }
    expect(f16.metadata['tokenizer.chat_template']).toBe(vocab.metadata['tokenizer.chat_template']);

    const shapes = Object.fromEntries(f16.tensors.map((t) => [t.name, [t.typeName, ...t.dims]]));
    expect(f16.tensors).toHaveLength(3 + 2 * 9);
    expect(shapes['token_embd.weight']).toEqual(['F16', 256, 32064]);
    expect(shapes['output_norm.weight']).toEqual(['F32', 256]);
    expect(shapes['output.weight']).toEqual(['F16', 256, 32064]);
    expect(shapes['blk.1.attn_norm.weight']).toEqual(['F32', 256]);
    expect(shapes['blk.1.attn_q.weight']).toEqual(['F16', 256, 256]);
    expect(shapes['blk.1.attn_k.weight']).toEqual(['F16', 256, 128]);
    expect(shapes['blk.1.attn_v.weight']).toEqual(['F16', 256, 128]);
    expect(shapes['blk.1.attn_output.weight']).toEqual(['F16', 256, 256]);
    expect(shapes['blk.1.ffn_norm.weight']).toEqual(['F32', 256]);
    expect(shapes['blk.1.ffn_gate.weight']).toEqual(['F16', 256, 768]);
    expect(shapes['blk.1.ffn_down.weight']).toEqual(['F16', 768, 256]);
    expect(shapes['blk.1.ffn_up.weight']).toEqual(['F16', 256, 768]);

    // weights: F16 noise with std ~0.02; norms: 1.0
    const raw = readFileSync(paths.F16);
    const q = f16.tensors.find((t) => t.name === 'blk.0.attn_q.weight')!;
    let sum = 0;
    let sq = 0;
    const n = 256 * 256;
    for (let i = 0; i < n; i++) {
      const v = float16BitsToFloat32(raw.readUInt16LE(f16.dataOffset + q.offset + 2 * i));
      sum += v;
      sq += v * v;
    }
    const mean = sum / n;
    expect(Math.abs(mean)).toBeLessThan(0.001);
    expect(Math.sqrt(sq / n - mean * mean)).toBeCloseTo(0.02, 3);
    const norm = f16.tensors.find((t) => t.name === 'output_norm.weight')!;
    expect(raw.readFloatLE(f16.dataOffset + norm.offset + 4 * 17)).toBe(1);

    // cached: a second call reuses the files
    const again = await mod.ensureSyntheticModels({ preset: 'tiny', quants, vocab: modelPath(PHI3), cacheDir, quantizeBin, seed: 1 });
    expect(again.created).toEqual([]);
    expect(readdirSync(cacheDir).sort()).toEqual(quants.map((qq) => `synthetic-tiny-${qq}.gguf`).sort());

    if (paths.Q4_K_M) {
      const q4 = await readGguf(paths.Q4_K_M);
      expect(q4.tensors.some((t) => t.typeName === 'Q4_K')).toBe(true);
      expect(q4.metadata['tokenizer.chat_template']).toBe(vocab.metadata['tokenizer.chat_template']);
      // llama.cpp loads it and generates (llama-completion's stdout is sometimes cut short at exit: not used here).
      await using model = await loadModel(paths.Q4_K_M, { contextSize: 64, threads: 2 });
      const out = await model.complete('Hello', { maxTokens: 4, temperature: 0 });
      expect(out.completionTokens).toBeGreaterThan(0);
    }
  }, 120_000);
});
