export * from './types';
export { readGguf, type ReadGgufOptions } from './reader';
export {
  writeGguf,
  float32ToFloat16Bits,
  float16BitsToFloat32,
  type GgufTensorDataGenerator,
  type GgufWriteMetadataEntry,
  type GgufWriteSpec,
  type GgufWriteTensor,
  type GgufWriteValue,
  type WriteGgufOptions,
  type WriteGgufResult,
} from './writer';
