#!/usr/bin/env node
// Writes a LoRA adapter GGUF for a llama-architecture base model, with seeded random weights: lora_a / lora_b pairs
// for attn_q and attn_v of every block, in the layout llama.cpp's convert_lora_to_gguf.py writes (general.type
// adapter, adapter.type lora, adapter.lora.alpha; lora_a is [n_in, rank], lora_b [rank, n_out]). Scaled so that
// it visibly changes the output. With --mismatch, lora_a's input dimension is one more than the model's: an
// adapter of another model, which must be refused.
//
//   node scripts/synthetic-lora.mjs --base MODEL.gguf --out ADAPTER.gguf [--rank 4] [--seed 1] [--mismatch]
//
// Prints the path. Reuses the file when present. Needs the compiled TypeScript (npm run build:ts) for the writer.
import { existsSync, realpathSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { mkdir, rename, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');

function loadGguf() {
  const modulePath = join(root, 'dist', 'cjs', 'gguf', 'index.js');
  if (!existsSync(modulePath)) throw new Error(`${modulePath} not found: build the TypeScript first (npm run build:ts)`);
  return createRequire(import.meta.url)(modulePath);
}

/** xorshift32 → uniform in (-1, 1): small adapters need no better randomness. */
function uniform(seed) {
  let x = (seed * 2654435761) >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return (x / 4294967296) * 2 - 1;
  };
}

/** Writes the adapter; returns its path. */
export async function ensureSyntheticLora({ base, out, rank = 4, seed = 1, mismatch = false }) {
  base = resolve(base);
  out = resolve(out);
  if (existsSync(out)) return out;
  const gguf = loadGguf();
  const { GgufValueType: T } = gguf;
  const model = await gguf.readGguf(base, { maxArrayLength: 0 });
  const arch = model.metadata['general.architecture'];
  const targets = model.tensors.filter((t) => /^blk\.\d+\.attn_[qv]\.weight$/.test(t.name));
  if (targets.length === 0) throw new Error(`${base} has no blk.N.attn_q/attn_v tensors`);
  const tensors = [];
  let stream = 0;
  for (const t of targets) {
    const [nIn, nOut] = t.dims;
    const base = t.name;
    const next = uniform(seed * 1000 + stream++);
    // A: ~1/sqrt(n_in) per element, so A·x has unit scale; B: large enough that B·A·x rivals W·x.
    const a = new Float32Array((nIn + (mismatch ? 1 : 0)) * rank).map(() => next() * Math.sqrt(3 / nIn));
    const b = new Float32Array(rank * nOut).map(() => next() * 0.6);
    tensors.push({ name: `${base}.lora_a`, dims: [nIn + (mismatch ? 1 : 0), rank], type: 'F32', data: a });
    tensors.push({ name: `${base}.lora_b`, dims: [rank, nOut], type: 'F32', data: b });
  }
  const metadata = [
    { key: 'general.architecture', type: T.STRING, value: arch },
    { key: 'general.type', type: T.STRING, value: 'adapter' },
    { key: 'general.name', type: T.STRING, value: `tea-synthetic-lora-r${rank}-s${seed}${mismatch ? '-mismatch' : ''}` },
    { key: 'adapter.type', type: T.STRING, value: 'lora' },
    { key: 'adapter.lora.alpha', type: T.FLOAT32, value: rank },
  ];
  // A fresh clone has no cache folder yet; test files in worker threads share a pid, so the name is random too.
  await mkdir(dirname(out), { recursive: true });
  const partial = `${out}.${process.pid}-${randomBytes(4).toString('hex')}.partial`;
  try {
    await gguf.writeGguf(partial, { metadata, tensors });
    await rename(partial, out);
  } finally {
    await rm(partial, { force: true });
  }
  return out;
}

// realpath: run through a symlinked node_modules, argv[1] is the link and import.meta.url its target.
const isMain = process.argv[1] && existsSync(process.argv[1]) && realpathSync(process.argv[1]) === realpathSync(fileURLToPath(import.meta.url));
if (isMain) {
  const opts = {};
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--base') opts.base = argv[++i];
    else if (a === '--out') opts.out = argv[++i];
    else if (a === '--rank') opts.rank = Number(argv[++i]);
    else if (a === '--seed') opts.seed = Number(argv[++i]);
    else if (a === '--mismatch') opts.mismatch = true;
    else {
      console.error(`unknown argument '${a}'\nusage: node scripts/synthetic-lora.mjs --base MODEL.gguf --out ADAPTER.gguf [--rank 4] [--seed 1] [--mismatch]`);
      process.exit(2);
    }
  }
  if (!opts.base || !opts.out) {
    console.error('--base and --out are required');
    process.exit(2);
  }
  ensureSyntheticLora(opts).then(
    (path) => console.log(path),
    (error) => {
      console.error(error.message);
      process.exit(1);
    },
  );
}
