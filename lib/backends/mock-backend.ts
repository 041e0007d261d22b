import { createHash } from 'node:crypto';

import type { ChatMessage } from '../types';
import { optionalFunction, optionalInt, requireObject, requireString } from '../validate';
import { BaseLlmBackend, type BackendCommonOptions, type EngineResult, type GenerationRequest } from './base-backend';
import type { HealthStatus } from './llm-backend';

export interface MockLlmBackendOptions extends BackendCommonOptions {
  /** Canned answers by exact prompt (for chat: the last message's content). */
  responses?: Record<string, string>;
  /** Computes the answer; takes precedence over `responses`. */
  respond?: (input: { prompt?: string; messages?: ChatMessage[] }) => string;
  /** The answer to anything else. Default: `mock answer to: <prompt or last message>`. */
  defaultResponse?: string;
  /** Length of embedding vectors. Default 16. */
  embeddingDimensions?: number;
  /** Model name in results. Default 'mock'. */
  model?: string;
}

/** A recorded call of a {@link MockLlmBackend}. */
export interface MockCall {
  method: 'call' | 'chat' | 'embed' | 'rerank';
  prompt?: string;
  messages?: ChatMessage[];
  texts?: string[];
}

/**
 * A deterministic {@link LlmBackend} for tests: canned answers, no model, no network. "Tokens" are words: an
 * answer longer than maxTokens words is cut (finishReason 'length'), stop strings cut it too, streams send one
 * word per chunk, and embeddings are unit vectors derived from a hash of the text. Every call is recorded in
 * `calls`.
 */
export class MockLlmBackend extends BaseLlmBackend {
  readonly kind = 'mock' as const;
  readonly model: string;
  /** Every call, in order. */
  readonly calls: MockCall[] = [];
  readonly #responses: Record<string, string>;
  readonly #respond: MockLlmBackendOptions['respond'];
  readonly #default: string | undefined;
  readonly #dimensions: number;

  constructor(options: MockLlmBackendOptions = {}) {
    const opts = requireObject(options, 'options') as MockLlmBackendOptions;
    super(opts);
    this.model = opts.model === undefined ? 'mock' : requireString(opts.model, 'model');
    this.#responses = requireObject(opts.responses, 'responses') as Record<string, string>;
    for (const [prompt, answer] of Object.entries(this.#responses)) requireString(answer, `responses[${JSON.stringify(prompt)}]`);
    this.#respond = optionalFunction(opts.respond, 'respond');
    this.#default = opts.defaultResponse === undefined ? undefined : requireString(opts.defaultResponse, 'defaultResponse');
    this.#dimensions = optionalInt(opts.embeddingDimensions, 'embeddingDimensions', 1, 65536) ?? 16;
  }

  #answer(request: GenerationRequest): string {
    const input = request.kind === 'prompt' ? { prompt: request.prompt } : { messages: request.messages };
    if (this.#respond) return requireString(this.#respond(input), 'the respond() result');
    const key = request.kind === 'prompt' ? request.prompt : (request.messages.at(-1)?.content ?? '');
    // Own keys only: a prompt "constructor" is not Object.prototype's.
    return (Object.hasOwn(this.#responses, key) ? this.#responses[key] : undefined) ?? this.#default ?? `mock answer to: ${key}`;
  }

  protected async generate(request: GenerationRequest, onChunk: ((chunk: string) => void) | undefined): Promise<EngineResult> {
    this.calls.push(request.kind === 'prompt' ? { method: 'call', prompt: request.prompt } : { method: 'chat', messages: request.messages });
    let answer = this.#answer(request);
    let finishReason: EngineResult['finishReason'] = 'stop';
    for (const stop of request.sampling.stop ?? []) {
      const at = answer.indexOf(stop);
      if (at >= 0) answer = answer.slice(0, at);
    }
    // Words with their leading whitespace: concatenated, they give back the text exactly.
    let words: string[] = answer.match(/\s*\S+/g) ?? [];
    if (request.sampling.maxTokens >= 0 && words.length > request.sampling.maxTokens) {
      words = words.slice(0, request.sampling.maxTokens);
      finishReason = 'length';
    }
    let content = '';
    for (const word of words) {
      if (request.signal.aborted) {
        finishReason = 'abort';
        break;
      }
      content += word;
      onChunk?.(word);
      if (onChunk) await new Promise((resolve) => setImmediate(resolve));
    }
    const prompt = request.kind === 'prompt' ? request.prompt : request.messages.map((m) => m.content).join(' ');
    return { content, promptTokens: (prompt.match(/\S+/g) ?? []).length, completionTokens: (content.match(/\S+/g) ?? []).length, finishReason };
  }

  /** The share of the query's words that the document contains: a stand-in score a test can predict. */
  protected override async rankDocuments(query: string, documents: string[]): Promise<number[]> {
    this.calls.push({ method: 'rerank', texts: [query, ...documents] });
    const words = (text: string) => new Set(text.toLowerCase().split(/\W+/).filter(Boolean));
    const asked = words(query);
    return documents.map((d) => {
      const has = words(d);
      return asked.size === 0 ? 0 : [...asked].filter((w) => has.has(w)).length / asked.size;
    });
  }

  protected async embedTexts(texts: string[]): Promise<Float32Array[]> {
    this.calls.push({ method: 'embed', texts });
    return texts.map((text) => {
      const vector = new Float32Array(this.#dimensions);
      for (let i = 0; i < vector.length; i += 8) {
        const digest = createHash('sha256').update(`${i}:${text}`).digest();
        for (let k = 0; k < 8 && i + k < vector.length; k++) vector[i + k] = digest.readInt32LE(k * 4) / 2 ** 31;
      }
      const norm = Math.sqrt(vector.reduce((sum, x) => sum + x * x, 0)) || 1;
      return vector.map((x) => x / norm);
    });
  }

  async healthCheck(): Promise<HealthStatus> {
    return { ok: !this.disposed, backend: this.kind, model: this.model, detail: this.disposed ? 'disposed' : 'mock backend', latencyMs: 0 };
  }

  protected async release(): Promise<void> {}
}
