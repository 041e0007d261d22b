/**
 * A defensive GGUF header reader.
 *
 * The file is treated as untrusted input: it is read through a small buffered cursor with
 * positioned reads (never the whole file), every length and count is checked against the bytes
 * left in the file before anything is allocated, and every rule llama.cpp's gguf.cpp enforces
 * (plus a few stricter ones) is checked, so a malformed file is rejected here with a
 * `LlamaError('ERR_MODEL_INVALID')` instead of reaching native code.
 */
import { promises as fsp } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { LlamaError } from '../errors';
import {
  GGML_MAX_DIMS,
  GGML_MAX_NAME,
  GGUF_DEFAULT_ALIGNMENT,
  GGUF_KEY_GENERAL_ALIGNMENT,
  GGUF_MAGIC,
  GGUF_MAX_ARRAY_ELEMENTS,
  GGUF_MAX_STRING_LENGTH,
  GGUF_SUPPORTED_VERSIONS,
  GgufValueType,
  ggmlTypeInfo,
  ggufValueTypeName,
  ggufValueTypeSize,
  isGgufValueType,
  type GgufFile,
  type GgufMetadataEntry,
  type GgufMetadataValue,
  type GgufTensorInfo,
} from './types';

export { ggufValueToString } from './types';

export interface ReadGgufOptions {
  /**
   * Metadata arrays with more elements than this are validated and skipped (returned as
   * `{ kind: 'skipped-array', itemType, length }`). Default 1024; `Infinity` loads every array.
   */
  maxArrayLength?: number;
}

const DEFAULT_MAX_ARRAY_LENGTH = 1024;
const BUFFER_SIZE = 64 * 1024;
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);
/** Smallest possible encoding of one KV pair: key length (8) + a 1-byte key + type (4) + a 1-byte value. */
const MIN_KV_BYTES = 8 + 1 + 4 + 1;
/** Smallest possible tensor info: name length (8) + n_dims (4) + one dim (8) + type (4) + offset (8). */
const MIN_TENSOR_INFO_BYTES = 8 + 4 + 8 + 4 + 8;

/** Quotes a key or tensor name from the file for an error message (escaped, and shortened if long). */
function quote(s: string): string {
  const short = s.length > 100 ? `${s.slice(0, 100)}...` : s;
  return `'${JSON.stringify(short).slice(1, -1)}'`;
}

function describeBytes(bytes: Buffer): string {
  const text = Array.from(bytes, (b) => (b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : '?')).join('');
  return `'${text}' (0x${bytes.toString('hex')})`;
}

/** Buffered little-endian reader over a file handle, with bounds checks against the file size. */
class Cursor {
  pos = 0;
  private readonly buf = Buffer.allocUnsafe(BUFFER_SIZE);
  private bufStart = 0;
  private bufLen = 0;

  constructor(
    private readonly fh: FileHandle,
    readonly size: number,
    private readonly path: string,
  ) {}

  error(offset: number, message: string): LlamaError {
    return new LlamaError('ERR_MODEL_INVALID', `Invalid GGUF file '${this.path}': ${message} (at byte offset ${offset})`);
  }

  get remaining(): number {
    return this.size - this.pos;
  }

  private has(n: number): boolean {
    return this.pos >= this.bufStart && this.pos + n <= this.bufStart + this.bufLen;
  }

  /** Makes bytes [pos, pos + n) available in the buffer (n <= BUFFER_SIZE). */
  private async fill(n: number, what: string): Promise<void> {
    if (this.pos + n > this.size) {
      throw this.error(this.pos, `unexpected end of file while reading ${what}: need ${n} bytes, ${Math.max(0, this.remaining)} left`);
    }
    const want = Math.min(BUFFER_SIZE, this.size - this.pos);
    let got = 0;
    while (got < want) {
      let bytesRead: number;
      try {
        ({ bytesRead } = await this.fh.read(this.buf, got, want - got, this.pos + got));
      } catch (err) {
        throw new LlamaError('ERR_MODEL_INVALID', `Could not read GGUF file '${this.path}' at byte offset ${this.pos + got}: ${(err as Error).message}`, {
          cause: err,
        });
      }
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    this.bufStart = this.pos;
    this.bufLen = got;
    if (got < n) {
      // The file shrank while we were reading it.
      throw this.error(this.pos + got, `unexpected end of file while reading ${what}`);
    }
  }

  private at(): number {
    return this.pos - this.bufStart;
  }

  async u8(what: string): Promise<number> {
    if (!this.has(1)) await this.fill(1, what);
    const v = this.buf[this.at()]!;
    this.pos += 1;
    return v;
  }

  async i8(what: string): Promise<number> {
    if (!this.has(1)) await this.fill(1, what);
    const v = this.buf.readInt8(this.at());
    this.pos += 1;
    return v;
  }

  async u16(what: string): Promise<number> {
    if (!this.has(2)) await this.fill(2, what);
    const v = this.buf.readUInt16LE(this.at());
    this.pos += 2;
    return v;
  }

  async i16(what: string): Promise<number> {
    if (!this.has(2)) await this.fill(2, what);
    const v = this.buf.readInt16LE(this.at());
    this.pos += 2;
    return v;
  }

  async u32(what: string): Promise<number> {
    if (!this.has(4)) await this.fill(4, what);
    const v = this.buf.readUInt32LE(this.at());
    this.pos += 4;
    return v;
  }

  async i32(what: string): Promise<number> {
    if (!this.has(4)) await this.fill(4, what);
    const v = this.buf.readInt32LE(this.at());
    this.pos += 4;
    return v;
  }

  async f32(what: string): Promise<number> {
    if (!this.has(4)) await this.fill(4, what);
    const v = this.buf.readFloatLE(this.at());
    this.pos += 4;
    return v;
  }

  async u64(what: string): Promise<bigint> {
    if (!this.has(8)) await this.fill(8, what);
    const v = this.buf.readBigUInt64LE(this.at());
    this.pos += 8;
    return v;
  }

  async i64(what: string): Promise<bigint> {
    if (!this.has(8)) await this.fill(8, what);
    const v = this.buf.readBigInt64LE(this.at());
    this.pos += 8;
    return v;
  }

  async f64(what: string): Promise<number> {
    if (!this.has(8)) await this.fill(8, what);
    const v = this.buf.readDoubleLE(this.at());
    this.pos += 8;
    return v;
  }

  /** Reads n raw bytes (n already checked against the remaining file size by the caller). */
  async bytes(n: number, what: string): Promise<Buffer> {
    if (n <= BUFFER_SIZE) {
      if (!this.has(n)) await this.fill(n, what);
      const start = this.at();
      this.pos += n;
      return Buffer.from(this.buf.subarray(start, start + n));
    }
    if (this.pos + n > this.size) throw this.error(this.pos, `unexpected end of file while reading ${what}`);
    const out = Buffer.allocUnsafe(n);
    let got = 0;
    while (got < n) {
      let bytesRead: number;
      try {
        ({ bytesRead } = await this.fh.read(out, got, n - got, this.pos + got));
      } catch (err) {
        throw new LlamaError('ERR_MODEL_INVALID', `Could not read GGUF file '${this.path}' at byte offset ${this.pos + got}: ${(err as Error).message}`, {
          cause: err,
        });
      }
      if (bytesRead === 0) throw this.error(this.pos + got, `unexpected end of file while reading ${what}`);
      got += bytesRead;
    }
    this.pos += n;
    return out;
  }

  /** Advances n bytes without reading them (bounds are checked). */
  skip(n: number, what: string): void {
    if (n > this.remaining) {
      throw this.error(this.pos, `unexpected end of file while skipping ${what}: need ${n} bytes, ${this.remaining} left`);
    }
    this.pos += n;
  }

  /** Reads the u64 length of a GGUF string and validates it; returns the byte length. */
  async stringLength(what: string): Promise<number> {
    const lenOffset = this.pos;
    const len = await this.u64(`length of ${what}`);
    if (len > BigInt(this.remaining)) {
      throw this.error(lenOffset, `length ${len} of ${what} exceeds the ${this.remaining} bytes left in the file`);
    }
    if (len > BigInt(GGUF_MAX_STRING_LENGTH)) {
      throw this.error(lenOffset, `length ${len} of ${what} exceeds the maximum string length ${GGUF_MAX_STRING_LENGTH}`);
    }
    return Number(len);
  }

  async string(what: string): Promise<string> {
    const len = await this.stringLength(what);
    if (len === 0) return '';
    if (len <= BUFFER_SIZE) {
      if (!this.has(len)) await this.fill(len, what);
      const start = this.at();
      this.pos += len;
      return this.buf.toString('utf8', start, start + len);
    }
    return (await this.bytes(len, what)).toString('utf8');
  }

  /** Reads a string's raw bytes (used for names whose byte length matters). */
  async stringBytes(what: string): Promise<Buffer> {
    const len = await this.stringLength(what);
    return len === 0 ? Buffer.alloc(0) : this.bytes(len, what);
  }
}

async function readScalar(c: Cursor, type: GgufValueType, what: string): Promise<number | bigint | boolean | string> {
  switch (type) {
    case GgufValueType.UINT8:
      return c.u8(what);
    case GgufValueType.INT8:
      return c.i8(what);
    case GgufValueType.UINT16:
      return c.u16(what);
    case GgufValueType.INT16:
      return c.i16(what);
    case GgufValueType.UINT32:
      return c.u32(what);
    case GgufValueType.INT32:
      return c.i32(what);
    case GgufValueType.FLOAT32:
      return c.f32(what);
    case GgufValueType.BOOL:
      return (await c.i8(what)) !== 0; // like gguf.cpp: any non-zero byte is true
    case GgufValueType.STRING:
      return c.string(what);
    case GgufValueType.UINT64:
      return c.u64(what);
    case GgufValueType.INT64:
      return c.i64(what);
    case GgufValueType.FLOAT64:
      return c.f64(what);
    default:
      throw new Error(`unreachable: value type ${type as number}`);
  }
}

async function readArray(c: Cursor, key: string, maxArrayLength: number): Promise<{ itemType: GgufValueType; value: GgufMetadataValue }> {
  const typeOffset = c.pos;
  const itemType = await c.i32(`array item type of key ${quote(key)}`);
  if (itemType === GgufValueType.ARRAY) {
    throw c.error(typeOffset, `key ${quote(key)} is an array of arrays, which GGUF (llama.cpp's gguf.cpp) does not support`);
  }
  if (!isGgufValueType(itemType)) {
    throw c.error(typeOffset, `key ${quote(key)} has an array of unknown value type ${itemType}`);
  }
  const countOffset = c.pos;
  const count = await c.u64(`array length of key ${quote(key)}`);
  const itemSize = ggufValueTypeSize(itemType);
  // Strings take at least their 8-byte length prefix.
  const minItemBytes = itemType === GgufValueType.STRING ? 8 : itemSize;
  if (count * BigInt(minItemBytes) > BigInt(c.remaining)) {
    throw c.error(
      countOffset,
      `array length ${count} of key ${quote(key)} (${ggufValueTypeName(itemType)}) needs at least ${count * BigInt(minItemBytes)} bytes but only ${c.remaining} are left in the file`,
    );
  }
  if (count > BigInt(GGUF_MAX_ARRAY_ELEMENTS)) {
    throw c.error(countOffset, `array length ${count} of key ${quote(key)} exceeds the maximum of ${GGUF_MAX_ARRAY_ELEMENTS} elements`);
  }
  const n = Number(count);
  const what = `element of array ${quote(key)}`;
  if (n > maxArrayLength) {
    if (itemType === GgufValueType.STRING) {
      for (let i = 0; i < n; i++) c.skip(await c.stringLength(what), what);
    } else {
      c.skip(n * itemSize, `array ${quote(key)}`);
    }
    return { itemType, value: { kind: 'skipped-array', itemType, length: n } };
  }
  const out: Array<number | bigint | boolean | string> = [];
  for (let i = 0; i < n; i++) out.push(await readScalar(c, itemType, what));
  return { itemType, value: out as GgufMetadataValue };
}

function openError(path: string, err: unknown): LlamaError {
  const code = (err as NodeJS.ErrnoException)?.code;
  const msg = (err as Error)?.message ?? String(err);
  if (code === 'ENOENT' || code === 'ENOTDIR') {
    return new LlamaError('ERR_MODEL_NOT_FOUND', `Model file not found: '${path}'`, { cause: err });
  }
  if (code === 'EISDIR') {
    return new LlamaError('ERR_MODEL_INVALID', `Invalid GGUF file '${path}': it is a directory, not a file`, { cause: err });
  }
  if (code === 'EACCES' || code === 'EPERM') {
    return new LlamaError('ERR_MODEL_NOT_FOUND', `Model file '${path}' cannot be opened: permission denied`, { cause: err });
  }
  return new LlamaError('ERR_MODEL_INVALID', `Could not open GGUF file '${path}': ${msg}`, { cause: err });
}

/**
 * Reads and validates the header (metadata and tensor infos) of a GGUF file.
 * Only the header region is read; tensor data is only bounds-checked.
 *
 * @throws LlamaError ERR_MODEL_NOT_FOUND if the file does not exist, ERR_MODEL_INVALID if it is not
 *   a valid GGUF v2/v3 file, ERR_INVALID_ARGUMENT for bad arguments.
 */
export async function readGguf(path: string, options: ReadGgufOptions = {}): Promise<GgufFile> {
  if (typeof path !== 'string' || path.length === 0) {
    throw new LlamaError('ERR_INVALID_ARGUMENT', 'readGguf: path must be a non-empty string');
  }
  const maxArrayLength = options.maxArrayLength ?? DEFAULT_MAX_ARRAY_LENGTH;
  if (typeof maxArrayLength !== 'number' || Number.isNaN(maxArrayLength) || maxArrayLength < 0) {
    throw new LlamaError('ERR_INVALID_ARGUMENT', 'readGguf: maxArrayLength must be a non-negative number or Infinity');
  }

  let fh: FileHandle;
  try {
    fh = await fsp.open(path, 'r');
  } catch (err) {
    throw openError(path, err);
  }
  try {
    let size: number;
    try {
      const st = await fh.stat();
      if (st.isDirectory()) throw Object.assign(new Error('is a directory'), { code: 'EISDIR' });
      if (!st.isFile()) {
        throw new LlamaError('ERR_MODEL_INVALID', `Invalid GGUF file '${path}': not a regular file`);
      }
      size = st.size;
    } catch (err) {
      if (err instanceof LlamaError) throw err;
      throw openError(path, err);
    }
    return await parse(fh, size, path, maxArrayLength);
  } catch (err) {
    if (err instanceof LlamaError) throw err;
    // Nothing else is expected; never leak a non-LlamaError to the caller.
    throw new LlamaError('ERR_MODEL_INVALID', `Invalid GGUF file '${path}': ${(err as Error)?.message ?? String(err)}`, { cause: err });
  } finally {
    await fh.close().catch(() => undefined);
  }
}

async function parse(fh: FileHandle, size: number, path: string, maxArrayLength: number): Promise<GgufFile> {
  const c = new Cursor(fh, size, path);
  if (size === 0) throw c.error(0, 'the file is empty');
  if (size < 4) throw c.error(0, `the file is only ${size} bytes long, too short for the GGUF magic`);

  // Magic and version.
  const magic = await c.bytes(4, 'magic');
  if (magic.readUInt32LE(0) !== GGUF_MAGIC) {
    throw c.error(0, `bad magic ${describeBytes(magic)}, expected 'GGUF'`);
  }
  const version = await c.u32('version');
  if (!GGUF_SUPPORTED_VERSIONS.includes(version)) {
    let why = `unsupported GGUF version ${version} (supported: ${GGUF_SUPPORTED_VERSIONS.join(', ')})`;
    if (version === 1) why = 'GGUF version 1 is no longer supported by llama.cpp (supported: 2, 3)';
    else if (version !== 0 && (version & 0xffff) === 0) {
      why = `unsupported GGUF version ${version} (0x${version.toString(16)}): the file is probably big-endian, only little-endian files are supported`;
    }
    throw c.error(4, why);
  }

  // Counts (int64 in the file).
  const nTensorsBig = await c.i64('tensor count');
  const nKvBig = await c.i64('metadata key/value count');
  if (nTensorsBig < 0n) throw c.error(8, `negative tensor count ${nTensorsBig}`);
  if (nKvBig < 0n) throw c.error(16, `negative metadata key/value count ${nKvBig}`);
  const rest = BigInt(c.remaining);
  if (nKvBig * BigInt(MIN_KV_BYTES) > rest) {
    throw c.error(16, `metadata key/value count ${nKvBig} cannot fit in the ${rest} bytes left in the file`);
  }
  if (nTensorsBig * BigInt(MIN_TENSOR_INFO_BYTES) + nKvBig * BigInt(MIN_KV_BYTES) > rest) {
    throw c.error(8, `tensor count ${nTensorsBig} (with ${nKvBig} key/value pairs) cannot fit in the ${rest} bytes left in the file`);
  }
  const nTensors = Number(nTensorsBig);
  const nKv = Number(nKvBig);

  // Metadata.
  const metadata: Record<string, GgufMetadataValue> = Object.create(null);
  const entries: GgufMetadataEntry[] = [];
  const seenKeys = new Map<string, number>();
  let alignmentKeyOffset = 0;
  for (let i = 0; i < nKv; i++) {
    const keyOffset = c.pos;
    const key = await c.string(`key of metadata entry ${i}`);
    if (key.length === 0) throw c.error(keyOffset, `metadata entry ${i} has an empty key`);
    const prev = seenKeys.get(key);
    if (prev !== undefined) throw c.error(keyOffset, `duplicate metadata key ${quote(key)} (entries ${prev} and ${i})`);
    seenKeys.set(key, i);
    if (key === GGUF_KEY_GENERAL_ALIGNMENT) alignmentKeyOffset = keyOffset;

    const typeOffset = c.pos;
    const type = await c.i32(`value type of key ${quote(key)}`);
    if (!isGgufValueType(type)) throw c.error(typeOffset, `key ${quote(key)} has unknown value type ${type}`);
    let entry: GgufMetadataEntry;
    if (type === GgufValueType.ARRAY) {
      const { itemType, value } = await readArray(c, key, maxArrayLength);
      entry = { key, type, itemType, value };
    } else {
      entry = { key, type, value: await readScalar(c, type, `value of key ${quote(key)}`) };
    }
    metadata[key] = entry.value;
    entries.push(entry);
  }

  // Alignment.
  let alignment = GGUF_DEFAULT_ALIGNMENT;
  const alignEntry = entries.find((e) => e.key === GGUF_KEY_GENERAL_ALIGNMENT);
  if (alignEntry) {
    if (alignEntry.type !== GgufValueType.UINT32) {
      throw c.error(alignmentKeyOffset, `key '${GGUF_KEY_GENERAL_ALIGNMENT}' must be of type UINT32 but is ${ggufValueTypeName(alignEntry.type)}`);
    }
    alignment = alignEntry.value as number;
    if (alignment === 0 || (alignment & (alignment - 1)) !== 0) {
      throw c.error(alignmentKeyOffset, `${GGUF_KEY_GENERAL_ALIGNMENT} = ${alignment} is not a non-zero power of 2`);
    }
  }

  // Tensor infos.
  const tensors: GgufTensorInfo[] = [];
  const offsetsAt: number[] = [];
  const seenNames = new Map<string, number>();
  for (let i = 0; i < nTensors; i++) {
    const nameOffset = c.pos;
    const nameBytes = await c.stringBytes(`name of tensor ${i}`);
    const name = nameBytes.toString('utf8');
    if (nameBytes.length >= GGML_MAX_NAME) {
      throw c.error(nameOffset, `name of tensor ${i} is ${nameBytes.length} bytes long, the maximum is ${GGML_MAX_NAME - 1}`);
    }
    const prev = seenNames.get(name);
    if (prev !== undefined) throw c.error(nameOffset, `duplicate tensor name ${quote(name)} (tensors ${prev} and ${i})`);
    seenNames.set(name, i);

    const nDimsOffset = c.pos;
    const nDims = await c.u32(`dimension count of tensor ${quote(name)}`);
    if (nDims === 0 || nDims > GGML_MAX_DIMS) {
      throw c.error(nDimsOffset, `tensor ${quote(name)} has ${nDims} dimensions, expected 1 to ${GGML_MAX_DIMS}`);
    }
    const dims: number[] = [];
    let elements = 1n;
    for (let d = 0; d < nDims; d++) {
      const dimOffset = c.pos;
      const ne = await c.i64(`dimension ${d} of tensor ${quote(name)}`);
      if (ne < 1n) throw c.error(dimOffset, `tensor ${quote(name)} dimension ${d} is ${ne}, must be at least 1`);
      elements *= ne;
      if (elements > MAX_SAFE) {
        throw c.error(dimOffset, `element count of tensor ${quote(name)} overflows 2^53 (dimension ${d} = ${ne})`);
      }
      dims.push(Number(ne));
    }

    const typeOffset = c.pos;
    const type = await c.i32(`type of tensor ${quote(name)}`);
    const ti = ggmlTypeInfo(type);
    if (!ti) throw c.error(typeOffset, `tensor ${quote(name)} has unknown ggml type ${type}`);
    if (dims[0]! % ti.blockSize !== 0) {
      throw c.error(typeOffset, `tensor ${quote(name)} of type ${ti.name} has rows of ${dims[0]} elements, not a multiple of the block size ${ti.blockSize}`);
    }
    const byteSizeBig = (elements / BigInt(ti.blockSize)) * BigInt(ti.bytesPerBlock);
    if (byteSizeBig > BigInt(size)) {
      throw c.error(typeOffset, `tensor ${quote(name)} needs ${byteSizeBig} bytes of data, more than the file size ${size}`);
    }

    const offOffset = c.pos;
    const offsetBig = await c.u64(`data offset of tensor ${quote(name)}`);
    if (offsetBig > BigInt(size)) {
      throw c.error(offOffset, `tensor ${quote(name)} data offset ${offsetBig} is past the end of the file (${size} bytes)`);
    }
    offsetsAt.push(offOffset);
    tensors.push({ name, dims, type, typeName: ti.name, offset: Number(offsetBig), byteSize: Number(byteSizeBig) });
  }

  // Data section: aligned when there are tensors (as in gguf.cpp).
  const headerEnd = c.pos;
  const dataOffset = nTensors > 0 ? Math.ceil(headerEnd / alignment) * alignment : headerEnd;
  if (dataOffset > size) {
    throw c.error(headerEnd, `the tensor data section would start at ${dataOffset}, past the end of the file (${size} bytes)`);
  }

  for (let i = 0; i < tensors.length; i++) {
    const t = tensors[i]!;
    if (t.offset % alignment !== 0) {
      throw c.error(offsetsAt[i]!, `tensor ${quote(t.name)} data offset ${t.offset} is not a multiple of the alignment ${alignment}`);
    }
    const end = dataOffset + t.offset + t.byteSize;
    if (end > size) {
      throw c.error(
        offsetsAt[i]!,
        `tensor ${quote(t.name)} data (${t.byteSize} bytes at file offset ${dataOffset + t.offset}) extends past the end of the file (${size} bytes)`,
      );
    }
  }

  const order = tensors.map((_, i) => i).sort((a, b) => tensors[a]!.offset - tensors[b]!.offset);
  for (let k = 1; k < order.length; k++) {
    const a = tensors[order[k - 1]!]!;
    const b = tensors[order[k]!]!;
    if (a.offset + a.byteSize > b.offset) {
      throw c.error(
        offsetsAt[order[k]!]!,
        `tensor ${quote(b.name)} data [${b.offset}, ${b.offset + b.byteSize}) overlaps tensor ${quote(a.name)} data [${a.offset}, ${a.offset + a.byteSize})`,
      );
    }
  }

  // gguf.cpp additionally requires the data to be packed in tensor-info order, each tensor padded
  // to the alignment; anything else makes llama.cpp refuse the file.
  let expected = 0;
  for (let i = 0; i < tensors.length; i++) {
    const t = tensors[i]!;
    if (t.offset !== expected) {
      throw c.error(
        offsetsAt[i]!,
        `tensor ${quote(t.name)} data offset is ${t.offset} but llama.cpp requires ${expected} (tensor data must be stored contiguously in tensor-info order, each tensor padded to ${alignment} bytes)`,
      );
    }
    expected += Math.ceil(t.byteSize / alignment) * alignment;
  }

  return { version, alignment, metadata, entries, tensors, dataOffset, fileSize: size };
}
