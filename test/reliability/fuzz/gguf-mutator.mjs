// Seeded, reproducible mutations of real GGUF files, for the fuzz tests (test/reliability/fuzz-gguf.test.ts).
//
// A case is a pure function of (seed, index, source files): the same seed gives the same bytes on every machine,
// so a failing case is reproduced with `node test/reliability/fuzz/run-fuzz.mjs --seed S --case I`.
//
// Three kinds of cases:
// - systematic truncations at every section boundary of every source file (header fields, each key/value entry and
//   each of its fields, each tensor info and each of its fields, the data section, each tensor's data);
// - structural mutations: the file is parsed into header / key-value entries / tensor infos / data, edited (absurd
//   values, wrong value types, missing and duplicate keys, another architecture, lying counts, dimensions, types and
//   offsets, overlapping or out-of-file tensors, bad vocabularies...) and serialized again, so most of them are
//   well-formed GGUF whose contents lie, and reach llama.cpp's loader past the TypeScript pre-check;
// - byte-level damage on top: flipped bytes in the header, the key/value section and the tensor table, absurd
//   lengths and counts written over located fields, and truncation.

import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
// Block sizes of the ggml types, from the library itself (dist/ is built by `npm run build:ts`, run by pretest).
const { GGML_TYPES } = require('../../../dist/cjs/gguf/types.js');

export const T = { U8: 0, I8: 1, U16: 2, I16: 3, U32: 4, I32: 5, F32: 6, BOOL: 7, STR: 8, ARR: 9, U64: 10, I64: 11, F64: 12 };
const SCALAR_SIZE = { 0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8 };
const INT_TYPES = [T.U8, T.I8, T.U16, T.I16, T.U32, T.I32, T.U64, T.I64];

// ---- random numbers ---------------------------------------------------------------------------------------------

/** 32-bit FNV-1a of a string: turns (seed, index) into an independent stream per case. */
function hash(text) {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

/** mulberry32: small, fast, good enough for choosing mutations. */
export function rng(seed) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const r = {
    next,
    int: (n) => Math.floor(next() * n),
    range: (lo, hi) => lo + Math.floor(next() * (hi - lo + 1)),
    pick: (list) => list[Math.floor(next() * list.length)],
    chance: (p) => next() < p,
    /** Picks a key of `weights` with probability proportional to its value. */
    weighted: (weights) => {
      const total = Object.values(weights).reduce((a, b) => a + b, 0);
      let x = next() * total;
      for (const [k, w] of Object.entries(weights)) {
        if ((x -= w) < 0) return k;
      }
      return Object.keys(weights)[0];
    },
  };
  return r;
}

// ---- parsing and serializing ------------------------------------------------------------------------------------

class Cursor {
  constructor(buf) {
    this.b = buf;
    this.p = 0;
  }
  u32() {
    const v = this.b.readUInt32LE(this.p);
    this.p += 4;
    return v;
  }
  i32() {
    const v = this.b.readInt32LE(this.p);
    this.p += 4;
    return v;
  }
  u64() {
    const v = this.b.readBigUInt64LE(this.p);
    this.p += 8;
    return v;
  }
  i64() {
    const v = this.b.readBigInt64LE(this.p);
    this.p += 8;
    return v;
  }
  str() {
    const n = Number(this.u64());
    const s = this.b.subarray(this.p, this.p + n);
    this.p += n;
    return s;
  }
  skipValue(type) {
    if (type === T.STR) this.str();
    else if (type === T.ARR) {
      const item = this.i32();
      const n = Number(this.u64());
      for (let i = 0; i < n; i++) this.skipValue(item);
    } else this.p += SCALAR_SIZE[type];
  }
}

/**
 * Parses a valid GGUF file into an editable document and a map of where every field is (for byte-level damage and
 * boundary truncation). Only used on the unmodified source files.
 */
export function parseGguf(buf) {
  const c = new Cursor(buf);
  const fields = []; // { at, size, what }
  const boundaries = new Set([0, 4, 8, 16, 24]);
  c.p = 4;
  const version = c.u32();
  const nTensors = Number(c.i64());
  const nKv = Number(c.i64());
  fields.push({ at: 4, size: 4, what: 'version' }, { at: 8, size: 8, what: 'tensor count' }, { at: 16, size: 8, what: 'kv count' });
  const kvs = [];
  let alignment = 32;
  for (let i = 0; i < nKv; i++) {
    const start = c.p;
    boundaries.add(start);
    fields.push({ at: c.p, size: 8, what: `key length ${i}` });
    const key = c.str();
    boundaries.add(c.p);
    fields.push({ at: c.p, size: 4, what: `value type ${i}` });
    const type = c.u32();
    const valueAt = c.p;
    boundaries.add(valueAt);
    if (type === T.STR) fields.push({ at: c.p, size: 8, what: `string length ${i}` });
    if (type === T.ARR) {
      fields.push({ at: c.p, size: 4, what: `array item type ${i}` }, { at: c.p + 4, size: 8, what: `array count ${i}` });
      const item = buf.readInt32LE(c.p);
      if (item === T.STR && buf.readBigUInt64LE(c.p + 4) > 0n) fields.push({ at: c.p + 12, size: 8, what: `array string length ${i}` });
      boundaries.add(c.p + 12);
    }
    c.skipValue(type);
    const raw = Buffer.from(buf.subarray(valueAt, c.p));
    kvs.push({ key: Buffer.from(key), type, raw });
    if (key.toString() === 'general.alignment' && type === T.U32) alignment = raw.readUInt32LE(0);
  }
  const tensors = [];
  for (let i = 0; i < nTensors; i++) {
    boundaries.add(c.p);
    fields.push({ at: c.p, size: 8, what: `tensor name length ${i}` });
    const name = c.str();
    boundaries.add(c.p);
    fields.push({ at: c.p, size: 4, what: `tensor n_dims ${i}` });
    const nDims = c.u32();
    const dims = [];
    for (let d = 0; d < nDims; d++) {
      fields.push({ at: c.p, size: 8, what: `tensor dim ${i}.${d}` });
      dims.push(c.i64());
    }
    boundaries.add(c.p);
    fields.push({ at: c.p, size: 4, what: `tensor type ${i}` });
    const type = c.i32();
    boundaries.add(c.p);
    fields.push({ at: c.p, size: 8, what: `tensor offset ${i}` });
    const offset = c.u64();
    tensors.push({ name: Buffer.from(name), dims, type, offset });
  }
  const infoEnd = c.p;
  boundaries.add(infoEnd);
  const dataOffset = nTensors > 0 ? Math.ceil(infoEnd / alignment) * alignment : infoEnd;
  boundaries.add(dataOffset);
  for (const t of tensors) boundaries.add(dataOffset + Number(t.offset));
  boundaries.add(buf.length - 1);
  const doc = { magic: Buffer.from(buf.subarray(0, 4)), version, kvs, tensors, alignment, data: Buffer.from(buf.subarray(dataOffset)) };
  return { doc, fields, boundaries: [...boundaries].filter((b) => b > 0 && b < buf.length).sort((a, b) => a - b), infoEnd, dataOffset, size: buf.length };
}

function u32(v) {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v >>> 0);
  return b;
}
function i32(v) {
  const b = Buffer.alloc(4);
  b.writeInt32LE(v | 0);
  return b;
}
function u64(v) {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt.asUintN(64, BigInt(v)));
  return b;
}
export function gstr(bytes) {
  const b = Buffer.isBuffer(bytes) ? bytes : Buffer.from(String(bytes));
  return Buffer.concat([u64(b.length), b]);
}

/** Encodes a scalar of a GGUF type; integers wrap to the type's width (that is how absurd values are made). */
export function encodeScalar(type, value) {
  const b = Buffer.alloc(SCALAR_SIZE[type] ?? 0);
  const big = (v) => (typeof v === 'bigint' ? v : BigInt(Math.trunc(Number.isFinite(v) ? v : 0)));
  switch (type) {
    case T.U8:
    case T.I8:
    case T.BOOL:
      b.writeUInt8(Number(BigInt.asUintN(8, big(value))));
      break;
    case T.U16:
    case T.I16:
      b.writeUInt16LE(Number(BigInt.asUintN(16, big(value))));
      break;
    case T.U32:
    case T.I32:
      b.writeUInt32LE(Number(BigInt.asUintN(32, big(value))));
      break;
    case T.U64:
    case T.I64:
      b.writeBigUInt64LE(BigInt.asUintN(64, big(value)));
      break;
    case T.F32:
      b.writeFloatLE(Number(value));
      break;
    case T.F64:
      b.writeDoubleLE(Number(value));
      break;
    case T.STR:
      return gstr(Buffer.isBuffer(value) ? value : String(value));
    default:
      throw new Error(`not a scalar type ${type}`);
  }
  return b;
}

export function decodeScalar(type, raw, at = 0) {
  switch (type) {
    case T.U8:
      return raw.readUInt8(at);
    case T.I8:
      return raw.readInt8(at);
    case T.BOOL:
      return raw.readUInt8(at) !== 0;
    case T.U16:
      return raw.readUInt16LE(at);
    case T.I16:
      return raw.readInt16LE(at);
    case T.U32:
      return raw.readUInt32LE(at);
    case T.I32:
      return raw.readInt32LE(at);
    case T.U64:
      return raw.readBigUInt64LE(at);
    case T.I64:
      return raw.readBigInt64LE(at);
    case T.F32:
      return raw.readFloatLE(at);
    case T.F64:
      return raw.readDoubleLE(at);
    case T.STR:
      return raw.subarray(at + 8, at + 8 + Number(raw.readBigUInt64LE(at)));
    default:
      throw new Error(`not a scalar type ${type}`);
  }
}

/** Splits an array value into its item type and the raw bytes of each item. */
export function decodeArray(raw) {
  const c = new Cursor(raw);
  const itemType = c.i32();
  const n = Number(c.u64());
  const items = [];
  for (let i = 0; i < n; i++) {
    const start = c.p;
    c.skipValue(itemType);
    items.push(raw.subarray(start, c.p));
  }
  return { itemType, items };
}

export function encodeArray(itemType, items, count = items.length) {
  return Buffer.concat([i32(itemType), u64(count), ...items]);
}

/** Byte size of a tensor, or undefined for an unknown type. */
export function tensorBytes(type, dims) {
  const info = GGML_TYPES[type];
  if (!info) return undefined;
  let n = 1n;
  for (const d of dims) n *= BigInt(d);
  return (n / BigInt(info.blockSize)) * BigInt(info.bytesPerBlock);
}

/**
 * Serializes a document. `nTensors` / `nKv` override the counts written in the header (lying counts); `pad` is the
 * alignment of the data section (the file's own, unless a mutation lies about it).
 */
export function serialize(doc) {
  const parts = [doc.magic, u32(doc.version), u64(doc.nTensors ?? doc.tensors.length), u64(doc.nKv ?? doc.kvs.length)];
  for (const kv of doc.kvs) parts.push(gstr(kv.key), u32(kv.type), kv.raw);
  for (const t of doc.tensors) {
    parts.push(gstr(t.name), u32(t.dims.length), ...t.dims.map((d) => u64(d)), i32(t.type), u64(t.offset));
  }
  let header = Buffer.concat(parts);
  if (doc.tensors.length > 0 || doc.nTensors) {
    const pad = doc.alignment > 0 ? (doc.alignment - (header.length % doc.alignment)) % doc.alignment : 0;
    header = Buffer.concat([header, Buffer.alloc(pad)]);
  }
  return Buffer.concat([header, doc.data]);
}

/** Deep enough copy of a document for editing. */
function clone(doc) {
  return {
    ...doc,
    kvs: doc.kvs.map((kv) => ({ ...kv })),
    tensors: doc.tensors.map((t) => ({ ...t, dims: [...t.dims] })),
  };
}

/** Recomputes tensor offsets and the data section after sizes changed (a consistent file with other contents). */
function relayout(doc, r) {
  const chunks = [];
  let offset = 0;
  const align = doc.alignment > 0 ? doc.alignment : 32;
  const oldOffsets = doc.tensors.map((t) => Number(t.offset));
  doc.tensors.forEach((t, i) => {
    const size = tensorBytes(t.type, t.dims);
    // An absurd size cannot be laid out: leave the lie in the table with the old data.
    if (size === undefined || size < 0n || size > 64n * 1024n * 1024n) return;
    const n = Number(size);
    const old = oldOffsets[i];
    const bytes = Buffer.alloc(n);
    doc.data.copy(bytes, 0, Math.min(old, doc.data.length), Math.min(old + n, doc.data.length));
    // Re-typed weights get plausible-looking bytes rather than reinterpreted floats half the time.
    if (r.chance(0.5) && t.type !== 0) for (let k = 0; k < n; k++) bytes[k] = r.int(256);
    t.offset = BigInt(offset);
    const padded = Math.ceil(n / align) * align;
    chunks.push(bytes, Buffer.alloc(padded - n));
    offset += padded;
  });
  doc.data = Buffer.concat(chunks);
}

// ---- value generators -------------------------------------------------------------------------------------------

const ARCHES = [
  'llama', 'gpt2', 'bert', 'phi3', 'phi2', 'mamba', 'mamba2', 'rwkv6', 'rwkv7', 't5', 't5encoder', 'gemma', 'gemma2',
  'gemma3', 'gemma3n', 'qwen2', 'qwen2moe', 'qwen3', 'qwen3moe', 'deepseek2', 'falcon', 'starcoder', 'bloom', 'mpt',
  'jamba', 'falcon-h1', 'nomic-bert', 'jina-bert-v2', 'wavtokenizer-dec', 'chameleon', 'cohere2', 'olmo', 'granite',
  'gpt-oss', 'lfm2', 'llama4', 'minicpm3', 'plamo2', 'nemotron_h', 'qwen3next', 'bitnet', 'arwkv7', 'exaone4', 'deci',
  'clip', 'unknown-arch', '', 'llama\u0000x',
];

const ARCH_KEYS = [
  'context_length', 'embedding_length', 'embedding_length_out', 'feed_forward_length', 'block_count', 'attention.head_count',
  'attention.head_count_kv', 'attention.key_length', 'attention.value_length', 'attention.layer_norm_rms_epsilon',
  'attention.layer_norm_epsilon', 'rope.dimension_count', 'rope.freq_base', 'rope.scaling.type', 'rope.scaling.factor',
  'rope.scaling.original_context_length', 'rope.dimension_sections', 'expert_count', 'expert_used_count', 'expert_shared_count',
  'expert_weights_scale', 'expert_group_count', 'expert_group_used_count', 'expert_feed_forward_length', 'attention.sliding_window',
  'attention.sliding_window_pattern', 'attention.causal', 'pooling_type', 'vocab_size', 'logit_scale', 'attn_logit_softcapping',
  'final_logit_softcapping', 'attention.clamp_kqv', 'attention.max_alibi_bias', 'use_parallel_residual', 'decoder_start_token_id',
  'leading_dense_block_count', 'nextn_predict_layers', 'attention.q_lora_rank', 'attention.kv_lora_rank', 'ssm.conv_kernel',
  'ssm.inner_size', 'ssm.state_size', 'ssm.time_step_rank', 'ssm.group_count', 'wkv.head_size', 'interleave_moe_layer_step',
  'attention.shared_kv_layers', 'full_attention_interval', 'embedding_scale', 'residual_scale', 'attention.scale',
  'posnet.block_count', 'convnext.block_count', 'attention.group_norm_groups', 'rescale_every_n_layers', 'token_shift_count',
  'time_mix_extra_dim', 'time_decay_extra_dim', 'attention.relative_buckets_count', 'decoder_block_count', 'swin_norm',
];

const GLOBAL_KEYS = [
  'general.alignment', 'general.architecture', 'general.file_type', 'general.quantization_version', 'general.name',
  'tokenizer.ggml.model', 'tokenizer.ggml.pre', 'tokenizer.ggml.tokens', 'tokenizer.ggml.scores', 'tokenizer.ggml.token_type',
  'tokenizer.ggml.merges', 'tokenizer.ggml.bos_token_id', 'tokenizer.ggml.eos_token_id', 'tokenizer.ggml.eot_token_id',
  'tokenizer.ggml.eom_token_id', 'tokenizer.ggml.unknown_token_id', 'tokenizer.ggml.seperator_token_id',
  'tokenizer.ggml.padding_token_id', 'tokenizer.ggml.cls_token_id', 'tokenizer.ggml.mask_token_id', 'tokenizer.ggml.add_bos_token',
  'tokenizer.ggml.add_eos_token', 'tokenizer.ggml.add_sep_token', 'tokenizer.ggml.add_space_prefix',
  'tokenizer.ggml.remove_extra_whitespaces', 'tokenizer.ggml.precompiled_charsmap', 'tokenizer.ggml.token_type_count',
  'tokenizer.ggml.fim_pre_token_id', 'tokenizer.ggml.fim_suf_token_id', 'tokenizer.ggml.fim_mid_token_id', 'tokenizer.chat_template',
  'general.sampling.top_k', 'general.sampling.temp', 'split.count', 'split.no', 'adapter.type',
];

const TOKENIZER_MODELS = ['llama', 'gpt2', 'bert', 't5', 'rwkv', 'plamo2', 'gemma4', 'no_vocab', 'none', 'unknown', ''];
const PRE_TOKENIZERS = ['default', 'gpt-2', 'llama3', 'deepseek-llm', 'qwen2', 'bert-bge', 'falcon', 'chatglm-bpe', 'tekken', 'unknown', ''];

function interestingInt(r, original) {
  const o = typeof original === 'bigint' ? original : BigInt(Math.trunc(Number(original ?? 0)));
  return r.pick([
    0n, 1n, 2n, 3n, 7n, 8n, 31n, 32n, 63n, 64n, 255n, 256n, 511n, 512n, 513n, 1023n, 1024n, 4096n, 32767n, 65535n, 65536n,
    2n ** 31n - 1n, 2n ** 31n, 2n ** 32n - 1n, 2n ** 32n, 2n ** 53n, 2n ** 63n - 1n, 2n ** 64n - 1n, -1n, -2n, -(2n ** 31n),
    o - 1n, o + 1n, o * 2n, o / 2n, o * 1000n, BigInt(r.int(1 << 16)), BigInt(r.int(16)),
  ]);
}

function interestingFloat(r) {
  return r.pick([0, -0, 1, -1, 0.5, 1e-30, 1e30, 3.4e38, -3.4e38, 1e-45, NaN, Infinity, -Infinity, r.next() * 100 - 50]);
}

function randomBytes(r, n) {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = r.int(256);
  return b;
}

/** An odd string value: empty, long (up to 64 KiB), random bytes, invalid UTF-8, Jinja, other names... */
function interestingString(r, original) {
  switch (r.int(9)) {
    case 0:
      return Buffer.alloc(0);
    case 1:
      return Buffer.from('A'.repeat(r.pick([63, 64, 65, 255, 256, 4096, 65536])));
    case 2:
      return randomBytes(r, r.range(1, 40));
    case 3:
      return Buffer.from([0xff, 0xfe, 0xc3, 0x28, 0xe2, 0x82]);
    case 4:
      return Buffer.from('{% for m in messages %}{{ m.content }}{% endfor %}{{ raise_exception("x") }}{{ undefined.x.y }}{%');
    case 5:
      return Buffer.from(r.pick(TOKENIZER_MODELS));
    case 6:
      return Buffer.from(r.pick(PRE_TOKENIZERS));
    case 7:
      return Buffer.concat([original ?? Buffer.alloc(0), Buffer.from('\u0000tail')]);
    default:
      return Buffer.from(r.pick(ARCHES));
  }
}

/** A random value of a random type (for retyping and added keys), with its raw encoding. */
function randomValue(r, type = r.pick([...INT_TYPES, T.F32, T.F64, T.BOOL, T.STR, T.STR, T.ARR, T.ARR])) {
  if (type === T.ARR) {
    const itemType = r.pick([...INT_TYPES, T.F32, T.STR, T.BOOL, T.ARR, 13, -1]);
    if (itemType === T.ARR || itemType === 13 || itemType === -1) {
      return { type, raw: encodeArray(itemType, [], r.pick([0, 1, 2])) };
    }
    const n = r.pick([0, 1, 2, 3, 8, 64]);
    const items = Array.from({ length: n }, () => (itemType === T.STR ? gstr(interestingString(r)) : encodeScalar(itemType, itemType === T.F32 ? interestingFloat(r) : interestingInt(r, 0))));
    return { type, raw: encodeArray(itemType, items) };
  }
  if (type === T.STR) return { type, raw: gstr(interestingString(r)) };
  if (type === T.F32 || type === T.F64) return { type, raw: encodeScalar(type, interestingFloat(r)) };
  return { type, raw: encodeScalar(type, interestingInt(r, 0)) };
}

// ---- structural mutations ---------------------------------------------------------------------------------------

const text = (b) => b.toString('utf8');
const archOf = (doc) => {
  const kv = doc.kvs.find((k) => text(k.key) === 'general.architecture' && k.type === T.STR);
  return kv ? text(decodeScalar(T.STR, kv.raw)) : 'llama';
};

/** Each mutation edits `doc` in place and returns a short description. */
const MUTATIONS = {
  kvNumber(doc, r) {
    const numeric = doc.kvs.filter((kv) => kv.type in SCALAR_SIZE && kv.type !== T.BOOL);
    if (numeric.length === 0) return 'no numeric key';
    const kv = r.pick(numeric);
    const old = decodeScalar(kv.type, kv.raw);
    const value = kv.type === T.F32 || kv.type === T.F64 ? interestingFloat(r) : interestingInt(r, old);
    kv.raw = encodeScalar(kv.type, value);
    return `${text(kv.key)} = ${String(value)}`;
  },
  kvString(doc, r) {
    const strings = doc.kvs.filter((kv) => kv.type === T.STR);
    const kv = r.pick(strings);
    const value = interestingString(r, decodeScalar(T.STR, kv.raw));
    kv.raw = gstr(value);
    return `${text(kv.key)} = ${JSON.stringify(value.toString('latin1').slice(0, 24))}(${value.length} bytes)`;
  },
  kvRetype(doc, r) {
    const kv = r.pick(doc.kvs);
    const { type, raw } = randomValue(r);
    kv.type = type;
    kv.raw = raw;
    return `${text(kv.key)} retyped to ${type}`;
  },
  kvDrop(doc, r) {
    const i = r.int(doc.kvs.length);
    const [kv] = doc.kvs.splice(i, 1);
    return `drop ${text(kv.key)}`;
  },
  kvDuplicate(doc, r) {
    const kv = r.pick(doc.kvs);
    const copy = { ...kv };
    if (r.chance(0.5) && kv.type in SCALAR_SIZE) copy.raw = encodeScalar(kv.type, kv.type === T.F32 ? interestingFloat(r) : interestingInt(r, decodeScalar(kv.type, kv.raw)));
    doc.kvs.splice(r.int(doc.kvs.length + 1), 0, copy);
    return `duplicate ${text(kv.key)}`;
  },
  kvAdd(doc, r) {
    const arch = archOf(doc);
    const key = r.chance(0.6) ? `${arch}.${r.pick(ARCH_KEYS)}` : r.pick(GLOBAL_KEYS);
    const existing = doc.kvs.findIndex((kv) => text(kv.key) === key);
    const plausible = r.chance(0.6);
    const value = plausible
      ? { type: T.U32, raw: encodeScalar(T.U32, interestingInt(r, 4)) }
      : randomValue(r);
    if (existing >= 0 && r.chance(0.7)) doc.kvs[existing] = { key: Buffer.from(key), ...value };
    else doc.kvs.push({ key: Buffer.from(key), ...value });
    return `set ${key} (type ${value.type})`;
  },
  archSwap(doc, r) {
    const from = archOf(doc);
    const to = r.pick(ARCHES);
    for (const kv of doc.kvs) {
      const k = text(kv.key);
      if (k === 'general.architecture') kv.raw = gstr(to);
      else if (k.startsWith(`${from}.`) && r.chance(0.9)) kv.key = Buffer.from(`${to}.${k.slice(from.length + 1)}`);
    }
    return `architecture ${from} -> ${to}`;
  },
  arrayItems(doc, r) {
    const arrays = doc.kvs.filter((kv) => kv.type === T.ARR);
    if (arrays.length === 0) return 'no array';
    const kv = r.pick(arrays);
    const { itemType, items } = decodeArray(kv.raw);
    const name = text(kv.key);
    const edit = r.int(8);
    let what;
    if (edit === 0) {
      const n = r.pick([0, 1, 2, 3, 10, Math.floor(items.length / 2), Math.max(0, items.length - 1)]);
      kv.raw = encodeArray(itemType, items.slice(0, n));
      what = `truncated to ${n}`;
    } else if (edit === 1) {
      const extra = r.pick([1, 2, 17, 300]);
      kv.raw = encodeArray(itemType, [...items, ...Array.from({ length: extra }, () => r.pick(items) ?? encodeScalar(T.U8, 0))]);
      what = `extended by ${extra}`;
    } else if (edit === 2 && items.length > 0) {
      // Duplicate entries: e.g. two tokens with the same text.
      const copy = [...items];
      const n = r.pick([1, 2, 10]);
      for (let k = 0; k < n; k++) copy[r.int(copy.length)] = copy[r.int(copy.length)];
      kv.raw = encodeArray(itemType, copy);
      what = `${n} duplicated items`;
    } else if (edit === 3) {
      const newType = r.pick([...INT_TYPES, T.F32, T.F64, T.STR, T.BOOL]);
      // Short strings: a whole vocabulary of 64 KiB strings would make a file of gigabytes, which tests nothing.
      const converted = items.map(() => (newType === T.STR ? gstr(interestingString(r).subarray(0, 64)) : encodeScalar(newType, newType === T.F32 || newType === T.F64 ? interestingFloat(r) : interestingInt(r, 1))));
      kv.raw = encodeArray(newType, converted);
      what = `items retyped to ${newType}`;
    } else {
      // Absurd individual items: token types out of range, NaN scores, empty / huge / invalid tokens, bad merges.
      const copy = [...items];
      const n = r.pick([1, 3, 20]);
      for (let k = 0; k < n && copy.length > 0; k++) {
        const i = r.chance(0.3) ? r.int(Math.min(copy.length, 16)) : r.int(copy.length);
        if (itemType === T.STR) {
          const s = r.pick([Buffer.alloc(0), Buffer.from(' '), Buffer.from('a b c'), Buffer.from('<0xZZ>'), Buffer.from('<0x0A>'), Buffer.from('\n'), interestingString(r)]);
          copy[i] = gstr(s);
        } else if (itemType in SCALAR_SIZE) {
          copy[i] = encodeScalar(itemType, itemType === T.F32 || itemType === T.F64 ? interestingFloat(r) : interestingInt(r, decodeScalar(itemType, copy[i])));
        }
      }
      kv.raw = encodeArray(itemType, copy);
      what = `${n} absurd items`;
    }
    return `${name}: ${what}`;
  },
  tokenIds(doc, r) {
    // Special-token ids that point outside the vocabulary or at odd tokens.
    const keys = ['bos', 'eos', 'eot', 'eom', 'unknown', 'seperator', 'padding', 'cls', 'mask', 'fim_pre', 'fim_suf', 'fim_mid'];
    const key = `tokenizer.ggml.${r.pick(keys)}_token_id`;
    const value = r.pick([0n, 1n, 2n, 511n, 512n, 513n, 32063n, 32064n, 50256n, 50257n, 2n ** 31n - 1n, 2n ** 32n - 1n, -1n, -2n]);
    const type = r.chance(0.8) ? T.U32 : r.pick([T.I32, T.U64, T.I64, T.U8]);
    const existing = doc.kvs.find((kv) => text(kv.key) === key);
    if (existing) Object.assign(existing, { type, raw: encodeScalar(type, value) });
    else doc.kvs.push({ key: Buffer.from(key), type, raw: encodeScalar(type, value) });
    return `${key} = ${value}`;
  },
  alignment(doc, r) {
    const value = r.pick([0, 1, 2, 3, 8, 16, 24, 64, 4096, 1 << 20, 2 ** 31, 2 ** 32 - 1]);
    const type = r.chance(0.8) ? T.U32 : r.pick([T.U64, T.I32, T.U8]);
    const kv = doc.kvs.find((k) => text(k.key) === 'general.alignment');
    if (kv) Object.assign(kv, { type, raw: encodeScalar(type, value) });
    else doc.kvs.push({ key: Buffer.from('general.alignment'), type, raw: encodeScalar(type, value) });
    // Half the time the file is laid out with the new alignment, so only the value is wrong.
    if (r.chance(0.5) && type === T.U32 && value > 0 && (value & (value - 1)) === 0 && value <= 4096) {
      doc.alignment = value;
      relayout(doc, r);
    }
    return `general.alignment = ${value} (type ${type})`;
  },
  tensorDims(doc, r) {
    if (doc.tensors.length === 0) return 'no tensors';
    const t = r.pick(doc.tensors);
    const d = r.int(t.dims.length);
    const edit = r.int(5);
    if (edit === 0) t.dims[d] = r.pick([0n, 1n, 2n, 3n, t.dims[d] * 2n, t.dims[d] / 2n, t.dims[d] + 1n, 2n ** 31n, 2n ** 32n + 1n, 2n ** 40n, -1n, 2n ** 63n - 1n]);
    else if (edit === 1) t.dims.reverse();
    else if (edit === 2 && t.dims.length < 4) t.dims.push(r.pick([1n, 1n, 2n, 64n]));
    else if (edit === 3 && t.dims.length > 1) t.dims.pop();
    else t.dims = t.dims.map(() => BigInt(r.pick([1, 2, 8, 64, 172, 512])));
    const consistent = r.chance(0.6);
    if (consistent) relayout(doc, r);
    return `${text(t.name)} dims [${t.dims.join(',')}]${consistent ? ' (relaid out)' : ''}`;
  },
  tensorType(doc, r) {
    if (doc.tensors.length === 0) return 'no tensors';
    const t = r.pick(doc.tensors);
    t.type = r.chance(0.85) ? r.pick([0, 1, 2, 3, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 20, 23, 24, 25, 26, 27, 28, 30, 34, 35, 39, 40, 41, 42]) : r.pick([4, 5, 31, 43, 99, -1, 2 ** 31 - 1]);
    const consistent = r.chance(0.7);
    if (consistent) relayout(doc, r);
    return `${text(t.name)} type ${t.type}${consistent ? ' (relaid out)' : ''}`;
  },
  tensorOffset(doc, r) {
    if (doc.tensors.length === 0) return 'no tensors';
    const i = r.int(doc.tensors.length);
    const t = doc.tensors[i];
    const prev = doc.tensors[Math.max(0, i - 1)];
    const size = BigInt(doc.data.length);
    t.offset = r.pick([0n, prev.offset, t.offset + 32n, t.offset + 1n, t.offset - 32n, size, size - 32n, size + 32n, 2n ** 63n, 2n ** 64n - 32n, 2n ** 64n - 1n]);
    return `${text(t.name)} offset ${t.offset}`;
  },
  tensorName(doc, r) {
    if (doc.tensors.length === 0) return 'no tensors';
    const t = r.pick(doc.tensors);
    const old = text(t.name);
    t.name = r.pick([
      r.pick(doc.tensors).name,
      Buffer.from('x'.repeat(r.pick([63, 64, 65, 300]))),
      Buffer.alloc(0),
      Buffer.from(old.replace(/\d+/, '99')),
      Buffer.from(old.replace(/weight$/, 'bias')),
      Buffer.from(`${old}\u0000`),
      randomBytes(r, 8),
    ]);
    return `rename ${old} -> ${JSON.stringify(text(t.name).slice(0, 30))}`;
  },
  tensorList(doc, r) {
    if (doc.tensors.length === 0) {
      doc.tensors.push({ name: Buffer.from('token_embd.weight'), dims: [64n, 8n], type: 0, offset: 0n });
      doc.data = Buffer.alloc(64 * 8 * 4);
      return 'add a tensor to a vocab-only file';
    }
    const edit = r.int(4);
    const i = r.int(doc.tensors.length);
    const name = text(doc.tensors[i].name);
    if (edit === 0) {
      doc.tensors.splice(i, 1);
      if (r.chance(0.5)) relayout(doc, r);
      return `drop tensor ${name}`;
    }
    if (edit === 1) {
      doc.tensors.splice(r.int(doc.tensors.length), 0, { ...doc.tensors[i], dims: [...doc.tensors[i].dims] });
      if (r.chance(0.5)) relayout(doc, r);
      return `duplicate tensor ${name}`;
    }
    if (edit === 2) {
      const j = r.int(doc.tensors.length);
      [doc.tensors[i], doc.tensors[j]] = [doc.tensors[j], doc.tensors[i]];
      if (r.chance(0.5)) relayout(doc, r);
      return `swap tensors ${i} and ${j}`;
    }
    doc.tensors.push({ name: Buffer.from(`blk.${r.int(40)}.extra.weight`), dims: [64n, 64n], type: 0, offset: BigInt(doc.data.length) });
    doc.data = Buffer.concat([doc.data, Buffer.alloc(64 * 64 * 4)]);
    return 'add an unknown tensor';
  },
  header(doc, r) {
    const edit = r.int(4);
    if (edit === 0) {
      doc.version = r.pick([0, 1, 2, 4, 0x03000000, 0xffffffff]);
      return `version ${doc.version}`;
    }
    if (edit === 1) {
      doc.nTensors = BigInt(doc.tensors.length) + r.pick([1n, -1n, 2n, 1000n, 2n ** 32n, 2n ** 62n, -(2n ** 63n)]);
      return `tensor count ${doc.nTensors}`;
    }
    if (edit === 2) {
      doc.nKv = BigInt(doc.kvs.length) + r.pick([1n, -1n, 2n, 1000n, 2n ** 32n, 2n ** 62n, -(2n ** 63n)]);
      return `kv count ${doc.nKv}`;
    }
    doc.magic = r.pick([Buffer.from('GGUG'), Buffer.from('FUGG'), Buffer.from('ggml'), Buffer.alloc(4)]);
    return `magic ${doc.magic.toString('hex')}`;
  },
  weights(doc, r) {
    if (doc.data.length < 4) return 'no data';
    const value = r.pick([NaN, Infinity, -Infinity, 3.4e38, 1e-45]);
    const start = r.int(doc.data.length >> 2) << 2;
    const n = r.pick([1, 64, 4096, doc.data.length]);
    // clone() shares the data section with the source: written in place, these floats would be in every later
    // case of the process (a case's file must depend on its index alone, or replaying it would not reproduce it).
    doc.data = Buffer.from(doc.data);
    for (let p = start; p + 4 <= doc.data.length && p < start + n * 4; p += 4) doc.data.writeFloatLE(value, p);
    return `weights from ${start}: ${value}`;
  },
};

const STRUCTURAL_WEIGHTS = {
  kvNumber: 14, kvString: 6, kvRetype: 6, kvDrop: 5, kvDuplicate: 4, kvAdd: 12, archSwap: 5, arrayItems: 12, tokenIds: 8,
  alignment: 3, tensorDims: 8, tensorType: 7, tensorOffset: 4, tensorName: 4, tensorList: 4, header: 3, weights: 3,
};

/** Without tensors, the tensor mutations have nothing to edit (tensorList adds one). */
const VOCAB_WEIGHTS = Object.fromEntries(
  Object.entries(STRUCTURAL_WEIGHTS).filter(([k]) => !['tensorDims', 'tensorType', 'tensorOffset', 'tensorName', 'weights'].includes(k)),
);

// ---- byte-level damage ------------------------------------------------------------------------------------------

function absurdField(buf, layout, r) {
  const inRange = layout.fields.filter((f) => f.at + f.size <= buf.length);
  if (inRange.length === 0) return 'no field';
  const f = r.pick(inRange);
  const remaining = BigInt(buf.length - f.at - f.size);
  const value = r.pick([0n, 1n, 2n ** 31n - 1n, 2n ** 32n - 1n, 2n ** 63n - 1n, 2n ** 64n - 1n, 2n ** 40n, remaining, remaining + 1n, remaining - 1n, BigInt(buf.length)]);
  if (f.size === 8) buf.writeBigUInt64LE(BigInt.asUintN(64, value), f.at);
  else buf.writeUInt32LE(Number(BigInt.asUintN(32, value)), f.at);
  return `${f.what} @${f.at} = ${value}`;
}

function flipBytes(buf, layout, r) {
  const n = r.pick([1, 1, 2, 4, 8]);
  const spots = [];
  for (let k = 0; k < n; k++) {
    const region = r.int(4);
    const end = Math.min(buf.length, layout.infoEnd);
    const pos = region === 0 ? r.int(Math.min(24, buf.length)) : region === 3 && layout.tensorTableAt < end ? r.range(layout.tensorTableAt, end - 1) : r.int(Math.max(1, end));
    if (pos >= buf.length) continue;
    buf[pos] = r.chance(0.5) ? buf[pos] ^ (1 << r.int(8)) : r.pick([0x00, 0xff, 0x7f, 0x80, r.int(256)]);
    spots.push(pos);
  }
  return `flip @${spots.join(',')}`;
}

// ---- regression cases -------------------------------------------------------------------------------------------

/** Sets (or adds) a key. */
function setKv(doc, key, type, raw) {
  const kv = doc.kvs.find((k) => text(k.key) === key);
  if (kv) Object.assign(kv, { type, raw });
  else doc.kvs.push({ key: Buffer.from(key), type, raw });
}

/** Edits the items of an array key. */
function editArray(doc, key, edit) {
  const kv = doc.kvs.find((k) => text(k.key) === key);
  const { itemType, items } = decodeArray(kv.raw);
  kv.raw = encodeArray(itemType, edit([...items]));
}

const tensorNamed = (doc, name) => doc.tensors.find((t) => text(t.name) === name);
const quiet = rng(1); // relayout's random bytes, fixed

/**
 * Every crash the fuzzing found, as a hand-made file: each must now end in the typed error given. They run first in
 * every campaign (indices 0..REGRESSIONS.length-1), so a fix that regresses fails the default run at once.
 */
export const REGRESSIONS = [
  {
    name: 'two tokens with the same text (llama-vocab.cpp: GGML_ASSERT(id_to_token.size() == token_to_id.size()))',
    source: 'stories260K.gguf',
    edit: (doc) => editArray(doc, 'tokenizer.ggml.tokens', (items) => ((items[300] = items[301]), items)),
    expect: { stage: 'load', result: 'ERR_MODEL_INVALID', message: /token 301 .* has the same text as token 300/ },
  },
  {
    name: 'an empty token next to a token spelled like its placeholder "[EMPTY_5]" (the same assert)',
    source: 'stories260K.gguf',
    edit: (doc) => editArray(doc, 'tokenizer.ggml.tokens', (items) => ((items[5] = gstr('')), (items[6] = gstr('[EMPTY_5]')), items)),
    expect: { stage: 'load', result: 'ERR_MODEL_INVALID', message: /same text as token 5/ },
  },
  {
    name: 'an SPM vocabulary too small for its default BOS id (llama-vocab.cpp: GGML_ASSERT(special_bos_id != LLAMA_TOKEN_NULL) in tokenize)',
    source: 'stories260K.gguf',
    vocabOnly: true,
    edit: (doc) => editArray(doc, 'tokenizer.ggml.tokens', (items) => items.slice(0, 1)),
    expect: { stage: 'load', result: 'ERR_MODEL_INVALID', message: /adds a BOS token/ },
  },
  {
    name: 'a WordPiece vocabulary without its [CLS] token (the same assert, WPM branch)',
    source: 'ggml-vocab-bert-bge.gguf',
    vocabOnly: true,
    edit: (doc) => editArray(doc, 'tokenizer.ggml.tokens', (items) => items.slice(0, 100)),
    expect: { stage: 'load', result: 'ERR_MODEL_INVALID', message: /WordPiece/ },
  },
  {
    name: 'a WordPiece token of type BYTE (llama-vocab.cpp token_to_byte: GGML_ABORT)',
    source: 'ggml-vocab-bert-bge.gguf',
    vocabOnly: true,
    edit: (doc) => editArray(doc, 'tokenizer.ggml.token_type', (items) => ((items[200] = encodeScalar(T.I32, 6)), items)),
    expect: { stage: 'load', result: 'ERR_MODEL_INVALID', message: /token 200 .*type BYTE/ },
  },
  {
    name: 'an SPM vocabulary read as RWKV (llama_tokenize looped forever, 16 GB and a minute before bad_alloc)',
    source: 'ggml-vocab-phi-3.gguf',
    vocabOnly: true,
    edit: (doc) => setKv(doc, 'tokenizer.ggml.model', T.STR, gstr('rwkv')),
    expect: { stage: 'load', result: 'ERR_MODEL_INVALID', message: /RWKV vocabulary without a token for byte/ },
  },
  {
    name: 'tokenizer.ggml.model = no_vocab (llama-vocab.cpp: GGML_ASSERT(tokenizer && "Tokenizer not initialized"))',
    source: 'ggml-vocab-gpt-2.gguf',
    vocabOnly: true,
    edit: (doc) => setKv(doc, 'tokenizer.ggml.model', T.STR, gstr('no_vocab')),
    expect: { stage: 'load', result: 'ERR_MODEL_INVALID', message: /no tokenizer/ },
  },
  {
    name: 'a vocabulary without the byte token a text needs (std::out_of_range from llama_tokenize: was ERR_INTERNAL)',
    source: 'stories260K.gguf',
    edit: (doc) => editArray(doc, 'tokenizer.ggml.tokens', (items) => items.map((item) => (text(decodeScalar(T.STR, item)) === '<0x0A>' ? gstr('<0xnewline>') : item))),
    expect: { stage: 'tokenize', result: 'ERR_MODEL_INVALID', message: /vocabulary cannot handle this text/ },
  },
  {
    name: 'a negative RMS-norm epsilon (ggml-cpu ops.cpp: GGML_ASSERT(eps >= 0.0f) at the first decode)',
    source: 'stories260K.gguf',
    edit: (doc) => setKv(doc, 'llama.attention.layer_norm_rms_epsilon', T.F32, encodeScalar(T.F32, -1e-5)),
    expect: { stage: 'load', result: 'ERR_MODEL_INVALID', message: /layer_norm_rms_epsilon is -0\.0000/ },
  },
  {
    name: 'a NaN RMS-norm epsilon (the same assert)',
    source: 'stories260K.gguf',
    edit: (doc) => setKv(doc, 'llama.attention.layer_norm_rms_epsilon', T.F32, encodeScalar(T.F32, NaN)),
    expect: { stage: 'load', result: 'ERR_MODEL_INVALID', message: /epsilon is NaN/ },
  },
  {
    name: 'an unknown rope scaling type (llama-model.cpp: GGML_ASSERT(rope_scaling_type_train != UNSPECIFIED))',
    source: 'stories260K.gguf',
    edit: (doc) => setKv(doc, 'llama.rope.scaling.type', T.STR, gstr('falcon')),
    expect: { stage: 'load', result: 'ERR_MODEL_INVALID', message: /rope\.scaling\.type/ },
  },
  {
    name: 'expert groups without experts (llama-model.cpp: GGML_ASSERT(hparams.n_expert_groups == 0))',
    source: 'stories260K.gguf',
    edit: (doc) => setKv(doc, 'llama.expert_group_count', T.U32, encodeScalar(T.U32, 4)),
    expect: { stage: 'load', result: 'ERR_MODEL_INVALID', message: /expert_group_count is 4 but the model has no experts/ },
  },
  {
    name: 'a quantized norm vector (ggml-cpu binary-ops.cpp: binary_op: unsupported types, GGML_ABORT)',
    source: 'stories260K.gguf',
    edit: (doc) => ((tensorNamed(doc, 'blk.0.attn_norm.weight').type = 8), relayout(doc, quiet)),
    expect: { stage: 'load', result: 'ERR_MODEL_INVALID', message: /blk\.0\.attn_norm\.weight' is a vector of type Q8_0/ },
  },
  {
    name: 'an I32 weight matrix (no CPU dot product: SIGSEGV in the first matrix multiplication)',
    source: 'stories260K.gguf',
    edit: (doc) => ((tensorNamed(doc, 'blk.0.attn_q.weight').type = 26), relayout(doc, quiet)),
    expect: { stage: 'load', result: 'ERR_MODEL_INVALID', message: /has type I32, which llama.cpp cannot compute with/ },
  },
  {
    name: 'embedding_length_out wider than a llama model\'s output (ggml-backend.cpp: GGML_ASSERT "tensor read out of bounds" when embedding)',
    source: 'stories260K.gguf',
    edit: (doc) => setKv(doc, 'llama.embedding_length_out', T.U32, encodeScalar(T.U32, 128)),
    expect: { stage: 'load', result: 'ERR_MODEL_INVALID', message: /embedding_length_out is 128, but a llama model's output is embedding_length \(64\) wide/ },
  },
  {
    name: 'an unknown pooling type (llama-graph.cpp: GGML_ABORT "unknown pooling type" when embedding)',
    source: 'stories260K.gguf',
    edit: (doc) => setKv(doc, 'llama.pooling_type', T.U32, encodeScalar(T.U32, 7)),
    expect: { stage: 'load', result: 'ERR_MODEL_INVALID', message: /llama\.pooling_type is 7/ },
  },
  {
    name: 'rank pooling without a classifier (embed() read n_embd floats from n_cls_out scores: a heap over-read, no crash)',
    source: 'stories260K.gguf',
    edit: (doc) => setKv(doc, 'llama.pooling_type', T.U32, encodeScalar(T.U32, 4)),
    expect: { stage: 'embed', result: 'ERR_MODEL_UNSUPPORTED', message: /no classifier head/ },
  },
  {
    name: 'general.alignment 16 with tensor data 16 bytes off a multiple of 32 (ggml-backend.cpp: GGML_ASSERT(ptr % TENSOR_ALIGNMENT == 0) with mmap)',
    source: 'stories260K.gguf',
    edit: (doc) => {
      setKv(doc, 'general.alignment', T.U32, encodeScalar(T.U32, 16));
      doc.alignment = 16;
      relayout(doc, quiet);
      // Shift the data section by 16 bytes with a padding key of the right length.
      for (let n = 0; n < 64; n++) {
        setKv(doc, 'tea.padding', T.STR, gstr('x'.repeat(n)));
        const header = serialize({ ...doc, data: Buffer.alloc(0) }).length;
        if (header % 32 === 16) return;
      }
    },
    expect: { stage: 'load', result: 'ERR_MODEL_INVALID', message: /not a multiple of 32 \(general\.alignment is 16\)/ },
  },
];

// ---- cases ------------------------------------------------------------------------------------------------------

/**
 * A fuzz campaign over source files. `sources` is [{ name, buffer, vocabOnly }]; the systematic truncations come
 * first (the same for every seed), then `randomCases` seeded mutations.
 */
export class GgufFuzzer {
  constructor(sources, seed) {
    this.seed = seed >>> 0;
    this.sources = sources.map((s) => {
      const layout = parseGguf(s.buffer);
      // Where the tensor table starts: right after the last key/value entry.
      const probe = serialize({ ...layout.doc, tensors: [], data: Buffer.alloc(0) });
      layout.tensorTableAt = probe.length;
      return { ...s, layout };
    });
    this.regressions = REGRESSIONS.filter((c) => this.sources.some((src) => src.name === c.source));
    this.truncations = [];
    for (let f = 0; f < this.sources.length; f++) {
      const { layout } = this.sources[f];
      const cuts = new Set();
      for (const b of layout.boundaries) for (const d of [-1, 0, 1]) if (b + d > 0 && b + d < layout.size) cuts.add(b + d);
      for (const cut of [...cuts].sort((a, b) => a - b)) this.truncations.push({ file: f, cut });
    }
  }

  /** Regression cases, then truncations: the same for every seed. */
  get systematicCount() {
    return this.regressions.length + this.truncations.length;
  }

  /**
   * Case `index`: { source, vocabOnly, buffer, description, expect? }. The first indices are the regression cases
   * (with the outcome they must have), then the truncations, then seeded random mutations.
   */
  case(index) {
    if (index < this.regressions.length) {
      const c = this.regressions[index];
      const src = this.sources.find((s) => s.name === c.source);
      const doc = clone(src.layout.doc);
      c.edit(doc);
      return { source: src.name, vocabOnly: c.vocabOnly ?? src.vocabOnly, buffer: serialize(doc), description: `regression: ${c.name}`, expect: c.expect };
    }
    index -= this.regressions.length;
    if (index < this.truncations.length) {
      const { file, cut } = this.truncations[index];
      const src = this.sources[file];
      return { source: src.name, vocabOnly: src.vocabOnly, buffer: src.buffer.subarray(0, cut), description: `truncate at ${cut} of ${src.layout.size}` };
    }
    index -= this.truncations.length;
    const r = rng(hash(`${this.seed}:${index}`));
    // stories260K (the one with weights) half of the time, each vocabulary file otherwise.
    const withWeights = this.sources.filter((s) => !s.vocabOnly);
    const src = r.chance(0.5) && withWeights.length > 0 ? r.pick(withWeights) : r.pick(this.sources);
    const kind = r.weighted({ structural: 75, absurd: 12, flip: 9, truncate: 4 });
    let buffer;
    const steps = [];
    if (kind === 'structural') {
      const doc = clone(src.layout.doc);
      const n = r.pick([1, 1, 1, 2, 2, 3]);
      const weights = doc.tensors.length > 0 ? STRUCTURAL_WEIGHTS : VOCAB_WEIGHTS;
      for (let k = 0; k < n; k++) {
        const name = r.weighted(weights);
        try {
          steps.push(`${name}: ${MUTATIONS[name](doc, r)}`);
        } catch (error) {
          // A stacked mutation cannot read a value an earlier one left malformed (an array of arrays extended with
          // bytes): the file is whatever the earlier steps made.
          if (!(error instanceof RangeError)) throw error;
          steps.push(`${name}: skipped (${error.code ?? error.name})`);
        }
      }
      buffer = serialize(doc);
      if (r.chance(0.08)) {
        const cut = r.int(buffer.length);
        buffer = buffer.subarray(0, Math.max(1, cut));
        steps.push(`truncate at ${cut}`);
      }
    } else {
      // Byte-level damage of the original file, at exactly located fields.
      buffer = Buffer.from(src.buffer);
      if (kind === 'absurd') {
        steps.push(absurdField(buffer, src.layout, r));
        if (r.chance(0.3)) steps.push(absurdField(buffer, src.layout, r));
      } else if (kind === 'flip') steps.push(flipBytes(buffer, src.layout, r));
      else {
        const cut = r.chance(0.7) ? r.int(Math.min(buffer.length, src.layout.infoEnd + 64)) : r.int(buffer.length);
        buffer = buffer.subarray(0, Math.max(1, cut));
        steps.push(`truncate at ${cut}`);
      }
    }
    // Loading a weighted file as vocabulary only is a different llama.cpp path; try it now and then.
    const vocabOnly = src.vocabOnly || r.chance(0.1);
    return { source: src.name, vocabOnly, buffer, description: steps.join('; ') };
  }
}
