import type { LlmBackend } from '../backends/llm-backend';
import { rejectUnknownKeys } from '../engine/request';
import { LlamaError, toLlamaError } from '../errors';
import { createLlmActions, META_KEY } from './actions';
import { checkWorkflowScripts, prepareWorkflow, type Workflow, type WorkflowNode } from './loader';
import { runScript } from './script';

export interface RunWorkflowOptions {
  /** Initial state (merged over the `state_schema` defaults). Default: `{}`. */
  input?: Record<string, unknown>;
  /** Input keys whose values are text to convert to their `state_schema` type (as from `--input key=value`). Default: none. */
  textInput?: ReadonlySet<string>;
  /**
   * The backend, or a function that creates it. The function is called once, when the first action node runs
   * (after the whole workflow is checked), so an invalid workflow never loads a model.
   */
  backend: LlmBackend | (() => LlmBackend | Promise<LlmBackend>);
  /** Receives llm.stream's text as it is generated, with the node's name. Default: none. */
  onChunk?: (chunk: string, node: string) => void;
  /** Called before each node. Default: none. */
  onNodeStart?: (node: WorkflowNode) => void;
  /** Called after each node, with the state it left. Default: none. */
  onNodeEnd?: (node: WorkflowNode, state: Record<string, unknown>) => void;
  /** Stops the run: the running action stops, and the run rejects with ERR_ABORTED. Default: none. */
  signal?: AbortSignal;
  /** Time limit of each `run:` script, in milliseconds. Default 1000. */
  scriptTimeoutMs?: number;
  /** Memory limit of each `run:` script, in bytes. Default 32 MiB. */
  scriptMemoryBytes?: number;
}

const OPTION_KEYS = ['input', 'textInput', 'backend', 'onChunk', 'onNodeStart', 'onNodeEnd', 'signal', 'scriptTimeoutMs', 'scriptMemoryBytes'];

/**
 * Runs a workflow's nodes in order. An action node's params are templated from the state and its action runs:
 * its value (the generated text, or the embedding) is stored in `state[<node name>]` and its metadata (finish
 * reason, usage, timings, model, backend, and for messages the conversation with the reply) in
 * `state._meta[<node name>]`. A `run:` node's script runs in a sandbox on the state (see runScript). Everything
 * is checked ({@link prepareWorkflow}, {@link checkWorkflowScripts}) before the backend is created. A failing
 * node rejects with its error's code and a message that starts with the node's name.
 *
 * @returns the final state
 */
export async function runWorkflow(workflow: Workflow, options: RunWorkflowOptions): Promise<Record<string, unknown>> {
  if (typeof options !== 'object' || options === null) throw new LlamaError('ERR_INVALID_ARGUMENT', 'runWorkflow: options must be an object with a backend');
  rejectUnknownKeys(options, OPTION_KEYS, 'runWorkflow() options');
  let state = prepareWorkflow(workflow, options.input ?? {}, options.textInput ? { textInput: options.textInput } : {});
  await checkWorkflowScripts(workflow);
  let current = '';
  const actions = createLlmActions({
    // Created only now that the whole workflow is checked; its errors (no model, bad settings) are about the run.
    backend: options.backend,
    ...(options.signal ? { signal: options.signal } : {}),
    ...(options.onChunk ? { onChunk: (chunk: string) => options.onChunk!(chunk, current) } : {}),
  });
  for (const node of workflow.nodes) {
    if (options.signal?.aborted) throw new LlamaError('ERR_ABORTED', `the workflow was stopped before node "${node.name}"`);
    current = node.name;
    options.onNodeStart?.(node);
    if (node.run !== undefined) {
      state = await runScript(node.name, node.run, state, { timeoutMs: options.scriptTimeoutMs, memoryBytes: options.scriptMemoryBytes });
    } else {
      let outcome;
      try {
        outcome = await actions[node.action].withMeta(node.params, state);
      } catch (error) {
        const e = toLlamaError(error);
        throw new LlamaError(e.code, `node "${node.name}" (${node.action}): ${e.message}`, { cause: error });
      }
      if (options.signal?.aborted) throw new LlamaError('ERR_ABORTED', `the workflow was stopped in node "${node.name}"`);
      const meta = Object.hasOwn(state, META_KEY) ? state[META_KEY] : undefined;
      // Null-prototype objects: a node named __proto__ or constructor keeps its result like any other.
      state[node.name] = outcome.value;
      state[META_KEY] = Object.assign(Object.create(null), typeof meta === 'object' && meta !== null && !Array.isArray(meta) ? meta : {}, { [node.name]: outcome.meta });
    }
    options.onNodeEnd?.(node, state);
  }
  return state;
}
