/**
 * tea-llama: GGUF language models in-process through llama.cpp.
 */
export { LlamaError, type LlamaErrorCode } from './errors';
export { LlamaModel, loadModel } from './model';
export { setLogLevel, type LogLevel } from './native/load-binding';
export { readGguf, type GgufFile, type GgufTensorInfo, type GgufMetadataValue } from './gguf';
export type * from './types';

import { getBinding } from './native/load-binding';

/** Names accepted as `template` that select one of llama.cpp's built-in chat templates. */
export function builtinChatTemplates(): string[] {
  return getBinding().builtinChatTemplates();
}

/** The CPU features and backends the native library was built with and detected at run time. */
export function systemInfo(): string {
  return getBinding().systemInfo();
}
