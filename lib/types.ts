import type { GenerationOptions } from './engine/request';
import type { NativeModelInfo } from './native/binding-types';

import type { ReasoningFormat, ResponseFormat, StructuredOptions, ToolCall, ToolChoice, ToolDefinition } from './engine/structured';

export type { GenerationOptions, SamplerName, SamplingOptions } from './engine/request';
export type {
  GenerationDelta,
  JsonSchemaType,
  ParsedOf,
  ReasoningFormat,
  ResponseFormat,
  StructuredOptions,
  ToolCall,
  ToolCallDelta,
  ToolChoice,
  ToolDefinition,
} from './engine/structured';

export interface LoadModelOptions {
  /** Context window in tokens. Default: the model's trained context length, at most 4096. */
  contextSize?: number;
  /** CPU threads for generation and prompt processing. Default: every core (`os.availableParallelism()`). */
  threads?: number;
  /** Largest number of prompt tokens submitted to llama.cpp in one decode. Default 512. */
  batchSize?: number;
  /** Layers to offload to a GPU or to `rpcServers` (-1: all). Default 0 (-1 with `rpcServers`); ignored by CPU-only builds without them. */
  gpuLayers?: number;
  /**
   * llama.cpp rpc-servers (`'host:port'`, as `llama-server --rpc` takes them) whose devices hold layers of this
   * model: with `gpuLayers`, the offloaded layers are spread over them (and any local GPU) by free memory or
   * `tensorSplit`, the rest stay on the local CPU. Each is checked (connection and protocol version) within
   * `rpcConnectTimeoutMs` before llama.cpp connects: ERR_RPC_CONNECTION. Default: none. See README, RPC.
   */
  rpcServers?: string[];
  /** Share of the offloaded layers per device, in llama.cpp's order (RPC servers first, then local GPUs). Default: by free memory. */
  tensorSplit?: number[];
  /** Longest wait to connect to, and for the handshake of, each RPC server, in ms. Default 5000. */
  rpcConnectTimeoutMs?: number;
  /**
   * Once loaded, longest wait for an RPC server to take or answer one command, in ms (0: no limit): past it the
   * server counts as lost (ERR_RPC_CONNECTION). Generous, because a command may be a whole graph computation. Default 60000.
   */
  rpcTimeoutMs?: number;
  /** Load only the vocabulary: tokenize and chat templates work, generation does not. Default false. */
  vocabOnly?: boolean;
  /** Default sampling seed for this model's completions. Default: a fresh random seed per completion. */
  seed?: number;
  /** Context size for embeddings (each text must fit in it). Default: `min(contextSize, 1024)`. */
  embeddingContextSize?: number;
  /**
   * Pooling of embed() when it names none. 'rank' loads a reranker: the file must have a classifier head
   * (ERR_MODEL_UNSUPPORTED otherwise, checked before llama.cpp sees it). Default: the model's own, else 'mean'.
   */
  pooling?: Pooling;
  /**
   * Requests that run at once, each in its own sequence of one shared (unified) KV cache: concurrent calls are
   * batched into the same decode. Default 4 (llama-server's automatic choice). The KV cache holds `contextSize`
   * tokens in all, whatever the number of sequences; one request may use all of it when the others do not.
   */
  sequences?: number;
  /** Requests that may wait for a free sequence; one more rejects with ERR_QUEUE_FULL. Default 1024. */
  maxQueued?: number;
  /** Memory-map the model file instead of reading it into memory. Default true. */
  useMmap?: boolean;
  /**
   * Flash attention in the attention graph: `'auto'` lets llama.cpp decide per device, `'on'` and `'off'` force it
   * (some model shapes run faster one way on some CPUs: see README, Performance). Default `'auto'`.
   */
  flashAttention?: 'auto' | 'on' | 'off';
  /**
   * Speculative decoding with a draft model: the path of a smaller GGUF with the same vocabulary (llama.cpp's
   * compatibility check; ERR_DRAFT_INCOMPATIBLE otherwise, at load). It drafts tokens for every generation of this
   * model, which verifies them in one decode (llama-server's `--spec-type draft-simple -md`). Greedy output is the
   * same as without it. Loaded with this model's `gpuLayers` and `useMmap`. Default: none.
   */
  draftModel?: string;
  /**
   * Most tokens drafted per step: the draft model's (`--spec-draft-n-max`, default 3) and n-gram drafting's
   * (`--spec-ngram-simple-size-m`, default 48).
   */
  draftMax?: number;
  /** Fewest tokens a draft model's draft may have to be used (`--spec-draft-n-min`). Default 0. */
  draftMin?: number;
  /** A draft model stops drafting at a token below this probability (`--spec-draft-p-min`). Default 0. */
  draftPMin?: number;
  /**
   * Prompt-lookup speculative decoding without a second model: the last `draftNgramSize` tokens are looked up in
   * the sequence so far and what followed them is the draft (llama.cpp's ngram-simple, `--spec-type ngram-simple`).
   * With `draftModel` too, an n-gram draft is tried first. Default false.
   */
  draftNgram?: boolean;
  /** Tokens of the n-gram looked up (`--spec-ngram-simple-size-n`). Default 12. */
  draftNgramSize?: number;
  /**
   * LoRA adapters to load with the model (as `llama-server --lora` / `--lora-scaled`): paths, or `{ path, scale }`
   * (scale default 1). They become `model.loras` (ids 0, 1, ...) and the default set of requests without a `lora`
   * option. Default: none. See README, LoRA adapters.
   */
  lora?: (string | { path: string; scale?: number })[];
  /** Called with load progress in [0, 1]. */
  onProgress?: (progress: number) => void;
  /** Aborts the load; the promise rejects with ERR_ABORTED. */
  signal?: AbortSignal;
}

/** Options of `complete`/`chat`/`stream`: the one request model (lib/engine/request.ts). */
export type CompletionOptions = GenerationOptions;

export interface GenerationTimings {
  /** Wall-clock time of the call, as the caller saw it. */
  totalMs: number;
  /** Time spent waiting for a free sequence (in-process). */
  queuedMs?: number;
  /** Time to process the prompt, when the engine reports it. */
  promptMs?: number;
  /** Time from the first generated token to the end, when the engine reports it. */
  generationMs?: number;
  /** Time from the call to the first generated token (or streamed text), when known. */
  firstTokenMs?: number;
  /** Prompt tokens processed per second, when known. */
  promptTokensPerSecond?: number;
  /** Generated tokens per second, when known. */
  tokensPerSecond?: number;
}
/** @deprecated the old name of {@link GenerationTimings}. */
export type CompletionTimings = GenerationTimings;

/**
 * 'stop': end-of-generation token or stop string; 'length': maxTokens or a full context; 'abort': aborted;
 * 'tool_calls': the answer is tool calls (`toolCalls`).
 */
export type FinishReason = 'stop' | 'length' | 'abort' | 'tool_calls' | (string & {});

/** Which kind of backend produced a result. */
export type BackendKind = 'local' | 'api' | 'mock';

/** The one result of every generation: Model.complete/chat, LlmBackend.call/chat/stream/streamChat, CLI, workflows. */
export interface GenerationResult {
  /** The generated text (for chat: the assistant's reply). */
  text: string;
  /** The same text under the name the design's backends and workflows use. */
  content: string;
  finishReason: FinishReason;
  promptTokens: number;
  completionTokens: number;
  /** promptTokens + completionTokens. */
  tokensUsed: number;
  /** Prompt tokens whose KV cells were reused from an earlier request in the same sequence (in-process). */
  reusedPromptTokens: number;
  /** True when generation ended because the sequence's context (or the shared KV cache) was full. */
  contextFull: boolean;
  /** The sequence that ran it (in-process): what saveState() and the `sequence` option take. */
  sequence?: number;
  /** Context shifts done during it, when `contextShift` was asked. */
  contextShifts?: number;
  /** The model that answered: the file name for a local model, the server's model id for an API. */
  model: string;
  backend: BackendKind;
  /** True when the result came from the response cache. */
  cached: boolean;
  timings: GenerationTimings;
  /** The JSON value of the text, when JSON was asked for (`jsonSchema`, `responseFormat`) and the text is JSON. */
  parsed?: unknown;
  /** The calls the model made (chat with `tools`); `finishReason` is then 'tool_calls'. */
  toolCalls?: ToolCall[];
  /** The reasoning ("thinking") text, apart from `text`, when `reasoningFormat` separates it. */
  reasoningContent?: string;
  /**
   * Speculative decoding (`draftModel`, `draftNgram`): tokens drafted for this generation, and those the model
   * accepted (llama-server's `timings.draft_n` and `draft_n_accepted`); the acceptance rate is their ratio.
   */
  draftTokens?: number;
  acceptedDraftTokens?: number;
  /**
   * With `logprobs: true`: each generated token's log-probability (from the logits before sampling, as
   * llama-server's `n_probs`), in OpenAI's shape. As llama-server, the end-of-generation token has an entry (its
   * `token` is ''), a stop string's tokens have none, nor has a token that leaves a UTF-8 character incomplete.
   */
  logprobs?: TokenLogprob[];
}

/** The log-probability of one token, and (in `topLogprobs`) of the most likely alternatives at its place. */
export interface TokenAlternative {
  /** The token id. */
  id: number;
  /** Its text (without a trailing partial UTF-8 character). */
  token: string;
  /** Its bytes (a token may hold part of a UTF-8 character). */
  bytes: number[];
  /** Natural log of its probability. */
  logprob: number;
}
export interface TokenLogprob extends TokenAlternative {
  /** The `topLogprobs` most likely tokens at this place, most likely first. */
  topLogprobs: TokenAlternative[];
}
/** @deprecated the old name of {@link GenerationResult}. */
export type CompletionResult = GenerationResult;

/**
 * One message of a conversation. An assistant message that called tools carries `toolCalls` (push
 * `{ role: 'assistant', content: result.text, toolCalls: result.toolCalls }` back), and each result goes back as
 * `{ role: 'tool', toolCallId, content }`.
 */
export interface ChatMessage {
  role: 'system' | 'user' | 'assistant' | 'tool' | (string & {});
  content: string;
  /** The calls an assistant message made. */
  toolCalls?: ToolCall[];
  /** On a `tool` message: the id of the call it answers. */
  toolCallId?: string;
  /** An assistant message's reasoning, for templates that render it. */
  reasoningContent?: string;
}

/** The tools, JSON and reasoning options {@link LlamaModel.prepareChat} renders a conversation with. */
export interface ChatPrepareOptions extends ChatTemplateOptions, Omit<StructuredOptions, 'onDelta'> {}

export interface ChatParseOptions {
  /** As the request's `reasoningFormat`. Default 'none'. */
  reasoningFormat?: ReasoningFormat;
  /** Parse tool calls (a request with tools). Default true. */
  parseToolCalls?: boolean;
  /** The text is a stream's output so far. Default false. */
  partial?: boolean;
}

/** A parsed answer (llama.cpp's common_chat_msg). */
export interface ChatParseResult {
  content: string;
  reasoningContent: string;
  toolCalls: ToolCall[];
}

/** Everything llama.cpp's common_chat_templates_apply computes for a conversation (what llama-server uses). */
export interface ChatTemplateResult {
  prompt: string;
  /** llama.cpp's chat format (common_chat_format) and its name. */
  format: number;
  formatName: string;
  /** The GBNF that constrains the answer (tools, JSON), or ''. */
  grammar: string;
  /** The grammar applies only once a trigger appears. */
  grammarLazy: boolean;
  /** type: 0 token, 1 word, 2 pattern, 3 full pattern (common_grammar_trigger_type). */
  grammarTriggers: { type: number; value: string }[];
  /** Special tokens of the tool-call markup, generated as text. */
  preservedTokens: string[];
  /** Stop strings the format adds. */
  additionalStops: string[];
  /** The assistant prefix at the prompt's end, which the parser and the grammar start from. */
  generationPrompt: string;
  supportsThinking: boolean;
  thinkingStartTag: string;
  thinkingEndTags: string[];
  /** The serialized PEG parser of the answer (common_chat_parse). */
  parser: string;
}

/**
 * Limits on one Jinja chat template parse and render. Templates come from model files, which users download from
 * anywhere: past a limit the render stops with ERR_TEMPLATE naming it. The defaults pass every template that
 * ships with llama.cpp many times over.
 */
export interface ChatTemplateLimits {
  /** Nesting: template nodes inside each other, macro calls, parser levels, value recursion (tojson). Default 256. */
  maxDepth?: number;
  /** Template nodes executed (each loop iteration runs its body's nodes; range(n) counts n), in the
   * parse and again in the render (llama.cpp renders a template several times to probe it: all of it counts).
   * Default 500_000.
   */
  maxSteps?: number;
  /** Largest string a step may build, and the prompt; a list item counts 16 bytes. Default 16 MiB (16_777_216). */
  maxOutputBytes?: number;
  /** Wall-clock time for the parse and the render. Default 5000 ms. */
  timeoutMs?: number;
}

export interface ChatTemplateOptions {
  /**
   * A Jinja template string or a llama.cpp built-in template name (see `builtinChatTemplates()`). A string that
   * is neither (no `{{` or `{%`, not a built-in name) is ERR_TEMPLATE_NOT_FOUND. Default: the model's own template.
   */
  template?: string;
  /** End with the assistant's turn prefix, ready for generation. Default true. */
  addAssistant?: boolean;
  /** Limits on the render (see {@link ChatTemplateLimits}). */
  limits?: ChatTemplateLimits;
  /** Stops the render (ERR_ABORTED). Not available to applyChatTemplateSync. */
  signal?: AbortSignal;
}

export interface ChatOptions extends CompletionOptions {
  /** As in {@link ChatTemplateOptions.template}. */
  template?: string;
  /** As in {@link ChatTemplateOptions.limits}; the request's `signal` also stops the render. */
  templateLimits?: ChatTemplateLimits;
}

/** 'rank': the model's classifier head scores the text (a reranker: see {@link LlamaModel.rerank}). */
export type Pooling = 'mean' | 'cls' | 'last' | 'rank';

export interface EmbedOptions {
  /** How token vectors become one vector. Default: the model's own pooling, else 'mean'. */
  pooling?: Pooling;
  /** Scale each vector to unit length (as llama-server and OpenAI do). Default true. */
  normalize?: boolean;
  signal?: AbortSignal;
}

export interface TokenizeOptions {
  /** Sets both `addSpecial` and `parseSpecial`. Default true. */
  special?: boolean;
  /** Add the tokens the model puts around a text (BOS, EOS, CLS/SEP). Default `special`. */
  addSpecial?: boolean;
  /** Read special-token text such as `<|user|>` as that token (else as plain text). Default `special`. */
  parseSpecial?: boolean;
}

export interface DetokenizeOptions {
  /** Render special tokens (BOS, `<|end|>`, ...) as text and keep a leading BOS / trailing EOS. Default false. */
  special?: boolean;
  /** Drop a leading BOS and a trailing EOS that the model adds (llama_detokenize's remove_special). Default `!special`. */
  removeSpecial?: boolean;
  /** Render control tokens as their text (llama_detokenize's unparse_special). Default `special`. */
  unparseSpecial?: boolean;
}

export interface TokenizeAsyncOptions extends TokenizeOptions {
  /** Rejects the call with ERR_ABORTED. */
  signal?: AbortSignal;
}

export interface DetokenizeAsyncOptions extends DetokenizeOptions {
  /** Rejects the call with ERR_ABORTED. */
  signal?: AbortSignal;
}

export interface ModelInfo extends NativeModelInfo {
  /** Absolute path of the model file. */
  path: string;
  /** Size of the model file in bytes. */
  fileSize: number;
}

/** An AsyncIterable of text chunks that also exposes the final result. */
export interface CompletionStream extends AsyncIterable<string> {
  /** Resolves when the generation ends (also when the iteration is left early, which aborts it). */
  readonly result: Promise<CompletionResult>;
}
