/**
 * A streaming GGUF v3 writer for F32 / F16 tensors.
 *
 * The header is built in memory (it is small: metadata plus tensor infos); tensor data is produced
 * and written chunk by chunk, so writing a model with billions of parameters needs only a few MB
 * of memory. Output goes to a temporary `*.partial` file next to the destination, which is renamed
 * into place only once everything has been written.
 */
import { promises as fsp } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { endianness } from 'node:os';
import { randomBytes } from 'node:crypto';
import { LlamaError, toLlamaError } from '../errors';
import {
  GGML_MAX_DIMS,
  GGML_MAX_NAME,
  GGUF_DEFAULT_ALIGNMENT,
  GGUF_KEY_GENERAL_ALIGNMENT,
  GGUF_MAGIC,
  GGUF_VERSION,
  GgmlType,
  GgufValueType,
  ggufValueTypeName,
  isGgufValueType,
  type GgufMetadataValue,
} from './types';

/** Fills `out` with the tensor's elements starting at flat element `index` (innermost dimension fastest). */
export type GgufTensorDataGenerator = (index: number, out: Float32Array) => void | Promise<void>;

export type GgufWriteValue = GgufMetadataValue | ArrayLike<number>;

export interface GgufWriteMetadataEntry {
  key: string;
  type: GgufValueType;
  /**
   * UINT8..INT32 / FLOAT32 / FLOAT64: number; UINT64 / INT64: bigint (or a safe-integer number);
   * BOOL: boolean; STRING: string; ARRAY: an array (or typed array) of values of `itemType`.
   */
  value: GgufWriteValue;
  /** Element type, required when `type` is ARRAY. */
  itemType?: GgufValueType;
}

export interface GgufWriteTensor {
  name: string;
  /** Dimensions, innermost first (ggml ne order). */
  dims: number[];
  type: 'F32' | 'F16';
  /** All elements, or a generator called for consecutive chunks of elements. */
  data: Float32Array | GgufTensorDataGenerator;
}

export interface GgufWriteSpec {
  metadata: GgufWriteMetadataEntry[];
  tensors: GgufWriteTensor[];
  /** Tensor data alignment (power of 2). Default: the value of `general.alignment` in metadata, else 32. */
  alignment?: number;
}

export interface WriteGgufOptions {
  /** Elements per chunk when producing tensor data (default 1M). */
  chunkElements?: number;
}

export interface WriteGgufResult {
  path: string;
  fileSize: number;
  /** Absolute offset of the tensor data section. */
  dataOffset: number;
}

const BIG_ENDIAN_HOST = endianness() === 'BE';
const DEFAULT_CHUNK_ELEMENTS = 1 << 20;

function invalid(message: string): LlamaError {
  return new LlamaError('ERR_INVALID_ARGUMENT', `writeGguf: ${message}`);
}

/**
 * Converts float32 values to IEEE half-precision bit patterns (round to nearest even; overflow
 * becomes infinity; NaN stays NaN).
 */
export function float32ToFloat16Bits(src: Float32Array, dst: Uint16Array): void {
  if (dst.length < src.length) throw new RangeError('float32ToFloat16Bits: destination too small');
  const u = new Uint32Array(src.buffer, src.byteOffset, src.length);
  const n = u.length;
  for (let i = 0; i < n; i++) {
    const b = u[i]!;
    const sign = (b >>> 16) & 0x8000;
    const exp = (b >>> 23) & 0xff;
    const mant = b & 0x7fffff;
    let h: number;
    if (exp >= 113) {
      if (exp >= 143) {
        // too large for half (or inf / NaN)
        h = exp === 255 && mant !== 0 ? 0x7e00 | (mant >>> 13) : 0x7c00;
      } else {
        h = ((exp - 112) << 10) | (mant >>> 13);
        const rem = mant & 0x1fff;
        if (rem > 0x1000 || (rem === 0x1000 && (h & 1) !== 0)) h++; // may carry into inf: correct
      }
    } else if (exp >= 102) {
      // half subnormal
      const m = mant | 0x800000;
      const shift = 126 - exp; // 14..24
      h = m >>> shift;
      const rem = m & ((1 << shift) - 1);
      const halfway = 1 << (shift - 1);
      if (rem > halfway || (rem === halfway && (h & 1) !== 0)) h++;
    } else {
      h = 0;
    }
    dst[i] = sign | h;
  }
}

/** Converts one half-precision bit pattern to a number. */
export function float16BitsToFloat32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 31) return mant ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/** Growable little-endian byte builder for the header. */
class ByteBuilder {
  readonly parts: Buffer[] = [];
  private cur = Buffer.allocUnsafe(64 * 1024);
  private pos = 0;
  private flushed = 0;

  get length(): number {
    return this.flushed + this.pos;
  }

  private room(n: number): void {
    if (this.pos + n <= this.cur.length) return;
    this.flush();
    if (n > this.cur.length) this.cur = Buffer.allocUnsafe(n);
  }

  private flush(): void {
    if (this.pos > 0) {
      this.parts.push(this.cur.subarray(0, this.pos));
      this.flushed += this.pos;
      this.cur = Buffer.allocUnsafe(this.cur.length);
      this.pos = 0;
    }
  }

  finish(): Buffer[] {
    this.flush();
    return this.parts;
  }

  u8(v: number): void {
    this.room(1);
    this.cur.writeUInt8(v, this.pos);
    this.pos += 1;
  }
  i8(v: number): void {
    this.room(1);
    this.cur.writeInt8(v, this.pos);
    this.pos += 1;
  }
  u16(v: number): void {
    this.room(2);
    this.cur.writeUInt16LE(v, this.pos);
    this.pos += 2;
  }
  i16(v: number): void {
    this.room(2);
    this.cur.writeInt16LE(v, this.pos);
    this.pos += 2;
  }
  u32(v: number): void {
    this.room(4);
    this.cur.writeUInt32LE(v, this.pos);
    this.pos += 4;
  }
  i32(v: number): void {
    this.room(4);
    this.cur.writeInt32LE(v, this.pos);
    this.pos += 4;
  }
  f32(v: number): void {
    this.room(4);
    this.cur.writeFloatLE(v, this.pos);
    this.pos += 4;
  }
  f64(v: number): void {
    this.room(8);
    this.cur.writeDoubleLE(v, this.pos);
    this.pos += 8;
  }
  u64(v: bigint): void {
    this.room(8);
    this.cur.writeBigUInt64LE(v, this.pos);
    this.pos += 8;
  }
  i64(v: bigint): void {
    this.room(8);
    this.cur.writeBigInt64LE(v, this.pos);
    this.pos += 8;
  }
  string(s: string): void {
    const len = Buffer.byteLength(s, 'utf8');
    this.u64(BigInt(len));
    this.room(len);
    this.cur.write(s, this.pos, len, 'utf8');
    this.pos += len;
  }
  zeros(n: number): void {
    this.room(n);
    this.cur.fill(0, this.pos, this.pos + n);
    this.pos += n;
  }
}

const INT_RANGES: Partial<Record<GgufValueType, [number, number]>> = {
  [GgufValueType.UINT8]: [0, 0xff],
  [GgufValueType.INT8]: [-0x80, 0x7f],
  [GgufValueType.UINT16]: [0, 0xffff],
  [GgufValueType.INT16]: [-0x8000, 0x7fff],
  [GgufValueType.UINT32]: [0, 0xffffffff],
  [GgufValueType.INT32]: [-0x80000000, 0x7fffffff],
};

function to64(v: unknown, signed: boolean, where: string): bigint {
  let b: bigint;
  if (typeof v === 'bigint') b = v;
  else if (typeof v === 'number' && Number.isSafeInteger(v)) b = BigInt(v);
  else throw invalid(`${where}: expected a bigint (or safe integer) for ${signed ? 'INT64' : 'UINT64'}, got ${typeof v}`);
  const [lo, hi] = signed ? [-(2n ** 63n), 2n ** 63n - 1n] : [0n, 2n ** 64n - 1n];
  if (b < lo || b > hi) throw invalid(`${where}: ${b} is out of range for ${signed ? 'INT64' : 'UINT64'}`);
  return b;
}

function writeScalar(out: ByteBuilder, type: GgufValueType, v: unknown, where: string): void {
  const range = INT_RANGES[type];
  if (range) {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < range[0] || v > range[1]) {
      throw invalid(`${where}: ${String(v)} is not a valid ${ggufValueTypeName(type)}`);
    }
  }
  switch (type) {
    case GgufValueType.UINT8:
      return out.u8(v as number);
    case GgufValueType.INT8:
      return out.i8(v as number);
    case GgufValueType.UINT16:
      return out.u16(v as number);
    case GgufValueType.INT16:
      return out.i16(v as number);
    case GgufValueType.UINT32:
      return out.u32(v as number);
    case GgufValueType.INT32:
      return out.i32(v as number);
    case GgufValueType.FLOAT32:
    case GgufValueType.FLOAT64:
      if (typeof v !== 'number') throw invalid(`${where}: expected a number for ${ggufValueTypeName(type)}, got ${typeof v}`);
      return type === GgufValueType.FLOAT32 ? out.f32(v) : out.f64(v);
    case GgufValueType.BOOL:
      if (typeof v !== 'boolean') throw invalid(`${where}: expected a boolean, got ${typeof v}`);
      return out.i8(v ? 1 : 0);
    case GgufValueType.STRING:
      if (typeof v !== 'string') throw invalid(`${where}: expected a string, got ${typeof v}`);
      return out.string(v);
    case GgufValueType.UINT64:
      return out.u64(to64(v, false, where));
    case GgufValueType.INT64:
      return out.i64(to64(v, true, where));
    default:
      throw invalid(`${where}: unsupported value type ${ggufValueTypeName(type)}`);
  }
}

function isArrayValue(v: unknown): v is ArrayLike<unknown> {
  return Array.isArray(v) || (ArrayBuffer.isView(v) && !(v instanceof DataView));
}

function writeEntry(out: ByteBuilder, e: GgufWriteMetadataEntry, index: number): void {
  const where = `metadata entry ${index} ('${e.key}')`;
  if (!isGgufValueType(e.type)) throw invalid(`${where}: unknown value type ${String(e.type)}`);
  out.string(e.key);
  out.i32(e.type);
  if (e.type !== GgufValueType.ARRAY) {
    if (isArrayValue(e.value)) throw invalid(`${where}: array value given for scalar type ${ggufValueTypeName(e.type)}`);
    writeScalar(out, e.type, e.value, where);
    return;
  }
  const v = e.value as unknown;
  if (v && typeof v === 'object' && (v as { kind?: unknown }).kind === 'skipped-array') {
    throw invalid(`${where}: the array was not loaded by readGguf; read the source with { maxArrayLength: Infinity } to copy it`);
  }
  if (e.itemType === undefined || !isGgufValueType(e.itemType)) throw invalid(`${where}: ARRAY needs a valid itemType`);
  if (e.itemType === GgufValueType.ARRAY) throw invalid(`${where}: arrays of arrays are not supported by GGUF`);
  if (!isArrayValue(v)) throw invalid(`${where}: expected an array value`);
  out.i32(e.itemType);
  out.u64(BigInt(v.length));
  for (let i = 0; i < v.length; i++) writeScalar(out, e.itemType, v[i], `${where}[${i}]`);
}

interface PreparedTensor {
  spec: GgufWriteTensor;
  elements: number;
  byteSize: number;
  offset: number;
}

async function writeAll(fh: FileHandle, buf: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < buf.length) {
    const { bytesWritten } = await fh.write(buf, done, buf.length - done, position + done);
    if (bytesWritten <= 0) throw new Error('write returned 0 bytes');
    done += bytesWritten;
  }
}

/**
 * Writes a GGUF v3 file. The destination only appears (atomically, by rename) once the whole file
 * has been written; on failure the temporary file is removed.
 */
export async function writeGguf(path: string, spec: GgufWriteSpec, options: WriteGgufOptions = {}): Promise<WriteGgufResult> {
  if (typeof path !== 'string' || path.length === 0) throw invalid('path must be a non-empty string');
  if (!spec || !Array.isArray(spec.metadata) || !Array.isArray(spec.tensors)) {
    throw invalid('spec must have metadata and tensors arrays');
  }
  const chunkElements = options.chunkElements ?? DEFAULT_CHUNK_ELEMENTS;
  if (!Number.isSafeInteger(chunkElements) || chunkElements < 1) throw invalid('chunkElements must be a positive integer');

  // Metadata checks and alignment.
  const keys = new Set<string>();
  let alignment = spec.alignment;
  let hasAlignmentKey = false;
  for (const [i, e] of spec.metadata.entries()) {
    if (!e || typeof e.key !== 'string' || e.key.length === 0) throw invalid(`metadata entry ${i} needs a non-empty key`);
    if (keys.has(e.key)) throw invalid(`duplicate metadata key '${e.key}'`);
    keys.add(e.key);
    if (e.key === GGUF_KEY_GENERAL_ALIGNMENT) {
      hasAlignmentKey = true;
      if (e.type !== GgufValueType.UINT32 || typeof e.value !== 'number') throw invalid(`${GGUF_KEY_GENERAL_ALIGNMENT} must be a UINT32`);
      if (alignment !== undefined && alignment !== e.value) {
        throw invalid(`spec.alignment ${alignment} conflicts with ${GGUF_KEY_GENERAL_ALIGNMENT} = ${e.value}`);
      }
      alignment = e.value;
    }
  }
  alignment ??= GGUF_DEFAULT_ALIGNMENT;
  if (!Number.isSafeInteger(alignment) || alignment < 1 || alignment > 0xffffffff || (alignment & (alignment - 1)) !== 0) {
    throw invalid(`alignment ${alignment} must be a power of 2`);
  }
  const metadata: GgufWriteMetadataEntry[] =
    !hasAlignmentKey && alignment !== GGUF_DEFAULT_ALIGNMENT
      ? [...spec.metadata, { key: GGUF_KEY_GENERAL_ALIGNMENT, type: GgufValueType.UINT32, value: alignment }]
      : spec.metadata;

  // Tensor checks and layout.
  const names = new Set<string>();
  const prepared: PreparedTensor[] = [];
  let dataSize = 0;
  for (const [i, t] of spec.tensors.entries()) {
    if (!t || typeof t.name !== 'string' || t.name.length === 0) throw invalid(`tensor ${i} needs a non-empty name`);
    if (Buffer.byteLength(t.name) >= GGML_MAX_NAME) throw invalid(`tensor name '${t.name}' is longer than ${GGML_MAX_NAME - 1} bytes`);
    if (names.has(t.name)) throw invalid(`duplicate tensor name '${t.name}'`);
    names.add(t.name);
    if (!Array.isArray(t.dims) || t.dims.length < 1 || t.dims.length > GGML_MAX_DIMS) {
      throw invalid(`tensor '${t.name}' must have 1 to ${GGML_MAX_DIMS} dimensions`);
    }
    let elements = 1;
    for (const d of t.dims) {
      if (!Number.isSafeInteger(d) || d < 1) throw invalid(`tensor '${t.name}' has invalid dimension ${String(d)}`);
      elements *= d;
      if (!Number.isSafeInteger(elements)) throw invalid(`tensor '${t.name}' has too many elements`);
    }
    if (t.type !== 'F32' && t.type !== 'F16') throw invalid(`tensor '${t.name}' has unsupported type ${String(t.type)} (F32 or F16)`);
    if (t.data instanceof Float32Array) {
      if (t.data.length !== elements) {
        throw invalid(`tensor '${t.name}' has ${t.data.length} data elements, its dimensions need ${elements}`);
      }
    } else if (typeof t.data !== 'function') {
      throw invalid(`tensor '${t.name}' data must be a Float32Array or a function`);
    }
    const byteSize = elements * (t.type === 'F32' ? 4 : 2);
    prepared.push({ spec: t, elements, byteSize, offset: dataSize });
    dataSize += Math.ceil(byteSize / alignment) * alignment;
  }

  // Header.
  const hb = new ByteBuilder();
  hb.u32(GGUF_MAGIC);
  hb.u32(GGUF_VERSION);
  hb.i64(BigInt(prepared.length));
  hb.i64(BigInt(metadata.length));
  metadata.forEach((e, i) => writeEntry(hb, e, i));
  for (const p of prepared) {
    hb.string(p.spec.name);
    hb.u32(p.spec.dims.length);
    for (const d of p.spec.dims) hb.i64(BigInt(d));
    hb.i32(p.spec.type === 'F32' ? GgmlType.F32 : GgmlType.F16);
    hb.u64(BigInt(p.offset));
  }
  const headerEnd = hb.length;
  const dataOffset = prepared.length > 0 ? Math.ceil(headerEnd / alignment) * alignment : headerEnd;
  hb.zeros(dataOffset - headerEnd);
  const headerParts = hb.finish();

  const tmpPath = `${path}.${process.pid}-${randomBytes(4).toString('hex')}.partial`;
  let fh: FileHandle | undefined;
  try {
    fh = await fsp.open(tmpPath, 'wx');
    let pos = 0;
    for (const part of headerParts) {
      await writeAll(fh, part, pos);
      pos += part.length;
    }
    const zeros = Buffer.alloc(alignment);
    for (const p of prepared) {
      await writeTensorData(fh, p, dataOffset + p.offset, chunkElements);
      pos = dataOffset + p.offset + p.byteSize;
      const pad = Math.ceil(p.byteSize / alignment) * alignment - p.byteSize;
      if (pad > 0) await writeAll(fh, zeros.subarray(0, pad), pos);
      pos += pad;
    }
    await fh.close();
    fh = undefined;
    await fsp.rename(tmpPath, path);
    return { path, fileSize: pos, dataOffset };
  } catch (err) {
    if (fh) await fh.close().catch(() => undefined);
    await fsp.rm(tmpPath, { force: true }).catch(() => undefined);
    throw toLlamaError(err);
  }
}

async function writeTensorData(fh: FileHandle, p: PreparedTensor, position: number, chunkElements: number): Promise<void> {
  const { spec, elements } = p;
  const f16 = spec.type === 'F16';
  const bytesPerElement = f16 ? 2 : 4;
  const chunk = Math.min(chunkElements, elements);
  const source = spec.data;
  const generator = typeof source === 'function' ? source : undefined;
  // Two buffer sets so the next chunk is produced while the previous one is being written.
  const sets = [0, 1].map(() => ({
    f32: generator || f16 ? new Float32Array(chunk) : undefined,
    out: f16 ? new Uint16Array(chunk) : undefined,
  }));
  let pending: Promise<void> | undefined;
  let k = 0;
  try {
    for (let start = 0; start < elements; start += chunk, k++) {
      const len = Math.min(chunk, elements - start);
      const set = sets[k & 1]!;
      let values: Float32Array;
      if (generator) {
        values = set.f32!.subarray(0, len);
        values.fill(0);
        const r = generator(start, values);
        if (r && typeof (r as Promise<void>).then === 'function') await r;
      } else {
        values = (source as Float32Array).subarray(start, start + len);
      }
      let bytes: Buffer;
      if (f16) {
        const out = set.out!.subarray(0, len);
        float32ToFloat16Bits(values, out);
        bytes = Buffer.from(out.buffer, out.byteOffset, len * 2);
        if (BIG_ENDIAN_HOST) bytes.swap16();
      } else if (BIG_ENDIAN_HOST) {
        bytes = Buffer.from(new Uint8Array(values.buffer, values.byteOffset, len * 4)).swap32();
      } else {
        bytes = Buffer.from(values.buffer, values.byteOffset, len * 4);
      }
      if (pending) await pending;
      pending = writeAll(fh, bytes, position + start * bytesPerElement);
    }
    if (pending) await pending;
  } finally {
    // Make sure no write is still in flight when the caller closes the file after an error.
    if (pending) await pending.catch(() => undefined);
  }
}
