import { readFileSync, statSync } from 'node:fs';
import { basename, resolve } from 'node:path';

import { parse as parseYaml } from 'yaml';

import type { LlmBackend } from '../backends/llm-backend';
import { resolveModelPath } from '../config/model-path';
import type { LlmSettings, LlmSettingsInput } from '../config/schema';
import { resolveSettings } from '../config/settings';
import { createLlmBackend } from '../create-backend';
import { LlamaError } from '../errors';
import { silentLogger, type Logger } from '../logger';
import { redactUrl } from '../redact';
import { isRpcEndpoint } from '../rpc';
import { intOption, loraOptions, progressEnabled, type MODEL_OPTIONS, type GLOBAL_OPTIONS, type Parsed } from './args';
import { cliLogger, UsageError } from './output';
import { loadProgress } from './progress';

export type ModelValues = Parsed<typeof MODEL_OPTIONS & typeof GLOBAL_OPTIONS>['values'];

function isMapping(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** `over` merged into `base`, mapping by mapping. */
function merge(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out = { ...base };
  for (const [k, v] of Object.entries(over)) out[k] = isMapping(out[k]) && isMapping(v) ? merge(out[k] as Record<string, unknown>, v) : v;
  return out;
}

/** The explicit settings the command line gives (they win over the environment and the files). */
function explicitSettings(command: string, v: ModelValues): LlmSettingsInput {
  const explicit: LlmSettingsInput = {};
  if (v.model !== undefined) {
    const path = resolve(v.model);
    let exists = false;
    try {
      exists = statSync(path).isFile() || statSync(path).isDirectory();
    } catch {
      exists = false;
    }
    // An explicit model that is missing is an error, not a reason to quietly pick another one.
    if (!exists) throw new LlamaError('ERR_MODEL_NOT_FOUND', `model file not found: ${path}`);
    explicit.modelPath = path;
  }
  if (v.backend !== undefined) {
    if (!['local', 'api', 'mock'].includes(v.backend)) throw new UsageError(`--backend must be local, api or mock, not ${JSON.stringify(v.backend)}`, command);
    explicit.backend = v.backend as LlmSettingsInput['backend'];
  }
  if (v['api-base'] !== undefined) {
    let ok = false;
    try {
      ok = ['http:', 'https:'].includes(new URL(v['api-base']).protocol);
    } catch {
      ok = false;
    }
    if (!ok) throw new UsageError(`--api-base must be an http:// or https:// URL, not ${JSON.stringify(redactUrl(v['api-base']))}`, command);
    explicit.api = { baseUrl: v['api-base'] };
  }
  const contextSize = intOption(command, 'ctx-size', v['ctx-size'], 1, 2 ** 24);
  if (contextSize !== undefined) explicit.contextSize = contextSize;
  const threads = intOption(command, 'threads', v.threads, 1, 1024);
  if (threads !== undefined) explicit.threads = threads;
  if (v.template !== undefined) {
    if (v.template.trim() === '') throw new UsageError('--template needs a name or a Jinja template', command);
    explicit.chatFormat = v.template;
  }
  if (v.rpc !== undefined) {
    const servers = v.rpc.split(',').map((s) => s.trim());
    if (!servers.every(isRpcEndpoint)) throw new UsageError(`--rpc takes host:port servers separated by commas, not ${JSON.stringify(v.rpc)}`, command);
    explicit.rpcServers = servers;
  }
  if (v['draft-model'] !== undefined) {
    const path = resolve(v['draft-model']);
    if (!statSync(path, { throwIfNoEntry: false })?.isFile()) throw new LlamaError('ERR_MODEL_NOT_FOUND', `draft model file not found: ${path}`);
    explicit.draftModel = path;
  }
  const draftMax = intOption(command, 'draft-max', v['draft-max'], 1, 1024);
  if (draftMax !== undefined) explicit.draftMax = draftMax;
  const draftMin = intOption(command, 'draft-min', v['draft-min'], 0, 1024);
  if (draftMin !== undefined) explicit.draftMin = draftMin;
  if (v['draft-ngram']) explicit.draftNgram = true;
  // --lora / --lora-scaled, in the order given (parse() merged them into 'lora-scaled').
  const lora = loraOptions(command, v['lora-scaled']);
  if (lora !== undefined) {
    explicit.lora = lora.map(({ path, scale }) => {
      const absolute = resolve(path);
      if (!statSync(absolute, { throwIfNoEntry: false })?.isFile()) throw new LlamaError('ERR_MODEL_NOT_FOUND', `LoRA adapter file not found: ${absolute}`);
      return { path: absolute, scale };
    });
  }
  return explicit;
}

/**
 * The settings a command runs with: command-line options > environment > `--settings` file > `workflowLlm` (a
 * workflow's settings.llm block) > defaults. Every layer is checked before anything loads.
 */
export async function cliSettings(command: string, v: ModelValues, workflowLlm?: Record<string, unknown>): Promise<LlmSettings> {
  const settings = explicitSettings(command, v);
  if (!workflowLlm) return resolveSettings({ file: v.settings, options: settings });
  let llm = workflowLlm;
  if (v.settings !== undefined) {
    // Checked on its own first, so its problems are reported with its file name.
    await resolveSettings({ file: v.settings, env: {} });
    const root = parseYaml(readFileSync(resolve(v.settings), 'utf8')) as unknown;
    if (isMapping(root) && isMapping(root.llm)) llm = merge(llm, root.llm);
  }
  return resolveSettings({ settings: { llm }, options: settings });
}

/** The logger of a command. */
export function commandLogger(v: ModelValues): Logger {
  return cliLogger({ verbose: Boolean(v.verbose), quiet: Boolean(v.quiet) });
}

/**
 * Creates the backend the command line and settings ask for, as the library does (`createLlmBackend`), with a
 * progress bar on stderr while a local model loads.
 */
export async function openBackend(
  command: string,
  v: ModelValues,
  workflowLlm?: Record<string, unknown>,
  runtime: { sequences?: number } = {},
): Promise<LlmBackend> {
  const settings = await cliSettings(command, v, workflowLlm);
  const logger = commandLogger(v);
  let label = 'loading model';
  if (settings.backend === 'local') {
    const found = resolveModelPath(settings, { logger: silentLogger }).path;
    if (found) label = `loading ${basename(found)}`;
  }
  const bar = loadProgress(label, { enabled: progressEnabled(v), tty: Boolean(process.stderr.isTTY) });
  try {
    const backend = await createLlmBackend(settings, { logger, onLoadProgress: (p) => bar.update(p), ...runtime });
    logger.info(`using the ${backend.kind} backend, model ${backend.model}`);
    return backend;
  } finally {
    bar.finish();
  }
}
