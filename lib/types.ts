import type { NativeModelInfo } from './native/binding-types';

export interface LoadModelOptions {
  /** Context window in tokens. Default: the model's trained context length, at most 4096. */
  contextSize?: number;
  /** CPU threads for generation and prompt processing. Default: every core (`os.availableParallelism()`). */
  threads?: number;
  /** Largest number of prompt tokens submitted to llama.cpp in one decode. Default 512. */
  batchSize?: number;
  /** Layers to offload to a GPU (-1: all). Default 0; ignored by CPU-only builds. */
  gpuLayers?: number;
  /** Load only the vocabulary: tokenize and chat templates work, generation does not. Default false. */
  vocabOnly?: boolean;
  /** Default sampling seed for this model's completions. Default: a fresh random seed per completion. */
  seed?: number;
  /** Context size for embeddings (each text must fit in it). Default: `min(contextSize, 1024)`. */
  embeddingContextSize?: number;
  /** Memory-map the model file instead of reading it into memory. Default true. */
  useMmap?: boolean;
  /**
   * Flash attention in the attention graph: `'auto'` lets llama.cpp decide per device, `'on'` and `'off'` force it
   * (some model shapes run faster one way on some CPUs: see README, Performance). Default `'auto'`.
   */
  flashAttention?: 'auto' | 'on' | 'off';
  /** Called with load progress in [0, 1]. */
  onProgress?: (progress: number) => void;
  /** Aborts the load; the promise rejects with ERR_ABORTED. */
  signal?: AbortSignal;
}

export interface SamplingOptions {
  /** Most tokens to generate; -1 generates until the context is full. Default 256. */
  maxTokens?: number;
  /** 0 means greedy (always the most likely token). Default 0.8. */
  temperature?: number;
  /** Keep only the k most likely tokens (0: off). Default 40. */
  topK?: number;
  /** Nucleus sampling threshold (1: off). Default 0.95. */
  topP?: number;
  /** Drop tokens below minP × the top token's probability (0: off). Default 0.05. */
  minP?: number;
  /** Penalty for repeating recent tokens (1: off). Default 1. */
  repeatPenalty?: number;
  /** How many recent tokens the penalties look at (-1: the whole context). Default 64. */
  repeatLastN?: number;
  /** OpenAI-style frequency penalty (0: off). Default 0. */
  frequencyPenalty?: number;
  /** OpenAI-style presence penalty (0: off). Default 0. */
  presencePenalty?: number;
  /** Sampling seed, for reproducible output at temperature > 0. Default: the model's seed, else random. */
  seed?: number;
  /** Generation ends before any of these strings, which never appear in the output. */
  stop?: string | string[];
}

export interface CompletionOptions extends SamplingOptions {
  /** Stops the generation; the result then has what was produced and finishReason 'abort'. */
  signal?: AbortSignal;
  /** Receives the text as it is generated, in chunks that never split a UTF-8 character. */
  onChunk?: (text: string) => void;
}

export interface CompletionTimings {
  /** Time to process the prompt. */
  promptMs: number;
  /** Time from the end of the prompt to the end of generation. */
  generationMs: number;
  /** Time from the start to the first generated token. */
  firstTokenMs: number;
  promptTokensPerSecond: number;
  /** Generated tokens per second. */
  tokensPerSecond: number;
}

export type FinishReason = 'stop' | 'length' | 'abort';

export interface CompletionResult {
  text: string;
  promptTokens: number;
  /** Prompt tokens whose KV cache entries were reused from the previous call on this model. */
  reusedPromptTokens: number;
  completionTokens: number;
  /** 'stop': end-of-generation token or stop string; 'length': maxTokens or a full context; 'abort': aborted. */
  finishReason: FinishReason;
  /** True when generation ended because the context window was full. */
  contextFull: boolean;
  timings: CompletionTimings;
}

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant' | (string & {});
  content: string;
}

export interface ChatTemplateOptions {
  /**
   * A Jinja template string or a llama.cpp built-in template name (see `builtinChatTemplates()`).
   * Default: the model's own template.
   */
  template?: string;
  /** End with the assistant's turn prefix, ready for generation. Default true. */
  addAssistant?: boolean;
}

export interface ChatOptions extends CompletionOptions {
  /** As in {@link ChatTemplateOptions.template}. */
  template?: string;
}

export type Pooling = 'mean' | 'cls' | 'last';

export interface EmbedOptions {
  /** How token vectors become one vector. Default: the model's own pooling, else 'mean'. */
  pooling?: Pooling;
  /** Scale each vector to unit length (as llama-server and OpenAI do). Default true. */
  normalize?: boolean;
  signal?: AbortSignal;
}

export interface TokenizeOptions {
  /** Add the model's BOS/EOS tokens and parse special-token text such as `<|user|>`. Default true. */
  special?: boolean;
}

export interface DetokenizeOptions {
  /** Render special tokens (BOS, `<|end|>`, ...) as text. Default false. */
  special?: boolean;
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
