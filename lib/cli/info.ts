import { basename } from 'node:path';

import { FAMILY_CONTEXT, getModelInfo, type ModelAutoConfig } from '../config/model-info';
import { resolveModelPath } from '../config/model-path';
import type { LlmSettings, SettingSource } from '../config/schema';
import { LlamaError } from '../errors';
import { readGguf, type GgufFile, type GgufMetadataValue } from '../gguf';
import { ggufValueToString } from '../gguf/types';
import { silentLogger } from '../logger';
import { GLOBAL_HELP, GLOBAL_OPTIONS, MODEL_HELP, MODEL_OPTIONS, parse } from './args';
import { cliSettings } from './backend';
import { listRpcDevices } from '../rpc';
import { EXIT, formatBytes, formatCount, UsageError, writeOut } from './output';

export const INFO_HELP = `Usage: tea-llama info [options] [FILE]

Shows a GGUF model's metadata (architecture, parameters, quantization, trained context, chat template) and the
configuration tea-llama would load it with, with the reason for each value. Reads only the file's header: the
model is not loaded. Without FILE, the model is found as for the other commands.

Options:
      --json             print one JSON object
      --all              also list every metadata key and value

${MODEL_HELP}

${GLOBAL_HELP}`;

const OPTIONS = { ...MODEL_OPTIONS, ...GLOBAL_OPTIONS, json: { type: 'boolean' }, all: { type: 'boolean' } } as const;

/** llama.cpp's `enum llama_ftype` (general.file_type): the quantization a file was made with. */
const FILE_TYPES: Record<number, string> = {
  0: 'F32',
  1: 'F16',
  2: 'Q4_0',
  3: 'Q4_1',
  7: 'Q8_0',
  8: 'Q5_0',
  9: 'Q5_1',
  10: 'Q2_K',
  11: 'Q3_K_S',
  12: 'Q3_K_M',
  13: 'Q3_K_L',
  14: 'Q4_K_S',
  15: 'Q4_K_M',
  16: 'Q5_K_S',
  17: 'Q5_K_M',
  18: 'Q6_K',
  19: 'IQ2_XXS',
  20: 'IQ2_XS',
  21: 'Q2_K_S',
  22: 'IQ3_XS',
  23: 'IQ3_XXS',
  24: 'IQ1_S',
  25: 'IQ4_NL',
  26: 'IQ3_S',
  27: 'IQ3_M',
  28: 'IQ2_S',
  29: 'IQ2_M',
  30: 'IQ4_XS',
  31: 'IQ1_M',
  32: 'BF16',
  36: 'TQ1_0',
  37: 'TQ2_0',
  38: 'MXFP4_MOE',
  39: 'NVFP4',
  40: 'Q1_0',
  41: 'Q2_0',
};

function num(value: GgufMetadataValue | undefined): number | undefined {
  if (typeof value === 'number') return value;
  if (typeof value === 'bigint') return Number(value);
  return undefined;
}

function str(value: GgufMetadataValue | undefined): string | undefined {
  return typeof value === 'string' && value.length > 0 ? value : undefined;
}

export interface ModelFacts {
  path: string;
  fileSize: number;
  architecture: string | null;
  name: string | null;
  parameters: number;
  /** The file type's name (general.file_type), else the most common weight type. */
  quantization: string;
  quantizationSource: 'general.file_type' | 'tensors';
  /** Tensor types and how many tensors have each, most first. */
  tensorTypes: Record<string, number>;
  trainedContextLength: number | null;
  layers: number | null;
  embeddingLength: number | null;
  vocabularySize: number | null;
  tokenizer: string | null;
  chatTemplate: string | null;
}

/** The facts `info` shows, from a parsed GGUF file. */
export function modelFacts(path: string, file: GgufFile): ModelFacts {
  const m = file.metadata;
  const arch = str(m['general.architecture']) ?? null;
  const get = (key: string) => (arch ? m[`${arch}.${key}`] : undefined);
  const parameters = file.tensors.reduce((sum, t) => sum + t.dims.reduce((p, d) => p * d, 1), 0);
  const counts: Record<string, number> = {};
  const bytes: Record<string, number> = {};
  for (const t of file.tensors) {
    counts[t.typeName] = (counts[t.typeName] ?? 0) + 1;
    if (t.dims.length >= 2) bytes[t.typeName] = (bytes[t.typeName] ?? 0) + t.byteSize;
  }
  const tensorTypes = Object.fromEntries(Object.entries(counts).sort((a, b) => b[1] - a[1]));
  const fileType = num(m['general.file_type']);
  const named = fileType !== undefined ? FILE_TYPES[fileType] : undefined;
  const heaviest = Object.entries(bytes).sort((a, b) => b[1] - a[1])[0]?.[0] ?? Object.keys(tensorTypes)[0] ?? 'none';
  const tokens = m['tokenizer.ggml.tokens'];
  const vocabularySize = Array.isArray(tokens) ? tokens.length : tokens && typeof tokens === 'object' && 'length' in tokens ? tokens.length : null;
  return {
    path,
    fileSize: file.fileSize,
    architecture: arch,
    name: str(m['general.name']) ?? null,
    parameters,
    quantization: named ?? (fileType !== undefined ? `file type ${fileType}` : heaviest),
    quantizationSource: fileType !== undefined ? 'general.file_type' : 'tensors',
    tensorTypes,
    trainedContextLength: num(get('context_length')) ?? null,
    layers: num(get('block_count')) ?? null,
    embeddingLength: num(get('embedding_length')) ?? null,
    vocabularySize,
    tokenizer: str(m['tokenizer.ggml.model']) ?? null,
    chatTemplate: str(m['tokenizer.chat_template']) ?? null,
  };
}

export interface ConfigValue {
  value: string | number;
  reason: string;
}

function sourceText(source: SettingSource | undefined, option: string, yamlKey: string, env?: string): string {
  switch (source) {
    case 'explicit':
      return `set by ${option}`;
    case 'env':
      return `set by ${env ?? 'the environment'}`;
    case 'yaml':
      return `set by llm.${yamlKey} in the settings`;
    default:
      return 'the default';
  }
}

/** The configuration tea-llama would load the model with, each value with why it is what it is. */
export function explainConfig(config: ModelAutoConfig, facts: ModelFacts, settings: LlmSettings): Record<string, ConfigValue> {
  const out: Record<string, ConfigValue> = {};
  const name = basename(config.path);
  out.family = {
    value: config.family,
    reason:
      config.familySource === 'gguf'
        ? `the GGUF metadata (general.architecture ${JSON.stringify(facts.architecture)}${facts.name ? `, general.name ${JSON.stringify(facts.name)}` : ''}) names it`
        : config.familySource === 'file-name'
          ? `the file name ${name} names it (the metadata does not)`
          : 'neither the metadata nor the file name names phi or gemma',
  };
  const trained = config.trainedContextLength;
  const familyDefault = FAMILY_CONTEXT[config.family];
  const contextReason: Record<ModelAutoConfig['contextSource'], string> = {
    explicit: sourceText(settings.sources.contextSize, '--ctx-size', 'n_ctx'),
    family:
      trained !== null
        ? `the ${config.family} family's default (${familyDefault}), within the trained length ${trained}`
        : `the ${config.family} family's default (the file does not give its trained length)`,
    trained: `the trained length: the ${config.family} family's default ${familyDefault} is above it`,
    memory: `lowered to fit free memory: ${config.notes.find((n) => n.startsWith('lowered')) ?? 'the KV cache would not fit'}`,
  };
  out.context = { value: config.contextSize, reason: contextReason[config.contextSource] };
  if (config.kvCacheBytes !== null && config.kvBytesPerToken !== null) {
    out.kv_cache = {
      value: formatBytes(config.kvCacheBytes),
      reason: `${config.kvBytesPerToken} bytes per token (f16 K and V in every layer) × ${config.contextSize} tokens`,
    };
  }
  if (settings.chatFormat !== undefined) {
    out.chat_format = { value: settings.chatFormat.length > 40 ? 'a Jinja template' : settings.chatFormat, reason: sourceText(settings.sources.chatFormat, '--template', 'chat_format') };
  } else {
    out.chat_format = config.chatTemplate
      ? { value: 'the file\'s own', reason: 'the file carries a chat template (tokenizer.chat_template)' }
      : { value: config.chatFormat, reason: `the file has no chat template: the built-in template of the ${config.family} family` };
  }
  out.threads = {
    value: settings.threads,
    reason: settings.sources.threads === 'default' ? 'every core (the default)' : sourceText(settings.sources.threads, '--threads', 'n_threads'),
  };
  out.gpu_layers = {
    value: settings.gpuLayers,
    reason:
      settings.sources.gpuLayers !== 'default'
        ? sourceText(settings.sources.gpuLayers, 'the command line', 'n_gpu_layers')
        : settings.rpcServers.length > 0
          ? 'the default with RPC servers: every layer'
          : 'the default: CPU only',
  };
  if (settings.rpcServers.length > 0) {
    out.rpc_servers = { value: settings.rpcServers.join(','), reason: sourceText(settings.sources.rpcServers, '--rpc', 'rpc_servers') };
  }
  return out;
}

/** The start of a chat template, at most `lines` lines and `chars` characters. */
export function excerpt(text: string, lines = 6, chars = 400): string {
  let out = text.slice(0, chars).split('\n').slice(0, lines).join('\n');
  const rest = text.length - out.length;
  if (rest > 0) out += ` … (${rest} more characters)`;
  return out;
}

export async function infoCommand(args: string[]): Promise<number> {
  const { values: v, positionals } = parse('info', args, OPTIONS);
  if (v.help) {
    await writeOut(INFO_HELP + '\n');
    return EXIT.ok;
  }
  if (positionals.length > 1) throw new UsageError(`info takes one file, got ${positionals.length}`, 'info');
  const settings = await cliSettings('info', { ...v, model: positionals[0] ?? v.model });
  const found = resolveModelPath(settings, { logger: silentLogger });
  if (!found.path) throw new LlamaError('ERR_MODEL_NOT_FOUND', 'no model found: give a FILE, --model, TEA_MODEL_PATH or llm.model_path');
  const file = await readGguf(found.path);
  const config = await getModelInfo(found.path, { contextSize: settings.contextSize, logger: silentLogger });
  const facts = modelFacts(config.path, file);
  const auto = explainConfig(config, facts, settings);
  // The remote devices, each server on its own: one that cannot be reached is a line, not a failure of info.
  const rpc = await Promise.all(
    settings.rpcServers.map(async (endpoint) => {
      try {
        return (await listRpcDevices([endpoint]))[0];
      } catch (error) {
        return { endpoint, error: `${(error as LlamaError).code}: ${(error as LlamaError).message}` };
      }
    }),
  );

  if (v.json) {
    const out: Record<string, unknown> = {
      file: facts.path,
      file_size: facts.fileSize,
      architecture: facts.architecture,
      name: facts.name,
      parameters: facts.parameters,
      quantization: facts.quantization,
      tensor_types: facts.tensorTypes,
      trained_context: facts.trainedContextLength,
      layers: facts.layers,
      embedding_length: facts.embeddingLength,
      vocabulary_size: facts.vocabularySize,
      tokenizer: facts.tokenizer,
      chat_template: facts.chatTemplate,
      auto_configuration: auto,
      notes: config.notes,
      ...(rpc.length > 0 ? { rpc_devices: rpc } : {}),
    };
    if (v.all) out.metadata = Object.fromEntries(Object.entries(file.metadata).map(([k, value]) => [k, ggufValueToString(value)]));
    await writeOut(JSON.stringify(out, null, 2) + '\n');
    return EXIT.ok;
  }

  const rows: Array<[string, string]> = [
    ['file', `${facts.path} (${formatBytes(facts.fileSize)})`],
    ['architecture', facts.architecture ?? 'unknown'],
  ];
  if (facts.name) rows.push(['name', facts.name]);
  rows.push(['parameters', `${formatCount(facts.parameters)} (${facts.parameters.toLocaleString('en-US')})`]);
  const types = Object.entries(facts.tensorTypes)
    .map(([t, n]) => `${t} ×${n}`)
    .join(', ');
  rows.push(['quantization', `${facts.quantization}${facts.quantizationSource === 'tensors' ? ' (no general.file_type: the largest weights\' type)' : ''}; tensors: ${types}`]);
  rows.push(['trained context', facts.trainedContextLength !== null ? `${facts.trainedContextLength} tokens` : 'not given']);
  if (facts.layers !== null) rows.push(['layers', String(facts.layers)]);
  if (facts.embeddingLength !== null) rows.push(['embedding length', String(facts.embeddingLength)]);
  if (facts.vocabularySize !== null) rows.push(['vocabulary', `${facts.vocabularySize} tokens${facts.tokenizer ? ` (${facts.tokenizer})` : ''}`]);
  rows.push(['chat template', facts.chatTemplate ? `${facts.chatTemplate.length} characters:` : 'none']);
  const width = Math.max(...rows.map(([k]) => k.length)) + 2;
  let text = rows.map(([k, value]) => `${k.padEnd(width)}${value}`).join('\n') + '\n';
  if (facts.chatTemplate) text += excerpt(facts.chatTemplate).replace(/^/gm, '    ') + '\n';

  text += '\nauto-configuration (what tea-llama would load it with):\n';
  const autoWidth = Math.max(...Object.keys(auto).map((k) => k.length)) + 2;
  const valueWidth = Math.max(...Object.values(auto).map((c) => String(c.value).length)) + 2;
  for (const [key, c] of Object.entries(auto)) text += `  ${key.replace('_', ' ').padEnd(autoWidth)}${String(c.value).padEnd(valueWidth)}${c.reason}\n`;
  for (const note of config.notes) text += `  note: ${note}\n`;
  if (rpc.length > 0) {
    text += '\nRPC servers (llama.cpp rpc-server, protocol version, devices with free / total memory):\n';
    for (const server of rpc) {
      if ('error' in server) text += `  ${server.endpoint}  unreachable: ${server.error}\n`;
      else if (server.inUse) text += `  ${server.endpoint}  in use by a model of this process\n`;
      else {
        const devices = server.devices.map((d) => `device ${d.index}: ${formatBytes(d.freeBytes)} free of ${formatBytes(d.totalBytes)}`);
        text += `  ${server.endpoint}  protocol ${server.version}; ${devices.join('; ')}\n`;
      }
    }
  }
  if (v.all) {
    text += '\nmetadata:\n';
    for (const [key, value] of Object.entries(file.metadata)) {
      if (key === 'tokenizer.chat_template') continue;
      text += `  ${key} = ${ggufValueToString(value)}\n`;
    }
  }
  await writeOut(text);
  return EXIT.ok;
}
