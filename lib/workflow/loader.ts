import { readFile, stat } from 'node:fs/promises';
import { dirname, isAbsolute, resolve } from 'node:path';

import { parseDocument, stringify } from 'yaml';

import { parseSettingsYaml } from '../config/settings';
import { SettingsError, SETTING_KEYS, suggestKey } from '../config/schema';
import { rejectUnknownKeys } from '../engine/request';
import { LlamaError } from '../errors';
import { optionalInt } from '../validate';
import { checkActionParams, checkParamValue, isLlmAction, LLM_ACTION_NAMES, LLM_ACTIONS, META_KEY, type LlmActionName } from './actions';
import { checkScript, WorkflowScriptError } from './script';
import { DEFAULT_MAX_YAML_ALIASES, yamlToData } from '../yaml-data';
import { describeMissing, formatPath, lookup, parseTemplate, renderTemplate, templateReferences } from './template';

/** Types a `state_schema` entry can declare. */
export type StateType = 'str' | 'int' | 'float' | 'bool' | 'list' | 'dict' | 'any';

/** Type names (a null-prototype map: `constructor` or `__proto__` is an unknown type, not Object's own). */
const TYPE_NAMES: Record<string, StateType> = Object.assign(Object.create(null) as Record<string, StateType>, {
  str: 'str',
  string: 'str',
  int: 'int',
  integer: 'int',
  float: 'float',
  number: 'float',
  bool: 'bool',
  boolean: 'bool',
  list: 'list',
  array: 'list',
  dict: 'dict',
  object: 'dict',
  map: 'dict',
  any: 'any',
});

/** Default of `maxBytes`: a workflow is a page of YAML; 1 MiB is hundreds of nodes, and bounds the parser's memory. */
export const DEFAULT_MAX_WORKFLOW_BYTES = 1024 * 1024;
/** Limits on reading a workflow. */
export interface WorkflowLimits {
  /** Largest workflow file (or text), in bytes. Default {@link DEFAULT_MAX_WORKFLOW_BYTES} (1 MiB). */
  maxBytes?: number;
  /** Most YAML alias expansions (`*anchor`, weighted by the size of what each expands to). Default 100. */
  maxAliasCount?: number;
}

function checkLimits(options: WorkflowLimits, where: string): { maxBytes: number; maxAliasCount: number } {
  return {
    maxBytes: optionalInt(options.maxBytes, `${where}: maxBytes`, 1, Number.MAX_SAFE_INTEGER) ?? DEFAULT_MAX_WORKFLOW_BYTES,
    maxAliasCount: optionalInt(options.maxAliasCount, `${where}: maxAliasCount`, 1, Number.MAX_SAFE_INTEGER) ?? DEFAULT_MAX_YAML_ALIASES,
  };
}

export interface StateField {
  type: StateType;
  /** The initial value when the input does not set the key. */
  default?: unknown;
  description?: string;
}

/** A node that calls an LLM action: its value goes to `state[name]`, its metadata to `state._meta[name]`. */
export interface ActionNode {
  name: string;
  action: LlmActionName;
  params: Record<string, unknown>;
  run?: undefined;
}

/** A node that runs JavaScript on the state in a sandbox (see runScript). */
export interface ScriptNode {
  name: string;
  /** The script: the body of a function that reads and changes `state`, and may return a mapping to merge into it. */
  run: string;
  action?: undefined;
  params?: undefined;
}

export type WorkflowNode = ActionNode | ScriptNode;

export interface Workflow {
  /** The file (or the source name given to parseWorkflow). */
  source: string;
  name?: string;
  description?: string;
  /**
   * The `settings.llm` block, checked, with a relative `model_path`, `draft_model` and `lora` paths made absolute against the
   * workflow's folder.
   * Undefined when the workflow has none.
   */
  llm?: Record<string, unknown>;
  /** `state_schema`, by key (a null-prototype object). */
  stateSchema: Record<string, StateField>;
  nodes: WorkflowNode[];
}

/** One problem in a workflow. */
export interface WorkflowIssue {
  /** The node it is in, if any. */
  node?: string;
  /** Where: `params.prompt`, `settings.llm.n_ctx`, `state_schema.count`, `nodes[2]` ('' for the file itself). */
  path: string;
  problem: string;
}

function formatIssue(issue: WorkflowIssue): string {
  const where = issue.node !== undefined ? `node "${issue.node}": ${issue.path}` : issue.path;
  return where ? `${where}: ${issue.problem}` : issue.problem;
}

/** ERR_WORKFLOW_INVALID: every problem found in a workflow, before any model is loaded. */
export class WorkflowError extends LlamaError {
  readonly issues: WorkflowIssue[];
  readonly source: string;

  constructor(source: string, issues: WorkflowIssue[]) {
    super('ERR_WORKFLOW_INVALID', `invalid workflow ${source}:\n${issues.map((i) => `  ${formatIssue(i)}`).join('\n')}`);
    this.name = 'WorkflowError';
    this.source = source;
    this.issues = issues;
  }
}

const TOP_KEYS = ['name', 'description', 'settings', 'state_schema', 'nodes'];
const NODE_KEYS = ['name', 'action', 'params', 'run'];
const NODE_NAME = /^[A-Za-z_][\w-]*$/;
const LLM_TOP_KEYS = new Set(SETTING_KEYS.map((k) => k.yaml.split('.')[0]));

function isMapping(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function unknownKey(key: string, known: string[], where: string): string {
  const hint = suggestKey(key, known);
  return `unknown key "${key}" in ${where} (known: ${known.join(', ')})${hint ? `; did you mean "${hint}"?` : ''}`;
}

function checkSettings(settings: unknown, dir: string, issues: WorkflowIssue[]): Record<string, unknown> | undefined {
  if (settings === undefined || settings === null) return undefined;
  if (!isMapping(settings)) {
    issues.push({ path: 'settings', problem: 'expected a mapping with an `llm` block' });
    return undefined;
  }
  // Other blocks under settings belong to the host application; only `llm` is read here.
  const misplaced = Object.keys(settings).filter((k) => k !== 'llm' && LLM_TOP_KEYS.has(k));
  for (const key of misplaced) issues.push({ path: `settings.${key}`, problem: `LLM settings go under settings.llm (settings.llm.${key})` });
  const llm = settings.llm;
  if (llm === undefined || llm === null) return undefined;
  try {
    parseSettingsYaml(stringify({ llm }), 'the workflow settings');
  } catch (error) {
    if (!(error instanceof SettingsError)) throw error;
    for (const i of error.issues) {
      issues.push({ path: `settings.${i.path}`, problem: `expected ${i.expected}, got ${i.found}${i.suggestion ? `; did you mean "${i.suggestion}"?` : ''}` });
    }
    return undefined;
  }
  const block = { ...(llm as Record<string, unknown>) };
  // Files named in the block (the model, its draft, LoRA adapters) are relative to the workflow's folder.
  const relative = (p: unknown) => (typeof p === 'string' && !isAbsolute(p) && !p.startsWith('~') && !p.startsWith('$') ? resolve(dir, p) : p);
  for (const key of ['model_path', 'draft_model']) if (block[key] !== undefined) block[key] = relative(block[key]);
  if (Array.isArray(block.lora)) {
    block.lora = block.lora.map((l: unknown) => (typeof l === 'object' && l !== null ? { ...(l as Record<string, unknown>), path: relative((l as Record<string, unknown>).path) } : relative(l)));
  }
  return block;
}

function checkSchema(schema: unknown, issues: WorkflowIssue[]): Record<string, StateField> {
  const out: Record<string, StateField> = Object.create(null);
  if (schema === undefined || schema === null) return out;
  if (!isMapping(schema)) {
    issues.push({ path: 'state_schema', problem: 'expected a mapping of key: type' });
    return out;
  }
  const known = Object.keys(TYPE_NAMES);
  for (const [key, entry] of Object.entries(schema)) {
    const path = `state_schema.${key}`;
    if (key === META_KEY) {
      issues.push({ path, problem: `"${META_KEY}" is reserved: the state keeps the action nodes' metadata there` });
      continue;
    }
    const spec = isMapping(entry) ? entry : { type: entry };
    if (isMapping(entry)) {
      for (const k of Object.keys(entry)) if (!['type', 'default', 'description'].includes(k)) issues.push({ path, problem: unknownKey(k, ['type', 'default', 'description'], path) });
    }
    const typeName = spec.type === undefined || spec.type === null ? 'any' : spec.type;
    const type = typeof typeName === 'string' && Object.hasOwn(TYPE_NAMES, typeName.toLowerCase()) ? TYPE_NAMES[typeName.toLowerCase()] : undefined;
    if (!type) {
      const hint = typeof typeName === 'string' ? suggestKey(typeName, known) : undefined;
      issues.push({ path, problem: `unknown type ${JSON.stringify(typeName)} (known: str, int, float, bool, list, dict, any)${hint ? `; did you mean "${hint}"?` : ''}` });
      continue;
    }
    const field: StateField = { type };
    if (typeof spec.description === 'string') field.description = spec.description;
    if (spec.default !== undefined) {
      const problem = checkType(type, spec.default);
      if (problem) issues.push({ path: `${path}.default`, problem });
      else field.default = spec.default;
    }
    out[key] = field;
  }
  return out;
}

/** The problem with a value of a declared type, or undefined. */
function checkType(type: StateType, value: unknown): string | undefined {
  const ok =
    type === 'any' ||
    (type === 'str' && typeof value === 'string') ||
    (type === 'int' && typeof value === 'number' && Number.isInteger(value)) ||
    (type === 'float' && typeof value === 'number' && Number.isFinite(value)) ||
    (type === 'bool' && typeof value === 'boolean') ||
    (type === 'list' && Array.isArray(value)) ||
    (type === 'dict' && isMapping(value));
  if (ok) return undefined;
  const found = value === null ? 'null' : Array.isArray(value) ? 'a list' : isMapping(value) ? 'a mapping' : `${typeof value} ${JSON.stringify(value)}`;
  return `expected ${type}, got ${found}`;
}

/** Converts an input given as text (`--input key=value`) to the declared type. */
function fromText(type: StateType, text: string): { value?: unknown; problem?: string } {
  switch (type) {
    case 'str':
    case 'any':
      return { value: text };
    case 'int':
    case 'float': {
      const n = /^\s*[-+]?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?\s*$/i.test(text) ? Number(text) : Number.NaN;
      if (!Number.isFinite(n) || (type === 'int' && !Number.isInteger(n))) return { problem: `expected ${type}, got ${JSON.stringify(text)}` };
      return { value: n };
    }
    case 'bool': {
      const word = text.trim().toLowerCase();
      if (['true', '1', 'yes', 'on'].includes(word)) return { value: true };
      if (['false', '0', 'no', 'off'].includes(word)) return { value: false };
      return { problem: `expected bool (true or false), got ${JSON.stringify(text)}` };
    }
    case 'list':
    case 'dict': {
      let value: unknown;
      try {
        value = JSON.parse(text);
      } catch {
        return { problem: `expected ${type} as JSON, got ${JSON.stringify(text.length > 40 ? text.slice(0, 40) + '…' : text)}` };
      }
      const problem = checkType(type, value);
      return problem ? { problem } : { value };
    }
  }
}

/**
 * Parses and checks a workflow's structure: top-level keys, `settings.llm` (the same checks as a settings file),
 * `state_schema`, and each node's name, action and parameters (names, required ones, literal values, template
 * syntax). References to state are checked by {@link prepareWorkflow}, which knows the input.
 *
 * @throws WorkflowError (ERR_WORKFLOW_INVALID) listing every problem, each with its node name.
 */
export function parseWorkflow(text: string, options: { source?: string; dir?: string } & WorkflowLimits = {}): Workflow {
  rejectUnknownKeys(options, ['source', 'dir', 'maxBytes', 'maxAliasCount'], 'parseWorkflow() options');
  const source = options.source ?? 'workflow';
  const dir = options.dir ?? process.cwd();
  const { maxBytes, maxAliasCount } = checkLimits(options, 'parseWorkflow() options');
  if (typeof text !== 'string') throw new LlamaError('ERR_INVALID_ARGUMENT', 'parseWorkflow: text must be a string');
  const bytes = Buffer.byteLength(text, 'utf8');
  if (bytes > maxBytes) throw new WorkflowError(source, [{ path: '', problem: tooLarge(bytes, maxBytes) }]);
  const issues: WorkflowIssue[] = [];
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new WorkflowError(
      source,
      doc.errors.map((e) => ({
        path: e.linePos?.[0] ? `line ${e.linePos[0].line}, column ${e.linePos[0].col}` : 'the document',
        problem: `not valid YAML: ${e.message.split('\n')[0]}`,
      })),
    );
  }
  const data = yamlToData(doc, maxAliasCount);
  if (data.problem !== undefined) throw new WorkflowError(source, [{ path: 'the document', problem: data.problem }]);
  const root: unknown = data.value;
  if (!isMapping(root)) throw new WorkflowError(source, [{ path: '(top level)', problem: 'expected a mapping with nodes' }]);
  for (const key of Object.keys(root)) if (!TOP_KEYS.includes(key)) issues.push({ path: key, problem: unknownKey(key, TOP_KEYS, 'the workflow') });

  const llm = checkSettings(root.settings, dir, issues);
  const stateSchema = checkSchema(root.state_schema, issues);

  const nodes: WorkflowNode[] = [];
  const names = new Set<string>();
  if (!Array.isArray(root.nodes) || root.nodes.length === 0) {
    issues.push({ path: 'nodes', problem: 'expected a list of nodes, each with name, action and params' });
  } else {
    root.nodes.forEach((raw: unknown, index: number) => {
      const at = `nodes[${index}]`;
      if (!isMapping(raw)) {
        issues.push({ path: at, problem: 'expected a mapping with name, action and params' });
        return;
      }
      const name = typeof raw.name === 'string' ? raw.name : undefined;
      const node = name ?? at;
      const before = issues.length;
      if (name === undefined) issues.push({ path: at, problem: 'missing its name' });
      else if (!NODE_NAME.test(name)) issues.push({ node, path: 'name', problem: 'must start with a letter or _ and hold only letters, digits, _ and - (it is a state key)' });
      else if (names.has(name)) issues.push({ node, path: 'name', problem: 'is used by an earlier node (node names must be unique)' });
      else if (name === META_KEY) issues.push({ node, path: 'name', problem: `"${META_KEY}" is reserved: the state keeps the action nodes' metadata there` });
      if (name !== undefined) names.add(name);
      for (const key of Object.keys(raw)) if (!NODE_KEYS.includes(key)) issues.push({ node, path: key, problem: unknownKey(key, NODE_KEYS, 'a node') });
      if (raw.run !== undefined) {
        // A script node: JavaScript, run in a sandbox (its syntax is checked by checkWorkflowScripts).
        if (raw.action !== undefined || raw.params !== undefined) {
          issues.push({ node, path: 'run', problem: 'a node has either run (a script) or action and params, not both' });
        } else if (typeof raw.run !== 'string' || raw.run.trim() === '') {
          issues.push({ node, path: 'run', problem: 'expected the JavaScript body of the script (a non-empty string)' });
        }
        if (issues.length === before) nodes.push({ name: name!, run: raw.run as string });
        return;
      }
      const action = raw.action;
      if (action === undefined) issues.push({ node, path: 'action', problem: `missing (one of ${LLM_ACTION_NAMES.join(', ')}, or run: with a script)` });
      else if (!isLlmAction(action)) {
        const hint = typeof action === 'string' ? suggestKey(action, LLM_ACTION_NAMES) : undefined;
        issues.push({
          node,
          path: 'action',
          problem: `unknown action ${JSON.stringify(action)} (known: ${LLM_ACTION_NAMES.join(', ')})${hint ? `; did you mean "${hint}"?` : ''}`,
        });
      }
      const params = raw.params ?? {};
      if (!isMapping(params)) issues.push({ node, path: 'params', problem: 'expected a mapping of parameters' });
      else {
        // Template syntax anywhere in the parameters.
        const walk = (v: unknown, path: string) => {
          if (typeof v === 'string') {
            try {
              parseTemplate(v);
            } catch (error) {
              issues.push({ node, path, problem: (error as Error).message });
            }
          } else if (Array.isArray(v)) v.forEach((item, i) => walk(item, `${path}[${i}]`));
          else if (isMapping(v)) for (const [k, item] of Object.entries(v)) walk(item, `${path}.${k}`);
        };
        walk(params, 'params');
        if (isLlmAction(action)) for (const i of checkActionParams(action, params, true)) issues.push({ node, ...i });
      }
      if (issues.length === before) nodes.push({ name: name!, action: action as LlmActionName, params: params as Record<string, unknown> });
    });
  }
  if (issues.length > 0) throw new WorkflowError(source, issues);
  return {
    source,
    name: typeof root.name === 'string' ? root.name : undefined,
    description: typeof root.description === 'string' ? root.description : undefined,
    llm,
    stateSchema,
    nodes,
  };
}

function tooLarge(bytes: number, maxBytes: number): string {
  return `the workflow is ${bytes} bytes, more than the ${maxBytes} allowed (maxBytes)`;
}

/**
 * Reads and parses a workflow file (see {@link parseWorkflow}); a relative `model_path` is relative to the file.
 * A file larger than `maxBytes` (default 1 MiB) is not read.
 *
 * @throws WorkflowError (ERR_WORKFLOW_INVALID): unreadable, too large, aliases past `maxAliasCount`, or invalid.
 */
export async function loadWorkflow(file: string, options: WorkflowLimits = {}): Promise<Workflow> {
  rejectUnknownKeys(options, ['maxBytes', 'maxAliasCount'], 'loadWorkflow() options');
  const limits = checkLimits(options, 'loadWorkflow() options');
  const path = resolve(file);
  let text: string;
  try {
    const size = (await stat(path)).size;
    if (size > limits.maxBytes) throw new WorkflowError(path, [{ path: '', problem: tooLarge(size, limits.maxBytes) }]);
    text = await readFile(path, 'utf8');
  } catch (error) {
    if (error instanceof WorkflowError) throw error;
    const code = (error as NodeJS.ErrnoException).code;
    throw new WorkflowError(path, [{ path: '', problem: code === 'ENOENT' ? 'no such file' : `the file cannot be read (${code ?? 'unknown error'})` }]);
  }
  return parseWorkflow(text, { source: path, dir: dirname(path), ...limits });
}

/**
 * Builds the initial state and checks everything that can be checked before a model loads:
 * - the input against `state_schema` (text values, as from `--input key=value`, are converted to the declared
 *   type; `textInput` marks which keys are text);
 * - every `{{ state.… }}` reference: it must name an input, a `state_schema` default, or an earlier node; an
 *   action node's value is its text or its vector (`{{ state.<node>.<key> }}` is an error: the metadata is in
 *   `state._meta.<node>`, whose keys are checked); references into the input are followed to the end;
 * - parameters whose templates use only the input are rendered and type-checked.
 * After a `run:` node, a reference may name a key that script sets: such references are checked when they are
 * rendered.
 *
 * @returns the initial state
 * @throws WorkflowError (ERR_WORKFLOW_INVALID) listing every problem, each with its node name.
 */
export function prepareWorkflow(
  workflow: Workflow,
  input: Record<string, unknown> = {},
  options: { textInput?: ReadonlySet<string> } = {},
): Record<string, unknown> {
  rejectUnknownKeys(options, ['textInput'], 'prepareWorkflow() options');
  const issues: WorkflowIssue[] = [];
  // A null-prototype state: `__proto__`, `constructor` and `prototype` are keys like any other (an input, a node's
  // result), never Object.prototype's own.
  const state: Record<string, unknown> = Object.create(null);
  const badInput = new Set<string>();
  const fieldOf = (key: string): StateField | undefined => (Object.hasOwn(workflow.stateSchema, key) ? workflow.stateSchema[key] : undefined);
  for (const [key, field] of Object.entries(workflow.stateSchema)) if (field.default !== undefined) state[key] = structuredClone(field.default);
  for (const [key, value] of Object.entries(input)) {
    const field = fieldOf(key);
    if (key === META_KEY) {
      issues.push({ path: `input ${key}`, problem: `"${META_KEY}" is reserved: the state keeps the action nodes' metadata there` });
      continue;
    }
    if (!field) {
      state[key] = value;
      continue;
    }
    if (typeof value === 'string' && options.textInput?.has(key)) {
      const r = fromText(field.type, value);
      if (r.problem) {
        issues.push({ path: `input ${key}`, problem: r.problem });
        badInput.add(key);
      } else state[key] = r.value;
    } else {
      const problem = checkType(field.type, value);
      if (problem) {
        issues.push({ path: `input ${key}`, problem });
        badInput.add(key);
      } else state[key] = value;
    }
  }

  const fromInput = new Set(Object.keys(state));
  const earlier = new Map<string, LlmActionName>();
  const later = new Map(workflow.nodes.map((n, i) => [n.name, i]));
  // After a script, any key may have been set or changed: references are then checked when rendered.
  let scripted = false;
  workflow.nodes.forEach((node, index) => {
    if (node.run !== undefined) {
      scripted = true;
      return;
    }
    const absent = (reference: { text: string }, where: string, why: string) =>
      issues.push({ node: node.name, path: where, problem: `${reference.text} names an absent key: ${why}` });
    const whyAbsent = (key: string, first: string | number) => {
      const at = later.get(key);
      return at === undefined
        ? `${formatPath([first])} is not in the input${fieldOf(key) ? ' (state_schema declares it, without a default)' : ''} and no node is named "${key}"`
        : at === index
          ? `it is this node's own result, which does not exist yet`
          : `node "${key}" runs later`;
    };
    for (const [param, value] of Object.entries(node.params)) {
      // A parameter fed only by the input can be rendered and checked now.
      let renderable = !scripted;
      const references = templateReferences(value, `params.${param}`);
      for (const { where, reference } of references) {
        const [first, second, third] = reference.path;
        const key = String(first);
        const produced = earlier.get(key);
        if (key === META_KEY) {
          renderable = false;
          if (second === undefined) continue;
          const of = earlier.get(String(second));
          if (of) {
            const keys = LLM_ACTIONS[of].metaKeys;
            if (third !== undefined && !keys.includes(String(third))) {
              issues.push({ node: node.name, path: where, problem: `${reference.text}: the metadata of ${of} has no key ${JSON.stringify(String(third))} (it has ${keys.join(', ')})` });
            }
          } else if (!scripted) {
            const at = later.get(String(second));
            const why = at === undefined ? `no action node is named "${second}"` : at < index ? `node "${second}" is a script node` : at === index ? `it is this node's own, which does not exist yet` : `node "${second}" runs later`;
            absent(reference, where, `${formatPath([META_KEY, second])} holds the metadata of an earlier action node, and ${why}`);
          }
        } else if (produced) {
          renderable = false;
          if (second !== undefined && !scripted) {
            const kind = LLM_ACTIONS[produced].result;
            if (kind === 'text' || typeof second !== 'number') {
              const stored = kind === 'text' ? 'the generated text (a string)' : 'the embedding (a list of numbers)';
              issues.push({
                node: node.name,
                path: where,
                problem:
                  `${reference.text}: state.${key} is ${stored}, it has no key ${JSON.stringify(String(second))}; ` +
                  `${produced}'s metadata is in state.${META_KEY}.${key} (${LLM_ACTIONS[produced].metaKeys.join(', ')})`,
              });
            }
          }
        } else if (fromInput.has(key)) {
          if (scripted) continue;
          const r = lookup(state, reference.path);
          if (!r.found) {
            renderable = false;
            absent(reference, where, describeMissing(reference.path, r.depth, state));
          }
        } else if (badInput.has(key)) {
          renderable = false; // its problem is already reported
        } else {
          renderable = false;
          if (!scripted) absent(reference, where, whyAbsent(key, first));
        }
      }
      const spec = Object.hasOwn(LLM_ACTIONS[node.action].params, param) ? LLM_ACTIONS[node.action].params[param] : undefined;
      if (renderable && references.length > 0 && spec) {
        const problem = checkParamValue(spec, renderTemplate(value, state));
        if (problem) issues.push({ node: node.name, path: `params.${param}`, problem: `after templating: ${problem}` });
      }
    }
    earlier.set(node.name, node.action);
  });
  if (issues.length > 0) throw new WorkflowError(workflow.source, issues);
  return state;
}

/**
 * Compiles every `run:` script of a workflow (in the sandbox, without running it).
 *
 * @throws WorkflowError (ERR_WORKFLOW_INVALID) listing each script's syntax error with its node and line.
 */
export async function checkWorkflowScripts(workflow: Workflow): Promise<void> {
  const issues: WorkflowIssue[] = [];
  for (const node of workflow.nodes) {
    if (node.run === undefined) continue;
    try {
      await checkScript(node.name, node.run);
    } catch (error) {
      if (!(error instanceof WorkflowScriptError)) throw error;
      issues.push({ node: node.name, path: error.line !== undefined ? `run, line ${error.line}` : 'run', problem: error.message.replace(/^node "[^"]*" \(run\): /, '').replace(/ \(line \d+ of the script\)$/, '') });
    }
  }
  if (issues.length > 0) throw new WorkflowError(workflow.source, issues);
}
