import { LlamaError, toLlamaError } from '../errors';
import type { LlamaModel } from '../model';
import type { ChatMessage, GenerationResult } from '../types';
import { optionalInt, optionalNumber, requireObject, requireString } from '../validate';
import { GENERATION_DEFAULTS, rejectUnknownKeys, SAMPLING_FIELDS, SAMPLING_KEYS, type SamplingOptions } from './request';

// Chat sessions: a conversation kept in a sequence of its own (reserved, so other requests never take its cells).
// Each turn renders the kept conversation with the chat template and generates in that sequence; the scheduler
// reuses the longest common prefix of its cached tokens (the last prompt and the reply generated after it), so a
// turn decodes only the new message and the template's markup around it (as llama-server with cache_prompt: the
// rendered prompt is tokenized again and compared with the cache). Everything here runs on the JS thread of the
// model; turns of one session run one after the other.

/** @internal The key of LlamaModel's internal interface for sessions. */
export const SEQUENCE_HOST = Symbol('tea-llama.sequenceHost');

/** @internal What a session needs of its model besides its public API. */
export interface SequenceHost {
  contextSize: number;
  reserve(): Promise<number>;
  release(sequence: number): void;
  save(sequence: number, meta: string): Promise<{ tokens: number; data: Buffer }>;
  load(data: Buffer, sequence: number): Promise<{ sequence: number; tokens: number; meta: string }>;
  writeFile(path: string, data: Buffer): Promise<void>;
}

/** Options of LlamaModel.createChatSession(). */
export interface ChatSessionOptions {
  /** The system prompt: the first message of every turn, kept through every context shift. Default: none. */
  systemPrompt?: string;
  /** A Jinja template string or a llama.cpp built-in template name, as chat(). Default: the model's own. */
  template?: string;
  /**
   * When a turn no longer fits (the rendered conversation plus the turn's maxTokens exceeds the context), the
   * oldest turns (a user message and its reply) are dropped until the conversation uses at most this fraction of
   * the room (contextSize - maxTokens). 1 drops only what must go (the most history kept, but the history after
   * the system prompt is decoded again at every turn once the context is full); smaller values drop more at once
   * and decode again less often, as llama-server's context shift discards half. Default 0.5.
   */
  shiftTarget?: number;
}

/** Options of one turn: sampling and limits (as complete()), abort and streaming. */
export interface ChatTurnOptions extends SamplingOptions {
  signal?: AbortSignal;
  onChunk?: (text: string) => void;
}

/** One turn's result: the generation's, and the turns dropped before it. */
export interface ChatTurnResult extends GenerationResult {
  /** Turns dropped to make room for this one (0 while the conversation fits). */
  droppedTurns: number;
}

const SESSION_KEYS = ['systemPrompt', 'template', 'shiftTarget'] as const;
const TURN_KEYS = [...SAMPLING_KEYS, 'signal', 'onChunk'] as const;
const META_KIND = 'tea-llama.chat-session';
const META_VERSION = 1;

interface SessionMeta {
  kind: typeof META_KIND;
  version: number;
  systemPrompt: string | null;
  template: string | null;
  turns: ChatMessage[];
  droppedTurns: number;
}

function checkMessage(value: unknown): value is ChatMessage {
  return typeof value === 'object' && value !== null && typeof (value as ChatMessage).role === 'string' && typeof (value as ChatMessage).content === 'string';
}

/** The metadata of a session's state file; anything else (the file is untrusted) is ERR_INVALID_STATE. */
function parseMeta(text: string): SessionMeta {
  let meta: unknown;
  try {
    meta = JSON.parse(text);
  } catch {
    throw new LlamaError('ERR_INVALID_STATE', 'invalid state file: it holds no chat session (saved with saveState()? use loadState())');
  }
  const m = meta as Partial<SessionMeta>;
  if (typeof m !== 'object' || m === null || m.kind !== META_KIND) throw new LlamaError('ERR_INVALID_STATE', 'invalid state file: it holds no chat session');
  if (m.version !== META_VERSION) throw new LlamaError('ERR_INVALID_STATE', `invalid state file: chat session version ${String(m.version)} is not ${META_VERSION}`);
  const ok =
    (m.systemPrompt === null || typeof m.systemPrompt === 'string') &&
    (m.template === null || typeof m.template === 'string') &&
    Array.isArray(m.turns) &&
    m.turns.length % 2 === 0 &&
    m.turns.every((t, i) => checkMessage(t) && t.role === (i % 2 === 0 ? 'user' : 'assistant')) &&
    Number.isSafeInteger(m.droppedTurns) &&
    m.droppedTurns! >= 0;
  if (!ok) throw new LlamaError('ERR_INVALID_STATE', 'invalid state file: its chat session is malformed');
  return m as SessionMeta;
}

/**
 * A conversation with a local model, kept in a sequence of its own. Create with `model.createChatSession()` or
 * restore with `model.loadChatSession()`; end with dispose(), which frees the sequence for other requests.
 *
 * Context full: when the next turn would not fit, the oldest turns are dropped (never the system prompt, never
 * the new message) down to `shiftTarget` of the room; a new message that cannot fit even alone is
 * ERR_CONTEXT_OVERFLOW. `messages` is always exactly what the model sees at the next turn (plus the new message).
 */
export class ChatSession implements AsyncDisposable {
  readonly #model: LlamaModel;
  readonly #host: SequenceHost;
  readonly #systemPrompt: string | null;
  readonly #template: string | null;
  readonly #shiftTarget: number;
  readonly #sequence: number;
  #turns: ChatMessage[];
  #dropped: number;
  #queue: Promise<unknown> = Promise.resolve();
  #disposed = false;

  private constructor(model: LlamaModel, host: SequenceHost, sequence: number, options: ResolvedSession, turns: ChatMessage[], dropped: number) {
    this.#model = model;
    this.#host = host;
    this.#sequence = sequence;
    this.#systemPrompt = options.systemPrompt;
    this.#template = options.template;
    this.#shiftTarget = options.shiftTarget;
    this.#turns = turns;
    this.#dropped = dropped;
  }

  /** @internal Use model.createChatSession(). */
  static async create(model: LlamaModel, options: ChatSessionOptions): Promise<ChatSession> {
    const resolved = resolveSession(options, SESSION_KEYS, 'createChatSession() options');
    const host = model[SEQUENCE_HOST]();
    return new ChatSession(model, host, await host.reserve(), resolved, [], 0);
  }

  /** @internal Use model.loadChatSession(). */
  static async restore(model: LlamaModel, data: Buffer, options: Omit<ChatSessionOptions, 'systemPrompt'>): Promise<ChatSession> {
    const resolved = resolveSession(options, SESSION_KEYS.filter((k) => k !== 'systemPrompt'), 'loadChatSession() options');
    const host = model[SEQUENCE_HOST]();
    const sequence = await host.reserve();
    try {
      const { meta } = await host.load(data, sequence);
      const m = parseMeta(meta);
      return new ChatSession(model, host, sequence, { ...resolved, systemPrompt: m.systemPrompt, template: options.template !== undefined ? resolved.template : m.template }, m.turns, m.droppedTurns);
    } catch (error) {
      host.release(sequence);
      throw toLlamaError(error);
    }
  }

  /** The sequence this session holds. */
  get sequence(): number {
    return this.#sequence;
  }

  /** What the model sees: the system prompt (if any) and the kept turns, oldest first. */
  get messages(): ChatMessage[] {
    return [...this.#system(), ...this.#turns.map((m) => ({ ...m }))];
  }

  /** Turns dropped so far to make room. */
  get droppedTurns(): number {
    return this.#dropped;
  }

  /** Sends a user message and generates the reply, in the session's sequence. */
  send(content: string, options: ChatTurnOptions = {}): Promise<ChatTurnResult> {
    const turn = this.#queue.then(() => this.#send(content, options));
    this.#queue = turn.catch(() => undefined);
    return turn;
  }

  /**
   * Saves the conversation and its KV state to `path` (after the turn that runs, if any); model.loadChatSession()
   * in a later process with the same model file continues it without decoding it again.
   */
  save(path: string): Promise<{ tokens: number; bytes: number }> {
    const saved = this.#queue.then(async () => {
      this.#checkOpen();
      const meta: SessionMeta = { kind: META_KIND, version: META_VERSION, systemPrompt: this.#systemPrompt, template: this.#template, turns: this.#turns, droppedTurns: this.#dropped };
      const { tokens, data } = await this.#host.save(this.#sequence, JSON.stringify(meta));
      await this.#host.writeFile(requireString(path, 'path'), data);
      return { tokens, bytes: data.length };
    });
    this.#queue = saved.catch(() => undefined);
    return saved;
  }

  /** Frees the session's sequence (its cells stay as a cached prefix for other requests). Idempotent. */
  async dispose(): Promise<void> {
    if (this.#disposed) return;
    this.#disposed = true;
    await this.#queue;
    this.#host.release(this.#sequence);
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.dispose();
  }

  #checkOpen(): void {
    if (this.#disposed) throw new LlamaError('ERR_DISPOSED', 'the chat session has been disposed');
  }

  #system(): ChatMessage[] {
    return this.#systemPrompt === null ? [] : [{ role: 'system', content: this.#systemPrompt }];
  }

  async #render(turns: ChatMessage[], signal: AbortSignal | undefined): Promise<{ prompt: string; tokens: number }> {
    const prompt = await this.#model.applyChatTemplate([...this.#system(), ...turns], { ...(this.#template !== null ? { template: this.#template } : {}), ...(signal ? { signal } : {}) });
    return { prompt, tokens: (await this.#model.tokenizeAsync(prompt, signal ? { signal } : {})).length };
  }

  async #send(content: string, options: ChatTurnOptions): Promise<ChatTurnResult> {
    this.#checkOpen();
    requireString(content, 'content');
    const opts = requireObject(options, 'options') as ChatTurnOptions;
    rejectUnknownKeys(opts, TURN_KEYS, 'ChatSession.send() options');
    // A reply until the context is full (-1) leaves no room to plan with: a session's reply has a bound.
    const maxTokens = optionalInt(opts.maxTokens, 'maxTokens', 0, SAMPLING_FIELDS.maxTokens.max) ?? GENERATION_DEFAULTS.maxTokens;
    const room = this.#host.contextSize - maxTokens;
    const user: ChatMessage = { role: 'user', content };
    let kept = this.#turns;
    let rendered = await this.#render([...kept, user], opts.signal);
    let dropped = 0;
    if (rendered.tokens > room) {
      // Drop whole turns from the oldest until the conversation is down to shiftTarget of the room.
      const target = Math.max(1, Math.floor(room * this.#shiftTarget));
      while (kept.length > 0 && rendered.tokens > target) {
        kept = kept.slice(2);
        dropped++;
        rendered = await this.#render([...kept, user], opts.signal);
      }
      if (rendered.tokens > room) {
        throw new LlamaError('ERR_CONTEXT_OVERFLOW', `the system prompt and the new message take ${rendered.tokens} tokens, and the reply ${maxTokens}: more than the context holds (${this.#host.contextSize})`);
      }
    }
    const result = await this.#model.complete(rendered.prompt, { ...opts, maxTokens, sequence: this.#sequence });
    this.#turns = [...kept, user, { role: 'assistant', content: result.text }];
    this.#dropped += dropped;
    return { ...result, droppedTurns: dropped };
  }
}

interface ResolvedSession {
  systemPrompt: string | null;
  template: string | null;
  shiftTarget: number;
}

function resolveSession(options: unknown, keys: readonly string[], where: string): ResolvedSession {
  const opts = requireObject(options, 'options');
  rejectUnknownKeys(opts, keys, where);
  return {
    systemPrompt: opts.systemPrompt === undefined ? null : requireString(opts.systemPrompt, 'systemPrompt'),
    template: opts.template === undefined ? null : requireString(opts.template, 'template'),
    shiftTarget: optionalNumber(opts.shiftTarget, 'shiftTarget', 0.05, 1) ?? 0.5,
  };
}
