import { LlamaError } from '../errors';

/**
 * Workflow templating is data substitution only: `{{ state.key }}` (with nested keys `state.a.b`, list indexes
 * `state.items.0` or `state.items[0]`, and quoted keys `state["a key"]`) is replaced by a value from the state.
 * There are no expressions, filters, loops or calls: a template never runs code (only `run:` nodes do, in the
 * sandbox of script.ts).
 *
 * - A string that is exactly one reference (`"{{ state.history }}"`) becomes the value itself, whatever its type
 *   (a list of messages, a number, a mapping).
 * - References inside a longer string are interpolated: strings as they are, numbers and booleans as text, lists
 *   and mappings as JSON.
 */

/** A `{{ state.… }}` reference. */
export interface StateReference {
  /** The keys after `state`, e.g. `['user', 'name']` for `state.user.name`; list indexes are numbers. */
  path: Array<string | number>;
  /** The reference as written, e.g. `{{ state.user.name }}`. */
  text: string;
}

/** A parsed template: literal text and references, in order. */
export type TemplatePart = string | StateReference;

const OPEN = '{{';
const CLOSE = '}}';
const SEGMENT = /^(?:\.([A-Za-z_][\w-]*)|\.(\d+)|\[(\d+)\]|\["([^"]*)"\]|\['([^']*)'\])/;

function syntaxError(message: string): LlamaError {
  return new LlamaError('ERR_WORKFLOW_INVALID', message);
}

/** Parses the inside of `{{ … }}`: `state` followed by one or more keys. */
function parseReference(inner: string, text: string): StateReference {
  const body = inner.trim();
  const fail = (): never => {
    throw syntaxError(
      `${text} is not a state reference: templates hold only {{ state.key }} (nested keys with dots), ` +
        'no expressions, filters or code',
    );
  };
  if (!body.startsWith('state')) fail();
  let rest = body.slice('state'.length);
  const path: Array<string | number> = [];
  while (rest.length > 0) {
    const m = SEGMENT.exec(rest);
    if (!m) fail();
    const [whole, name, dotIndex, bracketIndex, dq, sq] = m!;
    if (name !== undefined) path.push(name);
    else if (dotIndex !== undefined) path.push(Number(dotIndex));
    else if (bracketIndex !== undefined) path.push(Number(bracketIndex));
    else path.push((dq ?? sq)!);
    rest = rest.slice(whole.length);
  }
  if (path.length === 0) throw syntaxError(`${text} names the whole state: name a key, e.g. {{ state.question }}`);
  return { path, text };
}

/** Splits a string into literal text and references. Throws ERR_WORKFLOW_INVALID for anything but references. */
export function parseTemplate(text: string): TemplatePart[] {
  const parts: TemplatePart[] = [];
  let at = 0;
  for (;;) {
    const open = text.indexOf(OPEN, at);
    if (open < 0) break;
    const close = text.indexOf(CLOSE, open + OPEN.length);
    if (close < 0) {
      const excerpt = text.slice(open, open + 30);
      throw syntaxError(`unclosed template ${JSON.stringify(excerpt)}: a reference is written {{ state.key }}`);
    }
    if (open > at) parts.push(text.slice(at, open));
    const whole = text.slice(open, close + CLOSE.length);
    parts.push(parseReference(text.slice(open + OPEN.length, close), whole));
    at = close + CLOSE.length;
  }
  // A lone "}}" is ordinary text (e.g. JSON in a prompt).
  if (at < text.length) parts.push(text.slice(at));
  return parts;
}

/** Whether a string holds any `{{`. */
export function hasTemplate(text: string): boolean {
  return text.includes(OPEN);
}

/** The reference, when the whole string (ignoring surrounding spaces) is exactly one reference. */
export function wholeReference(text: string): StateReference | undefined {
  const trimmed = text.trim();
  if (!trimmed.startsWith(OPEN) || !trimmed.endsWith(CLOSE)) return undefined;
  const parts = parseTemplate(trimmed);
  return parts.length === 1 && typeof parts[0] !== 'string' ? parts[0] : undefined;
}

/** Formats a path for messages: `state.user.name`, `state.items[0]`. */
export function formatPath(path: ReadonlyArray<string | number>): string {
  let out = 'state';
  for (const key of path) {
    if (typeof key === 'number') out += `[${key}]`;
    else if (/^[A-Za-z_][\w-]*$/.test(key)) out += `.${key}`;
    else out += `[${JSON.stringify(key)}]`;
  }
  return out;
}

export type Lookup = { found: true; value: unknown } | { found: false; /** How many keys were found before the missing one. */ depth: number };

/** Follows a path through nested mappings and lists. */
export function lookup(state: unknown, path: ReadonlyArray<string | number>): Lookup {
  let value: unknown = state;
  for (let i = 0; i < path.length; i++) {
    const key = path[i];
    if (Array.isArray(value)) {
      const index = typeof key === 'number' ? key : /^\d+$/.test(key) ? Number(key) : -1;
      if (index < 0 || index >= value.length) return { found: false, depth: i };
      value = value[index];
    } else if (typeof value === 'object' && value !== null && Object.prototype.hasOwnProperty.call(value, String(key))) {
      value = (value as Record<string, unknown>)[String(key)];
      if (value === undefined) return { found: false, depth: i };
    } else {
      return { found: false, depth: i };
    }
  }
  return { found: true, value };
}

/** Why a reference is absent, e.g. `state.user has no key "nmae"` or `state.question is not set`. */
export function describeMissing(path: ReadonlyArray<string | number>, depth: number, state: unknown): string {
  if (depth === 0) return `${formatPath(path.slice(0, 1))} is not set`;
  const parent = lookup(state, path.slice(0, depth));
  const where = formatPath(path.slice(0, depth));
  const key = path[depth];
  if (parent.found && Array.isArray(parent.value)) return `${where} is a list of ${parent.value.length} items, it has no item ${JSON.stringify(key)}`;
  if (parent.found && (typeof parent.value !== 'object' || parent.value === null)) return `${where} is ${describe(parent.value)}, not a mapping`;
  const keys = parent.found ? Object.keys(parent.value as object) : [];
  return `${where} has no key ${JSON.stringify(String(key))}${keys.length ? ` (it has ${keys.join(', ')})` : ''}`;
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (typeof value === 'string') return `the text ${JSON.stringify(value.length > 30 ? value.slice(0, 30) + '…' : value)}`;
  return `${typeof value} ${String(value)}`;
}

/** A value as text inside a longer string: strings as they are, lists and mappings as JSON. */
function asText(value: unknown): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'object' && value !== null) return JSON.stringify(value);
  return String(value);
}

/** Every reference in a value (strings, lists and mappings, recursively), with where it is (`messages[1].content`). */
export function templateReferences(value: unknown, where = ''): Array<{ where: string; reference: StateReference; whole: boolean }> {
  const found: Array<{ where: string; reference: StateReference; whole: boolean }> = [];
  const walk = (v: unknown, at: string) => {
    if (typeof v === 'string') {
      if (!hasTemplate(v)) return;
      const parts = parseTemplate(v);
      const whole = wholeReference(v) !== undefined;
      for (const p of parts) if (typeof p !== 'string') found.push({ where: at, reference: p, whole });
    } else if (Array.isArray(v)) {
      v.forEach((item, i) => walk(item, `${at}[${i}]`));
    } else if (typeof v === 'object' && v !== null) {
      for (const [k, item] of Object.entries(v)) walk(item, at ? `${at}.${k}` : k);
    }
  };
  walk(value, where);
  return found;
}

/**
 * Substitutes every `{{ state.… }}` in a value (strings, lists and mappings, recursively; keys are not templated).
 * Throws ERR_INVALID_ARGUMENT naming the reference when a key is absent, ERR_WORKFLOW_INVALID for a malformed
 * template.
 */
export function renderTemplate(value: unknown, state: Record<string, unknown>): unknown {
  const resolve = (ref: StateReference): unknown => {
    const r = lookup(state, ref.path);
    if (!r.found) throw new LlamaError('ERR_INVALID_ARGUMENT', `${ref.text}: ${describeMissing(ref.path, r.depth, state)}`);
    return r.value;
  };
  const walk = (v: unknown): unknown => {
    if (typeof v === 'string') {
      if (!hasTemplate(v)) return v;
      const whole = wholeReference(v);
      if (whole) return structuredClone(resolve(whole));
      return parseTemplate(v)
        .map((p) => (typeof p === 'string' ? p : asText(resolve(p))))
        .join('');
    }
    if (Array.isArray(v)) return v.map(walk);
    if (typeof v === 'object' && v !== null) return Object.fromEntries(Object.entries(v).map(([k, item]) => [k, walk(item)]));
    return v;
  };
  return walk(value);
}
