import { openAiLogprobs } from '../backends/api-logprobs';
import type { LlmBackend, LlmGenerateOptions, LlmResult } from '../backends/llm-backend';
import { suggestKey } from '../config/schema';
import { rejectUnknownKeys, resolveSampling, SAMPLING_FIELDS, SAMPLING_KEY_BY_WIRE, type SamplingField, type SamplingFieldKind } from '../engine/request';
import { LlamaError } from '../errors';
import type { ChatMessage } from '../types';
import { hasTemplate, renderTemplate } from './template';

/** The actions a workflow node (or a host engine) can call. */
export type LlmActionName = 'llm.call' | 'llm.chat' | 'llm.stream' | 'llm.embed';

export type ActionParamType = 'string' | 'messages' | 'int' | 'number' | 'bool' | 'stop' | 'text' | 'json';

export interface ActionParamSpec {
  type: ActionParamType;
  required?: boolean;
  min?: number;
  max?: number;
  description: string;
  /** The sampling option it sets (a SAMPLING_FIELDS key: `topK` for `top_k`), for the sampling params. */
  option?: string;
}

export interface LlmActionDefinition {
  name: LlmActionName;
  description: string;
  /** Parameters by their workflow name (`max_tokens`, not `maxTokens`). */
  params: Readonly<Record<string, ActionParamSpec>>;
  /** Exactly one of these parameters must be given. */
  oneOf?: readonly string[];
  /**
   * What the action stores under the node's name: 'text' (the generated text, a string) or 'vector' (a list of
   * numbers, or a list of such lists when `text` is a list).
   */
  result: 'text' | 'vector';
  /** Keys of the action's metadata (`state._meta.<node>`), for checking `{{ state._meta.<node>.<key> }}` before a run. */
  metaKeys: readonly string[];
}

/** A sampling option's param type: lists and mappings as JSON (a list of strings, `{ token: bias }`, ...). */
const PARAM_TYPES: Record<SamplingFieldKind, ActionParamType> = { int: 'int', number: 'number', bool: 'bool', stop: 'stop', strings: 'json', samplers: 'json', logitBias: 'json' };

/** The sampling params: every field of SAMPLING_FIELDS, by its wire name, with its type and range. */
const SAMPLING: Record<string, ActionParamSpec> = Object.fromEntries(
  Object.entries(SAMPLING_FIELDS).map(([key, field]) => {
    const f: SamplingField = field;
    const range = f.min !== undefined ? { min: f.min, max: f.max } : {};
    return [f.wire, { type: PARAM_TYPES[f.kind], ...range, description: f.help, option: key }];
  }),
);

/** Constrained output and tools, in OpenAI's shapes (checked by the request model when the node runs). */
const STRUCTURED: Record<string, ActionParamSpec> = {
  grammar: { type: 'string', description: 'a GBNF grammar the output must match' },
  json_schema: { type: 'json', description: 'a JSON Schema the output must match (its value in state._meta.<node>.parsed)' },
  response_format: { type: 'json', description: "OpenAI's response_format: { type: json_object } or { type: json_schema, json_schema: { name, schema } }" },
};
const TOOLS: Record<string, ActionParamSpec> = {
  tools: { type: 'json', description: 'functions the model may call: [{ type: function, function: { name, description, parameters } }]' },
  tool_choice: { type: 'json', description: 'auto, none, required, or { type: function, function: { name } }' },
};

const GENERATION_META = ['finish_reason', 'model', 'backend', 'usage', 'timings', 'parsed', 'tool_calls', 'logprobs'];

/** The four LLM actions: their parameters, what they store and their metadata keys. */
export const LLM_ACTIONS: Readonly<Record<LlmActionName, LlmActionDefinition>> = Object.freeze({
  'llm.call': {
    name: 'llm.call',
    description: 'completes a prompt (raw text, no chat template)',
    params: { prompt: { type: 'string', required: true, description: 'the text to complete' }, ...SAMPLING, ...STRUCTURED },
    result: 'text',
    metaKeys: GENERATION_META,
  },
  'llm.chat': {
    name: 'llm.chat',
    description: "answers a conversation with the model's chat template",
    params: { messages: { type: 'messages', required: true, description: 'a list of { role, content }' }, ...SAMPLING, ...STRUCTURED, ...TOOLS },
    result: 'text',
    metaKeys: [...GENERATION_META, 'messages'],
  },
  'llm.stream': {
    name: 'llm.stream',
    description: 'as llm.call (prompt) or llm.chat (messages), with the text streamed as it is generated',
    params: {
      prompt: { type: 'string', description: 'the text to complete' },
      messages: { type: 'messages', description: 'a list of { role, content }' },
      ...SAMPLING,
      ...STRUCTURED,
      ...TOOLS,
    },
    oneOf: ['prompt', 'messages'],
    result: 'text',
    metaKeys: [...GENERATION_META, 'messages'],
  },
  'llm.embed': {
    name: 'llm.embed',
    description: 'embeds a text (or a list of texts) into unit-length vectors',
    params: { text: { type: 'text', required: true, description: 'a string, or a list of strings' } },
    result: 'vector',
    metaKeys: ['dimensions', 'count', 'model', 'backend'],
  },
} satisfies Record<LlmActionName, LlmActionDefinition>);

/** Names of the LLM actions. */
export const LLM_ACTION_NAMES = Object.freeze(Object.keys(LLM_ACTIONS) as LlmActionName[]);

export function isLlmAction(name: unknown): name is LlmActionName {
  return typeof name === 'string' && Object.prototype.hasOwnProperty.call(LLM_ACTIONS, name);
}

function found(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (Array.isArray(value)) return `a list of ${value.length}`;
  if (typeof value === 'object') return 'a mapping';
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  return `${typeof value} ${String(value)}`;
}

/** A value that is still a template (checked once it is rendered). */
function pending(value: unknown, lenient: boolean): boolean {
  return lenient && typeof value === 'string' && hasTemplate(value);
}

/** Reads a number parameter, accepting numeric text (a value from `--input` or a template). */
function toNumber(value: unknown): number | undefined {
  if (typeof value === 'number') return value;
  if (typeof value === 'string' && /^\s*[-+]?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?\s*$/i.test(value)) return Number(value);
  return undefined;
}

/** Reads a bool parameter, accepting `true`/`false` text (a value from `--input` or a template). */
function toBool(value: unknown): boolean | undefined {
  if (typeof value === 'boolean') return value;
  if (value === 'true' || value === 'false') return value === 'true';
  return undefined;
}

/** A sampling param's value as the request option: numbers and bools from text, `samplers` also as `top_k;top_p`. */
function samplingValue(kind: SamplingFieldKind, value: unknown): unknown {
  switch (kind) {
    case 'int':
    case 'number':
      return toNumber(value);
    case 'bool':
      return toBool(value);
    case 'strings':
      return typeof value === 'string' ? [value] : value;
    case 'samplers':
      // As llama.cpp's --samplers.
      return typeof value === 'string' ? value.split(/[;,]/).map((s) => s.trim()).filter((s) => s.length > 0) : value;
    default:
      return value;
  }
}

/** A list or mapping sampling param, checked by the request model itself. */
function checkSamplingValue(spec: ActionParamSpec, value: unknown): string | undefined {
  const key = spec.option as keyof typeof SAMPLING_FIELDS;
  const f: SamplingField = SAMPLING_FIELDS[key];
  try {
    resolveSampling({ [key]: samplingValue(f.kind, value) });
    return undefined;
  } catch (error) {
    return (error as Error).message;
  }
}

/**
 * Checks one parameter value; returns the problem, or undefined. With `lenient`, template strings are accepted
 * wherever they appear (they are checked again after rendering).
 */
export function checkParamValue(spec: ActionParamSpec, value: unknown, lenient = false): string | undefined {
  if (pending(value, lenient)) return undefined;
  switch (spec.type) {
    case 'string':
      return typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean' ? undefined : `expected a string, got ${found(value)}`;
    case 'int':
    case 'number': {
      const n = toNumber(value);
      const what = spec.type === 'int' ? `an integer from ${spec.min} to ${spec.max}` : `a number from ${spec.min} to ${spec.max}`;
      if (n === undefined || !Number.isFinite(n) || (spec.type === 'int' && !Number.isInteger(n)) || n < spec.min! || n > spec.max!) {
        return `expected ${what}, got ${found(value)}`;
      }
      return undefined;
    }
    case 'bool':
      return toBool(value) === undefined ? `expected true or false, got ${found(value)}` : undefined;
    case 'stop': {
      const list = Array.isArray(value) ? value : [value];
      if (list.length === 0) return 'expected a string or a list of strings, got an empty list';
      const bad = list.find((s) => !pending(s, lenient) && (typeof s !== 'string' || s.length === 0));
      return bad === undefined ? undefined : `expected a non-empty string or a list of them, got ${found(bad)}`;
    }
    case 'json':
      if (typeof value !== 'object' && typeof value !== 'string') return `expected a mapping or a list, got ${found(value)}`;
      if (spec.option !== undefined && !(lenient && JSON.stringify(value).includes('{{'))) return checkSamplingValue(spec, value);
      return undefined;
    case 'text': {
      if (typeof value === 'string') return undefined;
      if (!Array.isArray(value)) return `expected a string or a list of strings, got ${found(value)}`;
      if (value.length === 0) return 'expected a string or a list of strings, got an empty list';
      const i = value.findIndex((s) => !pending(s, lenient) && typeof s !== 'string');
      return i < 0 ? undefined : `item ${i}: expected a string, got ${found(value[i])}`;
    }
    case 'messages': {
      if (!Array.isArray(value)) return `expected a list of { role, content } messages, got ${found(value)}`;
      for (let i = 0; i < value.length; i++) {
        const m = value[i];
        if (pending(m, lenient)) continue;
        if (Array.isArray(m)) {
          // A list inside the list (a conversation spliced in): check its messages.
          const inner = checkParamValue(spec, m, lenient);
          if (inner) return `item ${i}: ${inner}`;
          continue;
        }
        if (typeof m !== 'object' || m === null) return `item ${i}: expected a { role, content } message, got ${found(m)}`;
        const extra = Object.keys(m).filter((k) => k !== 'role' && k !== 'content');
        if (extra.length > 0) {
          const hint = suggestKey(extra[0], ['role', 'content']);
          return `item ${i}: unknown key ${JSON.stringify(extra[0])} (a message has role and content)${hint ? `; did you mean "${hint}"?` : ''}`;
        }
        const { role, content } = m as Record<string, unknown>;
        if (!pending(role, lenient) && (typeof role !== 'string' || role.length === 0)) return `item ${i}: role: expected a string, got ${found(role)}`;
        if (!pending(content, lenient) && !['string', 'number', 'boolean'].includes(typeof content)) {
          return `item ${i}: content: expected a string, got ${found(content)}`;
        }
      }
      return undefined;
    }
  }
}

/** A problem with an action's parameters. */
export interface ParamIssue {
  /** `params.max_tokens`, or `params` for a missing one. */
  path: string;
  problem: string;
}

/**
 * Checks an action's parameters: unknown names (with a suggestion), missing required ones, and the values'
 * types. With `lenient`, values that are still templates pass (check them again after rendering).
 */
export function checkActionParams(action: LlmActionName, params: Record<string, unknown>, lenient = false): ParamIssue[] {
  const def = LLM_ACTIONS[action];
  const names = Object.keys(def.params);
  const issues: ParamIssue[] = [];
  for (const [name, value] of Object.entries(params)) {
    const spec = Object.hasOwn(def.params, name) ? def.params[name] : undefined;
    if (!spec) {
      const hint = suggestKey(name, names);
      issues.push({
        path: `params.${name}`,
        problem: `${action} has no parameter "${name}" (it takes ${names.join(', ')})${hint ? `; did you mean "${hint}"?` : ''}`,
      });
      continue;
    }
    if (value === undefined || value === null) {
      issues.push({ path: `params.${name}`, problem: 'is empty: give a value or leave the parameter out' });
      continue;
    }
    const problem = checkParamValue(spec, value, lenient);
    if (problem) issues.push({ path: `params.${name}`, problem });
  }
  for (const [name, spec] of Object.entries(def.params)) {
    if (spec.required && (!Object.hasOwn(params, name) || params[name] === undefined)) issues.push({ path: 'params', problem: `missing the required parameter "${name}" (${spec.description})` });
  }
  // As the request model: alternatives without logprobs are a mistake, not a no-op.
  if (params.top_logprobs !== undefined && Object.hasOwn(def.params, 'top_logprobs') && !pending(params.logprobs, lenient) && toBool(params.logprobs) !== true) {
    issues.push({ path: 'params.top_logprobs', problem: 'needs logprobs: true' });
  }
  if (def.oneOf) {
    const given = def.oneOf.filter((n) => Object.hasOwn(params, n) && params[n] !== undefined);
    if (given.length !== 1) {
      issues.push({
        path: 'params',
        problem: given.length === 0 ? `needs ${def.oneOf.map((n) => `"${n}"`).join(' or ')}` : `takes ${def.oneOf.map((n) => `"${n}"`).join(' or ')}, not both`,
      });
    }
  }
  return issues;
}

/** Messages after rendering: nested lists (a conversation spliced in) flattened, content as text. */
function toMessages(value: unknown): ChatMessage[] {
  const out: ChatMessage[] = [];
  const add = (v: unknown) => {
    if (Array.isArray(v)) v.forEach(add);
    else {
      const m = v as { role: string; content: unknown };
      out.push({ role: m.role, content: typeof m.content === 'string' ? m.content : String(m.content) });
    }
  };
  add(value);
  return out;
}

function sampling(params: Record<string, unknown>, signal: AbortSignal | undefined): LlmGenerateOptions {
  const options: Record<string, unknown> = {};
  for (const [wire, value] of Object.entries(params)) {
    const key = Object.hasOwn(SAMPLING_KEY_BY_WIRE, wire) ? SAMPLING_KEY_BY_WIRE[wire] : undefined;
    if (key !== undefined && value !== undefined) options[key] = samplingValue(SAMPLING_FIELDS[key].kind, value);
  }
  if (params.grammar !== undefined) options.grammar = String(params.grammar);
  if (params.json_schema !== undefined) options.jsonSchema = params.json_schema as object;
  if (params.response_format !== undefined) options.responseFormat = params.response_format as LlmGenerateOptions['responseFormat'];
  if (params.tools !== undefined) options.tools = params.tools as LlmGenerateOptions['tools'];
  if (params.tool_choice !== undefined) options.toolChoice = params.tool_choice as LlmGenerateOptions['toolChoice'];
  if (signal) options.signal = signal;
  return options as LlmGenerateOptions;
}

/** The key of the state under which a workflow keeps each action node's metadata: `state._meta.<node>`. */
export const META_KEY = '_meta';

/** What an action node stores under its name: the generated text, or the embedding(s). */
export type ActionValue = string | number[] | number[][];

/**
 * An action's metadata (snake_case keys, as in the workflow file). Generation: `finish_reason`, `model`,
 * `backend`, `usage` (`prompt_tokens`, `completion_tokens`, `total_tokens`), `timings`, and for messages
 * `messages` (the conversation with the reply appended), with `logprobs` OpenAI's list of `{ id, token, bytes,
 * logprob, top_logprobs }`. Embedding: `dimensions`, `count` (for a list), `model`,
 * `backend`.
 */
export type ActionMeta = Record<string, unknown>;

/** An action's value and its metadata. */
export interface ActionOutcome {
  value: ActionValue;
  meta: ActionMeta;
}

/** The metadata of a generation: snake_case keys, as in the workflow file. */
function generationMeta(r: LlmResult, messages?: ChatMessage[]): ActionMeta {
  const timings: Record<string, number> = { total_ms: r.timings.totalMs };
  if (r.timings.promptMs !== undefined) timings.prompt_ms = r.timings.promptMs;
  if (r.timings.generationMs !== undefined) timings.generation_ms = r.timings.generationMs;
  if (r.timings.firstTokenMs !== undefined) timings.first_token_ms = r.timings.firstTokenMs;
  if (r.timings.tokensPerSecond !== undefined) timings.tokens_per_second = r.timings.tokensPerSecond;
  return {
    finish_reason: r.finishReason,
    model: r.model,
    backend: r.backend,
    usage: { prompt_tokens: r.promptTokens, completion_tokens: r.completionTokens, total_tokens: r.tokensUsed },
    timings,
    ...(r.parsed !== undefined ? { parsed: r.parsed } : {}),
    ...(r.toolCalls !== undefined ? { tool_calls: r.toolCalls } : {}),
    ...(r.logprobs !== undefined ? { logprobs: openAiLogprobs(r.logprobs) } : {}),
    ...(messages ? { messages: [...messages, { role: 'assistant', content: r.content }] } : {}),
  };
}

function generation(r: LlmResult, messages?: ChatMessage[]): ActionOutcome {
  return { value: r.content, meta: generationMeta(r, messages) };
}

/**
 * Calls an action: `params` (templated from `state` when it is given) → the value a node stores under its name:
 * the generated text, or the embedding. `withMeta` gives the value and the metadata.
 */
export interface ActionHandler {
  (params: Record<string, unknown>, state?: Record<string, unknown>): Promise<ActionValue>;
  withMeta(params: Record<string, unknown>, state?: Record<string, unknown>): Promise<ActionOutcome>;
}

export interface LlmActionContext {
  /** The backend the actions call, or a function giving it (called on first use, once). */
  backend: LlmBackend | (() => LlmBackend | Promise<LlmBackend>);
  /** Receives llm.stream's text as it is generated. Default: none. */
  onChunk?: (chunk: string) => void;
  /** Stops a running action: it resolves with what was produced and finish_reason "abort". Default: none. */
  signal?: AbortSignal;
}

const CONTEXT_KEYS = ['backend', 'onChunk', 'signal'];

/**
 * The LLM actions as plain functions `(params, state?) => value`, for a host workflow engine to register in its
 * own action registry. They return what a workflow node stores under its name:
 * - llm.call / llm.chat / llm.stream: the generated text (a string);
 * - llm.embed: the embedding as a list of numbers, or a list of them for a list of texts.
 *
 * `handler.withMeta(params, state?)` returns `{ value, meta }`: the same value, and the metadata a workflow keeps
 * in `state._meta.<node>` (finish reason, usage, timings, model, backend, and for messages the conversation
 * with the reply appended).
 *
 * Parameters keep the workflow format's names (`prompt`, `messages`, `text`, and the sampling options by their
 * wire names: `max_tokens`, `temperature`, `top_k`, `mirostat`, `logprobs`, ...: SAMPLING_FIELDS); string values are templated from `state` with `{{ state.key }}`. Bad parameters
 * (an unknown name, a wrong type) reject with ERR_INVALID_ARGUMENT naming the action and the parameter.
 */
export function createLlmActions(context: LlmActionContext): Record<LlmActionName, ActionHandler> {
  if (typeof context !== 'object' || context === null) throw new LlamaError('ERR_INVALID_ARGUMENT', 'createLlmActions: context must be an object with a backend');
  rejectUnknownKeys(context, CONTEXT_KEYS, 'createLlmActions() context');
  if (context.backend === undefined) throw new LlamaError('ERR_INVALID_ARGUMENT', 'createLlmActions: context.backend is required (a backend, or a function giving one)');
  let backend: Promise<LlmBackend> | undefined;
  const getBackend = () => {
    backend ??= Promise.resolve(typeof context.backend === 'function' ? context.backend() : context.backend);
    return backend;
  };
  const prepare = (action: LlmActionName, params: Record<string, unknown>, state: Record<string, unknown> | undefined) => {
    if (typeof params !== 'object' || params === null || Array.isArray(params)) {
      throw new LlamaError('ERR_INVALID_ARGUMENT', `${action}: params must be a mapping`);
    }
    let rendered: Record<string, unknown>;
    try {
      rendered = (state ? renderTemplate(params, state) : params) as Record<string, unknown>;
    } catch (error) {
      throw new LlamaError('ERR_INVALID_ARGUMENT', `${action}: ${(error as Error).message}`, { cause: error });
    }
    const issues = checkActionParams(action, rendered);
    if (issues.length > 0) throw new LlamaError('ERR_INVALID_ARGUMENT', `${action}: ${issues.map((i) => `${i.path}: ${i.problem}`).join('; ')}`);
    return rendered;
  };
  const text = (v: unknown) => (typeof v === 'string' ? v : String(v));

  const run: Record<LlmActionName, (p: Record<string, unknown>) => Promise<ActionOutcome>> = {
    'llm.call': async (p) => {
      const llm = await getBackend();
      return generation(await llm.call({ prompt: text(p.prompt), ...sampling(p, context.signal) }));
    },
    'llm.chat': async (p) => {
      const messages = toMessages(p.messages);
      const llm = await getBackend();
      return generation(await llm.chat(messages, sampling(p, context.signal)), messages);
    },
    'llm.stream': async (p) => {
      const llm = await getBackend();
      const onChunk = context.onChunk;
      if (p.messages !== undefined) {
        const messages = toMessages(p.messages);
        return generation(await llm.streamChat(messages, onChunk, sampling(p, context.signal)), messages);
      }
      return generation(await llm.stream({ prompt: text(p.prompt), ...sampling(p, context.signal) }, onChunk));
    },
    'llm.embed': async (p) => {
      const llm = await getBackend();
      const options = context.signal ? { signal: context.signal } : {};
      if (Array.isArray(p.text)) {
        const vectors = await llm.embed(p.text as string[], options);
        return {
          value: vectors.map((v) => Array.from(v)),
          meta: { dimensions: vectors[0]?.length ?? 0, count: vectors.length, model: llm.model, backend: llm.kind },
        };
      }
      const vector = await llm.embed(p.text as string, options);
      return { value: Array.from(vector), meta: { dimensions: vector.length, model: llm.model, backend: llm.kind } };
    },
  };

  const handler = (action: LlmActionName): ActionHandler => {
    const withMeta = (params: Record<string, unknown>, state?: Record<string, unknown>) => run[action](prepare(action, params, state));
    return Object.assign(async (params: Record<string, unknown>, state?: Record<string, unknown>) => (await withMeta(params, state)).value, { withMeta });
  };
  return Object.fromEntries(LLM_ACTION_NAMES.map((name) => [name, handler(name)])) as Record<LlmActionName, ActionHandler>;
}
