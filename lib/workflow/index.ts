export {
  LLM_ACTIONS,
  LLM_ACTION_NAMES,
  checkActionParams,
  createLlmActions,
  isLlmAction,
  META_KEY,
  type ActionHandler,
  type ActionMeta,
  type ActionOutcome,
  type ActionValue,
  type ActionParamSpec,
  type ActionParamType,
  type LlmActionContext,
  type LlmActionDefinition,
  type LlmActionName,
  type ParamIssue,
} from './actions';
export {
  WorkflowError,
  checkWorkflowScripts,
  loadWorkflow,
  parseWorkflow,
  prepareWorkflow,
  type ActionNode,
  type ScriptNode,
  type StateField,
  type StateType,
  type Workflow,
  type WorkflowIssue,
  type WorkflowNode,
} from './loader';
export { runWorkflow, type RunWorkflowOptions } from './runner';
export {
  DEFAULT_SCRIPT_MEMORY_BYTES,
  DEFAULT_SCRIPT_TIMEOUT_MS,
  runScript,
  WorkflowScriptError,
  type ScriptFailure,
  type ScriptLimits,
} from './script';
export { parseTemplate, renderTemplate, templateReferences, type StateReference, type TemplatePart } from './template';
