export {
  LLM_ACTIONS,
  LLM_ACTION_NAMES,
  checkActionParams,
  createLlmActions,
  isLlmAction,
  type ActionHandler,
  type ActionParamSpec,
  type ActionParamType,
  type LlmActionContext,
  type LlmActionDefinition,
  type LlmActionName,
  type ParamIssue,
} from './actions';
export {
  WorkflowError,
  loadWorkflow,
  parseWorkflow,
  prepareWorkflow,
  type StateField,
  type StateType,
  type Workflow,
  type WorkflowIssue,
  type WorkflowNode,
} from './loader';
export { runWorkflow, type RunWorkflowOptions } from './runner';
export { parseTemplate, renderTemplate, templateReferences, type StateReference, type TemplatePart } from './template';
