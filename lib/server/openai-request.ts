// OpenAI's HTTP request bodies → the one request model (lib/engine/request.ts). Every snake_case field maps to its
// camelCase option here and nowhere else: OpenAI's fields, and llama-server's extensions under llama-server's names
// (the request model's SAMPLING_FIELDS, n_predict, n_probs, n_keep, n_discard, id_slot, lora). Unknown fields are
// rejected with 400, as OpenAI's API does ("Unrecognized request argument supplied"); fields OpenAI has but tea-llama
// does not implement are accepted only at the value that changes nothing (n: 1, echo: false, llama-server's
// cache_prompt, ...), anything else is a 400 naming the
// field.
import { MAX_TOP_LOGPROBS, resolveGeneration, SAMPLING_FIELDS as REQUEST_FIELDS } from '../engine/request';
import { LlamaError } from '../errors';
import type { ToolCall } from '../engine/structured';
import type { ChatMessage } from '../types';
import type { LlmGenerateOptions } from '../backends/llm-backend';
import type { LoraRequest } from '../lora';

/** An error the server answers with `{ error: { message, type, param, code } }` and `status`. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly type: string,
    readonly param: string | null = null,
    readonly code: string | null = null,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = 'HttpError';
  }
}

export function badRequest(message: string, param: string | null = null, code: string | null = 'invalid_request'): HttpError {
  return new HttpError(400, message, 'invalid_request_error', param, code);
}

/**
 * HTTP field → option of the request model: every sampling option under its wire name (llama-server's, from the
 * request model's SAMPLING_FIELDS) and OpenAI's `max_completion_tokens`. `logprobs` and `top_logprobs` differ by
 * endpoint (logprobOptions), so they are not here.
 */
const SAMPLING_FIELDS: Readonly<Record<string, keyof LlmGenerateOptions>> = Object.freeze({
  ...Object.fromEntries(
    Object.entries(REQUEST_FIELDS)
      .filter(([key]) => key !== 'logprobs' && key !== 'topLogprobs')
      .map(([key, field]) => [field.wire, key as keyof LlmGenerateOptions]),
  ),
  max_completion_tokens: 'maxTokens',
  // llama-server's own name for it.
  n_predict: 'maxTokens',
});

/** llama-server's per-request sequence fields: `n_keep` and `n_discard` (for a context shift), `id_slot`, `lora`. */
const SEQUENCE_FIELDS = ['n_keep', 'n_discard', 'id_slot', 'lora'];

/** Every option name of the request model that a message may carry → its HTTP field. */
const CAMEL_TO_SNAKE: Record<string, string> = {
  ...Object.fromEntries(Object.entries(REQUEST_FIELDS).map(([key, field]) => [key, field.wire])),
  nKeep: 'n_keep',
  nDiscard: 'n_discard',
  sequence: 'id_slot',
  lora: 'lora',
};

/**
 * OpenAI's structured-output and tool fields (and llama-server's `grammar`, `json_schema`, `reasoning_format` and
 * `chat_template_kwargs`, which ApiLlmBackend sends) → the request model's options, whose own validation (lib/engine/structured.ts)
 * checks their values. The OpenAI shapes are the request model's shapes, so values pass as they are.
 */
const STRUCTURED_FIELDS = {
  // llama-server's own: a GBNF grammar, or a JSON Schema as such (ApiLlmBackend sends these on a completion).
  grammar: 'grammar',
  json_schema: 'jsonSchema',
  response_format: 'responseFormat',
  tools: 'tools',
  tool_choice: 'toolChoice',
  parallel_tool_calls: 'parallelToolCalls',
  reasoning_format: 'reasoningFormat',
  chat_template_kwargs: 'chatTemplateKwargs',
} as const satisfies Record<string, keyof LlmGenerateOptions>;

/** What only a conversation can use: on /v1/completions these are unknown fields, as on OpenAI's. */
const CHAT_ONLY = ['tools', 'tool_choice', 'parallel_tool_calls', 'reasoning_format', 'chat_template_kwargs'];

for (const [snake, camel] of Object.entries(STRUCTURED_FIELDS)) CAMEL_TO_SNAKE[camel] = snake;

/** OpenAI's deprecated function-calling fields: `tools` and `tool_choice` replace them. */
const NOT_YET = ['functions', 'function_call'];

/** Fields accepted at a value that changes nothing, and ignored ones (`user`, `metadata`, `store`: bookkeeping). */
const NEUTRAL: Record<string, (v: unknown) => boolean> = {
  n: (v) => v === 1,
  best_of: (v) => v === 1,
  echo: (v) => v === false,
  suffix: (v) => v === '',
  user: (v) => typeof v === 'string',
  metadata: () => true,
  store: (v) => v === false,
  service_tier: (v) => v === 'auto' || v === 'default',
  // llama-server's prompt cache switch: the engine always reuses a sequence's cached prefix (the text is the same
  // either way), so both values are accepted and neither changes what is done.
  cache_prompt: (v) => typeof v === 'boolean',
};

export interface ParsedGeneration {
  /** `prompt` for /v1/completions, `messages` for /v1/chat/completions. */
  input: { kind: 'prompt'; prompt: string } | { kind: 'chat'; messages: ChatMessage[] };
  options: LlmGenerateOptions;
  stream: boolean;
  includeUsage: boolean;
}

function checkFields(body: Record<string, unknown>, known: readonly string[]): void {
  for (const key of Object.keys(body)) {
    const value = body[key];
    if (value === null || value === undefined) continue; // OpenAI's clients send null for "unset"
    if (NOT_YET.includes(key)) {
      throw badRequest(`'${key}' is not supported by this server: use 'tools' and 'tool_choice'`, key, 'unsupported_parameter');
    }
    if (Object.hasOwn(NEUTRAL, key)) {
      if (!NEUTRAL[key]!(value)) throw badRequest(`'${key}' = ${JSON.stringify(value)} is not supported by this server`, key, 'unsupported_parameter');
      continue;
    }
    if (!known.includes(key)) throw badRequest(`Unrecognized request argument supplied: ${key}`, key, 'unknown_parameter');
  }
}

function contentText(content: unknown, param: string): string {
  if (typeof content === 'string') return content;
  if (content === null || content === undefined) return '';
  if (Array.isArray(content)) {
    return content
      .map((part, i) => {
        const p = part as { type?: unknown; text?: unknown };
        if (typeof p !== 'object' || p === null || p.type !== 'text' || typeof p.text !== 'string') {
          throw badRequest(`${param}[${i}]: only text parts ({ type: 'text', text }) are supported`, `${param}[${i}]`);
        }
        return p.text;
      })
      .join('');
  }
  throw badRequest(`${param} must be a string or a list of text parts`, param);
}

/** An assistant message's `tool_calls` (OpenAI's shape) as the request model's `toolCalls`. */
function toolCalls(value: unknown, param: string): ToolCall[] {
  if (!Array.isArray(value)) throw badRequest(`${param} must be a list of { id, type: 'function', function: { name, arguments } }`, param);
  return value.map((c: unknown, i) => {
    const p = `${param}[${i}]`;
    const call = c as { id?: unknown; type?: unknown; function?: { name?: unknown; arguments?: unknown } };
    if (typeof call !== 'object' || call === null || typeof call.id !== 'string') throw badRequest(`${p}.id must be a string`, `${p}.id`);
    if (call.type !== undefined && call.type !== 'function') throw badRequest(`${p}.type must be 'function'`, `${p}.type`);
    const fn = call.function;
    if (typeof fn !== 'object' || fn === null || typeof fn.name !== 'string' || typeof fn.arguments !== 'string') {
      throw badRequest(`${p}.function must be { name, arguments } with arguments a JSON text`, `${p}.function`);
    }
    return { id: call.id, type: 'function', function: { name: fn.name, arguments: fn.arguments } };
  });
}

function messages(value: unknown): ChatMessage[] {
  if (!Array.isArray(value) || value.length === 0) throw badRequest("'messages' must be a non-empty list of { role, content }", 'messages');
  return value.map((m, i) => {
    const param = `messages[${i}]`;
    if (typeof m !== 'object' || m === null || Array.isArray(m)) throw badRequest(`${param} must be an object`, param);
    const msg = m as Record<string, unknown>;
    if (typeof msg.role !== 'string') throw badRequest(`${param}.role must be a string`, `${param}.role`);
    if (!['system', 'developer', 'user', 'assistant', 'tool'].includes(msg.role)) throw badRequest(`${param}.role must be system, developer, user, assistant or tool`, `${param}.role`);
    const allowed = msg.role === 'tool' ? ['role', 'content', 'tool_call_id'] : msg.role === 'assistant' ? ['role', 'content', 'name', 'refusal', 'tool_calls', 'reasoning_content'] : ['role', 'content', 'name'];
    for (const key of Object.keys(msg)) {
      if (msg[key] === null && key !== 'content') continue; // OpenAI's clients send null for "unset"
      if (!allowed.includes(key)) throw badRequest(`Unrecognized argument supplied: ${param}.${key}`, `${param}.${key}`, 'unknown_parameter');
    }
    const content = contentText(msg.content, `${param}.content`);
    if (msg.role === 'tool') {
      if (typeof msg.tool_call_id !== 'string' || msg.tool_call_id === '') throw badRequest(`${param}.tool_call_id must be the id of the call this message answers`, `${param}.tool_call_id`);
      return { role: 'tool', content, toolCallId: msg.tool_call_id };
    }
    if (msg.role === 'assistant') {
      const out: ChatMessage = { role: 'assistant', content };
      if (msg.tool_calls != null) out.toolCalls = toolCalls(msg.tool_calls, `${param}.tool_calls`);
      if (msg.reasoning_content != null) {
        if (typeof msg.reasoning_content !== 'string') throw badRequest(`${param}.reasoning_content must be a string`, `${param}.reasoning_content`);
        out.reasoningContent = msg.reasoning_content;
      }
      return out;
    }
    return { role: msg.role === 'developer' ? 'system' : msg.role, content };
  });
}

/**
 * Checks a /v1/completions (`kind: 'prompt'`) or /v1/chat/completions body and returns the backend call. Values
 * are checked by the request model itself (resolveGeneration) before anything runs, so a bad one is a 400 naming
 * the HTTP field before any header of a stream is sent.
 */
export function parseGeneration(body: Record<string, unknown>, kind: 'prompt' | 'chat'): ParsedGeneration {
  const own = kind === 'prompt' ? ['model', 'prompt', 'stream', 'stream_options'] : ['model', 'messages', 'stream', 'stream_options'];
  const structured = Object.keys(STRUCTURED_FIELDS).filter((f) => kind === 'chat' || !CHAT_ONLY.includes(f));
  const logprobFields = kind === 'chat' ? ['logprobs', 'top_logprobs', 'n_probs'] : ['logprobs', 'n_probs'];
  checkFields(body, [...own, ...Object.keys(SAMPLING_FIELDS), ...logprobFields, ...SEQUENCE_FIELDS, ...structured]);
  if (body.model != null && typeof body.model !== 'string') throw badRequest("'model' must be a string", 'model');
  let input: ParsedGeneration['input'];
  if (kind === 'prompt') {
    let prompt = body.prompt;
    // A list of one prompt is the same request; several would need n > 1 choices.
    if (Array.isArray(prompt) && prompt.length === 1 && typeof prompt[0] === 'string') prompt = prompt[0];
    if (typeof prompt !== 'string') throw badRequest("'prompt' must be a string (token lists and several prompts are not supported)", 'prompt');
    input = { kind: 'prompt', prompt };
  } else {
    input = { kind: 'chat', messages: messages(body.messages) };
  }
  if (body.stream != null && typeof body.stream !== 'boolean') throw badRequest("'stream' must be a boolean", 'stream');
  const stream = body.stream === true;
  let includeUsage = false;
  if (body.stream_options != null) {
    const so = body.stream_options as Record<string, unknown>;
    if (!stream) throw badRequest("'stream_options' is only allowed when 'stream' is true", 'stream_options');
    if (typeof so !== 'object' || Array.isArray(so)) throw badRequest("'stream_options' must be an object", 'stream_options');
    for (const key of Object.keys(so)) {
      if (key !== 'include_usage' && key !== 'include_obfuscation') throw badRequest(`Unrecognized argument supplied: stream_options.${key}`, `stream_options.${key}`);
    }
    if (so.include_usage != null && typeof so.include_usage !== 'boolean') throw badRequest("'stream_options.include_usage' must be a boolean", 'stream_options.include_usage');
    includeUsage = so.include_usage === true;
  }
  const options: Record<string, unknown> = {};
  for (const [snake, camel] of Object.entries(SAMPLING_FIELDS)) {
    const value = body[snake];
    if (value === null || value === undefined) continue;
    if (options[camel] !== undefined) throw badRequest(`give only one of 'max_tokens', 'max_completion_tokens' and 'n_predict'`, snake);
    // llama-server's -1: a random seed, as leaving it out.
    if (snake === 'seed' && value === -1) continue;
    options[camel] = value;
  }
  Object.assign(options, logprobOptions(body, kind), sequenceOptions(body));
  for (const snake of structured) {
    const value = body[snake];
    if (value === null || value === undefined) continue;
    // 'none' without tools asks for nothing (some clients always send it); any other choice needs tools (a 400).
    if (snake === 'tool_choice' && value === 'none' && body.tools == null) continue;
    options[STRUCTURED_FIELDS[snake as keyof typeof STRUCTURED_FIELDS]] = value;
  }
  // OpenAI generates until the end of text when max_tokens is absent; so does the server (until the context is full).
  options.maxTokens ??= -1;
  try {
    resolveGeneration(options, 'the request');
  } catch (error) {
    throw requestError(error);
  }
  return { input, options: options as LlmGenerateOptions, stream, includeUsage };
}

/**
 * Log-probabilities as each endpoint asks for them: chat as OpenAI's chat (`logprobs: true`, `top_logprobs: N`),
 * completions as OpenAI's completions and llama-server's `n_probs` alias (`logprobs: N`, the alternatives per token;
 * 0: none asked for), and llama-server's `n_probs` itself on either. Chat's `logprobs: true` alone gives no
 * alternatives, as OpenAI's (llama-server gives 20).
 */
function logprobOptions(body: Record<string, unknown>, kind: 'prompt' | 'chat'): Record<string, unknown> {
  const { logprobs, top_logprobs: top, n_probs: nProbs } = body;
  if (nProbs != null) {
    // llama-server's own field on both endpoints: N > 0 alternatives per token, with the tokens' own logprobs.
    if (logprobs != null || top != null) throw badRequest(`give either 'n_probs' or ${kind === 'chat' ? "'logprobs' and 'top_logprobs'" : "'logprobs'"}`, 'n_probs');
    return alternativesCount(nProbs, 'n_probs');
  }
  if (kind === 'chat') return { ...(logprobs != null ? { logprobs } : {}), ...(top != null ? { topLogprobs: top } : {}) };
  if (logprobs === false) return {};
  return alternativesCount(logprobs, 'logprobs');
}

/** `logprobs: N` on completions and llama-server's `n_probs: N`: N alternatives per token (0: nothing asked for). */
function alternativesCount(value: unknown, field: string): Record<string, unknown> {
  if (value == null || value === 0) return {};
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > MAX_TOP_LOGPROBS) {
    throw badRequest(`'${field}' is the number of alternatives per token, an integer from 0 to ${MAX_TOP_LOGPROBS} (got ${JSON.stringify(value)})`, field);
  }
  return { logprobs: true, topLogprobs: value };
}

/** llama-server's per-request sequence fields as the request model's options (which check the numbers). */
function sequenceOptions(body: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (body.n_keep != null) out.nKeep = body.n_keep;
  if (body.n_discard != null) out.nDiscard = body.n_discard;
  // -1: any free sequence, as llama-server's default.
  if (body.id_slot != null && body.id_slot !== -1) out.sequence = body.id_slot;
  if (body.lora != null) {
    const lora = loraRequest(body.lora);
    if (lora) out.lora = lora;
  }
  return out;
}

/**
 * llama-server's per-request `lora: [{ id, scale }]`: the served model's adapters by position, exactly these applied
 * (the others off). `[]` is the server's default set, as llama-server reads it. Both fields are required (llama-server
 * would take a missing scale as 0, silently). The ids and scales are checked by the request model and the model.
 */
function loraRequest(value: unknown): LoraRequest[] | undefined {
  if (!Array.isArray(value)) throw badRequest("'lora' must be a list of { id, scale } (adapters by their position in the served model's)", 'lora');
  if (value.length === 0) return undefined;
  const seen = new Set<unknown>();
  return value.map((entry: unknown, i) => {
    const param = `lora[${i}]`;
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) throw badRequest(`${param} must be an object { id, scale }`, param);
    const item = entry as Record<string, unknown>;
    for (const key of Object.keys(item)) {
      if (key !== 'id' && key !== 'scale') throw badRequest(`Unrecognized argument supplied: ${param}.${key}`, `${param}.${key}`, 'unknown_parameter');
    }
    if (typeof item.id !== 'number' || !Number.isInteger(item.id) || item.id < 0 || item.id > 2 ** 31 - 1) throw badRequest(`${param}.id must be an adapter id (an integer >= 0)`, `${param}.id`);
    if (typeof item.scale !== 'number') throw badRequest(`${param}.scale must be a number`, `${param}.scale`);
    if (seen.has(item.id)) throw badRequest(`'lora' lists adapter ${item.id} twice`, param);
    seen.add(item.id);
    return { adapter: item.id, scale: item.scale };
  });
}

const REQUEST_CODES: Record<string, string> = { ERR_INVALID_ARGUMENT: 'invalid_request', ERR_INVALID_SCHEMA: 'invalid_schema', ERR_INVALID_GRAMMAR: 'invalid_grammar' };

/** Any of our option names in a message (built once: the names are fixed). */
const OPTION_NAME = new RegExp(`\\b(${Object.keys(CAMEL_TO_SNAKE).join('|')})\\b`, 'g');

/**
 * A caller's mistake found by the request model (a bad value, a schema or grammar llama.cpp cannot use) as a 400
 * naming the HTTP field (`max_tokens`, not `maxTokens`).
 */
export function requestError(error: unknown): unknown {
  if (!(error instanceof LlamaError) || !Object.hasOwn(REQUEST_CODES, error.code)) return error;
  let param: string | null = null;
  const message = error.message.replace(OPTION_NAME, (name) => {
    param ??= CAMEL_TO_SNAKE[name] ?? name;
    return CAMEL_TO_SNAKE[name] ?? name;
  });
  return badRequest(message, param, REQUEST_CODES[error.code]);
}

export interface ParsedEmbeddings {
  texts: string[];
  base64: boolean;
}

/** Checks a /v1/embeddings body. */
export function parseEmbeddings(body: Record<string, unknown>): ParsedEmbeddings {
  checkFields(body, ['model', 'input', 'encoding_format', 'dimensions']);
  if (body.dimensions != null) throw badRequest("'dimensions' is not supported: the model's vectors have their own size", 'dimensions', 'unsupported_parameter');
  const input = body.input;
  const texts = typeof input === 'string' ? [input] : input;
  if (!Array.isArray(texts) || texts.length === 0 || !texts.every((t) => typeof t === 'string')) {
    throw badRequest("'input' must be a string or a non-empty list of strings (token lists are not supported)", 'input');
  }
  const format = body.encoding_format ?? 'float';
  if (format !== 'float' && format !== 'base64') throw badRequest("'encoding_format' must be 'float' or 'base64'", 'encoding_format');
  return { texts: texts as string[], base64: format === 'base64' };
}
