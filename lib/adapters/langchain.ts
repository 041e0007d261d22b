// `tea-llama/langchain`: LangChain.js classes (for @langchain/core 1.x, an optional peer dependency) over any
// LlmBackend: a chat model, an LLM and Embeddings. Everything runs on the JS thread; the work is the backend's.
import type { CallbackManagerForLLMRun } from '@langchain/core/callbacks/manager';
import { Embeddings, type EmbeddingsParams } from '@langchain/core/embeddings';
import { BaseChatModel, type BaseChatModelCallOptions, type BaseChatModelParams } from '@langchain/core/language_models/chat_models';
import { LLM, type BaseLLMCallOptions, type BaseLLMParams } from '@langchain/core/language_models/llms';
import { AIMessage, AIMessageChunk, type BaseMessage } from '@langchain/core/messages';
import { ChatGenerationChunk, GenerationChunk, type ChatResult } from '@langchain/core/outputs';

import type { LlmBackend, LlmGenerateOptions, LlmResult } from '../backends/llm-backend';
import { LlamaError } from '../errors';
import type { ChatMessage } from '../types';

/** Sampling options of the classes (constructor defaults) and of each call (they win). */
export interface TeaLlamaSampling {
  /** Most tokens to generate. Default: the backend's (100). */
  maxTokens?: number;
  /** 0 is greedy. Default: the backend's (0.7). */
  temperature?: number;
  /** Default: the backend's. */
  topP?: number;
  /** Default: the backend's (40). */
  topK?: number;
  /** Default: random. */
  seed?: number;
}

export interface ChatTeaLlamaCallOptions extends BaseChatModelCallOptions, TeaLlamaSampling {}
export interface TeaLlamaCallOptions extends BaseLLMCallOptions, TeaLlamaSampling {}

export interface ChatTeaLlamaInput extends BaseChatModelParams, TeaLlamaSampling {
  /** The backend that answers: `LocalLlmBackend`, `ApiLlmBackend`, or any other {@link LlmBackend}. */
  backend: LlmBackend;
}
export interface TeaLlamaInput extends BaseLLMParams, TeaLlamaSampling {
  backend: LlmBackend;
}
export interface TeaLlamaEmbeddingsInput extends EmbeddingsParams {
  backend: LlmBackend;
}

const SAMPLING = ['maxTokens', 'temperature', 'topP', 'topK', 'seed'] as const;

function sampling(defaults: TeaLlamaSampling, call: TeaLlamaSampling & { stop?: string[]; signal?: AbortSignal }): LlmGenerateOptions {
  const out: Record<string, unknown> = {};
  for (const key of SAMPLING) {
    const value = call[key] ?? defaults[key];
    if (value !== undefined) out[key] = value;
  }
  if (call.stop !== undefined && call.stop.length > 0) out.stop = call.stop;
  if (call.signal !== undefined) out.signal = call.signal;
  return out as LlmGenerateOptions;
}

function checkBackend(backend: unknown, where: string): LlmBackend {
  if (typeof backend !== 'object' || backend === null || typeof (backend as LlmBackend).chat !== 'function') {
    throw new LlamaError('ERR_INVALID_ARGUMENT', `${where}: backend must be an LlmBackend`);
  }
  return backend as LlmBackend;
}

function text(content: BaseMessage['content'], i: number): string {
  if (typeof content === 'string') return content;
  return content
    .map((part) => {
      if (typeof part === 'string') return part;
      if (part.type === 'text' && typeof part.text === 'string') return part.text;
      throw new LlamaError('ERR_INVALID_ARGUMENT', `tea-llama/langchain: messages[${i}]: a ${String(part.type)} part is not supported (text only)`);
    })
    .join('');
}

/** LangChain messages as the backend's chat messages. */
export function toChatMessages(messages: BaseMessage[]): ChatMessage[] {
  return messages.map((m, i) => {
    const type = m.getType();
    // TODO(structured, issue 13): 'tool' messages (→ role 'tool', toolCallId) and AI tool_calls (→ toolCalls).
    if (type === 'tool' || (type === 'ai' && (m as AIMessage).tool_calls?.length)) {
      throw new LlamaError('ERR_INVALID_ARGUMENT', `tea-llama/langchain: messages[${i}]: tool calls are not supported yet`);
    }
    const role = type === 'human' ? 'user' : type === 'ai' ? 'assistant' : type === 'system' ? 'system' : undefined;
    if (!role) throw new LlamaError('ERR_INVALID_ARGUMENT', `tea-llama/langchain: messages[${i}]: a ${type} message is not supported`);
    return { role, content: text(m.content, i) };
  });
}

function usageMetadata(r: LlmResult) {
  return { input_tokens: r.promptTokens, output_tokens: r.completionTokens, total_tokens: r.promptTokens + r.completionTokens };
}

function responseMetadata(r: LlmResult) {
  return { finish_reason: r.finishReason, model_name: r.model, backend: r.backend };
}

/**
 * A LangChain chat model over an {@link LlmBackend}: `invoke`, `stream` (abortable with `signal`), `batch`, and
 * everything else of `BaseChatModel`. The backend's chat template renders the messages.
 */
export class ChatTeaLlama extends BaseChatModel<ChatTeaLlamaCallOptions> {
  readonly backend: LlmBackend;
  readonly defaults: TeaLlamaSampling;

  static override lc_name(): string {
    return 'ChatTeaLlama';
  }

  constructor(fields: ChatTeaLlamaInput) {
    const { backend, maxTokens, temperature, topP, topK, seed, ...base } = fields;
    super(base);
    this.backend = checkBackend(backend, 'ChatTeaLlama');
    this.defaults = { maxTokens, temperature, topP, topK, seed };
  }

  _llmType(): string {
    return 'tea-llama';
  }

  override bindTools(): never {
    // TODO(structured, issue 13): pass the tools through as the request option `tools`.
    throw new LlamaError('ERR_INVALID_ARGUMENT', 'tea-llama/langchain: bindTools is not supported yet');
  }

  async _generate(messages: BaseMessage[], options: this['ParsedCallOptions']): Promise<ChatResult> {
    const result = await this.backend.chat(toChatMessages(messages), sampling(this.defaults, options));
    const message = new AIMessage({ content: result.content, usage_metadata: usageMetadata(result), response_metadata: responseMetadata(result) });
    return {
      generations: [{ text: result.content, message, generationInfo: { finish_reason: result.finishReason } }],
      llmOutput: { tokenUsage: { promptTokens: result.promptTokens, completionTokens: result.completionTokens, totalTokens: result.tokensUsed } },
    };
  }

  override async *_streamResponseChunks(messages: BaseMessage[], options: this['ParsedCallOptions'], runManager?: CallbackManagerForLLMRun): AsyncGenerator<ChatGenerationChunk> {
    const stream = this.backend.streamChat(toChatMessages(messages), undefined, sampling(this.defaults, options));
    // Leaving this generator early (a consumer that stops) leaves the stream's loop, which aborts the generation.
    for await (const delta of stream) {
      yield new ChatGenerationChunk({ text: delta, message: new AIMessageChunk({ content: delta }) });
      await runManager?.handleLLMNewToken(delta);
    }
    const result = await stream.result;
    yield new ChatGenerationChunk({
      text: '',
      message: new AIMessageChunk({ content: '', usage_metadata: usageMetadata(result), response_metadata: responseMetadata(result) }),
      generationInfo: { finish_reason: result.finishReason },
    });
  }
}

/** A LangChain text-completion LLM over an {@link LlmBackend}: the prompt as raw text, no chat template. */
export class TeaLlama extends LLM<TeaLlamaCallOptions> {
  readonly backend: LlmBackend;
  readonly defaults: TeaLlamaSampling;

  static override lc_name(): string {
    return 'TeaLlama';
  }

  constructor(fields: TeaLlamaInput) {
    const { backend, maxTokens, temperature, topP, topK, seed, ...base } = fields;
    super(base);
    this.backend = checkBackend(backend, 'TeaLlama');
    this.defaults = { maxTokens, temperature, topP, topK, seed };
  }

  _llmType(): string {
    return 'tea-llama';
  }

  async _call(prompt: string, options: this['ParsedCallOptions']): Promise<string> {
    return (await this.backend.call({ prompt, ...sampling(this.defaults, options) })).content;
  }

  override async *_streamResponseChunks(prompt: string, options: this['ParsedCallOptions'], runManager?: CallbackManagerForLLMRun): AsyncGenerator<GenerationChunk> {
    const stream = this.backend.stream({ prompt, ...sampling(this.defaults, options) });
    for await (const delta of stream) {
      yield new GenerationChunk({ text: delta });
      await runManager?.handleLLMNewToken(delta);
    }
    const result = await stream.result;
    yield new GenerationChunk({ text: '', generationInfo: { finish_reason: result.finishReason } });
  }
}

/** LangChain Embeddings over an {@link LlmBackend}: unit-length vectors, documents embedded in one backend call. */
export class TeaLlamaEmbeddings extends Embeddings {
  readonly backend: LlmBackend;

  constructor(fields: TeaLlamaEmbeddingsInput) {
    const { backend, ...base } = fields;
    super(base);
    this.backend = checkBackend(backend, 'TeaLlamaEmbeddings');
  }

  async embedDocuments(documents: string[]): Promise<number[][]> {
    if (documents.length === 0) return [];
    const vectors = await this.caller.call(() => this.backend.embed(documents));
    return vectors.map((v) => Array.from(v));
  }

  async embedQuery(document: string): Promise<number[]> {
    return Array.from(await this.caller.call(() => this.backend.embed(document)));
  }
}
