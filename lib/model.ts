import { stat } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { resolve } from 'node:path';

import { chunkStream } from './chunk-stream';
import { LlamaError, toLlamaError } from './errors';
import { readGguf } from './gguf';
import type { NativeAbortFlag, NativeCompleteOptions, NativeContext, NativeModel } from './native/binding-types';
import { getBinding } from './native/load-binding';
import { OperationQueue } from './operation-queue';
import { checkHyperparameters, checkTensors } from './preflight';
import type {
  ChatMessage,
  ChatOptions,
  ChatTemplateOptions,
  CompletionOptions,
  CompletionResult,
  CompletionStream,
  DetokenizeOptions,
  EmbedOptions,
  LoadModelOptions,
  ModelInfo,
  Pooling,
  TokenizeOptions,
} from './types';
import {
  optionalBool,
  optionalFunction,
  optionalInt,
  optionalNumber,
  optionalSignal,
  requireObject,
  requireString,
  stopStrings,
} from './validate';

const POOLING: Record<Pooling, number> = { mean: 1, cls: 2, last: 3 };
const DEFAULT_MAX_CONTEXT = 4096;
const MAX_UINT32 = 4294967295;

interface ResolvedLoadOptions {
  contextSize: number;
  embeddingContextSize: number;
  threads: number;
  batchSize: number;
  flashAttention: number;
  seed: number | undefined;
}

/** LoadModelOptions.flashAttention to llama_flash_attn_type. */
const FLASH_ATTENTION = { auto: -1, off: 0, on: 1 } as const;

/** The abort flags of every load and operation running in this thread, for the exit hook below. */
const inFlight = new Set<NativeAbortFlag>();
let exitHook = false;

/**
 * Tracks a running load or operation until the returned function is called. process.exit() (and the exit after
 * an uncaught exception) joins libuv's thread pool, which waits for native work in progress: without this hook a
 * running generation would hold the process for as long as it takes. At exit, everything running is aborted.
 */
function track(flag: NativeAbortFlag): () => void {
  if (!exitHook) {
    exitHook = true;
    process.once('exit', () => {
      for (const running of inFlight) running.abort();
    });
  }
  inFlight.add(flag);
  return () => inFlight.delete(flag);
}

/** Links an AbortSignal to a native flag; returns the unlink function. */
function linkSignal(signal: AbortSignal | undefined, flag: NativeAbortFlag): () => void {
  if (!signal) return () => undefined;
  const abort = () => flag.abort();
  if (signal.aborted) abort();
  signal.addEventListener('abort', abort, { once: true });
  return () => signal.removeEventListener('abort', abort);
}

function checkMessages(messages: unknown): ChatMessage[] {
  if (!Array.isArray(messages)) throw new LlamaError('ERR_INVALID_ARGUMENT', 'messages must be an array of { role, content }');
  messages.forEach((m, i) => {
    if (typeof m !== 'object' || m === null || typeof m.role !== 'string' || typeof m.content !== 'string') {
      throw new LlamaError('ERR_INVALID_ARGUMENT', `messages[${i}] must be { role: string, content: string }`);
    }
  });
  return messages as ChatMessage[];
}

function nativeCompleteOptions(options: CompletionOptions, defaultSeed: number | undefined): NativeCompleteOptions {
  return {
    maxTokens: optionalInt(options.maxTokens, 'maxTokens', -1, 2 ** 31 - 1),
    temperature: optionalNumber(options.temperature, 'temperature', 0, 100),
    topK: optionalInt(options.topK, 'topK', 0, 2 ** 31 - 1),
    topP: optionalNumber(options.topP, 'topP', 0, 1),
    minP: optionalNumber(options.minP, 'minP', 0, 1),
    repeatPenalty: optionalNumber(options.repeatPenalty, 'repeatPenalty', 1e-6, 100),
    repeatLastN: optionalInt(options.repeatLastN, 'repeatLastN', -1, 2 ** 31 - 1),
    frequencyPenalty: optionalNumber(options.frequencyPenalty, 'frequencyPenalty', -100, 100),
    presencePenalty: optionalNumber(options.presencePenalty, 'presencePenalty', -100, 100),
    seed: optionalInt(options.seed, 'seed', 0, MAX_UINT32) ?? defaultSeed ?? Math.floor(Math.random() * MAX_UINT32),
    stop: stopStrings(options.stop),
  };
}

/** A loaded GGUF model. Create with {@link loadModel}; release with {@link LlamaModel.dispose}. */
export class LlamaModel implements AsyncDisposable {
  readonly info: ModelInfo;
  readonly #native: NativeModel;
  readonly #options: ResolvedLoadOptions;
  readonly #generationQueue = new OperationQueue();
  readonly #embeddingQueue = new OperationQueue();
  #generation: Promise<NativeContext> | undefined;
  readonly #embedding = new Map<number, Promise<NativeContext>>();
  readonly #running = new Set<NativeAbortFlag>();
  #disposing: Promise<void> | undefined;

  /** @internal Use loadModel(). */
  constructor(native: NativeModel, info: ModelInfo, options: ResolvedLoadOptions) {
    this.#native = native;
    this.info = info;
    this.#options = options;
  }

  /** Context window of completions, in tokens. */
  get contextSize(): number {
    return this.#options.contextSize;
  }

  get disposed(): boolean {
    return this.#disposing !== undefined;
  }

  tokenize(text: string, options: TokenizeOptions = {}): Int32Array {
    this.#checkOpen();
    const special = optionalBool(requireObject(options, 'options').special, 'special') ?? true;
    return this.#call(() => this.#native.tokenize(requireString(text, 'text'), special, special));
  }

  detokenize(tokens: ArrayLike<number>, options: DetokenizeOptions = {}): string {
    this.#checkOpen();
    const special = optionalBool(requireObject(options, 'options').special, 'special') ?? false;
    if (!(tokens instanceof Int32Array) && !Array.isArray(tokens)) {
      throw new LlamaError('ERR_INVALID_ARGUMENT', 'tokens must be an Int32Array or an array of token ids');
    }
    return this.#call(() => this.#native.detokenize(tokens as Int32Array | number[], special));
  }

  /** Renders messages into a prompt with the model's chat template (or the one given), through llama.cpp. */
  applyChatTemplate(messages: ChatMessage[], options: ChatTemplateOptions = {}): string {
    this.#checkOpen();
    const opts = requireObject(options, 'options');
    const template = opts.template === undefined ? null : requireString(opts.template, 'template');
    const addAssistant = optionalBool(opts.addAssistant, 'addAssistant') ?? true;
    return this.#call(() => this.#native.applyChatTemplate(checkMessages(messages), template, addAssistant));
  }

  /** Generates a completion of `prompt`. With `onChunk`, text arrives as it is generated. */
  async complete(prompt: string, options: CompletionOptions = {}): Promise<CompletionResult> {
    this.#checkOpen();
    requireString(prompt, 'prompt');
    const opts = requireObject(options, 'options') as CompletionOptions;
    const native = nativeCompleteOptions(opts, this.#options.seed);
    const signal = optionalSignal(opts.signal);
    const onChunk = optionalFunction<(text: string) => void>(opts.onChunk, 'onChunk');
    this.#checkGenerative();

    return this.#generationQueue.run(async () => {
      const context = await this.#generationContext();
      const flag = new (getBinding().AbortFlag)();
      const unlink = linkSignal(signal, flag);
      const untrack = track(flag);
      this.#running.add(flag);
      let callbackError: unknown;
      const sink = onChunk
        ? (text: string) => {
            if (callbackError !== undefined) return;
            try {
              onChunk(text);
            } catch (error) {
              callbackError = error;
              flag.abort();
            }
          }
        : null;
      try {
        const r = await context.complete(prompt, native, sink, flag);
        if (callbackError !== undefined) throw callbackError;
        const perSecond = (n: number, ms: number) => (ms > 0 ? (n * 1000) / ms : 0);
        return {
          text: r.text,
          promptTokens: r.promptTokens,
          reusedPromptTokens: r.reusedPromptTokens,
          completionTokens: r.completionTokens,
          finishReason: r.finishReason,
          contextFull: r.contextFull,
          timings: {
            ...r.timings,
            promptTokensPerSecond: perSecond(r.promptTokens - r.reusedPromptTokens, r.timings.promptMs),
            tokensPerSecond: perSecond(r.completionTokens, r.timings.generationMs),
          },
        };
      } catch (error) {
        throw callbackError ?? toLlamaError(error);
      } finally {
        unlink();
        untrack();
        this.#running.delete(flag);
      }
    }, signal);
  }

  /** Streams a completion as an AsyncIterable of text chunks; leaving the loop early aborts the generation. */
  stream(prompt: string, options: Omit<CompletionOptions, 'onChunk'> = {}): CompletionStream {
    const opts = requireObject(options, 'options') as CompletionOptions;
    return chunkStream((push, stop) => {
      const signal = opts.signal ? AbortSignal.any([opts.signal, stop]) : stop;
      return this.complete(prompt, { ...opts, signal, onChunk: push });
    });
  }

  /** Applies the chat template to `messages` and completes the assistant's reply. */
  async chat(messages: ChatMessage[], options: ChatOptions = {}): Promise<CompletionResult> {
    const { template, ...rest } = requireObject(options, 'options') as ChatOptions;
    return this.complete(this.applyChatTemplate(messages, { template, addAssistant: true }), rest);
  }

  /** As {@link chat}, streamed. */
  streamChat(messages: ChatMessage[], options: Omit<ChatOptions, 'onChunk'> = {}): CompletionStream {
    const { template, ...rest } = requireObject(options, 'options') as ChatOptions;
    return this.stream(this.applyChatTemplate(messages, { template, addAssistant: true }), rest);
  }

  /** Embeds one text (a Float32Array) or several (an array of them). */
  embed(text: string, options?: EmbedOptions): Promise<Float32Array>;
  embed(texts: string[], options?: EmbedOptions): Promise<Float32Array[]>;
  async embed(input: string | string[], options: EmbedOptions = {}): Promise<Float32Array | Float32Array[]> {
    this.#checkOpen();
    const opts = requireObject(options, 'options') as EmbedOptions;
    const texts = Array.isArray(input) ? input : [input];
    texts.forEach((t, i) => requireString(t, Array.isArray(input) ? `texts[${i}]` : 'text'));
    if (opts.pooling !== undefined && !(opts.pooling in POOLING)) {
      throw new LlamaError('ERR_INVALID_ARGUMENT', `pooling must be one of ${Object.keys(POOLING).join(', ')}`);
    }
    const normalize = optionalBool(opts.normalize, 'normalize') ?? true;
    const signal = optionalSignal(opts.signal);
    if (this.info.vocabOnly) throw new LlamaError('ERR_MODEL_VOCAB_ONLY', 'the model was loaded with vocabOnly: it cannot embed');
    if (texts.length === 0) return [];
    // -1 lets llama.cpp use the pooling the model declares; models that declare none get mean pooling.
    const declared = `${this.info.architecture}.pooling_type` in this.info.metadata;
    const pooling = opts.pooling ? POOLING[opts.pooling] : declared ? -1 : POOLING.mean;

    return this.#embeddingQueue.run(async () => {
      const context = await this.#embeddingContext(pooling);
      const flag = new (getBinding().AbortFlag)();
      const unlink = linkSignal(signal, flag);
      const untrack = track(flag);
      this.#running.add(flag);
      try {
        const vectors = await context.embed(texts, normalize, flag);
        return Array.isArray(input) ? vectors : vectors[0];
      } catch (error) {
        throw toLlamaError(error);
      } finally {
        unlink();
        untrack();
        this.#running.delete(flag);
      }
    }, signal);
  }

  /**
   * Frees the model and its contexts. Running operations are aborted first (a completion resolves with what it
   * produced); queued ones reject with ERR_DISPOSED. Idempotent: later calls return the same promise.
   */
  dispose(): Promise<void> {
    this.#disposing ??= (async () => {
      for (const flag of this.#running) flag.abort();
      await Promise.all([this.#generationQueue.close(), this.#embeddingQueue.close()]);
      const contexts = [this.#generation, ...this.#embedding.values()].filter((c) => c !== undefined);
      for (const settled of await Promise.allSettled(contexts)) {
        if (settled.status === 'fulfilled') settled.value.dispose();
      }
      this.#native.dispose();
    })();
    return this.#disposing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.dispose();
  }

  #checkOpen(): void {
    if (this.#disposing) throw new LlamaError('ERR_DISPOSED', 'the model has been disposed');
  }

  #checkGenerative(): void {
    if (this.info.vocabOnly) throw new LlamaError('ERR_MODEL_VOCAB_ONLY', 'the model was loaded with vocabOnly: it cannot generate');
    if (!this.info.hasDecoder) throw new LlamaError('ERR_INVALID_ARGUMENT', `${this.info.architecture} is an encoder-only model: use embed()`);
  }

  #call<T>(fn: () => T): T {
    try {
      return fn();
    } catch (error) {
      throw toLlamaError(error);
    }
  }

  #generationContext(): Promise<NativeContext> {
    this.#generation ??= this.#native
      .createContext({
        contextSize: this.#options.contextSize,
        batchSize: this.#options.batchSize,
        threads: this.#options.threads,
        flashAttention: this.#options.flashAttention,
      })
      .catch((error: unknown) => {
        this.#generation = undefined;
        throw toLlamaError(error);
      });
    return this.#generation;
  }

  #embeddingContext(pooling: number): Promise<NativeContext> {
    let context = this.#embedding.get(pooling);
    if (!context) {
      const size = this.#options.embeddingContextSize;
      context = this.#native
        .createContext({ contextSize: size, batchSize: size, threads: this.#options.threads, flashAttention: this.#options.flashAttention, embeddings: true, pooling })
        .catch((error: unknown) => {
          this.#embedding.delete(pooling);
          throw toLlamaError(error);
        });
      this.#embedding.set(pooling, context);
    }
    return context;
  }
}

/**
 * Loads a GGUF model. The file's header and tensor table are checked in TypeScript first, so a malformed file
 * is an ERR_MODEL_INVALID error rather than an abort inside llama.cpp.
 */
export async function loadModel(path: string, options: LoadModelOptions = {}): Promise<LlamaModel> {
  const absolute = resolve(requireString(path, 'path'));
  const opts = requireObject(options, 'options') as LoadModelOptions;
  const contextSize = optionalInt(opts.contextSize, 'contextSize', 1, 2 ** 24);
  const threads = optionalInt(opts.threads, 'threads', 1, 1024) ?? availableParallelism();
  const batchSize = optionalInt(opts.batchSize, 'batchSize', 1, 2 ** 20) ?? 512;
  const gpuLayers = optionalInt(opts.gpuLayers, 'gpuLayers', -1, 100000) ?? 0;
  const vocabOnly = optionalBool(opts.vocabOnly, 'vocabOnly') ?? false;
  const useMmap = optionalBool(opts.useMmap, 'useMmap') ?? true;
  const seed = optionalInt(opts.seed, 'seed', 0, MAX_UINT32);
  const embeddingContextSize = optionalInt(opts.embeddingContextSize, 'embeddingContextSize', 8, 2 ** 24);
  if (opts.flashAttention !== undefined && !Object.hasOwn(FLASH_ATTENTION, opts.flashAttention)) {
    throw new LlamaError('ERR_INVALID_ARGUMENT', `flashAttention must be one of ${Object.keys(FLASH_ATTENTION).join(', ')} (got ${JSON.stringify(opts.flashAttention)})`);
  }
  const flashAttention = FLASH_ATTENTION[opts.flashAttention ?? 'auto'];
  const onProgress = optionalFunction<(progress: number) => void>(opts.onProgress, 'onProgress');
  const signal = optionalSignal(opts.signal);
  if (signal?.aborted) throw new LlamaError('ERR_ABORTED', 'model load aborted');

  const gguf = await readGguf(absolute);
  if (gguf.tensors.length === 0 && !vocabOnly) {
    throw new LlamaError('ERR_MODEL_VOCAB_ONLY', `${absolute} holds no weights (a vocabulary-only file): load it with { vocabOnly: true }`);
  }
  if (!vocabOnly) {
    checkHyperparameters(gguf, absolute);
    checkTensors(gguf, absolute);
  }
  const fileSize = (await stat(absolute)).size;

  const binding = getBinding();
  const flag = new binding.AbortFlag();
  const unlink = linkSignal(signal, flag);
  const untrack = track(flag);
  // Progress arrives through a thread-safe queue that may trail the load's completion: events after it are
  // dropped, and a final 1 is reported before the promise resolves.
  let lastProgress = -1;
  let loaded = false;
  const report = (p: number) => {
    if (loaded || !onProgress) return;
    lastProgress = p;
    try {
      onProgress(p);
    } catch {
      // A failing progress callback must not break the load.
    }
  };
  let native: NativeModel;
  try {
    native = await binding.loadModel(absolute, { gpuLayers, vocabOnly, useMmap }, onProgress ? report : undefined, flag);
  } catch (error) {
    throw toLlamaError(error);
  } finally {
    unlink();
    untrack();
  }
  if (lastProgress < 1) report(1);
  loaded = true;
  if (signal?.aborted) {
    native.dispose();
    throw new LlamaError('ERR_ABORTED', 'model load aborted');
  }
  const info: ModelInfo = { ...native.info(), path: absolute, fileSize };
  const trained = info.trainedContextLength > 0 ? info.trainedContextLength : DEFAULT_MAX_CONTEXT;
  const resolvedContext = contextSize ?? Math.min(trained, DEFAULT_MAX_CONTEXT);
  return new LlamaModel(native, info, {
    contextSize: resolvedContext,
    embeddingContextSize: embeddingContextSize ?? Math.min(resolvedContext, 1024),
    threads,
    flashAttention,
    batchSize: Math.min(batchSize, resolvedContext),
    seed,
  });
}
