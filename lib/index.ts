/**
 * tea-llama: GGUF language models in-process through llama.cpp.
 */
export { LlamaError, type LlamaErrorCode } from './errors';
export { LlamaModel, loadModel, SYNC_DETOKENIZE_MAX_TOKENS, SYNC_TOKENIZE_MAX_CHARS, TEMPLATE_LIMITS } from './model';
export type { LoadStateOptions, SavedState, SaveStateOptions } from './model';
export type { ChatSession, ChatSessionOptions, ChatTurnOptions, ChatTurnResult } from './engine/session';
export { LoraAdapter, type LoraRequest } from './lora';
export { checkRpcServer, listRpcDevices, type RpcDevice, type RpcServerInfo } from './rpc';
export { nativeInfo, setLogLevel, type LogLevel, type NativeInfo } from './native/load-binding';
export { readGguf, type GgufFile, type GgufTensorInfo, type GgufMetadataValue } from './gguf';
export type * from './types';
export type { InfillInput, RerankOptions, RerankResult, TokenPiece, TokenizerType, VocabularyInfo } from './engine/text-tasks';
export { GENERATION_DEFAULTS, SAMPLER_NAMES } from './engine/request';
export type { SequenceOptions } from './engine/request';
export type * from './backends/llm-backend';
export { LocalLlmBackend, type LocalLlmBackendOptions } from './backends/local-backend';
export { ApiLlmBackend, type ApiCompat, type ApiLlmBackendOptions } from './backends/api-backend';
export { MockLlmBackend, type MockLlmBackendOptions, type MockCall } from './backends/mock-backend';
export type { BackendCommonOptions } from './backends/base-backend';
export { ResponseCache, type ResponseCacheKey } from './backends/response-cache';
export { createLlmBackend, type CreateLlmBackendOptions, type CreateLlmBackendContext } from './create-backend';
export { resolveSettings, parseSettingsYaml, type ResolveSettingsOptions } from './config/settings';
export { settingsFromEnv } from './config/env';
export { SettingsError, SETTING_KEYS, type LlmSettings, type LlmSettingsInput, type SettingsIssue, type SettingSource } from './config/schema';
export { getModelInfo, FAMILY_CONTEXT, type GetModelInfoOptions, type ModelAutoConfig, type ModelFamily } from './config/model-info';
export {
  resolveModelPath,
  ggufFilesIn,
  describeSearch,
  DEFAULT_MODEL_FILES,
  type AmbiguousFolder,
  type ModelFile,
  type ModelPathResolution,
  type ModelPathCandidate,
  type ModelPathSource,
  type ResolveModelPathOptions,
} from './config/model-path';
export { createServer, type CreateServerOptions, type TeaServer } from './server/server';
export { ServerMetrics } from './server/metrics';
export { createStderrLogger, defaultLogger, silentLogger, type Logger, type LoggerLevel } from './logger';
export {
  LLM_ACTIONS,
  LLM_ACTION_NAMES,
  checkActionParams,
  createLlmActions,
  isLlmAction,
  WorkflowError,
  loadWorkflow,
  parseWorkflow,
  prepareWorkflow,
  runWorkflow,
  runScript,
  checkWorkflowScripts,
  WorkflowScriptError,
  META_KEY,
  DEFAULT_SCRIPT_TIMEOUT_MS,
  DEFAULT_SCRIPT_MEMORY_BYTES,
  type ActionValue,
  type ActionMeta,
  type ActionOutcome,
  type ActionNode,
  type ScriptNode,
  type ScriptFailure,
  type ScriptLimits,
  parseTemplate,
  renderTemplate,
  templateReferences,
  type ActionHandler,
  type ActionParamSpec,
  type ActionParamType,
  type LlmActionContext,
  type LlmActionDefinition,
  type LlmActionName,
  type ParamIssue,
  type RunWorkflowOptions,
  type StateField,
  type StateReference,
  type StateType,
  type TemplatePart,
  type Workflow,
  type WorkflowIssue,
  type WorkflowNode,
} from './workflow';

import { getBinding } from './native/load-binding';

/** Names accepted as `template` that select one of llama.cpp's built-in chat templates. */
export function builtinChatTemplates(): string[] {
  return getBinding().builtinChatTemplates();
}

/** The CPU features and backends the native library was built with and detected at run time. */
export function systemInfo(): string {
  return getBinding().systemInfo();
}
