import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

import { SETTING_KEYS, suggestKey } from '../config/schema';
import { nearestKey, SAMPLER_NAMES, SAMPLING_FIELDS, type SamplerName, type SamplingField, type SamplingOptions } from '../engine/request';
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
  lora: { type: 'string', multiple: true },
  'lora-scaled': { type: 'string', multiple: true },
} as const satisfies OptionSpecs;

/** Options of every command. */
export const GLOBAL_OPTIONS = {
  verbose: { type: 'boolean', short: 'v' },
  quiet: { type: 'boolean', short: 'q' },
  progress: { type: 'boolean' },
  'no-progress': { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies OptionSpecs;

type SamplingKey = keyof typeof SAMPLING_FIELDS;

/** Kinds given once per flag, the flag repeated for more (`--stop a --stop b`). */
const REPEATED_KINDS: ReadonlySet<string> = new Set(['stop', 'strings', 'logitBias']);

/**
 * The flag of a sampling option: its wire name (llama-server's) in kebab-case; a list given one item per flag is
 * named in the singular, as llama.cpp's own (`--dry-sequence-breaker`).
 */
export function samplingFlag(key: SamplingKey): string {
  const f: SamplingField = SAMPLING_FIELDS[key];
  const flag = f.wire.replace(/_/g, '-');
  return f.kind === 'strings' ? flag.replace(/s$/, '') : flag;
}

const FIELD_KEYS = Object.keys(SAMPLING_FIELDS) as SamplingKey[];

/** Sampling options of complete and chat: one flag per field of SAMPLING_FIELDS, then constrained output. */
export const SAMPLING_OPTIONS: OptionSpecs = Object.freeze({
  ...Object.fromEntries(
    FIELD_KEYS.map((key): [string, OptionSpec] => {
      const f: SamplingField = SAMPLING_FIELDS[key];
      const spec: OptionSpec = f.kind === 'bool' ? { type: 'boolean' } : REPEATED_KINDS.has(f.kind) ? { type: 'string', multiple: true } : { type: 'string' };
      // -n as llama.cpp's --n-predict.
      return [samplingFlag(key), key === 'maxTokens' ? { ...spec, short: 'n' } : spec];
    }),
  ),
  grammar: { type: 'string' },
  'json-schema': { type: 'string' },
});

/** Sequence options of complete (the request model's SequenceOptions: llama-server's context shift). */
export const SEQUENCE_OPTIONS = {
  'context-shift': { type: 'boolean' },
  'n-keep': { type: 'string' },
  'n-discard': { type: 'string' },
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
      --draft-ngram      draft by looking up the last tokens in the text so far (no second model)
      --lora FILE        a LoRA adapter of the model, applied at scale 1 (repeatable, or FILE,FILE)
      --lora-scaled FILE=SCALE
                         a LoRA adapter at SCALE (repeatable; FILE:SCALE as llama.cpp's)`;

/** The help groups of the sampling options (a field in none is listed under "Other sampling"). */
const SAMPLING_GROUPS: readonly [string, readonly SamplingKey[]][] = [
  ['Sampling options', ['maxTokens', 'stop', 'ignoreEos', 'seed', 'temperature', 'topK', 'topP', 'minP', 'typicalP', 'topNSigma', 'minKeep']],
  ['Dynamic temperature, XTC and Mirostat', ['dynatempRange', 'dynatempExponent', 'xtcProbability', 'xtcThreshold', 'mirostat', 'mirostatTau', 'mirostatEta']],
  ['Repetition penalties and DRY', ['repeatPenalty', 'repeatLastN', 'frequencyPenalty', 'presencePenalty', 'dryMultiplier', 'dryBase', 'dryAllowedLength', 'dryPenaltyLastN', 'drySequenceBreakers']],
  ['Sampler order, logit bias and log-probabilities', ['samplers', 'logitBias', 'logprobs', 'topLogprobs']],
];

/** The value a flag of this kind takes, in the help. */
const VALUE_NAMES: Record<SamplingField['kind'], string> = { int: 'N', number: 'X', bool: '', stop: 'TEXT', strings: 'TEXT', samplers: 'LIST', logitBias: 'TOKEN=BIAS' };

/** Help lines `  --flag VALUE   help`, the help in one column (on the next line after a long flag). */
function helpLines(rows: [string, string][]): string {
  return rows.map(([flag, help]) => (flag.length > 31 ? `${flag}\n${' '.repeat(33)}${help}` : `${flag.padEnd(33)}${help}`)).join('\n');
}

function samplingHelp(): string {
  const grouped = new Set(SAMPLING_GROUPS.flatMap(([, keys]) => keys));
  const groups = [...SAMPLING_GROUPS, ['Other sampling', FIELD_KEYS.filter((k) => !grouped.has(k))] as const].filter(([, keys]) => keys.length > 0);
  return groups
    .map(([title, keys]) => {
      const rows = keys.map((key): [string, string] => {
        const f: SamplingField = SAMPLING_FIELDS[key];
        const flag = samplingFlag(key);
        const value = VALUE_NAMES[f.kind];
        let help = f.help.startsWith(`${value}: `) ? f.help.slice(value.length + 2) : f.help;
        // Where the settings give the default (llm.temperature, ...), say so.
        if (SETTING_KEYS.some((k) => k.yaml === f.wire)) help = help.endsWith(')') ? `${help.slice(0, -1)}, or llm.${f.wire})` : `${help} (or llm.${f.wire})`;
        return [`  ${key === 'maxTokens' ? '-n, ' : '    '}--${flag}${value ? ` ${value}` : ''}`, help];
      });
      if (title === SAMPLING_GROUPS[0]![0]) {
        rows.push(['      --grammar FILE', 'a GBNF grammar file the output must match']);
        rows.push(['      --json-schema S', 'a JSON Schema (inline JSON, or a file) the output must match; --json adds "parsed"']);
      }
      return `${title}:\n${helpLines(rows)}`;
    })
    .join('\n\n');
}

export const SAMPLING_HELP = `${samplingHelp()}

--samplers takes llama.cpp's sampler names separated by commas or semicolons (top_k;top_p;temperature).
--logit-bias TOKEN=BIAS: TOKEN a token id or a text (each of its tokens), BIAS a number or -inf (bans it); or
llama.cpp's form ID+BIAS / ID-BIAS (15043+1, 15043-inf). --logprobs and --top-logprobs need --json.`;

export const SEQUENCE_HELP = `Context shift:
      --context-shift    at the context's end, drop --n-discard tokens after the first --n-keep and go on
      --n-keep N         prompt tokens a context shift keeps, -1 the whole prompt (default 0)
      --n-discard N      tokens a context shift drops, 0 half of those after --n-keep (default 0)`;

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
    const r = parseArgs({ args, options, allowPositionals: positionals, strict: true, tokens: true });
    const values = r.values as Record<string, unknown>;
    if (Object.hasOwn(options, 'lora-scaled')) mergeLora(command, values, r.tokens);
    return { values: values as Parsed<T>['values'], positionals: r.positionals };
  } catch (error) {
    if (error instanceof UsageError) throw error;
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

/** A scale of --lora-scaled: FILE=SCALE or FILE:SCALE (llama.cpp's), split at the last separator. */
const SCALED = /^(.+)[=:]\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:e[-+]?\d+)?)\s*$/i;

/**
 * --lora FILE and --lora-scaled FILE=SCALE, each repeatable or comma-separated (as llama.cpp's), into one list in
 * the order given (an adapter's id is its position, as llama-server's): `values['lora-scaled']` as FILE=SCALE
 * texts, `values.lora` removed.
 */
function mergeLora(command: string, values: Record<string, unknown>, tokens: ReturnType<typeof parseArgs>['tokens']): void {
  const out: string[] = [];
  for (const t of tokens ?? []) {
    if (t.kind !== 'option' || (t.name !== 'lora' && t.name !== 'lora-scaled')) continue;
    for (const item of (t.value ?? '').split(',')) {
      if (t.name === 'lora') {
        if (item.trim() === '') throw new UsageError('--lora needs a file (or files separated by commas)', command);
        out.push(`${item}=1`);
      } else {
        if (!SCALED.test(item)) throw new UsageError(`--lora-scaled takes FILE=SCALE (or FILE:SCALE), SCALE a number, not ${JSON.stringify(item)}`, command);
        out.push(item);
      }
    }
  }
  delete values.lora;
  if (out.length > 0) values['lora-scaled'] = out;
  else delete values['lora-scaled'];
}

/** The adapters of --lora / --lora-scaled (after {@link parse}): paths as given, and their scales. */
export function loraOptions(command: string, texts: string[] | undefined): { path: string; scale: number }[] | undefined {
  if (texts === undefined) return undefined;
  return texts.map((text) => {
    const m = SCALED.exec(text)!;
    const scale = numberOption(command, 'lora-scaled', m[2], -1e6, 1e6)!;
    return { path: m[1]!, scale };
  });
}

/** A bias of --logit-bias: a number, or -inf (bans the token). */
function biasNumber(text: string): number | undefined {
  const t = text.trim();
  if (/^-inf(inity)?$/i.test(t)) return -Infinity;
  const n = /^[-+]?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?$/i.test(t) ? Number(t) : Number.NaN;
  return Number.isFinite(n) ? n : undefined;
}

/** One --logit-bias: TOKEN=BIAS (TOKEN an id or a text), or llama.cpp's ID+BIAS / ID-BIAS. */
function logitBiasOption(command: string, text: string): [number | string, number] {
  const bad = () =>
    new UsageError(`--logit-bias takes TOKEN=BIAS (TOKEN a token id or a text, BIAS a number or -inf) or ID+BIAS / ID-BIAS, not ${JSON.stringify(text)}`, command);
  const eq = text.lastIndexOf('=');
  if (eq > 0) {
    const token = text.slice(0, eq);
    const bias = biasNumber(text.slice(eq + 1));
    if (bias === undefined) throw bad();
    // As llama-server reads a logit_bias key: digits only is a token id.
    return [/^\d+$/.test(token) ? Number(token) : token, bias];
  }
  const m = /^(\d+)([+-].+)$/.exec(text.trim());
  const bias = m ? biasNumber(m[2]!) : undefined;
  if (!m || bias === undefined) throw bad();
  return [Number(m[1]), bias];
}

/** --samplers: llama.cpp's names (kebab-case too), separated by commas or semicolons. */
function samplersOption(command: string, text: string): SamplerName[] {
  const names = text.split(/[;,]/).map((s) => s.trim()).filter((s) => s.length > 0);
  if (names.length === 0) throw new UsageError(`--samplers needs sampler names (${SAMPLER_NAMES.join(', ')})`, command);
  return names.map((given) => {
    const name = given.replace(/-/g, '_');
    if ((SAMPLER_NAMES as readonly string[]).includes(name)) return name as SamplerName;
    const near = nearestKey(name, SAMPLER_NAMES);
    throw new UsageError(`--samplers: ${JSON.stringify(given)} is not a llama.cpp sampler${near ? `; did you mean ${near}?` : ''} (known: ${SAMPLER_NAMES.join(', ')})`, command);
  });
}

/** Sampling, constrained output and sequence options as backend options. */
export type CliGenerateOptions = SamplingOptions & { grammar?: string; jsonSchema?: object; contextShift?: boolean; nKeep?: number; nDiscard?: number };

/**
 * The sampling options (every field of SAMPLING_FIELDS, parsed by its kind in its range) and constrained output
 * as backend options; a wrong value is a UsageError naming the flag.
 */
export function samplingOptions(command: string, values: object): CliGenerateOptions {
  const v = values as Record<string, string | string[] | boolean | undefined>;
  const out: Record<string, unknown> = {};
  for (const key of FIELD_KEYS) {
    const f: SamplingField = SAMPLING_FIELDS[key];
    const flag = samplingFlag(key);
    const raw = v[flag];
    if (raw === undefined) continue;
    switch (f.kind) {
      case 'int':
        out[key] = intOption(command, flag, raw as string, f.min!, f.max!);
        break;
      case 'number':
        out[key] = numberOption(command, flag, raw as string, f.min!, f.max!);
        break;
      case 'bool':
        out[key] = raw === true;
        break;
      case 'stop':
      case 'strings': {
        const list = raw as string[];
        if (list.some((s) => s.length === 0)) throw new UsageError(`--${flag} needs a non-empty text`, command);
        // llama.cpp's "none" (no breakers): llama-server refuses an empty list; --dry-multiplier 0 turns DRY off.
        if (key === 'drySequenceBreakers' && list.includes('none')) throw new UsageError(`--${flag} none (no breakers) is not supported: turn DRY off with --dry-multiplier 0`, command);
        out[key] = list;
        break;
      }
      case 'samplers':
        out[key] = samplersOption(command, raw as string);
        break;
      case 'logitBias':
        out[key] = (raw as string[]).map((text) => logitBiasOption(command, text));
        break;
    }
  }
  // As the library: alternatives without logprobs are a mistake, not a no-op.
  if (out.topLogprobs !== undefined && !out.logprobs) throw new UsageError('--top-logprobs needs --logprobs', command);
  const file = (name: string, path: string) => {
    try {
      return readFileSync(path, 'utf8');
    } catch (error) {
      throw new UsageError(`--${name}: cannot read ${path}: ${(error as Error).message}`, command);
    }
  };
  const schemaText = v['json-schema'] as string | undefined;
  if (schemaText !== undefined) {
    const text = schemaText.trimStart().startsWith('{') ? schemaText : file('json-schema', schemaText);
    try {
      out.jsonSchema = JSON.parse(text) as object;
    } catch (error) {
      throw new UsageError(`--json-schema is not JSON: ${(error as Error).message}`, command);
    }
  }
  if (v.grammar !== undefined) out.grammar = file('grammar', v.grammar as string);
  if (v['context-shift'] !== undefined || v['n-keep'] !== undefined || v['n-discard'] !== undefined) Object.assign(out, sequenceOptions(command, v));
  return out as CliGenerateOptions;
}

/** --context-shift, --n-keep, --n-discard (the ranges of the request model's resolveSequence). */
function sequenceOptions(command: string, v: Record<string, unknown>): Pick<CliGenerateOptions, 'contextShift' | 'nKeep' | 'nDiscard'> {
  const nKeep = intOption(command, 'n-keep', v['n-keep'] as string | undefined, -1, 2 ** 31 - 1);
  const nDiscard = intOption(command, 'n-discard', v['n-discard'] as string | undefined, 0, 2 ** 31 - 1);
  // They only say how a context shift happens: without one they would change nothing.
  if (!v['context-shift']) throw new UsageError(`--${nKeep !== undefined ? 'n-keep' : 'n-discard'} needs --context-shift`, command);
  return { contextShift: true, ...(nKeep !== undefined ? { nKeep } : {}), ...(nDiscard !== undefined ? { nDiscard } : {}) };
}

/** --logprobs (and --top-logprobs) print in the JSON object only. */
export function checkLogprobsJson(command: string, options: CliGenerateOptions, json: boolean | undefined): void {
  if (options.logprobs && !json) throw new UsageError('--logprobs needs --json: the log-probabilities are printed in the JSON object', command);
}

/** Whether progress bars are drawn: on a terminal by default; --progress forces, --no-progress / --quiet disable. */
export function progressEnabled(v: { progress?: boolean; 'no-progress'?: boolean; quiet?: boolean }): boolean {
  if (v['no-progress'] || v.quiet) return false;
  return Boolean(v.progress) || Boolean(process.stderr.isTTY);
}
