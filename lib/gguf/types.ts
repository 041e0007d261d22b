/**
 * GGUF format constants and shared types.
 *
 * Numbers follow the pinned llama.cpp sources: `enum gguf_type` in ggml/include/gguf.h,
 * `enum ggml_type` in ggml/include/ggml.h and the block sizes/bytes from `type_traits` in
 * ggml/src/ggml.c (struct sizes asserted in ggml/src/ggml-common.h).
 */

/** "GGUF" as read little-endian from the first four bytes of a file. */
export const GGUF_MAGIC = 0x46554747;
/** The version this package writes. */
export const GGUF_VERSION = 3;
/** Versions the reader accepts (v1 used 32-bit counts and is not supported by llama.cpp any more). */
export const GGUF_SUPPORTED_VERSIONS: readonly number[] = [2, 3];
export const GGUF_DEFAULT_ALIGNMENT = 32;
export const GGUF_KEY_GENERAL_ALIGNMENT = 'general.alignment';
/** GGML_MAX_DIMS in ggml.h. */
export const GGML_MAX_DIMS = 4;
/** GGML_MAX_NAME in ggml.h: tensor names must be shorter than this (in bytes). */
export const GGML_MAX_NAME = 64;
/** GGUF_MAX_STRING_LENGTH in gguf.cpp. */
export const GGUF_MAX_STRING_LENGTH = 1024 * 1024 * 1024;
/** GGUF_MAX_ARRAY_ELEMENTS in gguf.cpp. */
export const GGUF_MAX_ARRAY_ELEMENTS = 1024 * 1024 * 1024;

/** Types of GGUF metadata values (`enum gguf_type`). */
export enum GgufValueType {
  UINT8 = 0,
  INT8 = 1,
  UINT16 = 2,
  INT16 = 3,
  UINT32 = 4,
  INT32 = 5,
  FLOAT32 = 6,
  BOOL = 7,
  STRING = 8,
  ARRAY = 9,
  UINT64 = 10,
  INT64 = 11,
  FLOAT64 = 12,
}

/** Size in bytes of a fixed-size GGUF value type, or 0 for STRING / ARRAY / unknown types. */
export function ggufValueTypeSize(type: number): number {
  switch (type) {
    case GgufValueType.UINT8:
    case GgufValueType.INT8:
    case GgufValueType.BOOL:
      return 1;
    case GgufValueType.UINT16:
    case GgufValueType.INT16:
      return 2;
    case GgufValueType.UINT32:
    case GgufValueType.INT32:
    case GgufValueType.FLOAT32:
      return 4;
    case GgufValueType.UINT64:
    case GgufValueType.INT64:
    case GgufValueType.FLOAT64:
      return 8;
    default:
      return 0;
  }
}

export function isGgufValueType(type: number): type is GgufValueType {
  return Number.isInteger(type) && type >= GgufValueType.UINT8 && type <= GgufValueType.FLOAT64;
}

export function ggufValueTypeName(type: number): string {
  return isGgufValueType(type) ? GgufValueType[type] : `unknown(${type})`;
}

/** Tensor data types (`enum ggml_type`). Gaps are types removed from llama.cpp. */
export enum GgmlType {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  // 4 (Q4_2) and 5 (Q4_3): removed
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q8_1 = 9,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  Q8_K = 15,
  IQ2_XXS = 16,
  IQ2_XS = 17,
  IQ3_XXS = 18,
  IQ1_S = 19,
  IQ4_NL = 20,
  IQ3_S = 21,
  IQ2_S = 22,
  IQ4_XS = 23,
  I8 = 24,
  I16 = 25,
  I32 = 26,
  I64 = 27,
  F64 = 28,
  IQ1_M = 29,
  BF16 = 30,
  // 31..33 (Q4_0_4_4, Q4_0_4_8, Q4_0_8_8): removed from GGUF files
  TQ1_0 = 34,
  TQ2_0 = 35,
  // 36..38 (IQ4_NL_4_4, IQ4_NL_4_8, IQ4_NL_8_8): removed
  MXFP4 = 39,
  NVFP4 = 40,
  Q1_0 = 41,
  Q2_0 = 42,
}

/** GGML_TYPE_COUNT of the pinned llama.cpp. */
export const GGML_TYPE_COUNT = 43;

export interface GgmlTypeInfo {
  readonly type: GgmlType;
  /** Upper-case name as in ggml.h without the GGML_TYPE_ prefix, e.g. 'Q4_K'. */
  readonly name: string;
  /** Elements per block (`blck_size`). */
  readonly blockSize: number;
  /** Bytes per block (`type_size`). */
  readonly bytesPerBlock: number;
  readonly quantized: boolean;
}

const QK_K = 256;

function info(type: GgmlType, blockSize: number, bytesPerBlock: number, quantized = true): GgmlTypeInfo {
  return Object.freeze({ type, name: GgmlType[type], blockSize, bytesPerBlock, quantized });
}

/** Block layout of every tensor type llama.cpp can load from a GGUF file, indexed by type number. */
export const GGML_TYPES: Readonly<Partial<Record<number, GgmlTypeInfo>>> = Object.freeze({
  [GgmlType.F32]: info(GgmlType.F32, 1, 4, false),
  [GgmlType.F16]: info(GgmlType.F16, 1, 2, false),
  [GgmlType.Q4_0]: info(GgmlType.Q4_0, 32, 2 + 16),
  [GgmlType.Q4_1]: info(GgmlType.Q4_1, 32, 2 + 2 + 16),
  [GgmlType.Q5_0]: info(GgmlType.Q5_0, 32, 2 + 4 + 16),
  [GgmlType.Q5_1]: info(GgmlType.Q5_1, 32, 2 + 2 + 4 + 16),
  [GgmlType.Q8_0]: info(GgmlType.Q8_0, 32, 2 + 32),
  [GgmlType.Q8_1]: info(GgmlType.Q8_1, 32, 2 + 2 + 32),
  [GgmlType.Q2_K]: info(GgmlType.Q2_K, QK_K, 2 + 2 + QK_K / 16 + QK_K / 4),
  [GgmlType.Q3_K]: info(GgmlType.Q3_K, QK_K, 2 + QK_K / 4 + QK_K / 8 + 12),
  [GgmlType.Q4_K]: info(GgmlType.Q4_K, QK_K, 2 + 2 + 12 + QK_K / 2),
  [GgmlType.Q5_K]: info(GgmlType.Q5_K, QK_K, 2 + 2 + 12 + QK_K / 2 + QK_K / 8),
  [GgmlType.Q6_K]: info(GgmlType.Q6_K, QK_K, 2 + QK_K / 16 + (3 * QK_K) / 4),
  [GgmlType.Q8_K]: info(GgmlType.Q8_K, QK_K, 4 + QK_K + (QK_K / 16) * 2),
  [GgmlType.IQ2_XXS]: info(GgmlType.IQ2_XXS, QK_K, 2 + (QK_K / 8) * 2),
  [GgmlType.IQ2_XS]: info(GgmlType.IQ2_XS, QK_K, 2 + (QK_K / 8) * 2 + QK_K / 32),
  [GgmlType.IQ3_XXS]: info(GgmlType.IQ3_XXS, QK_K, 2 + 3 * (QK_K / 8)),
  [GgmlType.IQ1_S]: info(GgmlType.IQ1_S, QK_K, 2 + QK_K / 8 + QK_K / 16),
  [GgmlType.IQ4_NL]: info(GgmlType.IQ4_NL, 32, 2 + 16),
  [GgmlType.IQ3_S]: info(GgmlType.IQ3_S, QK_K, 2 + 13 * (QK_K / 32) + QK_K / 64),
  [GgmlType.IQ2_S]: info(GgmlType.IQ2_S, QK_K, 2 + QK_K / 4 + QK_K / 16),
  [GgmlType.IQ4_XS]: info(GgmlType.IQ4_XS, QK_K, 2 + 2 + QK_K / 64 + QK_K / 2),
  [GgmlType.I8]: info(GgmlType.I8, 1, 1, false),
  [GgmlType.I16]: info(GgmlType.I16, 1, 2, false),
  [GgmlType.I32]: info(GgmlType.I32, 1, 4, false),
  [GgmlType.I64]: info(GgmlType.I64, 1, 8, false),
  [GgmlType.F64]: info(GgmlType.F64, 1, 8, false),
  [GgmlType.IQ1_M]: info(GgmlType.IQ1_M, QK_K, QK_K / 8 + QK_K / 16 + QK_K / 32),
  [GgmlType.BF16]: info(GgmlType.BF16, 1, 2, false),
  [GgmlType.TQ1_0]: info(GgmlType.TQ1_0, QK_K, 2 + QK_K / 64 + (QK_K - (4 * QK_K) / 64) / 5),
  [GgmlType.TQ2_0]: info(GgmlType.TQ2_0, QK_K, 2 + QK_K / 4),
  [GgmlType.MXFP4]: info(GgmlType.MXFP4, 32, 1 + 16),
  [GgmlType.NVFP4]: info(GgmlType.NVFP4, 64, 64 / 16 + 64 / 2),
  [GgmlType.Q1_0]: info(GgmlType.Q1_0, 128, 2 + 128 / 8),
  [GgmlType.Q2_0]: info(GgmlType.Q2_0, 64, 2 + 64 / 4),
});

/** Block layout of a tensor type, or undefined for unknown / removed types. */
export function ggmlTypeInfo(type: number): GgmlTypeInfo | undefined {
  return Number.isInteger(type) ? GGML_TYPES[type] : undefined;
}

/** A metadata array that was validated but not loaded because it was longer than `maxArrayLength`. */
export interface GgufSkippedArray {
  readonly kind: 'skipped-array';
  readonly itemType: GgufValueType;
  readonly length: number;
}

export type GgufScalarValue = number | bigint | boolean | string;

/**
 * A metadata value. UINT8..INT32, FLOAT32 and FLOAT64 are numbers; UINT64 and INT64 are always
 * bigints; BOOL is a boolean; STRING is a string (UTF-8 decoded, invalid sequences replaced by U+FFFD).
 */
export type GgufMetadataValue = GgufScalarValue | number[] | bigint[] | boolean[] | string[] | GgufSkippedArray;

/** One key/value pair with its exact GGUF types, in file order; can be passed to writeGguf as is. */
export interface GgufMetadataEntry {
  key: string;
  type: GgufValueType;
  /** Element type when `type` is ARRAY. */
  itemType?: GgufValueType;
  value: GgufMetadataValue;
}

export interface GgufTensorInfo {
  name: string;
  /** Dimensions, innermost (contiguous, ggml ne[0]) first. */
  dims: number[];
  /** ggml type number (see {@link GgmlType}). */
  type: number;
  /** Upper-case type name, e.g. 'F16' or 'Q4_K'. */
  typeName: string;
  /** Offset of the tensor's data, relative to the start of the data section. */
  offset: number;
  /** Size of the tensor's data in bytes (without alignment padding). */
  byteSize: number;
}

export interface GgufFile {
  version: number;
  alignment: number;
  /** Metadata values by key. */
  metadata: Record<string, GgufMetadataValue>;
  /** The same metadata with the exact value types, in file order (use this to copy metadata). */
  entries: GgufMetadataEntry[];
  tensors: GgufTensorInfo[];
  /** Absolute file offset of the tensor data section. */
  dataOffset: number;
  fileSize: number;
}

/** Renders a metadata value for display (long arrays are abbreviated). */
export function ggufValueToString(value: GgufMetadataValue, maxItems = 8): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'bigint') return value.toString();
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (Array.isArray(value)) {
    const items = (value as GgufScalarValue[]).slice(0, Math.max(0, maxItems)).map((v) => ggufValueToString(v));
    if (value.length > items.length) items.push(`... ${value.length - items.length} more`);
    return `[${items.join(', ')}]`;
  }
  if (value && typeof value === 'object' && value.kind === 'skipped-array') {
    return `[${ggufValueTypeName(value.itemType)} array of ${value.length} items, not loaded]`;
  }
  return String(value);
}
