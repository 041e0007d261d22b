#!/usr/bin/env node
// Builds llama-architecture GGUF models with seeded random weights and a real tokenizer (copied,
// with its chat template, from a vocab GGUF), then quantizes them with llama.cpp's llama-quantize.
// The weights are noise, so the output text is gibberish, but the models load, tokenize, apply their
// chat template and generate exactly like a real model of the same shape (useful for tests and
// benchmarks when no real model of that size is available).
//
//   node scripts/synthetic-model.mjs --preset 130m --quant Q4_K_M,Q8_0 [--vocab FILE] [--out DIR] [--seed N]
//                                    [--quantize-bin PATH]
//
// Prints the produced paths on stdout (one per line), progress on stderr. Results are cached in
// <repo>/.cache/models (or --out) as synthetic-<preset>-<quant>.gguf and reused when present.
// Needs the compiled TypeScript (npx tsc -p tsconfig.json) for the GGUF writer.
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { promises as fsp, existsSync, realpathSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const exe = process.platform === 'win32' ? '.exe' : '';

export const PRESETS = Object.freeze({
  // The smallest that still has every llama tensor (for tokenizer-level features such as infill, with large vocabularies).
  micro: { n_embd: 64, n_layer: 2, n_head: 4, n_head_kv: 2, n_ff: 128 },
  // ~18M parameters, most of them in the 32064-token embedding / output matrices.
  tiny: { n_embd: 256, n_layer: 2, n_head: 4, n_head_kv: 2, n_ff: 768 },
  // ~134M parameters with the phi-3 vocabulary.
  '130m': { n_embd: 768, n_layer: 12, n_head: 12, n_head_kv: 12, n_ff: 2048 },
  // TinyLlama-1.1B shape (~1.1B parameters with the phi-3 vocabulary).
  '1b': { n_embd: 2048, n_layer: 22, n_head: 32, n_head_kv: 4, n_ff: 5632 },
});

const CONTEXT_LENGTH = 4096;
const ROPE_FREQ_BASE = 10000;
const RMS_EPS = 1e-5;
const WEIGHT_STD = 0.02;
export const DEFAULT_SEED = 1;

function defaultVocab() {
  const dir = process.env.TEA_TEST_MODELS_DIR || resolve(root, '../shared/models');
  return join(dir, 'ggml-vocab-phi-3.gguf');
}

function loadGguf() {
  const modulePath = join(root, 'dist', 'cjs', 'gguf', 'index.js');
  if (!existsSync(modulePath)) {
    throw new Error(`${modulePath} not found: build the TypeScript first (npx tsc -p tsconfig.json)`);
  }
  // require() rather than import(): the module is CommonJS, and this also works under test runners
  // that transform dynamic imports.
  return createRequire(import.meta.url)(modulePath);
}

/** Parameter count of a preset for a vocabulary size. */
export function countParams(hp, nVocab) {
  const headDim = hp.n_embd / hp.n_head;
  const kvDim = headDim * hp.n_head_kv;
  const perLayer =
    2 * hp.n_embd + // attn_norm, ffn_norm
    2 * hp.n_embd * hp.n_embd + // attn_q, attn_output
    2 * hp.n_embd * kvDim + // attn_k, attn_v
    3 * hp.n_embd * hp.n_ff; // ffn_gate, ffn_up, ffn_down
  return 2 * nVocab * hp.n_embd + hp.n_embd + hp.n_layer * perLayer;
}

/** Tensor list exactly as llama.cpp's llama architecture loads it (dims innermost first). */
export function llamaTensorShapes(hp, nVocab) {
  const headDim = hp.n_embd / hp.n_head;
  const kvDim = headDim * hp.n_head_kv;
  const t = [
    { name: 'token_embd.weight', dims: [hp.n_embd, nVocab] },
    { name: 'output_norm.weight', dims: [hp.n_embd] },
    { name: 'output.weight', dims: [hp.n_embd, nVocab] },
  ];
  for (let i = 0; i < hp.n_layer; i++) {
    const b = `blk.${i}.`;
    t.push(
      { name: `${b}attn_norm.weight`, dims: [hp.n_embd] },
      { name: `${b}attn_q.weight`, dims: [hp.n_embd, hp.n_embd] },
      { name: `${b}attn_k.weight`, dims: [hp.n_embd, kvDim] },
      { name: `${b}attn_v.weight`, dims: [hp.n_embd, kvDim] },
      { name: `${b}attn_output.weight`, dims: [hp.n_embd, hp.n_embd] },
      { name: `${b}ffn_norm.weight`, dims: [hp.n_embd] },
      { name: `${b}ffn_gate.weight`, dims: [hp.n_embd, hp.n_ff] },
      { name: `${b}ffn_down.weight`, dims: [hp.n_ff, hp.n_embd] },
      { name: `${b}ffn_up.weight`, dims: [hp.n_embd, hp.n_ff] },
    );
  }
  return t;
}

// ---- seeded random numbers -------------------------------------------------------------------

/** splitmix32-style hash, used to derive xorshift128 states. */
function mix32(x) {
  x = (x + 0x9e3779b9) | 0;
  x = Math.imul(x ^ (x >>> 16), 0x85ebca6b);
  x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35);
  return (x ^ (x >>> 16)) | 0;
}

function seedState(seed, stream) {
  let x = mix32(mix32(seed | 0) ^ Math.imul(stream + 1, 0x27d4eb2d));
  const s = [];
  for (let i = 0; i < 4; i++) {
    x = mix32(x + i);
    s.push(x || 0x1234567); // xorshift state must not be all zero
  }
  return s;
}

let normalTableCache;
/** 65536 samples of a standard normal distribution (Box-Muller), standardized to mean 0 / std 1. */
function normalTable() {
  if (normalTableCache) return normalTableCache;
  const n = 65536;
  const table = new Float64Array(n);
  let [a, b, c, d] = seedState(0x5eed, 0);
  const next = () => {
    const t = a ^ (a << 11);
    a = b;
    b = c;
    c = d;
    d = d ^ (d >>> 19) ^ t ^ (t >>> 8);
    return ((d >>> 0) + 0.5) / 4294967296; // (0, 1)
  };
  for (let i = 0; i < n; i += 2) {
    const r = Math.sqrt(-2 * Math.log(next()));
    const th = 2 * Math.PI * next();
    table[i] = r * Math.cos(th);
    table[i + 1] = r * Math.sin(th);
  }
  let mean = 0;
  for (const v of table) mean += v;
  mean /= n;
  let varSum = 0;
  for (const v of table) varSum += (v - mean) ** 2;
  const sd = Math.sqrt(varSum / n);
  for (let i = 0; i < n; i++) table[i] = (table[i] - mean) / sd;
  normalTableCache = table;
  return table;
}

/** A generator for writeGguf that fills chunks with N(0, std^2)-distributed values. */
function normalGenerator(seed, stream, std) {
  const base = normalTable();
  const table = new Float32Array(base.length);
  for (let i = 0; i < base.length; i++) table[i] = base[i] * std;
  let [a, b, c, d] = seedState(seed, stream);
  let expected = 0;
  return (index, out) => {
    if (index !== expected) throw new Error(`normalGenerator: chunks must be requested in order (got ${index}, expected ${expected})`);
    expected += out.length;
    const n = out.length;
    let i = 0;
    for (; i < n; i += 2) {
      const t = a ^ (a << 11);
      a = b;
      b = c;
      c = d;
      d = d ^ (d >>> 19) ^ t ^ (t >>> 8);
      out[i] = table[d & 0xffff];
      if (i + 1 < n) out[i + 1] = table[(d >>> 16) & 0xffff];
    }
  };
}

// ---- model creation ---------------------------------------------------------------------------

/** Writes the F16 model. Returns { path, params, nVocab, fileSize }. */
export async function writeSyntheticF16({ preset, vocab, seed = DEFAULT_SEED, out }) {
  const hp = PRESETS[preset];
  if (!hp) throw new Error(`unknown preset '${preset}' (known: ${Object.keys(PRESETS).join(', ')})`);
  const gguf = loadGguf();
  const { GgufValueType: T } = gguf;
  const src = await gguf.readGguf(vocab, { maxArrayLength: Infinity });
  const tokenizer = src.entries.filter((e) => e.key.startsWith('tokenizer.'));
  const tokens = src.metadata['tokenizer.ggml.tokens'];
  if (!Array.isArray(tokens) || tokens.length === 0) throw new Error(`${vocab} has no tokenizer.ggml.tokens array`);
  const nVocab = tokens.length;
  const headDim = hp.n_embd / hp.n_head;

  const metadata = [
    { key: 'general.architecture', type: T.STRING, value: 'llama' },
    { key: 'general.name', type: T.STRING, value: `tea-synthetic-${preset}` },
    { key: 'general.description', type: T.STRING, value: `Random weights (seed ${seed}), tokenizer from ${basename(vocab)}; for testing only` },
    { key: 'general.file_type', type: T.UINT32, value: 1 },
    { key: 'llama.context_length', type: T.UINT32, value: CONTEXT_LENGTH },
    { key: 'llama.embedding_length', type: T.UINT32, value: hp.n_embd },
    { key: 'llama.block_count', type: T.UINT32, value: hp.n_layer },
    { key: 'llama.feed_forward_length', type: T.UINT32, value: hp.n_ff },
    { key: 'llama.attention.head_count', type: T.UINT32, value: hp.n_head },
    { key: 'llama.attention.head_count_kv', type: T.UINT32, value: hp.n_head_kv },
    { key: 'llama.rope.dimension_count', type: T.UINT32, value: headDim },
    { key: 'llama.rope.freq_base', type: T.FLOAT32, value: ROPE_FREQ_BASE },
    { key: 'llama.attention.layer_norm_rms_epsilon', type: T.FLOAT32, value: RMS_EPS },
    { key: 'llama.vocab_size', type: T.UINT32, value: nVocab },
    ...tokenizer,
  ];

  const tensors = llamaTensorShapes(hp, nVocab).map((t, i) =>
    t.dims.length === 1
      ? { ...t, type: 'F32', data: (_index, chunk) => chunk.fill(1) }
      : { ...t, type: 'F16', data: normalGenerator(seed, i, WEIGHT_STD) },
  );
  const res = await gguf.writeGguf(out, { metadata, tensors });
  return { path: out, params: countParams(hp, nVocab), nVocab, fileSize: res.fileSize };
}

// ---- reranker (BERT with a classifier head) ----------------------------------------------------

/**
 * Reranker shapes: bge-reranker's layout at a toy size (tests), and at MiniLM-L6's size (the shape of the common
 * ms-marco-MiniLM-L-6 cross-encoder, ~23M parameters: the benchmark), one classifier output (the relevance score).
 */
export const RERANKERS = Object.freeze({
  toy: { n_embd: 64, n_layer: 2, n_head: 4, n_ff: 128, n_ctx: 512, n_cls_out: 1 },
  minilm: { n_embd: 384, n_layer: 6, n_head: 12, n_ff: 1536, n_ctx: 512, n_cls_out: 1 },
});
// The classifier head gets larger weights than the body, so that scores differ visibly between documents.
const CLASSIFIER_STD = 0.1;

/** Tensor list of a BERT reranker exactly as llama.cpp's bert architecture loads it (dims innermost first). */
export function rerankerTensorShapes(hp, nVocab, nTokenTypes) {
  const e = hp.n_embd;
  const t = [
    { name: 'token_embd.weight', dims: [e, nVocab] },
    { name: 'token_types.weight', dims: [e, nTokenTypes] },
    { name: 'position_embd.weight', dims: [e, hp.n_ctx] },
    { name: 'token_embd_norm.weight', dims: [e], fill: 1 },
    { name: 'token_embd_norm.bias', dims: [e], fill: 0 },
    { name: 'cls.weight', dims: [e, e], std: CLASSIFIER_STD },
    { name: 'cls.bias', dims: [e], fill: 0 },
    { name: 'cls.output.weight', dims: [e, hp.n_cls_out], std: CLASSIFIER_STD },
    { name: 'cls.output.bias', dims: [hp.n_cls_out], fill: 0 },
  ];
  for (let i = 0; i < hp.n_layer; i++) {
    const b = `blk.${i}.`;
    t.push(
      { name: `${b}attn_q.weight`, dims: [e, e] },
      { name: `${b}attn_q.bias`, dims: [e], fill: 0 },
      { name: `${b}attn_k.weight`, dims: [e, e] },
      { name: `${b}attn_k.bias`, dims: [e], fill: 0 },
      { name: `${b}attn_v.weight`, dims: [e, e] },
      { name: `${b}attn_v.bias`, dims: [e], fill: 0 },
      { name: `${b}attn_output.weight`, dims: [e, e] },
      { name: `${b}attn_output.bias`, dims: [e], fill: 0 },
      { name: `${b}attn_output_norm.weight`, dims: [e], fill: 1 },
      { name: `${b}attn_output_norm.bias`, dims: [e], fill: 0 },
      { name: `${b}ffn_up.weight`, dims: [e, hp.n_ff] },
      { name: `${b}ffn_up.bias`, dims: [hp.n_ff], fill: 0 },
      { name: `${b}ffn_down.weight`, dims: [hp.n_ff, e] },
      { name: `${b}ffn_down.bias`, dims: [e], fill: 0 },
      { name: `${b}layer_output_norm.weight`, dims: [e], fill: 1 },
      { name: `${b}layer_output_norm.bias`, dims: [e], fill: 0 },
    );
  }
  return t;
}

/**
 * Writes a BERT reranker (rank pooling, a classifier head) with seeded random F32 weights and the tokenizer of
 * `vocab` (a BERT vocabulary such as ggml-vocab-bert-bge.gguf). `rerankTemplate`, when given, is stored as the
 * model's `tokenizer.chat_template.rerank` (with {query} and {document} placeholders).
 */
export async function writeSyntheticReranker({ vocab, seed = DEFAULT_SEED, out, rerankTemplate, shape = 'toy' }) {
  const gguf = loadGguf();
  const { GgufValueType: T } = gguf;
  const src = await gguf.readGguf(vocab, { maxArrayLength: Infinity });
  const tokenizer = src.entries.filter((e) => e.key.startsWith('tokenizer.'));
  const tokens = src.metadata['tokenizer.ggml.tokens'];
  if (!Array.isArray(tokens) || tokens.length === 0) throw new Error(`${vocab} has no tokenizer.ggml.tokens array`);
  const nTokenTypes = Number(src.metadata['tokenizer.ggml.token_type_count'] ?? 2);
  const hp = RERANKERS[shape];
  if (!hp) throw new Error(`unknown reranker shape '${shape}' (known: ${Object.keys(RERANKERS).join(', ')})`);
  const metadata = [
    { key: 'general.architecture', type: T.STRING, value: 'bert' },
    { key: 'general.name', type: T.STRING, value: 'tea-synthetic-reranker' },
    { key: 'general.description', type: T.STRING, value: `Random weights (seed ${seed}), tokenizer from ${basename(vocab)}; for testing only` },
    { key: 'general.file_type', type: T.UINT32, value: 0 },
    { key: 'bert.context_length', type: T.UINT32, value: hp.n_ctx },
    { key: 'bert.embedding_length', type: T.UINT32, value: hp.n_embd },
    { key: 'bert.block_count', type: T.UINT32, value: hp.n_layer },
    { key: 'bert.feed_forward_length', type: T.UINT32, value: hp.n_ff },
    { key: 'bert.attention.head_count', type: T.UINT32, value: hp.n_head },
    { key: 'bert.attention.layer_norm_epsilon', type: T.FLOAT32, value: 1e-12 },
    { key: 'bert.attention.causal', type: T.BOOL, value: false },
    { key: 'bert.pooling_type', type: T.UINT32, value: 4 }, // LLAMA_POOLING_TYPE_RANK, as converted rerankers declare
    ...tokenizer.filter((e) => e.key !== 'tokenizer.chat_template.rerank'),
    ...(rerankTemplate !== undefined ? [{ key: 'tokenizer.chat_template.rerank', type: T.STRING, value: rerankTemplate }] : []),
  ];
  const tensors = rerankerTensorShapes(hp, tokens.length, nTokenTypes).map((t, i) => ({
    name: t.name,
    dims: t.dims,
    type: 'F32',
    data: t.fill !== undefined ? (_index, chunk) => chunk.fill(t.fill) : normalGenerator(seed, i, t.std ?? WEIGHT_STD),
  }));
  const res = await gguf.writeGguf(out, { metadata, tensors });
  return { path: out, fileSize: res.fileSize };
}

/**
 * Ensures the synthetic reranker exists in `cacheDir` (made once, reused) and returns its path. `template`: with the
 * rerank template "[query] {query} [document] {document}" (llama-server's other prompt layout).
 */
export async function ensureSyntheticReranker({ vocab, cacheDir = join(root, '.cache', 'models'), seed = DEFAULT_SEED, template = false, shape = 'toy' } = {}) {
  vocab = resolve(vocab);
  if (!existsSync(vocab)) throw new Error(`vocab file not found: ${vocab}`);
  await fsp.mkdir(cacheDir, { recursive: true });
  const gguf = loadGguf();
  const out = join(resolve(cacheDir), `synthetic-reranker${shape === 'toy' ? '' : `-${shape}`}${template ? '-template' : ''}-s${seed}-F32.gguf`);
  if (existsSync(out) && (await isValidGguf(gguf, out))) return out;
  const partial = tmpName(out);
  try {
    await writeSyntheticReranker({ vocab, seed, out: partial, shape, rerankTemplate: template ? '[CLS] query: {query} [SEP] document: {document} [SEP]' : undefined });
    await fsp.rename(partial, out);
  } finally {
    await fsp.rm(partial, { force: true });
  }
  return out;
}

function runQuantize(bin, input, output, quant) {
  return new Promise((resolvePromise, reject) => {
    const args = [input, output, quant, String(Math.max(1, availableParallelism()))];
    const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let log = '';
    const keep = (d) => {
      log = (log + d.toString()).slice(-8000);
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    child.on('error', (err) => reject(new Error(`cannot run ${bin}: ${err.message}`)));
    child.on('close', (code, signal) => {
      if (code === 0) resolvePromise();
      else reject(new Error(`${basename(bin)} ${args.join(' ')} failed (${signal ?? `exit ${code}`}):\n${log}`));
    });
  });
}

function tmpName(path) {
  return `${path}.${process.pid}-${randomBytes(4).toString('hex')}.partial`;
}

async function isValidGguf(gguf, path) {
  try {
    const f = await gguf.readGguf(path, { maxArrayLength: 0 });
    return f.tensors.length > 0;
  } catch {
    return false;
  }
}

function normalizeQuant(q) {
  const s = String(q).trim().toUpperCase();
  if (!/^[A-Z0-9_]+$/.test(s)) throw new Error(`invalid quant type '${q}'`);
  return s;
}

/**
 * Ensures synthetic models exist for several quant types of one preset, generating the F16 model
 * once. Returns { paths: { [quant]: absolutePath }, params, created: string[] }.
 */
export async function ensureSyntheticModels({
  preset = 'tiny',
  quants = ['Q4_K_M'],
  vocab = defaultVocab(),
  cacheDir = join(root, '.cache', 'models'),
  quantizeBin = join(root, 'build', 'tools', 'llama-quantize' + exe),
  seed = DEFAULT_SEED,
  log = () => {},
} = {}) {
  const hp = PRESETS[preset];
  if (!hp) throw new Error(`unknown preset '${preset}' (known: ${Object.keys(PRESETS).join(', ')})`);
  if (!Number.isSafeInteger(seed)) throw new Error(`seed must be an integer (got ${seed})`);
  const list = [...new Set((Array.isArray(quants) ? quants : [quants]).map(normalizeQuant))];
  vocab = resolve(vocab);
  cacheDir = resolve(cacheDir);
  if (!existsSync(vocab)) throw new Error(`vocab file not found: ${vocab}`);
  await fsp.mkdir(cacheDir, { recursive: true });
  const gguf = loadGguf();

  // The default vocab and seed give the plain names; anything else is tagged so caches don't collide.
  let tag = '';
  const defaultV = resolve(defaultVocab());
  const sameVocab = existsSync(defaultV) && realpathSync(defaultV) === realpathSync(vocab);
  if (!sameVocab || seed !== DEFAULT_SEED) {
    const vname = basename(vocab).replace(/\.gguf$/i, '').replace(/^ggml-vocab-/, '').replace(/[^A-Za-z0-9_.-]/g, '_');
    const h = createHash('sha1').update(realpathSync(vocab)).digest('hex').slice(0, 6);
    tag = `-${vname}-${h}-s${seed}`;
  }
  const fileFor = (q) => join(cacheDir, `synthetic-${preset}${tag}-${q}.gguf`);

  const paths = {};
  const missing = [];
  for (const q of list) {
    const p = fileFor(q);
    paths[q] = p;
    if (existsSync(p) && (await isValidGguf(gguf, p))) log(`[synthetic] cached: ${p}`);
    else missing.push(q);
  }
  const created = [];
  let params;
  if (missing.length > 0) {
    if (!missing.every((q) => q === 'F16') && !existsSync(quantizeBin)) {
      throw new Error(`llama-quantize not found at ${quantizeBin} (build it with: npm run build:tools)`);
    }
    const f16Final = fileFor('F16');
    let f16Source;
    let f16Temp;
    if (!missing.includes('F16') && existsSync(f16Final) && (await isValidGguf(gguf, f16Final))) {
      f16Source = f16Final;
    } else {
      const target = missing.includes('F16') ? f16Final : (f16Temp = tmpName(f16Final) + '.gguf');
      const t0 = performance.now();
      const r = await writeSyntheticF16({ preset, vocab, seed, out: target });
      params = r.params;
      log(
        `[synthetic] ${preset}: ${r.params.toLocaleString('en-US')} parameters, vocab ${r.nVocab}; ` +
          `F16 written in ${((performance.now() - t0) / 1000).toFixed(1)} s (${(r.fileSize / 1e6).toFixed(1)} MB)`,
      );
      f16Source = target;
      if (missing.includes('F16')) created.push(f16Final);
    }
    try {
      for (const q of missing) {
        if (q === 'F16') continue;
        const out = fileFor(q);
        const partial = tmpName(out);
        const t0 = performance.now();
        try {
          await runQuantize(quantizeBin, f16Source, partial, q);
          if (!(await isValidGguf(gguf, partial))) throw new Error(`llama-quantize produced an invalid file for ${q}`);
          await fsp.rename(partial, out);
        } finally {
          await fsp.rm(partial, { force: true });
        }
        const st = await fsp.stat(out);
        log(`[synthetic] ${q}: quantized in ${((performance.now() - t0) / 1000).toFixed(1)} s (${(st.size / 1e6).toFixed(1)} MB)`);
        created.push(out);
      }
    } finally {
      if (f16Temp) await fsp.rm(f16Temp, { force: true });
    }
  }
  if (params === undefined) {
    const src = await gguf.readGguf(vocab, { maxArrayLength: 0 });
    const tok = src.metadata['tokenizer.ggml.tokens'];
    const nVocab = Array.isArray(tok) ? tok.length : tok?.length ?? 0;
    params = countParams(hp, nVocab);
  }
  return { paths, params, created };
}

/**
 * Ensures one synthetic model exists and returns its absolute path.
 * @param {{ preset?: 'tiny'|'130m'|'1b', quant?: string, vocab?: string, cacheDir?: string, quantizeBin?: string, seed?: number, log?: (msg: string) => void }} [options]
 */
export async function ensureSyntheticModel({ quant = 'Q4_K_M', ...rest } = {}) {
  const q = normalizeQuant(quant);
  const { paths } = await ensureSyntheticModels({ ...rest, quants: [q] });
  return paths[q];
}

// ---- CLI ---------------------------------------------------------------------------------------

function parseArgs(argv) {
  const opts = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const eq = a.indexOf('=');
    const name = eq > 0 ? a.slice(0, eq) : a;
    const value = () => (eq > 0 ? a.slice(eq + 1) : argv[++i]);
    switch (name) {
      case '--preset':
        opts.preset = value();
        break;
      case '--quant':
        opts.quants = value().split(',').filter(Boolean);
        break;
      case '--vocab':
        opts.vocab = value();
        break;
      case '--out':
        opts.cacheDir = value();
        break;
      case '--seed':
        opts.seed = Number(value());
        break;
      case '--quantize-bin':
        opts.quantizeBin = value();
        break;
      case '-h':
      case '--help':
        opts.help = true;
        break;
      default:
        throw new Error(`unknown argument '${a}'`);
    }
  }
  return opts;
}

const isMain = process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url);
if (isMain) {
  try {
    const { help, ...opts } = parseArgs(process.argv.slice(2));
    if (help) {
      console.log(
        'usage: node scripts/synthetic-model.mjs [--preset tiny|130m|1b] [--quant Q4_K_M,Q8_0,F16] [--vocab FILE] [--out DIR] [--seed N] [--quantize-bin PATH]',
      );
      process.exit(0);
    }
    const t0 = performance.now();
    const { paths, params } = await ensureSyntheticModels({ ...opts, log: (m) => console.error(m) });
    console.error(`[synthetic] parameters: ${params.toLocaleString('en-US')}; total ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    for (const p of Object.values(paths)) console.log(p);
  } catch (err) {
    console.error(`[synthetic] ${err?.message ?? err}`);
    process.exit(1);
  }
}
