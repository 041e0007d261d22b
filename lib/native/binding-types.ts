import type { ResolvedSampling } from '../engine/request';
import type { TokenLogprob } from '../types';

/**
 * The raw interface of the native addon (binding/*.cpp). Internal: the public API in lib/model.ts wraps it.
 * Each signature mirrors the comment above the bound C++ method.
 */

export interface NativeAbortFlag {
  abort(): void;
  readonly aborted: boolean;
}

export interface NativeModelOptions {
  gpuLayers?: number;
  rpcServers?: string[];
  tensorSplit?: number[];
  vocabOnly?: boolean;
  useMmap?: boolean;
}

export interface NativeContextOptions {
  contextSize?: number;
  batchSize?: number;
  microBatchSize?: number;
  threads?: number;
  threadsBatch?: number;
  embeddings?: boolean;
  /** llama_pooling_type: -1 the model's own, 0 none, 1 mean, 2 cls, 3 last, 4 rank. */
  pooling?: number;
  /** llama_flash_attn_type: -1 auto (default), 0 off, 1 on. */
  flashAttention?: number;
  /** Parallel sequences (n_seq_max) sharing one unified KV cache. Default 4. */
  sequences?: number;
  /** Requests that may wait for a free sequence; past it generate() throws ERR_QUEUE_FULL. Default 1024. */
  maxQueued?: number;
  /** Speculative decoding (binding/core/speculation.h), with createContext's draft model: llama.cpp's draft n_max, n_min, p_min. */
  draftMax?: number;
  draftMin?: number;
  draftPMin?: number;
  /** Prompt-lookup drafting (llama.cpp's ngram-simple) with its n-gram size and draft length. */
  ngram?: boolean;
  ngramSize?: number;
  ngramMax?: number;
}

/** What the native generate() takes: the request model's resolved sampling (lib/engine/request.ts). */
export type NativeGenerateOptions = Partial<Omit<ResolvedSampling, 'explicit' | 'seed' | 'stop'>> & { seed?: number; stop?: string[] } & NativeGrammarOptions & NativeSequenceOptions & {
  /** LoRA adapters of this model with their scales; empty or absent: the base model. */
  lora?: { adapter: NativeLora; scale: number }[];
};

/** binding/core/task.h GenerationTask: sequence pin and context shift. */
export interface NativeSequenceOptions {
  sequence?: number;
  contextShift?: boolean;
  nKeep?: number;
  nDiscard?: number;
}

/** A state task's answer (binding/core/task.h StateResult). */
export interface NativeStateResult {
  sequence: number;
  tokens: number;
  /** The metadata the file held (loadState). */
  meta: string;
  /** The file's bytes (saveState). */
  data?: Buffer;
}

/** One loaded LoRA adapter (binding/wrap/lora.h). */
export interface NativeLora {
  info(): { alpha: number; metadata: Record<string, string> };
  /** Drops this handle's share (idempotent); requests and contexts using it keep it alive. */
  dispose(): void;
  readonly disposed: boolean;
}

/** Constrained output of one generation (binding/core/task.h GrammarOptions). */
export interface NativeGrammarOptions {
  grammar?: string;
  /** JSON Schema text, converted to GBNF by llama.cpp when the request is admitted. */
  jsonSchema?: string;
  grammarKind?: 'user' | 'output_format' | 'tool_calls';
  grammarLazy?: boolean;
  grammarTriggers?: { type: number; value: string }[];
  preservedTokens?: string[];
  generationPrompt?: string;
}

/** A ChatParser's answer to update(): the message so far and the deltas since the last update, as JSON. */
export interface NativeChatParse {
  message: { content: string; reasoningContent: string; toolCalls: { id: string; type: 'function'; function: { name: string; arguments: string } }[] };
  deltas: { content?: string; reasoningContent?: string; toolCalls?: { index: number; id?: string; type?: 'function'; function: { name?: string; arguments?: string } }[] }[];
}

export interface NativeChatParser {
  /** Parses everything added so far (partially while streaming); returns NativeChatParse as JSON. */
  update(textAdded: string, partial: boolean): string;
}

export interface NativeModelInfo {
  architecture: string;
  name: string;
  description: string;
  chatTemplate: string | null;
  trainedContextLength: number;
  embeddingLength: number;
  layerCount: number;
  headCount: number;
  headCountKv: number;
  vocabSize: number;
  bosToken: number;
  eosToken: number;
  parameterCount: number;
  sizeBytes: number;
  hasEncoder: boolean;
  hasDecoder: boolean;
  isRecurrent: boolean;
  vocabOnly: boolean;
  metadata: Record<string, string>;
}

export interface NativeGeneration {
  text: string;
  promptTokens: number;
  reusedPromptTokens: number;
  completionTokens: number;
  finishReason: 'stop' | 'length' | 'abort';
  contextFull: boolean;
  /** The sequence (slot) that ran it. */
  sequence: number;
  /** Context shifts done during it (contextShift). */
  contextShifts: number;
  timings: { queuedMs: number; promptMs: number; generationMs: number; firstTokenMs: number };
  /** Speculative decoding: tokens drafted, and those the model accepted (0 without it). */
  draftTokens: number;
  acceptedDraftTokens: number;
  /** With logprobs (binding/napi/logprobs_object.cpp). */
  logprobs?: TokenLogprob[];
}

/** What a context's scheduler tells JavaScript, several at a time (binding/napi/event_channel.cpp). */
export type NativeEvent =
  | { id: number; type: 'text'; text: string }
  | { id: number; type: 'done'; result: NativeGeneration }
  | { id: number; type: 'error'; code: string; message: string }
  | { id: number; type: 'embeddings'; vectors: Float32Array[] }
  | ({ id: number; type: 'state' } & NativeStateResult);

/** An infill request's parts (binding/core/task.h InfillInput), every field filled in by lib/engine/text-tasks.ts. */
export interface NativeInfill {
  prefix: string;
  suffix: string;
  prompt: string;
  extra: { filename: string; text: string }[];
}

/** Model.vocabulary(): special token ids (-1: none), llama_vocab_type, and what tokenizing adds. */
export interface NativeVocabulary {
  bos: number;
  eos: number;
  eot: number;
  sep: number;
  nl: number;
  pad: number;
  mask: number;
  fimPre: number;
  fimSuf: number;
  fimMid: number;
  fimPad: number;
  fimRep: number;
  fimSep: number;
  addBos: boolean;
  addEos: boolean;
  addSep: boolean;
  type: number;
  size: number;
}

export interface NativeChatMessage {
  role: string;
  content: string;
}

export interface NativeTemplateLimits {
  maxDepth: number;
  maxSteps: number;
  maxOutputBytes: number;
  timeoutMs: number;
}

export interface NativeModel {
  info(): NativeModelInfo;
  tokenize(text: string, addSpecial: boolean, parseSpecial: boolean): Int32Array;
  detokenize(tokens: Int32Array | number[], removeSpecial: boolean, unparseSpecial: boolean): string;
  tokenizeAsync(text: string, addSpecial: boolean, parseSpecial: boolean, abort?: NativeAbortFlag): Promise<Int32Array>;
  detokenizeAsync(tokens: Int32Array | number[], removeSpecial: boolean, unparseSpecial: boolean, abort?: NativeAbortFlag): Promise<string>;
  tokenToPiece(token: number, special: boolean): string;
  /** Each token's piece (special tokens rendered), as bytes. */
  tokenPieces(tokens: Int32Array | number[]): Uint8Array[];
  vocabulary(): NativeVocabulary;
  /** `openaiJson`: optional `{ messages, tools }` in OpenAI's chat format, for templates that render tools. */
  applyChatTemplate(
    messages: NativeChatMessage[],
    template: string | null,
    addAssistant: boolean,
    limits: NativeTemplateLimits,
    abort: NativeAbortFlag | null,
    openaiJson?: string,
    full?: boolean,
  ): Promise<string>;
  applyChatTemplateSync(
    messages: NativeChatMessage[],
    template: string | null,
    addAssistant: boolean,
    limits: NativeTemplateLimits,
    abort: null,
    openaiJson?: string,
  ): string;
  /** `draft`: the draft model of speculative decoding (kept alive by the context). */
  createContext(options: NativeContextOptions, onEvents: (events: NativeEvent[]) => void, draft?: NativeModel): Promise<NativeContext>;
  /** llama_adapter_lora_init on a pool thread; ERR_LORA_INVALID when the file is not an adapter of this model. */
  loadLora(path: string): Promise<NativeLora>;
  dispose(): void;
  readonly disposed: boolean;
}

export interface NativeContextInfo {
  /** Most tokens one sequence may hold (the requested context size). */
  contextSize: number;
  /** KV cells of the unified cache (llama.cpp may round the context size up). */
  kvCells: number;
  batchSize: number;
  microBatchSize: number;
  sequences: number;
  maxQueued: number;
  /** Requests running in a sequence now, and waiting for one. */
  active: number;
  queued: number;
  embeddings: boolean;
  pooling: number;
  /** Drafts and verifies tokens (a draft model or n-gram drafting). */
  speculative: boolean;
}

export interface NativeContext {
  /** Submits a generation; returns its id. Events for it arrive through createContext's onEvents. */
  generate(prompt: string, options: NativeGenerateOptions, stream: boolean, infill?: NativeInfill): number;
  /** Submits texts to embed (with `rerankQuery`, documents to score against it: rank pooling); returns the request id. */
  embed(texts: string[], normalize: boolean, rerankQuery?: string): number;
  /** Saves a sequence's state; a 'state' event brings the file's bytes. */
  saveState(sequence: number, meta: string): number;
  /** Restores a state file's bytes into `sequence` (-1: an idle unreserved one). */
  loadState(data: Buffer, sequence: number): number;
  /** Reserves a sequence for requests that name it; ERR_QUEUE_FULL when none is left. */
  reserveSequence(): number;
  releaseSequence(sequence: number): void;
  cancel(id: number): void;
  info(): NativeContextInfo;
  /** Stops the scheduler (joined before it returns); final events are still delivered. */
  dispose(): void;
  readonly disposed: boolean;
}

export interface NativeBackendReport {
  /** Built with TEA_DYNAMIC_BACKENDS (the prebuild layout). */
  dynamic: boolean;
  /** 'static' (linked in), or the CPU variant module chosen at run time ('haswell', 'zen4', ...). */
  cpuVariant: string;
  /** Variants the CPU advertises but the OS has not enabled (so they would fault). */
  cpuRejected: string[];
  gpuLoaded: string[];
  gpuFailed: string[];
  devices: string[];
}

export interface NativeBinding {
  AbortFlag: new () => NativeAbortFlag;
  /** `paramsJson`: { format, reasoningFormat, generationPrompt, parser, parseToolCalls }. */
  ChatParser: new (paramsJson: string) => NativeChatParser;
  loadModel(
    path: string,
    options: NativeModelOptions,
    onProgress?: (progress: number) => void,
    abort?: NativeAbortFlag,
  ): Promise<NativeModel>;
  builtinChatTemplates(): string[];
  systemInfo(): string;
  setLogLevel(level: 0 | 1 | 2 | 3 | 4): void;
  loadBackends(dirs: string[], gpu: string, cpuVariant: string): NativeBackendReport;
}
