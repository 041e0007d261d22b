// `tea-llama/langchain`: LangChain.js classes (for @langchain/core 1.x, an optional peer dependency) over any
// LlmBackend: a chat model, an LLM and Embeddings. Everything runs on the JS thread; the work is the backend's.
import type { CallbackManagerForLLMRun } from '@langchain/core/callbacks/manager';
import { Embeddings, type EmbeddingsParams } from '@langchain/core/embeddings';
import { BaseChatModel, type BaseChatModelCallOptions, type BaseChatModelParams, type BindToolsInput } from '@langchain/core/language_models/chat_models';
import { assembleStructuredOutputPipeline, createContentParser } from '@langchain/core/language_models/structured_output';
import type { BaseLanguageModelInput } from '@langchain/core/language_models/base';
import { LLM, type BaseLLMCallOptions, type BaseLLMParams } from '@langchain/core/language_models/llms';
import { AIMessage, AIMessageChunk, type BaseMessage, type InvalidToolCall, type ToolCall as LcToolCall, type ToolCallChunk, type ToolMessage } from '@langchain/core/messages';
import { ChatGenerationChunk, GenerationChunk, type ChatResult } from '@langchain/core/outputs';
import type { Runnable } from '@langchain/core/runnables';
import { convertToOpenAITool } from '@langchain/core/utils/function_calling';
import { toJsonSchema } from '@langchain/core/utils/json_schema';

import type { LlmBackend, LlmChatOptions, LlmGenerateOptions, LlmResult } from '../backends/llm-backend';
import type { GenerationDelta, ResponseFormat, ToolCall, ToolChoice, ToolDefinition } from '../engine/structured';
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

export interface ChatTeaLlamaCallOptions extends BaseChatModelCallOptions, TeaLlamaSampling {
  /** Functions the model may call (what `bindTools` sets, in OpenAI's shape). Default: none. */
  tools?: ToolDefinition[];
  /** OpenAI's JSON modes (what `withStructuredOutput` sets). Default: text. */
  responseFormat?: ResponseFormat;
}
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

/** LangChain messages as the backend's chat messages: AI tool calls as `toolCalls`, ToolMessages as `tool` messages. */
export function toChatMessages(messages: BaseMessage[]): ChatMessage[] {
  return messages.map((m, i) => {
    const type = m.getType();
    if (type === 'tool') {
      const id = (m as ToolMessage).tool_call_id;
      return { role: 'tool', toolCallId: id, content: text(m.content, i) };
    }
    const role = type === 'human' ? 'user' : type === 'ai' ? 'assistant' : type === 'system' ? 'system' : undefined;
    if (!role) throw new LlamaError('ERR_INVALID_ARGUMENT', `tea-llama/langchain: messages[${i}]: a ${type} message is not supported`);
    const calls = type === 'ai' ? ((m as AIMessage).tool_calls ?? []) : [];
    if (calls.length === 0) return { role, content: text(m.content, i) };
    const toolCalls = calls.map((c, j): ToolCall => ({ id: c.id ?? `call_${j}`, type: 'function', function: { name: c.name, arguments: JSON.stringify(c.args ?? {}) } }));
    return { role, content: text(m.content, i), toolCalls };
  });
}

/** LangChain's tool_choice ('any' is its 'required'; a bare name is that function) as the request model's. */
function toolChoice(choice: BaseChatModelCallOptions['tool_choice']): ToolChoice | undefined {
  if (choice === undefined) return undefined;
  if (choice === 'any') return 'required';
  if (choice === 'auto' || choice === 'none' || choice === 'required') return choice;
  if (typeof choice === 'string') return { type: 'function', function: { name: choice } };
  return choice as ToolChoice; // OpenAI's { type: 'function', function: { name } }; the request model checks it
}

function chatOptions(defaults: TeaLlamaSampling, options: ChatTeaLlamaCallOptions): LlmChatOptions {
  const choice = toolChoice(options.tool_choice);
  return {
    ...sampling(defaults, options),
    ...(options.tools !== undefined && options.tools.length > 0 ? { tools: options.tools } : {}),
    ...(choice !== undefined ? { toolChoice: choice } : {}),
    ...(options.responseFormat !== undefined ? { responseFormat: options.responseFormat } : {}),
  };
}

/** A result's calls as LangChain's: whole ones parsed, a call cut by maxTokens as an invalid one. */
function toolCalls(r: LlmResult): { tool_calls: LcToolCall[]; invalid_tool_calls: InvalidToolCall[] } {
  const valid: LcToolCall[] = [];
  const invalid: InvalidToolCall[] = [];
  for (const c of r.toolCalls ?? []) {
    try {
      valid.push({ id: c.id, name: c.function.name, args: JSON.parse(c.function.arguments) as Record<string, unknown>, type: 'tool_call' });
    } catch (error) {
      invalid.push({ id: c.id, name: c.function.name, args: c.function.arguments, error: (error as Error).message, type: 'invalid_tool_call' });
    }
  }
  return { tool_calls: valid, invalid_tool_calls: invalid };
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

  /** The tools (LangChain tools, zod-schema'd tools or OpenAI's shape) for every call of the returned runnable. */
  override bindTools(tools: BindToolsInput[], kwargs?: Partial<ChatTeaLlamaCallOptions>): Runnable<BaseLanguageModelInput, AIMessageChunk, ChatTeaLlamaCallOptions> {
    const converted = tools.map((t) => convertToOpenAITool(t) as ToolDefinition);
    return this.withConfig({ tools: converted, ...kwargs } as Partial<ChatTeaLlamaCallOptions>);
  }

  /**
   * Answers as an object of `schema` (zod or JSON Schema). `method` 'jsonSchema' (default) constrains the output
   * by the schema's grammar (`responseFormat` json_schema), so it always parses; 'jsonMode' asks for any JSON
   * object; 'functionCalling' asks for a call of one tool (LangChain's own way, through `bindTools`).
   */
  // One signature for LangChain's overloads (zod 3, zod 4, standard and JSON schemas; with or without the raw message).
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  override withStructuredOutput(schema: any, config?: any): any {
    const method = config?.method ?? 'jsonSchema';
    if (method === 'functionCalling') return super.withStructuredOutput(schema, config);
    const jsonSchema = (typeof schema === 'object' && schema !== null && !('_def' in schema) && !('~standard' in schema) ? schema : toJsonSchema(schema)) as object;
    const responseFormat: ResponseFormat =
      method === 'jsonMode' ? { type: 'json_object' } : { type: 'json_schema', json_schema: { name: config?.name ?? 'extract', schema: jsonSchema, ...(config?.strict !== undefined ? { strict: config.strict } : {}) } };
    const llm = this.withConfig({ responseFormat } as Partial<ChatTeaLlamaCallOptions>);
    return assembleStructuredOutputPipeline(llm, createContentParser(schema), config?.includeRaw, 'StructuredOutput');
  }

  async _generate(messages: BaseMessage[], options: this['ParsedCallOptions']): Promise<ChatResult> {
    const result = await this.backend.chat(toChatMessages(messages), chatOptions(this.defaults, options));
    const message = new AIMessage({
      content: result.content,
      ...toolCalls(result),
      ...(result.reasoningContent !== undefined ? { additional_kwargs: { reasoning_content: result.reasoningContent } } : {}),
      usage_metadata: usageMetadata(result),
      response_metadata: responseMetadata(result),
    });
    return {
      generations: [{ text: result.content, message, generationInfo: { finish_reason: result.finishReason } }],
      llmOutput: { tokenUsage: { promptTokens: result.promptTokens, completionTokens: result.completionTokens, totalTokens: result.tokensUsed } },
    };
  }

  override async *_streamResponseChunks(messages: BaseMessage[], options: this['ParsedCallOptions'], runManager?: CallbackManagerForLLMRun): AsyncGenerator<ChatGenerationChunk> {
    // Tool-call deltas come through onDelta; they go out with the next content chunk, or at the end.
    const pending: ToolCallChunk[] = [];
    const onDelta = (d: GenerationDelta) => {
      for (const t of d.toolCalls ?? []) pending.push({ index: t.index, id: t.id, name: t.function.name, args: t.function.arguments ?? '', type: 'tool_call_chunk' });
    };
    const toolChunk = () => new ChatGenerationChunk({ text: '', message: new AIMessageChunk({ content: '', tool_call_chunks: pending.splice(0) }) });
    const stream = this.backend.streamChat(toChatMessages(messages), undefined, { ...chatOptions(this.defaults, options), onDelta });
    // Leaving this generator early (a consumer that stops) leaves the stream's loop, which aborts the generation.
    for await (const delta of stream) {
      if (pending.length > 0) yield toolChunk();
      yield new ChatGenerationChunk({ text: delta, message: new AIMessageChunk({ content: delta }) });
      await runManager?.handleLLMNewToken(delta);
    }
    const result = await stream.result;
    if (pending.length > 0) yield toolChunk();
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
