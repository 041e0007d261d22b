import type { LlmBackend } from '../backends/llm-backend';
import { LlamaError, toLlamaError } from '../errors';
import { createLlmActions } from './actions';
import { prepareWorkflow, type Workflow, type WorkflowNode } from './loader';

export interface RunWorkflowOptions {
  /** Initial state (merged over the `state_schema` defaults). */
  input?: Record<string, unknown>;
  /** Input keys whose values are text to convert to their `state_schema` type (as from `--input key=value`). */
  textInput?: ReadonlySet<string>;
  /**
   * The backend, or a function that creates it. The function is called once, after the whole workflow is checked,
   * so an invalid workflow never loads a model.
   */
  backend: LlmBackend | (() => LlmBackend | Promise<LlmBackend>);
  /** Receives llm.stream's text as it is generated, with the node's name. */
  onChunk?: (chunk: string, node: string) => void;
  /** Called before and after each node. */
  onNodeStart?: (node: WorkflowNode) => void;
  onNodeEnd?: (node: WorkflowNode, result: Record<string, unknown>) => void;
  /** Stops the run: the running action stops, and the run rejects with ERR_ABORTED. */
  signal?: AbortSignal;
}

/**
 * Runs a workflow's nodes in order. Each node's params are templated from the state, its action runs, and its
 * result is stored in `state[<node name>]`. Everything is checked ({@link prepareWorkflow}) before the backend is
 * created. A failing node rejects with its error's code and a message that starts with the node's name.
 *
 * @returns the final state
 */
export async function runWorkflow(workflow: Workflow, options: RunWorkflowOptions): Promise<Record<string, unknown>> {
  const state = prepareWorkflow(workflow, options.input ?? {}, { textInput: options.textInput });
  // Created only now that the whole workflow is checked; its errors (no model, bad settings) are about the run.
  const backend = typeof options.backend === 'function' ? await options.backend() : options.backend;
  let current = '';
  const actions = createLlmActions({
    backend,
    signal: options.signal,
    onChunk: options.onChunk ? (chunk) => options.onChunk!(chunk, current) : undefined,
  });
  for (const node of workflow.nodes) {
    if (options.signal?.aborted) throw new LlamaError('ERR_ABORTED', `the workflow was stopped before node "${node.name}"`);
    current = node.name;
    options.onNodeStart?.(node);
    let result: Record<string, unknown>;
    try {
      result = await actions[node.action](node.params, state);
    } catch (error) {
      const e = toLlamaError(error);
      throw new LlamaError(e.code, `node "${node.name}" (${node.action}): ${e.message}`, { cause: error });
    }
    if (options.signal?.aborted) throw new LlamaError('ERR_ABORTED', `the workflow was stopped in node "${node.name}"`);
    state[node.name] = result;
    options.onNodeEnd?.(node, result);
  }
  return state;
}
