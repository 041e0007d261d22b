import { availableParallelism } from 'node:os';
import { basename, resolve } from 'node:path';

import { getModelInfo, type ModelAutoConfig } from '../config/model-info';
import { structuredOptions } from '../engine/structured';
import { LlamaError, toLlamaError } from '../errors';
import { loadModel, type LlamaModel } from '../model';
import type { LoadModelOptions } from '../types';
import { optionalBool, optionalFunction, optionalInt, optionalNumber, requireObject, requireString } from '../validate';
import { BaseLlmBackend, type BackendCommonOptions, type EngineResult, type GenerationRequest } from './base-backend';
import type { HealthStatus } from './llm-backend';

export interface LocalLlmBackendOptions extends BackendCommonOptions {
  /** The GGUF file. */
  modelPath: string;
  /**
   * Context size (`n_ctx`). Default: chosen by {@link getModelInfo} (family size, at most the trained length,
   * lowered to fit free memory). An explicit value always wins, with a warning above the trained length.
   */
  contextSize?: number;
  /** CPU threads. Default: every core. */
  threads?: number;
  /** Layers to offload to a GPU build or to `rpcServers` (-1: all). Default 0, or -1 with `rpcServers`. */
  gpuLayers?: number;
  /** llama.cpp rpc-servers (`host:port`) that hold the offloaded layers (see `LoadModelOptions.rpcServers`). Default: none. */
  rpcServers?: string[];
  /**
   * Chat template for chat(): a llama.cpp built-in name (`builtinChatTemplates()`) or a Jinja string. Default:
   * the model's own template, else its family's (phi3, gemma, chatml).
   */
  chatFormat?: string;
  /**
   * Create the embedding context together with the model, so the first embed() is not slower than the next.
   * Default false: the embedding context is created by the first embed().
   */
  embedding?: boolean;
  /** Requests that run at once, each in its own sequence (see `LoadModelOptions.sequences`). Default 4. */
  sequences?: number;
  /** Requests that may wait for a free sequence before ERR_QUEUE_FULL. Default 1024. */
  maxQueued?: number;
  /** Speculative decoding with a draft model (see `LoadModelOptions.draftModel`). Default: none. */
  draftModel?: string;
  /** Most tokens drafted per step (`LoadModelOptions.draftMax`). */
  draftMax?: number;
  /** Fewest tokens of a draft model's draft (`LoadModelOptions.draftMin`). Default 0. */
  draftMin?: number;
  /** Prompt-lookup n-gram drafting (`LoadModelOptions.draftNgram`). Default false. */
  draftNgram?: boolean;
  /** Memory, in bytes, the auto-configured context must fit in. Default: `os.freemem()`. */
  freeMemory?: number;
  /** Receives the model load's progress, 0…1 (ends with 1), e.g. for a progress bar. */
  onLoadProgress?: (progress: number) => void;
  /**
   * LoRA adapters loaded with the model, the default set of every request (`llama-server --lora`/`--lora-scaled`);
   * a request's `lora: [{ adapter: id, scale }]` picks among them by position. Default: none.
   */
  lora?: (string | { path: string; scale?: number })[];
}

/**
 * An {@link LlmBackend} over a GGUF model loaded in-process. The model loads on first use (or `load()`), once:
 * concurrent callers share the same load. Concurrent calls run together, up to `sequences` at once.
 */
export class LocalLlmBackend extends BaseLlmBackend {
  readonly kind = 'local' as const;
  /** The model file's name. */
  readonly model: string;
  /** Absolute path of the model file. */
  readonly modelPath: string;
  readonly #options: {
    contextSize?: number;
    threads: number;
    gpuLayers: number | undefined;
    rpcServers: string[] | undefined;
    chatFormat?: string;
    embedding: boolean;
    freeMemory?: number;
    sequences?: number;
    maxQueued?: number;
    speculative: Pick<LoadModelOptions, 'draftModel' | 'draftMax' | 'draftMin' | 'draftNgram'>;
    lora?: (string | { path: string; scale?: number })[];
  };
  readonly #onLoadProgress: ((progress: number) => void) | undefined;
  #loading: Promise<LlamaModel> | undefined;
  #config: ModelAutoConfig | undefined;
  #loadCount = 0;

  constructor(options: LocalLlmBackendOptions) {
    const opts = requireObject(options, 'options') as unknown as LocalLlmBackendOptions;
    super(opts);
    this.modelPath = resolve(requireString(opts.modelPath, 'modelPath'));
    this.model = basename(this.modelPath);
    const chatFormat = opts.chatFormat === undefined ? undefined : requireString(opts.chatFormat, 'chatFormat');
    this.#options = {
      contextSize: optionalInt(opts.contextSize, 'contextSize', 1, 2 ** 24),
      threads: optionalInt(opts.threads, 'threads', 1, 1024) ?? availableParallelism(),
      gpuLayers: optionalInt(opts.gpuLayers, 'gpuLayers', -1, 100000),
      rpcServers: opts.rpcServers,
      chatFormat,
      embedding: optionalBool(opts.embedding, 'embedding') ?? false,
      freeMemory: optionalNumber(opts.freeMemory, 'freeMemory', 0, Number.MAX_SAFE_INTEGER),
      sequences: optionalInt(opts.sequences, 'sequences', 1, 256),
      maxQueued: optionalInt(opts.maxQueued, 'maxQueued', 0, 2 ** 31 - 1),
      // Checked in full by loadModel (lib/speculative.ts); only what is set is passed on.
      speculative: Object.fromEntries(
        (['draftModel', 'draftMax', 'draftMin', 'draftNgram'] as const).filter((k) => opts[k] !== undefined).map((k) => [k, opts[k]]),
      ),
      // Resolved against the working directory now, as modelPath; loadModel checks the entries.
      ...(opts.lora !== undefined ? { lora: Array.isArray(opts.lora) ? opts.lora.map((l) => (typeof l === 'string' ? resolve(l) : l && typeof l === 'object' ? { ...l, path: typeof l.path === 'string' ? resolve(l.path) : l.path } : l)) : opts.lora } : {}),
    };
    this.#onLoadProgress = optionalFunction(opts.onLoadProgress, 'onLoadProgress');
  }

  /** The auto-configuration the model was loaded with (undefined before the load). */
  get config(): ModelAutoConfig | undefined {
    return this.#config;
  }

  /** Whether the model has been loaded. */
  get loaded(): boolean {
    return this.#config !== undefined && this.#loading !== undefined;
  }

  /** How many times a load was started (a failed load is retried by the next call). */
  get loadCount(): number {
    return this.#loadCount;
  }

  /** Loads the model now instead of on first use. Concurrent and later callers get the same model. */
  load(): Promise<LlamaModel> {
    this.checkOpen();
    this.#loading ??= this.#load().catch((error: unknown) => {
      this.#loading = undefined;
      throw error;
    });
    return this.#loading;
  }

  async #load(): Promise<LlamaModel> {
    this.#loadCount++;
    const started = performance.now();
    const config = await getModelInfo(this.modelPath, {
      contextSize: this.#options.contextSize,
      freeMemory: this.#options.freeMemory,
      logger: this.logger,
    });
    this.logger.info(`loading ${this.modelPath} (${config.family}, context ${config.contextSize}, ${this.#options.threads} threads)`);
    const model = await loadModel(this.modelPath, {
      contextSize: config.contextSize,
      threads: this.#options.threads,
      gpuLayers: this.#options.gpuLayers,
      ...(this.#options.rpcServers?.length ? { rpcServers: this.#options.rpcServers } : {}),
      sequences: this.#options.sequences,
      maxQueued: this.#options.maxQueued,
      ...this.#options.speculative,
      onProgress: this.#onLoadProgress,
      ...(this.#options.lora ? { lora: this.#options.lora } : {}),
    });
    try {
      if (this.disposed) throw new LlamaError('ERR_DISPOSED', 'the local backend was disposed while its model loaded');
      // LlamaModel creates its embedding context on the first embed(); embedding one word creates it now.
      if (this.#options.embedding) await model.embed('warm-up');
    } catch (error) {
      await model.dispose();
      throw error;
    }
    this.#config = config;
    this.logger.info(`loaded ${this.model} in ${Math.round(performance.now() - started)} ms`);
    return model;
  }

  protected override cacheIdentity(): string {
    // Its default adapters change every answer.
    return this.#options.lora ? `${this.modelPath} lora ${JSON.stringify(this.#options.lora)}` : this.modelPath;
  }

  protected async generate(request: GenerationRequest, onChunk: ((chunk: string) => void) | undefined): Promise<EngineResult> {
    const model = await this.load();
    const { explicit: _, logitBias, topLogprobs, ...sampling } = request.sampling;
    const q = request.sequence;
    const options = {
      ...sampling,
      // Back to the option forms the model checks again.
      ...(logitBias ? { logitBias: logitBias.map((b): [number | string, number] => ['token' in b ? b.token : b.text, b.bias]) } : {}),
      ...(sampling.logprobs ? { topLogprobs } : {}),
      ...structuredOptions(request.structured),
      ...(q.sequence !== undefined ? { sequence: q.sequence } : {}),
      ...(q.contextShift ? { contextShift: true, nKeep: q.nKeep, nDiscard: q.nDiscard } : {}),
      signal: request.signal,
      onChunk,
      ...(request.lora ? { lora: request.lora } : {}),
    };
    const r = request.kind === 'prompt' ? await model.complete(request.prompt, options) : await model.chat(request.messages, { ...options, template: this.#template() });
    return {
      content: r.text,
      promptTokens: r.promptTokens,
      completionTokens: r.completionTokens,
      reusedPromptTokens: r.reusedPromptTokens,
      contextFull: r.contextFull,
      finishReason: r.finishReason,
      timings: {
        queuedMs: r.timings.queuedMs,
        promptMs: r.timings.promptMs,
        generationMs: r.timings.generationMs,
        firstTokenMs: r.timings.firstTokenMs,
        tokensPerSecond: r.timings.tokensPerSecond,
      },
      ...(r.parsed !== undefined ? { parsed: r.parsed } : {}),
      ...(r.toolCalls !== undefined ? { toolCalls: r.toolCalls } : {}),
      ...(r.reasoningContent !== undefined ? { reasoningContent: r.reasoningContent } : {}),
      ...(r.draftTokens !== undefined ? { draftTokens: r.draftTokens, acceptedDraftTokens: r.acceptedDraftTokens } : {}),
      ...(r.logprobs !== undefined ? { logprobs: r.logprobs } : {}),
    };
  }

  /** The chat template: the configured one, else the model's own, else its family's. */
  #template(): string | undefined {
    const config = this.#config!;
    return this.#options.chatFormat ?? (config.chatFormat === 'gguf' ? undefined : config.chatFormat);
  }

  protected async embedTexts(texts: string[], signal: AbortSignal | undefined): Promise<Float32Array[]> {
    const model = await this.load();
    return model.embed(texts, { signal });
  }

  protected override async rankDocuments(query: string, documents: string[], signal: AbortSignal | undefined): Promise<number[]> {
    const model = await this.load();
    const scores = new Array<number>(documents.length);
    for (const r of await model.rerank(query, documents, { signal })) scores[r.index] = r.score;
    return scores;
  }

  async healthCheck(): Promise<HealthStatus> {
    const started = performance.now();
    const status = (ok: boolean, detail: string): HealthStatus => ({
      ok,
      backend: this.kind,
      model: this.model,
      detail,
      latencyMs: performance.now() - started,
    });
    try {
      const model = await this.load();
      model.tokenize('ok');
      return status(true, `${this.model} loaded, context ${model.contextSize} tokens`);
    } catch (error) {
      const e = toLlamaError(error);
      return status(false, `${e.code}: ${e.message}`);
    }
  }

  protected async release(): Promise<void> {
    const loading = this.#loading;
    if (!loading) return;
    const model = await loading.catch(() => undefined);
    await model?.dispose();
  }
}
