import { readdirSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { basename, dirname, join } from 'node:path';

import { ggufFilesIn, resolveModelPath, type ModelPathResolution, type ModelPathSource } from '../config/model-path';
import { expandPath } from '../config/expand-path';
import { toLlamaError } from '../errors';
import { readGguf } from '../gguf';
import { silentLogger } from '../logger';
import { GLOBAL_HELP, GLOBAL_OPTIONS, MODEL_HELP, MODEL_OPTIONS, parse } from './args';
import { cliSettings } from './backend';
import { modelFacts } from './info';
import { EXIT, formatBytes, UsageError, writeOut } from './output';

export const MODELS_HELP = `Usage: tea-llama models [options]

Lists the GGUF models in the places the model search looks (TEA_MODEL_PATH, llm.model_path, --model,
$APPDIR/usr/share/models, ~/.cache/tea/models): size, architecture, quantization, trained context and whether the
file has a chat template, and marks with * the model the other commands use without --model, with the reason.
Only the files' headers are read.

Without a configured model, a folder gives a default model (microsoft_Phi-4-mini-instruct-Q3_K_S.gguf, then
gemma-3n-E4B-it-Q4_K_M.gguf), else its only model, else its most recently pulled one.

Options:
      --json             print one JSON object

${MODEL_HELP}

${GLOBAL_HELP}`;

const OPTIONS = { ...MODEL_OPTIONS, ...GLOBAL_OPTIONS, json: { type: 'boolean' } } as const;

export interface ListedModel {
  path: string;
  size: number;
  /** When `tea-llama pull` finished it (the file's modification time), ISO 8601. */
  pulled: string;
  architecture: string | null;
  quantization: string | null;
  trainedContext: number | null;
  chatTemplate: boolean | null;
  /** Why the header cannot be read, for a file that is not a valid GGUF model. */
  invalid?: string;
}

export interface ListedFolder {
  source: ModelPathSource;
  path: string;
  exists: boolean;
  models: ListedModel[];
  /** `NAME.partial` downloads that `tea-llama pull` can resume. */
  partial: string[];
}

/** The places the search looks, in its order: each set path (its folder when it names a file), then APPDIR and the cache. */
function searchPlaces(settings: { modelPath?: string; sources: Record<string, string> }, env: NodeJS.ProcessEnv): Array<{ source: ModelPathSource; path: string; file?: string }> {
  const home = homedir();
  const places: Array<{ source: ModelPathSource; path: string; file?: string }> = [];
  const add = (source: ModelPathSource, raw: string | undefined) => {
    const text = raw?.trim();
    if (!text) return;
    const path = join(expandPath(text, env, home));
    let isFile = false;
    try {
      isFile = statSync(path).isFile();
    } catch {
      isFile = /\.gguf$/i.test(path);
    }
    places.push(isFile ? { source, path: dirname(path), file: path } : { source, path });
  };
  const explicit = settings.sources.modelPath === 'explicit';
  if (explicit) add('option', settings.modelPath);
  add('TEA_MODEL_PATH', env.TEA_MODEL_PATH);
  if (!explicit) add('settings', settings.modelPath);
  if (env.APPDIR) places.push({ source: 'APPDIR', path: join(env.APPDIR, 'usr', 'share', 'models') });
  places.push({ source: 'cache', path: join(home, '.cache', 'tea', 'models') });
  return places;
}

async function describeModel(path: string, size: number, mtimeMs: number): Promise<ListedModel> {
  const base = { path, size, pulled: new Date(mtimeMs).toISOString() };
  try {
    const facts = modelFacts(path, await readGguf(path));
    return { ...base, architecture: facts.architecture, quantization: facts.quantization, trainedContext: facts.trainedContextLength, chatTemplate: facts.chatTemplate !== null };
  } catch (error) {
    return { ...base, architecture: null, quantization: null, trainedContext: null, chatTemplate: null, invalid: toLlamaError(error).message };
  }
}

/** Why the search takes the model it takes, in words. */
function why(resolution: ModelPathResolution): string {
  const winner = resolution.searched.find((c) => c.path === resolution.path);
  const setBy: Partial<Record<ModelPathSource, string>> = { option: '--model', TEA_MODEL_PATH: 'TEA_MODEL_PATH', settings: 'llm.model_path' };
  const source = resolution.source!;
  const folder = source === 'APPDIR' ? '$APPDIR/usr/share/models' : source === 'cache' ? '~/.cache/tea/models' : `the folder set by ${setBy[source]}`;
  switch (winner?.chosen) {
    case 'default':
      return `a default model, in ${folder}`;
    case 'only':
      return `the only model in ${folder}`;
    case 'newest':
      return `the most recently pulled of ${1 + (winner.others?.length ?? 0)} models in ${folder}`;
    default:
      return `set by ${setBy[source]}`;
  }
}

export async function modelsCommand(args: string[]): Promise<number> {
  const { values: v, positionals } = parse('models', args, OPTIONS);
  if (v.help) {
    await writeOut(MODELS_HELP + '\n');
    return EXIT.ok;
  }
  if (positionals.length > 0) throw new UsageError('models takes no arguments (use --model PATH to look at another file or folder)', 'models');
  // A --model that does not exist is an error here too (cliSettings checks it).
  const settings = await cliSettings('models', v);
  const resolution = resolveModelPath(settings, { logger: silentLogger });
  const folders: ListedFolder[] = [];
  const seen = new Set<string>();
  for (const place of searchPlaces(settings, process.env)) {
    let exists = false;
    try {
      exists = statSync(place.path).isDirectory();
    } catch {
      exists = false;
    }
    const files = place.file ? ggufFilesIn(place.path).filter((f) => f.path === place.file) : ggufFilesIn(place.path);
    const models: ListedModel[] = [];
    for (const f of files) {
      if (seen.has(f.path)) continue;
      seen.add(f.path);
      models.push(await describeModel(f.path, f.size, f.mtimeMs));
    }
    let partial: string[] = [];
    if (!place.file && exists) {
      try {
        partial = readdirSync(place.path).filter((n) => n.endsWith('.partial')).map((n) => join(place.path, n));
      } catch {
        partial = [];
      }
    }
    folders.push({ source: place.source, path: place.file ?? place.path, exists: place.file ? models.length > 0 : exists, models, partial });
  }
  const selected = resolution.path ? { path: resolution.path, source: resolution.source, reason: why(resolution) } : null;

  if (v.json) {
    await writeOut(
      JSON.stringify(
        {
          folders: folders.map((f) => ({
            source: f.source,
            path: f.path,
            exists: f.exists,
            models: f.models.map((m) => ({
              path: m.path,
              size: m.size,
              pulled: m.pulled,
              architecture: m.architecture,
              quantization: m.quantization,
              trained_context: m.trainedContext,
              chat_template: m.chatTemplate,
              ...(m.invalid ? { invalid: m.invalid } : {}),
            })),
            partial: f.partial,
          })),
          selected,
          ambiguous: resolution.ambiguous,
        },
        null,
        2,
      ) + '\n',
    );
    return EXIT.ok;
  }

  let text = '';
  for (const folder of folders) {
    const label = { option: '--model', settings: 'llm.model_path', TEA_MODEL_PATH: 'TEA_MODEL_PATH', APPDIR: 'APPDIR', cache: 'cache' }[folder.source];
    text += `${label}: ${folder.path}${folder.exists ? '' : ' (missing)'}\n`;
    if (folder.exists && folder.models.length === 0) text += '  no models\n';
    const rows = folder.models.map((m) =>
      m.invalid
        ? [basename(m.path), formatBytes(m.size), `not a valid model: ${m.invalid}`]
        : [
            basename(m.path),
            formatBytes(m.size),
            m.architecture ?? 'unknown',
            m.quantization ?? '',
            m.trainedContext !== null ? `${m.trainedContext} ctx` : 'ctx ?',
            m.chatTemplate ? 'chat template' : 'no chat template',
          ],
    );
    // Column widths from the valid rows; an invalid row's message runs to the end of its line.
    const widths: number[] = [];
    for (const r of rows) r.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, r.length === 3 && i === 2 ? 0 : c.length)));
    folder.models.forEach((m, index) => {
      const r = rows[index];
      const cells = r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i])));
      text += `  ${m.path === resolution.path ? '*' : ' '} ${cells.join('  ')}\n`;
    });
    for (const p of folder.partial) text += `  (partial download ${basename(p)}: tea-llama pull resumes it)\n`;
  }
  if (selected) text += `\n* used without --model: ${selected.path} (${selected.reason})\n`;
  else if (resolution.ambiguous.length > 0) {
    const a = resolution.ambiguous[0];
    text += `\nno model is used without --model: ${a.folder} holds equally recent models (${a.models.map((m) => basename(m)).join(', ')}); choose one with --model or TEA_MODEL_PATH\n`;
  } else text += '\nno model found: tea-llama pull URL downloads one into ~/.cache/tea/models\n';
  await writeOut(text);
  return EXIT.ok;
}
