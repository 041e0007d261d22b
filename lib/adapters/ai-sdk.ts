// `tea-llama/ai-sdk`: a Vercel AI SDK provider (specification v4, as `ai` 7 and `@ai-sdk/provider` 4 define it)
// over any LlmBackend. Only types come from @ai-sdk/provider (an optional peer dependency): nothing of it is loaded
// at run time, so this module works from CommonJS and ESM alike.
import type {
  EmbeddingModelV4,
  EmbeddingModelV4CallOptions,
  EmbeddingModelV4Result,
  LanguageModelV4,
  LanguageModelV4CallOptions,
  LanguageModelV4FinishReason,
  LanguageModelV4GenerateResult,
  LanguageModelV4Prompt,
  LanguageModelV4StreamPart,
  LanguageModelV4StreamResult,
  LanguageModelV4Usage,
  SharedV4Warning,
} from '@ai-sdk/provider';

import type { LlmBackend, LlmChatOptions, LlmResult } from '../backends/llm-backend';
import { rejectUnknownKeys } from '../engine/request';
import { LlamaError } from '../errors';
import type { ChatMessage } from '../types';
import { requireObject } from '../validate';

const PROVIDER = 'tea-llama';

export interface TeaLlamaProviderOptions {
  /** The backend that answers: a `LocalLlmBackend`, an `ApiLlmBackend`, or any other {@link LlmBackend}. */
  backend: LlmBackend;
}

/** The provider: call it (or `languageModel()`) for the chat model, `embeddingModel()` for embeddings. */
export interface TeaLlamaProvider {
  (modelId?: string): TeaLlamaLanguageModel;
  readonly specificationVersion: 'v4';
  languageModel(modelId?: string): TeaLlamaLanguageModel;
  embeddingModel(modelId?: string): TeaLlamaEmbeddingModel;
  /** The AI SDK asks providers for image models too: tea-llama has none (ERR_INVALID_ARGUMENT). */
  imageModel(modelId: string): never;
}

function unsupported(what: string): LlamaError {
  return new LlamaError('ERR_INVALID_ARGUMENT', `tea-llama/ai-sdk: ${what} is not supported yet`);
}

/** The AI SDK's prompt as the backend's chat messages. */
export function toChatMessages(prompt: LanguageModelV4Prompt): ChatMessage[] {
  return prompt.map((message, i) => {
    if (message.role === 'system') return { role: 'system', content: message.content };
    // TODO(structured, issue 13): tool-call parts (→ assistant `toolCalls`) and tool results (→ role 'tool' with
    // `toolCallId`) once the request model has them.
    if (message.role === 'tool') throw unsupported(`prompt[${i}]: a tool message`);
    const text = message.content
      .map((part) => {
        if (part.type === 'text') return part.text;
        if (part.type === 'reasoning') return ''; // earlier reasoning is not sent back to the model
        throw unsupported(`prompt[${i}]: a ${part.type} part`);
      })
      .join('');
    return { role: message.role, content: text };
  });
}

/** The call options as the one request model's, and the warnings for what is accepted but unused. */
function toOptions(options: LanguageModelV4CallOptions): { chat: LlmChatOptions; warnings: SharedV4Warning[] } {
  const warnings: SharedV4Warning[] = [];
  // TODO(structured, issue 13): responseFormat json → `responseFormat`, tools → `tools`, toolChoice → `toolChoice`.
  if (options.responseFormat?.type === 'json') throw unsupported('responseFormat json (generateObject / streamObject)');
  if (options.tools !== undefined && options.tools.length > 0) throw unsupported('tools');
  if (options.reasoning !== undefined && options.reasoning !== 'provider-default' && options.reasoning !== 'none') {
    warnings.push({ type: 'unsupported', feature: 'reasoning', details: 'the model reasons as its chat template makes it' });
  }
  const chat: LlmChatOptions = {
    ...(options.maxOutputTokens !== undefined ? { maxTokens: options.maxOutputTokens } : {}),
    ...(options.temperature !== undefined ? { temperature: options.temperature } : {}),
    ...(options.topP !== undefined ? { topP: options.topP } : {}),
    ...(options.topK !== undefined ? { topK: options.topK } : {}),
    ...(options.presencePenalty !== undefined ? { presencePenalty: options.presencePenalty } : {}),
    ...(options.frequencyPenalty !== undefined ? { frequencyPenalty: options.frequencyPenalty } : {}),
    ...(options.stopSequences !== undefined && options.stopSequences.length > 0 ? { stop: options.stopSequences } : {}),
    ...(options.seed !== undefined ? { seed: options.seed } : {}),
    ...(options.abortSignal !== undefined ? { signal: options.abortSignal } : {}),
  };
  return { chat, warnings };
}

function finishReason(reason: string): LanguageModelV4FinishReason {
  const unified = reason === 'stop' || reason === 'length' ? reason : reason === 'tool_calls' ? 'tool-calls' : reason === 'abort' ? 'interrupted' : 'other';
  return { unified, raw: reason };
}

function usage(r: LlmResult): LanguageModelV4Usage {
  return {
    inputTokens: { total: r.promptTokens, noCache: r.promptTokens - r.reusedPromptTokens, cacheRead: r.reusedPromptTokens, cacheWrite: undefined },
    outputTokens: { total: r.completionTokens, text: r.completionTokens, reasoning: undefined },
  };
}

/** A chat model of the AI SDK over an {@link LlmBackend}; calls run on the JS thread, the work in the backend. */
export class TeaLlamaLanguageModel implements LanguageModelV4 {
  readonly specificationVersion = 'v4' as const;
  readonly provider = PROVIDER;
  readonly modelId: string;
  /** No URLs are fetched by the model: the AI SDK downloads files itself (and tea-llama takes text only). */
  readonly supportedUrls: Record<string, RegExp[]> = {};
  readonly #backend: LlmBackend;

  constructor(backend: LlmBackend, modelId: string = backend.model) {
    this.#backend = backend;
    this.modelId = modelId;
  }

  async doGenerate(options: LanguageModelV4CallOptions): Promise<LanguageModelV4GenerateResult> {
    const { chat, warnings } = toOptions(options);
    const result = await this.#backend.chat(toChatMessages(options.prompt), chat);
    return {
      content: result.content.length > 0 ? [{ type: 'text', text: result.content }] : [],
      finishReason: finishReason(result.finishReason),
      usage: usage(result),
      warnings,
      response: { modelId: result.model, timestamp: new Date() },
      providerMetadata: { [PROVIDER]: { backend: result.backend, totalMs: result.timings.totalMs } },
    };
  }

  async doStream(options: LanguageModelV4CallOptions): Promise<LanguageModelV4StreamResult> {
    const { chat, warnings } = toOptions(options);
    const messages = toChatMessages(options.prompt);
    // Cancelling the ReadableStream (the AI SDK does when its consumer stops) aborts the generation.
    const cancel = new AbortController();
    const signal = chat.signal ? AbortSignal.any([chat.signal, cancel.signal]) : cancel.signal;
    const backend = this.#backend;
    const stream = new ReadableStream<LanguageModelV4StreamPart>({
      start(controller) {
        controller.enqueue({ type: 'stream-start', warnings });
        controller.enqueue({ type: 'response-metadata', modelId: backend.model, timestamp: new Date() });
        let open = false;
        const s = backend.streamChat(
          messages,
          (delta) => {
            if (cancel.signal.aborted) return;
            if (!open) controller.enqueue({ type: 'text-start', id: '0' });
            open = true;
            controller.enqueue({ type: 'text-delta', id: '0', delta });
          },
          { ...chat, signal },
        );
        s.result.then(
          (result) => {
            if (cancel.signal.aborted) return;
            if (open) controller.enqueue({ type: 'text-end', id: '0' });
            controller.enqueue({ type: 'finish', finishReason: finishReason(result.finishReason), usage: usage(result) });
            controller.close();
          },
          (error: unknown) => {
            if (cancel.signal.aborted) return;
            controller.enqueue({ type: 'error', error });
            controller.close();
          },
        );
      },
      cancel() {
        cancel.abort();
      },
    });
    return { stream };
  }
}

/** An embedding model of the AI SDK over an {@link LlmBackend}: unit-length vectors. */
export class TeaLlamaEmbeddingModel implements EmbeddingModelV4 {
  readonly specificationVersion = 'v4' as const;
  readonly provider = PROVIDER;
  readonly modelId: string;
  /** No limit of its own: the backend embeds every text of a call (a local model in one batch). */
  readonly maxEmbeddingsPerCall = undefined;
  readonly supportsParallelCalls = true;
  readonly #backend: LlmBackend;

  constructor(backend: LlmBackend, modelId: string = backend.model) {
    this.#backend = backend;
    this.modelId = modelId;
  }

  async doEmbed(options: EmbeddingModelV4CallOptions): Promise<EmbeddingModelV4Result> {
    if (options.dimensions !== undefined) throw new LlamaError('ERR_INVALID_ARGUMENT', "tea-llama/ai-sdk: 'dimensions' is not supported: the model's vectors have their own size");
    const vectors = await this.#backend.embed(options.values, { signal: options.abortSignal });
    return { embeddings: vectors.map((v) => Array.from(v)), warnings: [] };
  }
}

/**
 * A Vercel AI SDK provider over `backend`: `generateText`, `streamText` (abortable), `embed`/`embedMany`, on a local
 * model or through an API backend alike. The backend serves one model: `modelId` may be left out, or must be
 * the backend's `model`.
 *
 * @example
 * const teaLlama = createTeaLlama({ backend });
 * const { text } = await generateText({ model: teaLlama(), prompt: 'Once upon a time' });
 */
export function createTeaLlama(options: TeaLlamaProviderOptions): TeaLlamaProvider {
  const opts = requireObject(options, 'options');
  rejectUnknownKeys(opts, ['backend'], 'createTeaLlama() options');
  const backend = opts.backend as LlmBackend;
  if (typeof backend !== 'object' || backend === null || typeof backend.chat !== 'function') {
    throw new LlamaError('ERR_INVALID_ARGUMENT', 'createTeaLlama({ backend }): backend must be an LlmBackend');
  }
  const id = (modelId: string | undefined) => {
    if (modelId !== undefined && modelId !== backend.model) {
      throw new LlamaError('ERR_INVALID_ARGUMENT', `tea-llama/ai-sdk: the backend serves '${backend.model}', not '${modelId}'`);
    }
    return backend.model;
  };
  const languageModel = (modelId?: string) => new TeaLlamaLanguageModel(backend, id(modelId));
  return Object.assign(languageModel, {
    specificationVersion: 'v4' as const,
    languageModel,
    embeddingModel: (modelId?: string) => new TeaLlamaEmbeddingModel(backend, id(modelId)),
    imageModel: (modelId: string): never => {
      throw new LlamaError('ERR_INVALID_ARGUMENT', `tea-llama/ai-sdk: no image models (asked for '${modelId}')`);
    },
  });
}
