/** Stable error codes: every error tea-llama throws is a {@link LlamaError} with one of these. */
export type LlamaErrorCode =
  | 'ERR_MODEL_NOT_FOUND'
  | 'ERR_MODEL_INVALID'
  | 'ERR_MODEL_VOCAB_ONLY'
  | 'ERR_MODEL_UNSUPPORTED'
  | 'ERR_DRAFT_INCOMPATIBLE'
  | 'ERR_LORA_INVALID'
  | 'ERR_CONTEXT_CREATE'
  | 'ERR_CONTEXT_OVERFLOW'
  | 'ERR_TEMPLATE_NOT_FOUND'
  | 'ERR_TEMPLATE_UNSUPPORTED'
  | 'ERR_TEMPLATE'
  | 'ERR_INVALID_GRAMMAR'
  | 'ERR_INVALID_SCHEMA'
  | 'ERR_DECODE'
  | 'ERR_NUMERIC'
  | 'ERR_ABORTED'
  | 'ERR_DISPOSED'
  | 'ERR_QUEUE_FULL'
  | 'ERR_INVALID_ARGUMENT'
  | 'ERR_OUT_OF_MEMORY'
  | 'ERR_NATIVE_LOAD'
  | 'ERR_BACKEND_UNAVAILABLE'
  | 'ERR_INTERNAL'
  | 'ERR_API_HTTP'
  | 'ERR_API_TIMEOUT'
  | 'ERR_API_CONNECTION'
  | 'ERR_RPC_CONNECTION'
  | 'ERR_API_PROTOCOL'
  | 'ERR_API_RESPONSE'
  | 'ERR_SETTINGS_INVALID'
  | 'ERR_NO_BACKEND'
  | 'ERR_WORKFLOW_INVALID'
  | 'ERR_WORKFLOW_SCRIPT'
  | 'ERR_DOWNLOAD'
  | 'ERR_CHECKSUM'
  | 'ERR_INVALID_STATE';

export class LlamaError extends Error {
  readonly code: LlamaErrorCode;

  constructor(code: LlamaErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'LlamaError';
    this.code = code;
  }
}

/** Converts a coded Error from the native binding (or anything else) into a LlamaError. */
export function toLlamaError(error: unknown): LlamaError {
  if (error instanceof LlamaError) return error;
  const code = (error as { code?: unknown })?.code;
  const message = error instanceof Error ? error.message : String(error);
  return new LlamaError(typeof code === 'string' && code.startsWith('ERR_') ? (code as LlamaErrorCode) : 'ERR_INTERNAL', message, {
    cause: error,
  });
}
