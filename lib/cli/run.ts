import { readFile, writeFile } from 'node:fs/promises';
import { extname, resolve } from 'node:path';

import { parse as parseYaml } from 'yaml';

import type { LlmBackend } from '../backends/llm-backend';
import { LlamaError } from '../errors';
import { checkWorkflowScripts, loadWorkflow, prepareWorkflow, runWorkflow } from '../workflow';
import { GLOBAL_HELP, GLOBAL_OPTIONS, MODEL_HELP, MODEL_OPTIONS, parse } from './args';
import { commandLogger, openBackend } from './backend';
import { EXIT, formatJson, UsageError, writeOut } from './output';
import { onInterrupt } from './signals';

export const RUN_HELP = `Usage: tea-llama run [options] WORKFLOW.yaml

Runs a YAML workflow: its nodes in order. An action node calls llm.call, llm.chat, llm.stream or llm.embed with
params templated from the state ({{ state.key }}) and stores the text (or the embedding) in state[<node name>],
its metadata in state._meta[<node name>]. A run: node runs its JavaScript on the state in a sandbox. The whole
workflow is checked before a model loads.

Output: stdout carries the final state as JSON, and nothing else; llm.stream's text goes to stderr as it arrives.
With --stream, stdout carries the streamed text instead, and no JSON.

Options:
  -i, --input KEY=VALUE  an initial state value (repeatable); converted to the type state_schema declares
      --input-file FILE  initial state from a JSON or YAML mapping (--input values win)
  -o, --output FILE      write the final state to FILE (stdout then stays empty, or carries --stream's text)
      --stream           print llm.stream's text on stdout as it arrives, and no JSON
      --check            only check the workflow and the input, load nothing

The workflow's settings.llm block is the lowest settings layer: --settings, the environment and these options
override it.

${MODEL_HELP}

${GLOBAL_HELP}`;

const OPTIONS = {
  ...MODEL_OPTIONS,
  ...GLOBAL_OPTIONS,
  input: { type: 'string', short: 'i', multiple: true },
  'input-file': { type: 'string' },
  output: { type: 'string', short: 'o' },
  check: { type: 'boolean' },
  stream: { type: 'boolean' },
} as const;

async function readInputFile(file: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await readFile(resolve(file), 'utf8');
  } catch (error) {
    throw new LlamaError('ERR_INVALID_ARGUMENT', `--input-file ${file}: ${(error as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (error as Error).message}`);
  }
  let value: unknown;
  try {
    value = extname(file).toLowerCase() === '.json' ? JSON.parse(text) : parseYaml(text);
  } catch (error) {
    throw new LlamaError('ERR_INVALID_ARGUMENT', `--input-file ${file} is not valid ${extname(file).toLowerCase() === '.json' ? 'JSON' : 'YAML'}: ${(error as Error).message.split('\n')[0]}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new LlamaError('ERR_INVALID_ARGUMENT', `--input-file ${file} must hold a mapping of keys to values`);
  return value as Record<string, unknown>;
}

export async function runCommand(args: string[]): Promise<number> {
  const { values: v, positionals } = parse('run', args, OPTIONS);
  if (v.help) {
    await writeOut(RUN_HELP + '\n');
    return EXIT.ok;
  }
  if (positionals.length !== 1) throw new UsageError(positionals.length === 0 ? 'give the workflow file' : 'run takes one workflow file', 'run');

  // Null prototype: `--input constructor=x` or `__proto__=x` sets that key, as any other.
  const input: Record<string, unknown> = Object.assign(Object.create(null), v['input-file'] ? await readInputFile(v['input-file']) : {});
  const textInput = new Set<string>();
  for (const pair of v.input ?? []) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new UsageError(`--input takes KEY=VALUE, not ${JSON.stringify(pair)}`, 'run');
    const key = pair.slice(0, eq).trim();
    input[key] = pair.slice(eq + 1);
    textInput.add(key);
  }

  // Everything is checked here, before a model loads.
  const workflow = await loadWorkflow(positionals[0]);
  prepareWorkflow(workflow, input, { textInput });
  await checkWorkflowScripts(workflow);
  const logger = commandLogger(v);
  if (v.check) {
    process.stderr.write(`${workflow.source}: ${workflow.nodes.length} nodes, valid\n`);
    return EXIT.ok;
  }

  const controller = new AbortController();
  const stopInterrupt = onInterrupt(() => controller.abort());
  let backend: LlmBackend | undefined;
  let streamed = false;
  let endsWithNewline = true;
  // stdout carries one thing: the JSON state, or with --stream the streamed text. Streamed text otherwise goes to stderr.
  const text = v.stream ? process.stdout : process.stderr;
  const showText = v.stream || !v.quiet;
  try {
    const state = await runWorkflow(workflow, {
      input,
      textInput,
      signal: controller.signal,
      backend: async () => {
        backend = await openBackend('run', v, workflow.llm);
        return backend;
      },
      onNodeStart: (node) => logger.info(`node "${node.name}": ${node.action}`),
      onChunk: (chunk) => {
        if (!showText) return;
        streamed = true;
        endsWithNewline = chunk.endsWith('\n');
        text.write(chunk);
      },
      onNodeEnd: () => {
        if (streamed && !endsWithNewline) text.write('\n');
        streamed = false;
        endsWithNewline = true;
      },
    });
    const json = formatJson(state) + '\n';
    if (v.output) await writeFile(resolve(v.output), json);
    else if (!v.stream) await writeOut(json);
    return EXIT.ok;
  } catch (error) {
    if (controller.signal.aborted) {
      process.stderr.write(`\n${(error as Error).message}\n`);
      return EXIT.interrupted;
    }
    throw error;
  } finally {
    stopInterrupt();
    await backend?.dispose();
  }
}
