import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

import { suggestKey } from '../config/schema';
import { UsageError } from './output';

type OptionSpec = { type: 'string' | 'boolean'; short?: string; multiple?: boolean };
export type OptionSpecs = Record<string, OptionSpec>;

/** Options every command that uses a model accepts. */
export const MODEL_OPTIONS = {
  model: { type: 'string', short: 'm' },
  settings: { type: 'string' },
  backend: { type: 'string' },
  'api-base': { type: 'string' },
  'ctx-size': { type: 'string', short: 'c' },
  threads: { type: 'string', short: 't' },
  template: { type: 'string' },
  rpc: { type: 'string' },
  'draft-model': { type: 'string' },
  'draft-max': { type: 'string' },
  'draft-min': { type: 'string' },
  'draft-ngram': { type: 'boolean' },
} as const satisfies OptionSpecs;

/** Options of every command. */
export const GLOBAL_OPTIONS = {
  verbose: { type: 'boolean', short: 'v' },
  quiet: { type: 'boolean', short: 'q' },
  progress: { type: 'boolean' },
  'no-progress': { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies OptionSpecs;

/** Sampling options of complete and chat. */
export const SAMPLING_OPTIONS = {
  'max-tokens': { type: 'string', short: 'n' },
  temperature: { type: 'string' },
  'top-p': { type: 'string' },
  seed: { type: 'string' },
  stop: { type: 'string', multiple: true },
  grammar: { type: 'string' },
  'json-schema': { type: 'string' },
} as const satisfies OptionSpecs;

export const MODEL_HELP = `Model options:
  -m, --model PATH       the GGUF file (else TEA_MODEL_PATH, llm.model_path, $APPDIR/usr/share/models, ~/.cache/tea/models)
      --settings FILE    a YAML settings file (its llm block)
      --backend KIND     local (default), api or mock
      --api-base URL     an OpenAI-compatible server (with --backend api, or as the fallback of a local model)
  -c, --ctx-size N       context size in tokens (default: auto-configured from the model)
  -t, --threads N        CPU threads (default: all cores)
      --template NAME    chat template: a llama.cpp built-in name (chatml, llama3, phi3, ...) or a Jinja string
      --rpc HOST:PORT,…  llama.cpp rpc-servers that hold the model's layers (see tea-llama rpc-server)
      --draft-model PATH a smaller GGUF of the same vocabulary that drafts tokens (speculative decoding)
      --draft-max N      most tokens drafted per step (default 3 with a draft model, 48 for --draft-ngram)
      --draft-min N      fewest tokens of a draft model's draft worth verifying (default 0)
      --draft-ngram      draft by looking up the last tokens in the text so far (no second model)`;

export const SAMPLING_HELP = `Sampling options:
  -n, --max-tokens N     most tokens to generate (default 100, or llm.max_tokens)
      --temperature T    0 is greedy (default 0.7, or llm.temperature)
      --top-p P          nucleus sampling threshold
      --seed N           sampling seed, for reproducible output
      --stop TEXT        end the reply before TEXT (repeatable)
      --grammar FILE     a GBNF grammar file the output must match
      --json-schema S    a JSON Schema (inline JSON, or a file) the output must match; --json adds "parsed"`;

export const GLOBAL_HELP = `Output options:
  -v, --verbose          log what is chosen and why; print stack traces with errors
  -q, --quiet            no warnings, no progress bars
      --progress         draw progress bars even when stderr is not a terminal
      --no-progress      never draw progress bars
  -h, --help             this help`;

export interface Parsed<T extends OptionSpecs> {
  values: { [K in keyof T]?: T[K]['multiple'] extends true ? string[] : T[K]['type'] extends 'boolean' ? boolean : string };
  positionals: string[];
}

/** Parses a command's arguments; unknown options and missing values are UsageErrors (exit code 2). */
export function parse<T extends OptionSpecs>(command: string, args: string[], options: T, positionals = true): Parsed<T> {
  try {
    const r = parseArgs({ args, options, allowPositionals: positionals, strict: true });
    return { values: r.values as Parsed<T>['values'], positionals: r.positionals };
  } catch (error) {
    const e = error as NodeJS.ErrnoException;
    const option = /'(-{1,2}[^' <]+)/.exec(e.message)?.[1];
    if (e.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' && option) {
      const names = Object.keys(options);
      const hint = option.startsWith('--') ? suggestKey(option.slice(2), names) : undefined;
      throw new UsageError(`unknown option ${option}${hint ? `; did you mean --${hint}?` : ''}`, command);
    }
    if (e.code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE' && option) {
      if (/ambiguous/.test(e.message)) throw new UsageError(`${option} needs a value; write ${option}=VALUE for a value starting with -`, command);
      if (/does not take/.test(e.message)) throw new UsageError(`${option} takes no value`, command);
      throw new UsageError(`${option} needs a value`, command);
    }
    if (e.code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL') throw new UsageError(`unexpected argument: ${e.message.replace(/^.*?'(.*)'.*$/s, '$1')}`, command);
    throw new UsageError(e.message, command);
  }
}

/** An integer option in [min, max], or undefined when absent. */
export function intOption(command: string, name: string, text: string | undefined, min: number, max: number): number | undefined {
  if (text === undefined) return undefined;
  const n = /^\s*[-+]?\d+\s*$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isInteger(n) || n < min || n > max) throw new UsageError(`--${name} must be an integer from ${min} to ${max}, not ${JSON.stringify(text)}`, command);
  return n;
}

/** A number option in [min, max], or undefined when absent. */
export function numberOption(command: string, name: string, text: string | undefined, min: number, max: number): number | undefined {
  if (text === undefined) return undefined;
  const n = /^\s*[-+]?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?\s*$/i.test(text) ? Number(text) : Number.NaN;
  if (!Number.isFinite(n) || n < min || n > max) throw new UsageError(`--${name} must be a number from ${min} to ${max}, not ${JSON.stringify(text)}`, command);
  return n;
}

/** The sampling options as backend options. */
export function samplingOptions(
  command: string,
  v: Parsed<typeof SAMPLING_OPTIONS>['values'],
): { maxTokens?: number; temperature?: number; topP?: number; seed?: number; stop?: string[]; grammar?: string; jsonSchema?: object } {
  const stop = v.stop?.filter((s) => s.length > 0);
  const file = (name: string, path: string) => {
    try {
      return readFileSync(path, 'utf8');
    } catch (error) {
      throw new UsageError(`--${name}: cannot read ${path}: ${(error as Error).message}`, command);
    }
  };
  let jsonSchema: object | undefined;
  const schemaText = v['json-schema'];
  if (schemaText !== undefined) {
    const text = schemaText.trimStart().startsWith('{') ? schemaText : file('json-schema', schemaText);
    try {
      jsonSchema = JSON.parse(text) as object;
    } catch (error) {
      throw new UsageError(`--json-schema is not JSON: ${(error as Error).message}`, command);
    }
  }
  if (v.stop && stop!.length !== v.stop.length) throw new UsageError('--stop needs a non-empty text', command);
  const out = {
    maxTokens: intOption(command, 'max-tokens', v['max-tokens'], 1, 2 ** 31 - 1),
    temperature: numberOption(command, 'temperature', v.temperature, 0, 100),
    topP: numberOption(command, 'top-p', v['top-p'], 0, 1),
    seed: intOption(command, 'seed', v.seed, 0, 4294967295),
    stop: stop && stop.length > 0 ? stop : undefined,
    grammar: v.grammar === undefined ? undefined : file('grammar', v.grammar),
    jsonSchema,
  };
  return Object.fromEntries(Object.entries(out).filter(([, value]) => value !== undefined));
}

/** Whether progress bars are drawn: on a terminal by default; --progress forces, --no-progress / --quiet disable. */
export function progressEnabled(v: { progress?: boolean; 'no-progress'?: boolean; quiet?: boolean }): boolean {
  if (v['no-progress'] || v.quiet) return false;
  return Boolean(v.progress) || Boolean(process.stderr.isTTY);
}
