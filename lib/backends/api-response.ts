import { LlamaError } from '../errors';

/**
 * The shapes of the OpenAI-compatible answers the API backend relies on, checked field by field: the server is not
 * ours to trust, and a field of the wrong type must be a typed ERR_API_RESPONSE naming it, never `undefined` in a
 * result or a TypeError.
 */

export interface Usage {
  prompt_tokens?: number;
  completion_tokens?: number;
}

export interface ServerTimings {
  prompt_ms?: number;
  predicted_ms?: number;
  predicted_per_second?: number;
}

/** One choice of a completion, a chat completion, or one of their stream events. */
export interface CheckedChoice {
  /** The text (completion `text`, chat `message.content` or `delta.content`); undefined when the field is absent or null. */
  text: string | undefined;
  /** Whether a chat answer had a `message` (a null content is then an empty reply). */
  hasMessage: boolean;
  finishReason: string | undefined;
  /** Chat: `reasoning_content` of the message or delta (llama-server's reasoning parsers). */
  reasoning?: string;
  /** Chat: `tool_calls` of the message, or of the delta (pieces by index). */
  toolCalls?: { index: number; id?: string; name?: string; arguments?: string }[];
}

export interface CheckedCompletion {
  model: string | undefined;
  choice: CheckedChoice | undefined;
  usage: Usage | undefined;
  timings: ServerTimings | undefined;
  /** The `error` field of a stream event (a server reporting a failure mid-stream), as text. */
  error: string | undefined;
}

function found(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (Array.isArray(value)) return `a list of ${value.length}`;
  if (typeof value === 'object') return 'an object';
  if (typeof value === 'string') return `the string ${JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value)}`;
  return `${typeof value} ${String(value)}`;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Own fields only: a server's `"__proto__"` or `"constructor"` key is data, not an inherited property. */
function field(object: Record<string, unknown>, name: string): unknown {
  return Object.hasOwn(object, name) ? object[name] : undefined;
}

/** Throws ERR_API_RESPONSE: `<where>: the answer's <path> should be <expected>, got <found>`. */
export function malformed(where: string, path: string, expected: string, value: unknown): never {
  throw new LlamaError('ERR_API_RESPONSE', `${where}: malformed answer: ${path} should be ${expected}, got ${found(value)}`);
}

function optionalString(where: string, path: string, value: unknown): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string') malformed(where, path, 'a string', value);
  return value;
}

/** An optional number ≥ 0 that passes `test` (whole for counts, finite for durations). */
function nonNegative(test: (n: number) => boolean, expected: string) {
  return (where: string, path: string, value: unknown): number | undefined => {
    if (value === undefined || value === null) return undefined;
    if (typeof value !== 'number' || !test(value) || value < 0) malformed(where, path, expected, value);
    return value;
  };
}
const count = nonNegative(Number.isSafeInteger, 'a whole number ≥ 0');
const duration = nonNegative(Number.isFinite, 'a finite number ≥ 0');

function checkUsage(where: string, value: unknown): Usage | undefined {
  if (value === undefined || value === null) return undefined;
  if (!isObject(value)) malformed(where, 'usage', 'an object', value);
  return {
    prompt_tokens: count(where, 'usage.prompt_tokens', field(value, 'prompt_tokens')),
    completion_tokens: count(where, 'usage.completion_tokens', field(value, 'completion_tokens')),
  };
}

function checkTimings(where: string, value: unknown): ServerTimings | undefined {
  if (value === undefined || value === null) return undefined;
  if (!isObject(value)) malformed(where, 'timings', 'an object', value);
  return {
    prompt_ms: duration(where, 'timings.prompt_ms', field(value, 'prompt_ms')),
    predicted_ms: duration(where, 'timings.predicted_ms', field(value, 'predicted_ms')),
    predicted_per_second: duration(where, 'timings.predicted_per_second', field(value, 'predicted_per_second')),
  };
}

/**
 * Checks a completion or chat completion answer, or one event of their streams (`stream: true`): `choices` a list
 * whose first item holds `text` (completions) or `message.content` / `delta.content` (chat) as a string or null,
 * `finish_reason` a string or null; `model` a string; `usage` token counts and llama-server's `timings` durations,
 * when present. A stream event may have no choices (the usage event); a whole answer must have one.
 */
export function checkCompletion(where: string, body: unknown, kind: 'prompt' | 'chat', stream: boolean): CheckedCompletion {
  if (!isObject(body)) malformed(where, stream ? 'an event' : 'the answer', 'a JSON object', body);
  const rawError = field(body, 'error');
  if (rawError !== undefined && rawError !== null) {
    const message = typeof rawError === 'string' ? rawError : isObject(rawError) && typeof field(rawError, 'message') === 'string' ? (field(rawError, 'message') as string) : JSON.stringify(rawError);
    return { model: undefined, choice: undefined, usage: undefined, timings: undefined, error: String(message) };
  }
  const model = optionalString(where, 'model', field(body, 'model'));
  const usage = checkUsage(where, field(body, 'usage'));
  const timings = checkTimings(where, field(body, 'timings'));
  const choices = field(body, 'choices');
  let choice: CheckedChoice | undefined;
  if (choices === undefined || choices === null) {
    if (!stream) malformed(where, 'choices', 'a list with one choice', choices);
  } else if (!Array.isArray(choices)) {
    malformed(where, 'choices', 'a list', choices);
  } else if (choices.length === 0) {
    if (!stream) malformed(where, 'choices', 'a list with one choice', choices);
  } else {
    const first: unknown = choices[0];
    if (!isObject(first)) malformed(where, 'choices[0]', 'an object', first);
    const finishReason = optionalString(where, 'choices[0].finish_reason', field(first, 'finish_reason'));
    if (kind === 'prompt') {
      const text = optionalString(where, 'choices[0].text', field(first, 'text'));
      if (!stream && text === undefined) malformed(where, 'choices[0].text', 'a string', field(first, 'text'));
      choice = { text, hasMessage: false, finishReason };
    } else {
      const name = stream ? 'delta' : 'message';
      const message = field(first, name);
      if (message === undefined || message === null) {
        if (!stream) malformed(where, 'choices[0].message', 'an object with content', message);
        choice = { text: undefined, hasMessage: false, finishReason };
      } else {
        if (!isObject(message)) malformed(where, `choices[0].${name}`, 'an object', message);
        const text = optionalString(where, `choices[0].${name}.content`, field(message, 'content'));
        const reasoning = optionalString(where, `choices[0].${name}.reasoning_content`, field(message, 'reasoning_content'));
        const toolCalls = checkToolCalls(where, `choices[0].${name}.tool_calls`, field(message, 'tool_calls'), stream);
        choice = { text, hasMessage: true, finishReason, ...(reasoning !== undefined ? { reasoning } : {}), ...(toolCalls ? { toolCalls } : {}) };
      }
    }
  }
  return { model, choice, usage, timings, error: undefined };
}

/** `tool_calls` of a message (each whole: id, function.name, function.arguments) or of a stream delta (pieces by index). */
function checkToolCalls(where: string, path: string, value: unknown, stream: boolean): CheckedChoice['toolCalls'] {
  if (value === undefined || value === null) return undefined;
  if (!Array.isArray(value)) malformed(where, path, 'a list', value);
  return value.map((item: unknown, i: number) => {
    if (!isObject(item)) malformed(where, `${path}[${i}]`, 'an object', item);
    const rawIndex = field(item, 'index');
    const index = rawIndex === undefined || rawIndex === null ? i : rawIndex;
    if (typeof index !== 'number' || !Number.isSafeInteger(index) || index < 0 || index > 1024) malformed(where, `${path}[${i}].index`, 'an integer from 0 to 1024', index);
    const fn = field(item, 'function');
    if (fn !== undefined && fn !== null && !isObject(fn)) malformed(where, `${path}[${i}].function`, 'an object', fn);
    const f = (fn ?? {}) as Record<string, unknown>;
    const id = optionalString(where, `${path}[${i}].id`, field(item, 'id'));
    const name = optionalString(where, `${path}[${i}].function.name`, field(f, 'name'));
    const args = optionalString(where, `${path}[${i}].function.arguments`, field(f, 'arguments'));
    if (!stream && (name === undefined || args === undefined)) malformed(where, `${path}[${i}].function`, 'an object with name and arguments', fn);
    return { index, ...(id !== undefined ? { id } : {}), ...(name !== undefined ? { name } : {}), ...(args !== undefined ? { arguments: args } : {}) };
  });
}

/**
 * Checks an embeddings answer for `count` inputs: `data` a list of exactly `count` objects, each with `index` an
 * integer from 0 to count-1 (each once; absent: its position) and `embedding` a non-empty list of finite numbers,
 * all of one length.
 *
 * @returns the vectors, in input order, as they came (not normalised)
 */
export function checkEmbeddings(where: string, body: unknown, count: number): Float32Array[] {
  if (!isObject(body)) malformed(where, 'the answer', 'a JSON object', body);
  const data = field(body, 'data');
  if (!Array.isArray(data)) malformed(where, 'data', `a list of ${count} embeddings`, data);
  if (data.length !== count) malformed(where, 'data', `a list of ${count} embeddings`, data);
  const vectors: Array<Float32Array | undefined> = new Array(count).fill(undefined);
  let dimensions: number | undefined;
  data.forEach((item: unknown, i: number) => {
    if (!isObject(item)) malformed(where, `data[${i}]`, 'an object with index and embedding', item);
    const rawIndex = field(item, 'index');
    const index = rawIndex === undefined || rawIndex === null ? i : rawIndex;
    if (typeof index !== 'number' || !Number.isInteger(index) || index < 0 || index >= count) {
      malformed(where, `data[${i}].index`, `an integer from 0 to ${count - 1}`, index);
    }
    if (vectors[index] !== undefined) malformed(where, `data[${i}].index`, `an index not used by an earlier item`, index);
    const values = field(item, 'embedding');
    if (!Array.isArray(values) || values.length === 0) malformed(where, `data[${i}].embedding`, 'a non-empty list of numbers', values);
    const at = values.findIndex((v: unknown) => typeof v !== 'number' || !Number.isFinite(v));
    if (at >= 0) malformed(where, `data[${i}].embedding[${at}]`, 'a finite number', values[at]);
    if (dimensions !== undefined && values.length !== dimensions) {
      malformed(where, `data[${i}].embedding`, `a list of ${dimensions} numbers (as the others)`, values);
    }
    dimensions = values.length;
    vectors[index] = Float32Array.from(values as number[]);
  });
  return vectors as Float32Array[];
}

/**
 * Checks a `/v1/rerank` answer (llama-server's, Jina's and Cohere's shape) for `count` documents: `results` a list of
 * at most `count` objects, each with `index` an integer from 0 to count-1 (each once) and `relevance_score` a
 * finite number. Returns the score of each document in input order (NaN for one the answer left out).
 */
export function checkRerank(where: string, body: unknown, count: number): number[] {
  if (!isObject(body)) malformed(where, 'the answer', 'a JSON object', body);
  const results = field(body, 'results');
  if (!Array.isArray(results) || results.length > count) malformed(where, 'results', `a list of at most ${count} ranked documents`, results);
  const scores = new Array<number>(count).fill(NaN);
  results.forEach((item: unknown, i: number) => {
    if (!isObject(item)) malformed(where, `results[${i}]`, 'an object with index and relevance_score', item);
    const index = field(item, 'index');
    if (typeof index !== 'number' || !Number.isInteger(index) || index < 0 || index >= count) {
      malformed(where, `results[${i}].index`, `an integer from 0 to ${count - 1}`, index);
    }
    if (!Number.isNaN(scores[index])) malformed(where, `results[${i}].index`, 'an index not used by an earlier item', index);
    const score = field(item, 'relevance_score');
    if (typeof score !== 'number' || !Number.isFinite(score)) malformed(where, `results[${i}].relevance_score`, 'a finite number', score);
    scores[index] = score;
  });
  return scores;
}

/** Checks a `/v1/models` answer: `data` a list of objects with a string `id`. Returns the ids. */
export function checkModels(where: string, body: unknown): string[] {
  if (!isObject(body)) malformed(where, 'the answer', 'a JSON object', body);
  const data = field(body, 'data');
  if (!Array.isArray(data)) malformed(where, 'data', 'a list of models', data);
  return data.map((item: unknown, i: number) => {
    if (!isObject(item)) malformed(where, `data[${i}]`, 'an object with an id', item);
    const id = field(item, 'id');
    if (typeof id !== 'string') malformed(where, `data[${i}].id`, 'a string', id);
    return id;
  });
}
