// `tea-llama/ai-sdk`: a Vercel AI SDK provider (specification v4, as `ai` 7 and `@ai-sdk/provider` 4 define it)
// over any LlmBackend. Only types come from @ai-sdk/provider (an optional peer dependency): nothing of it is loaded
// at run time, so this module works from CommonJS and ESM alike.
import type {
  EmbeddingModelV4,
  EmbeddingModelV4CallOptions,
  EmbeddingModelV4Result,
  LanguageModelV4,
  LanguageModelV4CallOptions,
  LanguageModelV4Content,
  LanguageModelV4FinishReason,
  LanguageModelV4GenerateResult,
  LanguageModelV4Prompt,
  LanguageModelV4StreamPart,
  LanguageModelV4StreamResult,
  LanguageModelV4ToolResultOutput,
  LanguageModelV4Usage,
  RerankingModelV4,
  RerankingModelV4CallOptions,
  RerankingModelV4Result,
  SharedV4Warning,
} from '@ai-sdk/provider';

import type { LlmBackend, LlmChatOptions, LlmResult } from '../backends/llm-backend';
import { rejectUnknownKeys } from '../engine/request';
import type { GenerationDelta, ToolCall, ToolDefinition } from '../engine/structured';
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
  /** The reranking model (`rerank()` of the AI SDK): the backend's `rerank()`, a reranker's raw scores. */
  rerankingModel(modelId?: string): TeaLlamaRerankingModel;
  /** The AI SDK asks providers for image models too: tea-llama has none (ERR_INVALID_ARGUMENT). */
  imageModel(modelId: string): never;
}

function unsupported(what: string): LlamaError {
  return new LlamaError('ERR_INVALID_ARGUMENT', `tea-llama/ai-sdk: ${what} is not supported`);
}

/** A tool's result as the text of a `tool` message (JSON values as JSON text). */
function toolOutput(output: LanguageModelV4ToolResultOutput): string {
  switch (output.type) {
    case 'text':
    case 'error-text':
      return output.value;
    case 'json':
    case 'error-json':
      return JSON.stringify(output.value);
    case 'execution-denied':
      return output.reason ?? 'the tool call was denied';
    case 'content':
      return output.value.map((part) => (part.type === 'text' ? part.text : '')).join('');
  }
}

/** The AI SDK's prompt as the backend's chat messages: tool calls as assistant `toolCalls`, results as `tool` messages. */
export function toChatMessages(prompt: LanguageModelV4Prompt): ChatMessage[] {
  return prompt.flatMap((message, i): ChatMessage[] => {
    if (message.role === 'system') return [{ role: 'system', content: message.content }];
    if (message.role === 'tool') {
      return message.content.flatMap((part): ChatMessage[] => {
        if (part.type === 'tool-result') return [{ role: 'tool', toolCallId: part.toolCallId, content: toolOutput(part.output) }];
        throw unsupported(`prompt[${i}]: a ${part.type} part`);
      });
    }
    const toolCalls: ToolCall[] = [];
    let text = '';
    for (const part of message.content) {
      if (part.type === 'text') text += part.text;
      else if (part.type === 'reasoning') continue; // earlier reasoning is not sent back to the model
      else if (part.type === 'tool-call' && message.role === 'assistant') {
        // The SDK holds the arguments parsed; the template renders them from OpenAI's JSON text.
        const input = typeof part.input === 'string' ? part.input : JSON.stringify(part.input ?? {});
        toolCalls.push({ id: part.toolCallId, type: 'function', function: { name: part.toolName, arguments: input } });
      } else throw unsupported(`prompt[${i}]: a ${part.type} part`);
    }
    return [{ role: message.role, content: text, ...(toolCalls.length > 0 ? { toolCalls } : {}) }];
  });
}

/** The AI SDK's tools, tool choice and JSON mode as the request model's `tools`, `toolChoice` and `responseFormat`. */
function structured(options: LanguageModelV4CallOptions): Pick<LlmChatOptions, 'tools' | 'toolChoice' | 'responseFormat'> {
  const out: Pick<LlmChatOptions, 'tools' | 'toolChoice' | 'responseFormat'> = {};
  const format = options.responseFormat;
  if (format?.type === 'json') {
    out.responseFormat = format.schema ? { type: 'json_schema', json_schema: { name: format.name ?? 'response', schema: format.schema as object } } : { type: 'json_object' };
  }
  if (options.tools !== undefined && options.tools.length > 0) {
    out.tools = options.tools.map((tool): ToolDefinition => {
      if (tool.type !== 'function') throw unsupported(`the provider tool '${tool.name}'`);
      return { type: 'function', function: { name: tool.name, ...(tool.description !== undefined ? { description: tool.description } : {}), parameters: tool.inputSchema as object } };
    });
    const choice = options.toolChoice;
    if (choice !== undefined) out.toolChoice = choice.type === 'tool' ? { type: 'function', function: { name: choice.toolName } } : choice.type;
  }
  return out;
}

/** The call options as the one request model's, and the warnings for what is accepted but unused. */
function toOptions(options: LanguageModelV4CallOptions): { chat: LlmChatOptions; warnings: SharedV4Warning[] } {
  const warnings: SharedV4Warning[] = [];
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
    ...structured(options),
  };
  return { chat, warnings };
}

/** A result's reasoning, text and tool calls as the AI SDK's content parts. */
function content(result: LlmResult): LanguageModelV4Content[] {
  return [
    ...(result.reasoningContent ? [{ type: 'reasoning' as const, text: result.reasoningContent }] : []),
    ...(result.content.length > 0 ? [{ type: 'text' as const, text: result.content }] : []),
    ...(result.toolCalls ?? []).map((c) => ({ type: 'tool-call' as const, toolCallId: c.id, toolName: c.function.name, input: c.function.arguments })),
  ];
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
      content: content(result),
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
        // Parts are made from the backend's deltas (content, reasoning, tool calls), never its raw text.
        const open = new Set<string>();
        const tools = new Map<number, string>();
        const part = (p: LanguageModelV4StreamPart) => {
          if (!cancel.signal.aborted) controller.enqueue(p);
        };
        const onDelta = (d: GenerationDelta) => {
          if (d.reasoningContent) {
            if (!open.has('reasoning')) part({ type: 'reasoning-start', id: 'reasoning' });
            open.add('reasoning');
            part({ type: 'reasoning-delta', id: 'reasoning', delta: d.reasoningContent });
          }
          if (d.content) {
            if (!open.has('0')) part({ type: 'text-start', id: '0' });
            open.add('0');
            part({ type: 'text-delta', id: '0', delta: d.content });
          }
          for (const t of d.toolCalls ?? []) {
            let id = tools.get(t.index);
            if (id === undefined) {
              id = t.id ?? `call_${t.index}`;
              tools.set(t.index, id);
              part({ type: 'tool-input-start', id, toolName: t.function.name ?? '' });
            }
            if (t.function.arguments) part({ type: 'tool-input-delta', id, delta: t.function.arguments });
          }
        };
        const s = backend.streamChat(messages, undefined, { ...chat, signal, onDelta });
        s.result.then(
          (result) => {
            if (cancel.signal.aborted) return;
            // A cached answer comes whole, without deltas.
            if (open.size === 0 && tools.size === 0) onDelta({ reasoningContent: result.reasoningContent, content: result.content });
            if (open.has('reasoning')) part({ type: 'reasoning-end', id: 'reasoning' });
            if (open.has('0')) part({ type: 'text-end', id: '0' });
            for (const id of tools.values()) part({ type: 'tool-input-end', id });
            (result.toolCalls ?? []).forEach((c, i) => part({ type: 'tool-call', toolCallId: tools.get(i) ?? c.id, toolName: c.function.name, input: c.function.arguments }));
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

/** A reranking model of the AI SDK over an {@link LlmBackend} (`LlmBackend.rerank`): text documents only. */
export class TeaLlamaRerankingModel implements RerankingModelV4 {
  readonly specificationVersion = 'v4' as const;
  readonly provider = PROVIDER;
  readonly modelId: string;
  readonly #backend: LlmBackend;

  constructor(backend: LlmBackend, modelId: string = backend.model) {
    this.#backend = backend;
    this.modelId = modelId;
  }

  async doRerank(options: RerankingModelV4CallOptions): Promise<RerankingModelV4Result> {
    if (options.documents.type !== 'text') throw unsupported("reranking documents of type 'object' (give texts)");
    const ranked = await this.#backend.rerank(options.query, options.documents.values, {
      ...(options.topN !== undefined ? { topN: options.topN } : {}),
      ...(options.abortSignal ? { signal: options.abortSignal } : {}),
    });
    return { ranking: ranked.map((r) => ({ index: r.index, relevanceScore: r.score })), warnings: [] };
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
    rerankingModel: (modelId?: string) => new TeaLlamaRerankingModel(backend, id(modelId)),
    imageModel: (modelId: string): never => {
      throw new LlamaError('ERR_INVALID_ARGUMENT', `tea-llama/ai-sdk: no image models (asked for '${modelId}')`);
    },
  });
}
