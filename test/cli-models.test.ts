import { copyFileSync, mkdirSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { cliEnv, ensureCliBuilt, runCli, tempHome } from './support/cli';
import { startHfMirror } from './support/hf-mirror';
import type { HttpFixture } from './support/http-fixture';
import { haveModel, modelPath, PHI3_VOCAB, STORIES } from './support/models';

// Model discovery from the command line: `tea-llama pull` then any command without --model, and `tea-llama models`.
// Each test has its own HOME, so ~/.cache/tea/models is a fresh folder.

const GREEDY = ['--temperature', '0', '--max-tokens', '16'];
const PROMPT = 'Once upon a time';

beforeAll(() => ensureCliBuilt(), 300_000);

/** A HOME whose ~/.cache/tea/models holds `files` (name → source), with the given modification times. */
function homeWith(files: Array<[string, string, Date]>): { env: Record<string, string>; cache: string } {
  const env = cliEnv();
  const cache = join(env.HOME, '.cache', 'tea', 'models');
  mkdirSync(cache, { recursive: true });
  for (const [name, source, time] of files) {
    if (source === '') writeFileSync(join(cache, name), 'not a model');
    else copyFileSync(source, join(cache, name));
    utimesSync(join(cache, name), time, time);
  }
  return { env, cache };
}

describe.runIf(haveModel(STORIES) && haveModel(PHI3_VOCAB))('models in ~/.cache/tea/models, found without --model', () => {
  const stories = modelPath(STORIES);
  let greedy: string;
  let mirror: HttpFixture;

  beforeAll(async () => {
    greedy = (await runCli(['complete', '--model', stories, ...GREEDY, PROMPT])).stdout;
    mirror = await startHfMirror();
  });
  afterAll(async () => {
    await mirror?.close();
  });

  it('a model pulled under any name is used by the next command, with no --model', async () => {
    const env = cliEnv({ HF_ENDPOINT: mirror.url });
    const pull = await runCli(['pull', 'hf:ggml-org/models/tinyllamas/stories260K.gguf'], { env });
    expect(pull.code, pull.stderr).toBe(0);
    const path = join(env.HOME, '.cache', 'tea', 'models', 'stories260K.gguf');
    expect(pull.stdout).toBe(`${path}\n`);
    expect(mirror.requests.map((q) => q.url)).toContain('/ggml-org/models/resolve/main/tinyllamas/stories260K.gguf');
    const r = await runCli(['complete', ...GREEDY, '--verbose', PROMPT], { env });
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(greedy);
    expect(r.stderr).toContain(`${path} is the only model in ${join(env.HOME, '.cache', 'tea', 'models')}`);
  });

  it('several models: the most recently pulled is used, with a warning naming the others', async () => {
    const { env, cache } = homeWith([
      ['phi3-vocab.gguf', modelPath(PHI3_VOCAB), new Date(2024, 0, 1)],
      ['tiny-stories.gguf', stories, new Date(2025, 0, 1)],
    ]);
    const r = await runCli(['complete', ...GREEDY, PROMPT], { env });
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(greedy);
    expect(r.stderr).toBe(
      `tea-llama: warning: using ${join(cache, 'tiny-stories.gguf')}, the most recently pulled of 2 models in ${cache} (others: phi3-vocab.gguf); set TEA_MODEL_PATH or llm.model_path to choose\n`,
    );
  });

  it('equally recent models: an error that lists them, exit code 1', async () => {
    const when = new Date(2025, 0, 1);
    const { env, cache } = homeWith([
      ['a.gguf', stories, when],
      ['b.gguf', stories, when],
    ]);
    const r = await runCli(['complete', ...GREEDY, '--quiet', PROMPT], { env });
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr.split('\n').filter(Boolean)).toHaveLength(1);
    expect(r.stderr).toContain(`ERR_NO_BACKEND: `);
    expect(r.stderr).toContain(`${cache} holds equally recent models, none taken: ${join(cache, 'a.gguf')}, ${join(cache, 'b.gguf')}`);
  });

  it('an explicit --model that does not exist is ERR_MODEL_NOT_FOUND naming it, even with models in the cache', async () => {
    const { env } = homeWith([['stories.gguf', stories, new Date()]]);
    for (const command of ['complete', 'chat', 'embed', 'info', 'models']) {
      const args = [command, '--model', '/no/such/model.gguf', ...(['complete', 'chat', 'embed'].includes(command) ? ['text'] : [])];
      const r = await runCli(args, { env });
      expect(r.code, command).toBe(1);
      expect(r.stdout, command).toBe('');
      expect(r.stderr, command).toBe('tea-llama: ERR_MODEL_NOT_FOUND: model file not found: /no/such/model.gguf\n');
    }
  });

  it('tea-llama models lists each model with its facts and marks the one used', async () => {
    const { env, cache } = homeWith([
      ['phi3-vocab.gguf', modelPath(PHI3_VOCAB), new Date(2024, 0, 1)],
      ['tiny-stories.gguf', stories, new Date(2025, 0, 1)],
      ['broken.gguf', '', new Date(2023, 0, 1)],
    ]);
    writeFileSync(join(cache, 'next.gguf.partial'), 'GGUF');
    const r = await runCli(['models'], { env });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe('');
    const lines = r.stdout.split('\n');
    expect(lines).toContain(`cache: ${cache}`);
    expect(r.stdout).toMatch(/^ {2}\* tiny-stories\.gguf +1\.13 MiB +llama +F32 +2048 ctx +no chat template$/m);
    expect(r.stdout).toMatch(/^ {4}phi3-vocab\.gguf +709 KiB +phi3 +F16 +4096 ctx +chat template$/m);
    expect(r.stdout).toMatch(/^ {4}broken\.gguf +11 B +not a valid model: .*/m);
    expect(r.stdout).toContain('(partial download next.gguf.partial: tea-llama pull resumes it)');
    expect(r.stdout).toContain(`* used without --model: ${join(cache, 'tiny-stories.gguf')} (the most recently pulled of 3 models in ~/.cache/tea/models)`);

    const json = JSON.parse((await runCli(['models', '--json'], { env })).stdout);
    const folder = json.folders.find((f: { source: string }) => f.source === 'cache');
    expect(folder.models.map((m: { path: string }) => m.path)).toEqual(['tiny-stories.gguf', 'phi3-vocab.gguf', 'broken.gguf'].map((n) => join(cache, n)));
    expect(folder.models[0]).toMatchObject({ size: 1185376, architecture: 'llama', quantization: 'F32', trained_context: 2048, chat_template: false });
    expect(folder.models[1]).toMatchObject({ architecture: 'phi3', trained_context: 4096, chat_template: true });
    expect(folder.models[2].invalid).toMatch(/bad magic|GGUF/);
    expect(json.selected).toEqual({ path: join(cache, 'tiny-stories.gguf'), source: 'cache', reason: 'the most recently pulled of 3 models in ~/.cache/tea/models' });

    // TEA_MODEL_PATH is listed first and wins.
    const chosen = JSON.parse((await runCli(['models', '--json'], { env: { ...env, TEA_MODEL_PATH: stories } })).stdout);
    expect(chosen.folders[0]).toMatchObject({ source: 'TEA_MODEL_PATH', path: stories, models: [{ path: stories }] });
    expect(chosen.selected).toEqual({ path: stories, source: 'TEA_MODEL_PATH', reason: 'set by TEA_MODEL_PATH' });
  });

  it('tea-llama models with nothing anywhere says how to get a model', async () => {
    const r = await runCli(['models'], { env: cliEnv({ HOME: tempHome() }) });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/cache: .*\.cache\/tea\/models \(missing\)\n\nno model found: tea-llama pull URL downloads one into ~\/\.cache\/tea\/models\n$/);
  });
});
