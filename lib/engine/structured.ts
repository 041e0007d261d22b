import { LlamaError } from '../errors';
import { optionalBool, requireString } from '../validate';

// Constrained output, tool calls and reasoning: the request fields (validated here, once, for every backend) and
// their OpenAI wire shapes. The local backend hands them to llama.cpp's common chat layer (common_chat_templates_apply,
// json_schema_to_grammar, common_chat_parse); the API backend sends them as llama-server and OpenAI take them.

/** A function the model may call (OpenAI's tool shape). */
export interface ToolDefinition {
  type: 'function';
  function: {
    name: string;
    description?: string;
    /** JSON Schema of the arguments object. Default: no arguments. */
    parameters?: object;
  };
}

/** 'auto': the model decides; 'none': no call; 'required': at least one call; a name: that function. */
export type ToolChoice = 'auto' | 'none' | 'required' | { type: 'function'; function: { name: string } };

/** OpenAI's `response_format`. */
export type ResponseFormat =
  | { type: 'text' }
  | { type: 'json_object'; schema?: object }
  | { type: 'json_schema'; json_schema: { name: string; schema?: object; strict?: boolean } };

/** One tool call of a result; `arguments` is a JSON text, as OpenAI sends it. */
export interface ToolCall {
  id: string;
  type: 'function';
  function: { name: string; arguments: string };
}

/** A piece of a streamed tool call, in OpenAI's chunk-delta shape. */
export interface ToolCallDelta {
  index: number;
  id?: string;
  type?: 'function';
  function: { name?: string; arguments?: string };
}

/** What one streamed step added, in OpenAI's chunk-delta shape (built from common_chat_parse of the partial output). */
export interface GenerationDelta {
  content?: string;
  reasoningContent?: string;
  toolCalls?: ToolCallDelta[];
}

/** `'none'`: reasoning stays in the content; `'auto'` / `'deepseek'`: llama.cpp's parsers move it to `reasoningContent`. */
export type ReasoningFormat = 'none' | 'auto' | 'deepseek';

/** Constrained output, tools and reasoning of one request. */
export interface StructuredOptions {
  /** A GBNF grammar the output must match (llama.cpp's grammar format). */
  grammar?: string;
  /** A JSON Schema the output must match; the result's `parsed` holds the JSON value. */
  jsonSchema?: object;
  /** OpenAI's form of `jsonSchema`: `json_object` (any object, or `schema`) and `json_schema` set `parsed`. */
  responseFormat?: ResponseFormat;
  /** Functions the model may call (chat only): rendered by the model's template, parsed into `toolCalls`. */
  tools?: ToolDefinition[];
  /** Default 'auto'. */
  toolChoice?: ToolChoice;
  /** Allow several calls in one answer. Default: what the template supports (llama-server's default). */
  parallelToolCalls?: boolean;
  /** How reasoning ("thinking") text is separated (chat only). Default 'none': left in the content. */
  reasoningFormat?: ReasoningFormat;
  /** Let a thinking model think (its template's `enable_thinking`). Default true. */
  enableThinking?: boolean;
  /** Extra variables for the chat template (llama-server's `chat_template_kwargs`). */
  chatTemplateKwargs?: Record<string, unknown>;
  /** Receives each streamed step as content, reasoning and tool-call deltas (chat with tools or reasoning). */
  onDelta?: (delta: GenerationDelta) => void;
}

export const STRUCTURED_KEYS = [
  'grammar', 'jsonSchema', 'responseFormat', 'tools', 'toolChoice', 'parallelToolCalls', 'reasoningFormat', 'enableThinking',
  'chatTemplateKwargs', 'onDelta',
] as const satisfies readonly (keyof StructuredOptions)[];

/** The structured part of a request after validation. */
export interface ResolvedStructured {
  grammar: string | undefined;
  /** From `jsonSchema` or `responseFormat` (an empty object for `json_object` without a schema). */
  jsonSchema: object | undefined;
  /** The caller's responseFormat, as given (the API backend sends it as is). */
  responseFormat: ResponseFormat | undefined;
  /** JSON was asked for: the result gets `parsed`. */
  json: boolean;
  tools: ToolDefinition[] | undefined;
  toolChoice: 'auto' | 'none' | 'required' | undefined;
  /** A named tool choice: only that function, and a call is required. */
  toolName: string | undefined;
  parallelToolCalls: boolean | undefined;
  reasoningFormat: ReasoningFormat | undefined;
  enableThinking: boolean | undefined;
  chatTemplateKwargs: Record<string, unknown> | undefined;
  onDelta: ((delta: GenerationDelta) => void) | undefined;
}

function invalid(message: string): never {
  throw new LlamaError('ERR_INVALID_ARGUMENT', message);
}

function plainObject(value: unknown, name: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) invalid(`${name} must be an object`);
  return value as Record<string, unknown>;
}

/**
 * Deepest nesting accepted in a schema (objects and arrays inside each other) and in a GBNF grammar (parentheses):
 * llama.cpp's schema converter and grammar parser recurse once per level on the scheduler thread, whose stack a
 * hostile depth would overflow. Real schemas nest a few levels, generated grammars fewer.
 */
export const MAX_SCHEMA_DEPTH = 128;
export const MAX_GRAMMAR_DEPTH = 512;
/**
 * Largest grammar, in bytes of GBNF (given, or made by llama.cpp of a schema or tools; binding/core/sampler.cpp
 * holds the same bound): each sampling step costs time in proportion to the alternatives a grammar keeps open
 * (10,000 alternatives of a 100 KB grammar: 1.2 s for 8 tokens on stories260K; 30,000: 15 s).
 */
export const MAX_GRAMMAR_BYTES = 128 * 1024;

function jsonDepth(value: unknown, name: string): void {
  // Iterative, so that the check itself cannot overflow.
  const stack: [unknown, number][] = [[value, 1]];
  let nodes = 0;
  while (stack.length > 0) {
    if (++nodes > 1_000_000) throw new LlamaError('ERR_INVALID_SCHEMA', `${name} has more than 1,000,000 values`);
    const [v, depth] = stack.pop()!;
    if (typeof v !== 'object' || v === null) continue;
    if (depth > MAX_SCHEMA_DEPTH) throw new LlamaError('ERR_INVALID_SCHEMA', `${name} nests deeper than ${MAX_SCHEMA_DEPTH} levels`);
    for (const item of Object.values(v)) stack.push([item, depth + 1]);
  }
}

/** Nesting of parentheses in GBNF, outside literals, character classes and comments. */
export function grammarDepth(gbnf: string): number {
  let depth = 0;
  let deepest = 0;
  for (let i = 0; i < gbnf.length; i++) {
    const c = gbnf[i];
    if (c === '"' || c === '[') {
      const close = c === '"' ? '"' : ']';
      for (i++; i < gbnf.length && gbnf[i] !== close; i++) if (gbnf[i] === '\\') i++;
    } else if (c === '#') {
      while (i < gbnf.length && gbnf[i] !== '\n') i++;
    } else if (c === '(') {
      deepest = Math.max(deepest, ++depth);
    } else if (c === ')') {
      depth = Math.max(0, depth - 1);
    }
  }
  return deepest;
}

/** A JSON Schema given as an object that JSON can carry (no functions, cycles or BigInts); `{}` is any object, as in llama-server. */
function schemaObject(value: unknown, name: string): object {
  const schema = plainObject(value, name);
  jsonDepth(schema, name);
  try {
    JSON.stringify(schema);
  } catch (error) {
    throw new LlamaError('ERR_INVALID_SCHEMA', `${name} cannot be written as JSON: ${(error as Error).message}`);
  }
  return Object.keys(schema).length === 0 ? { type: 'object' } : schema;
}

function checkTools(value: unknown): ToolDefinition[] {
  if (!Array.isArray(value)) invalid('tools must be an array of { type: "function", function: { name, description?, parameters? } }');
  const names = new Set<string>();
  return value.map((tool: unknown, i) => {
    const t = plainObject(tool, `tools[${i}]`);
    if (t.type !== 'function') invalid(`tools[${i}].type must be 'function'`);
    const fn = plainObject(t.function, `tools[${i}].function`);
    const name = requireString(fn.name, `tools[${i}].function.name`);
    if (!/^[A-Za-z0-9_.-]{1,64}$/.test(name)) invalid(`tools[${i}].function.name must be 1 to 64 letters, digits, '_', '.' or '-' (got ${JSON.stringify(name)})`);
    if (names.has(name)) invalid(`tools[${i}].function.name '${name}' is used twice`);
    names.add(name);
    if (fn.description !== undefined) requireString(fn.description, `tools[${i}].function.description`);
    const out: ToolDefinition = { type: 'function', function: { name, ...(fn.description !== undefined ? { description: fn.description as string } : {}) } };
    if (fn.parameters !== undefined) out.function.parameters = schemaObject(fn.parameters, `tools[${i}].function.parameters`);
    return out;
  });
}

function checkResponseFormat(value: unknown): { format: ResponseFormat; schema: object | undefined; json: boolean } {
  const f = plainObject(value, 'responseFormat');
  switch (f.type) {
    case 'text':
      return { format: { type: 'text' }, schema: undefined, json: false };
    case 'json_object': {
      const schema = f.schema === undefined ? { type: 'object' } : schemaObject(f.schema, 'responseFormat.schema');
      return { format: { type: 'json_object', ...(f.schema !== undefined ? { schema } : {}) }, schema, json: true };
    }
    case 'json_schema': {
      const js = plainObject(f.json_schema, 'responseFormat.json_schema');
      const name = requireString(js.name, 'responseFormat.json_schema.name');
      const strict = optionalBool(js.strict, 'responseFormat.json_schema.strict');
      const schema = js.schema === undefined ? { type: 'object' } : schemaObject(js.schema, 'responseFormat.json_schema.schema');
      return { format: { type: 'json_schema', json_schema: { name, ...(js.schema !== undefined ? { schema } : {}), ...(strict !== undefined ? { strict } : {}) } }, schema, json: true };
    }
    default:
      return invalid(`responseFormat.type must be 'text', 'json_object' or 'json_schema' (got ${JSON.stringify(f.type)})`);
  }
}

/** Validates the structured options of a request (whose unknown keys the caller has already rejected). */
export function resolveStructured(options: Record<string, unknown>): ResolvedStructured {
  const grammar = options.grammar === undefined ? undefined : requireString(options.grammar, 'grammar');
  if (grammar !== undefined && grammar.trim() === '') invalid('grammar must not be empty');
  if (grammar !== undefined && Buffer.byteLength(grammar) > MAX_GRAMMAR_BYTES) {
    throw new LlamaError('ERR_INVALID_GRAMMAR', `grammar has ${Buffer.byteLength(grammar)} bytes, more than ${MAX_GRAMMAR_BYTES}`);
  }
  if (grammar !== undefined && grammarDepth(grammar) > MAX_GRAMMAR_DEPTH) {
    throw new LlamaError('ERR_INVALID_GRAMMAR', `grammar nests parentheses deeper than ${MAX_GRAMMAR_DEPTH} levels`);
  }
  let jsonSchema = options.jsonSchema === undefined ? undefined : schemaObject(options.jsonSchema, 'jsonSchema');
  let json = jsonSchema !== undefined;
  let responseFormat: ResponseFormat | undefined;
  if (options.responseFormat !== undefined) {
    if (jsonSchema !== undefined) invalid('give jsonSchema or responseFormat, not both');
    const checked = checkResponseFormat(options.responseFormat);
    responseFormat = checked.format;
    jsonSchema = checked.schema;
    json = checked.json;
  }
  if (grammar !== undefined && jsonSchema !== undefined) invalid('give grammar or a JSON schema (jsonSchema, responseFormat), not both');

  const tools = options.tools === undefined ? undefined : checkTools(options.tools);
  let toolChoice: ResolvedStructured['toolChoice'];
  let toolName: string | undefined;
  if (options.toolChoice !== undefined) {
    const c = options.toolChoice;
    if (c === 'auto' || c === 'none' || c === 'required') toolChoice = c;
    else if (typeof c === 'object' && c !== null && (c as { type?: unknown }).type === 'function') {
      toolName = requireString(plainObject((c as { function?: unknown }).function, 'toolChoice.function').name, 'toolChoice.function.name');
      if (!tools?.some((t) => t.function.name === toolName)) invalid(`toolChoice names '${toolName}', which is not in tools`);
      toolChoice = 'required';
    } else invalid(`toolChoice must be 'auto', 'none', 'required' or { type: 'function', function: { name } } (got ${JSON.stringify(c)})`);
    if (!tools) invalid('toolChoice needs tools');
  }
  const parallelToolCalls = optionalBool(options.parallelToolCalls, 'parallelToolCalls');
  if (tools && grammar !== undefined && toolChoice !== 'none') invalid('grammar cannot be combined with tools (as in llama-server): the tools make their own grammar');

  const reasoningFormat = options.reasoningFormat;
  if (reasoningFormat !== undefined && reasoningFormat !== 'none' && reasoningFormat !== 'auto' && reasoningFormat !== 'deepseek') {
    invalid(`reasoningFormat must be 'none', 'auto' or 'deepseek' (got ${JSON.stringify(reasoningFormat)})`);
  }
  const enableThinking = optionalBool(options.enableThinking, 'enableThinking');
  let chatTemplateKwargs: Record<string, unknown> | undefined;
  if (options.chatTemplateKwargs !== undefined) {
    chatTemplateKwargs = plainObject(options.chatTemplateKwargs, 'chatTemplateKwargs');
    try {
      JSON.stringify(chatTemplateKwargs);
    } catch (error) {
      invalid(`chatTemplateKwargs cannot be written as JSON: ${(error as Error).message}`);
    }
  }
  const onDelta = options.onDelta;
  if (onDelta !== undefined && typeof onDelta !== 'function') invalid('onDelta must be a function');
  return {
    grammar,
    jsonSchema,
    responseFormat,
    json,
    tools: toolName ? tools!.filter((t) => t.function.name === toolName) : tools,
    toolChoice,
    toolName,
    parallelToolCalls,
    reasoningFormat: reasoningFormat as ReasoningFormat | undefined,
    enableThinking,
    chatTemplateKwargs,
    onDelta: onDelta as ResolvedStructured['onDelta'],
  };
}

/** Whether a request needs the chat layer (a template's grammar, triggers and parser), not a plain prompt. */
export function needsChatLayer(s: ResolvedStructured): boolean {
  return s.tools !== undefined || s.reasoningFormat !== undefined || s.enableThinking !== undefined || s.chatTemplateKwargs !== undefined;
}

/** Rejects what only chat can do, for a plain completion. */
export function checkCompletionStructured(s: ResolvedStructured, where: string): void {
  const chatOnly = (['tools', 'toolChoice', 'parallelToolCalls', 'reasoningFormat', 'enableThinking', 'chatTemplateKwargs'] as const).find(
    (k) => s[k] !== undefined,
  );
  if (chatOnly) invalid(`${chatOnly} needs a conversation: use chat() instead of ${where}`);
}

/** The JSON value of a JSON answer, or undefined when the text is not (yet) JSON (a generation cut by maxTokens). */
export function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** A chat message of this library (camelCase) as OpenAI's JSON (snake_case), for templates and servers. */
export function toOpenAiMessage(m: { role: string; content: string | null; toolCalls?: ToolCall[]; toolCallId?: string; reasoningContent?: string }): Record<string, unknown> {
  return {
    role: m.role,
    content: m.content,
    ...(m.toolCalls !== undefined && m.toolCalls.length > 0 ? { tool_calls: m.toolCalls.map((c) => ({ id: c.id, type: 'function', function: { name: c.function.name, arguments: c.function.arguments } })) } : {}),
    ...(m.toolCallId !== undefined ? { tool_call_id: m.toolCallId } : {}),
    ...(m.reasoningContent !== undefined ? { reasoning_content: m.reasoningContent } : {}),
  };
}

/** Checks the tool-call fields of one message: `toolCalls` on an assistant message, `toolCallId` on a tool message. */
export function checkMessageExtras(m: Record<string, unknown>, i: number): void {
  if (m.role === 'tool') requireString(m.toolCallId, `messages[${i}].toolCallId`);
  else if (m.toolCallId !== undefined) invalid(`messages[${i}].toolCallId belongs to a { role: 'tool' } message`);
  if (m.toolCalls !== undefined) {
    if (m.role !== 'assistant') invalid(`messages[${i}].toolCalls belongs to an assistant message`);
    if (!Array.isArray(m.toolCalls)) invalid(`messages[${i}].toolCalls must be an array of tool calls`);
    m.toolCalls.forEach((c: unknown, j: number) => {
      const call = plainObject(c, `messages[${i}].toolCalls[${j}]`);
      requireString(call.id, `messages[${i}].toolCalls[${j}].id`);
      const fn = plainObject(call.function, `messages[${i}].toolCalls[${j}].function`);
      requireString(fn.name, `messages[${i}].toolCalls[${j}].function.name`);
      requireString(fn.arguments, `messages[${i}].toolCalls[${j}].function.arguments`);
    });
  }
  if (m.reasoningContent !== undefined) requireString(m.reasoningContent, `messages[${i}].reasoningContent`);
}

/** Whether a conversation carries tool calls or tool results (it then renders through the chat layer). */
export function hasToolMessages(messages: readonly { role: string; toolCalls?: unknown; toolCallId?: unknown }[]): boolean {
  return messages.some((m) => m.role === 'tool' || m.toolCalls !== undefined || m.toolCallId !== undefined);
}


/** The options object that resolves to `s` again (a backend hands a resolved request to LlamaModel). */
export function structuredOptions(s: ResolvedStructured): StructuredOptions {
  const out: StructuredOptions = {};
  if (s.grammar !== undefined) out.grammar = s.grammar;
  if (s.responseFormat !== undefined) out.responseFormat = s.responseFormat;
  else if (s.jsonSchema !== undefined) out.jsonSchema = s.jsonSchema;
  if (s.tools !== undefined) out.tools = s.tools;
  if (s.toolName !== undefined) out.toolChoice = { type: 'function', function: { name: s.toolName } };
  else if (s.toolChoice !== undefined) out.toolChoice = s.toolChoice;
  if (s.parallelToolCalls !== undefined) out.parallelToolCalls = s.parallelToolCalls;
  if (s.reasoningFormat !== undefined) out.reasoningFormat = s.reasoningFormat;
  if (s.enableThinking !== undefined) out.enableThinking = s.enableThinking;
  if (s.chatTemplateKwargs !== undefined) out.chatTemplateKwargs = s.chatTemplateKwargs;
  if (s.onDelta !== undefined) out.onDelta = s.onDelta;
  return out;
}

/** What identifies the structured part of a request in a cache key (everything but the callback). */
export function structuredCacheKey(s: ResolvedStructured): Record<string, unknown> {
  const { onDelta: _, ...rest } = structuredOptions(s);
  return rest;
}
