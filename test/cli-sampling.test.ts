import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { loadModel, type LlamaModel, type TokenLogprob } from '../lib';
import { SAMPLING_FIELDS } from '../lib/engine/request';
import type { LoraAdapter } from '../lib/lora';
import { ensureCliBuilt, runCli, tempHome } from './support/cli';
import { cacheDir, haveModel, modelPath, STORIES } from './support/models';

// The request surface on the command line (issue 16): every sampling option of SAMPLING_FIELDS as a flag of
// complete and chat, --logprobs in --json, context shift, and --lora / --lora-scaled / llm.lora. Each answer of
// the real CLI (a child process) is compared with the library's own answer for the same model and options.

const PROMPT = 'Once upon a time';
/** The same model configuration on both sides. */
const LOAD = { contextSize: 512, threads: 2 } as const;
const CLI_LOAD = ['-c', '512', '-t', '2'];

beforeAll(() => ensureCliBuilt(), 300_000);

/** `complete --json` (or chat) run to success, its JSON object. */
async function json(args: string[]): Promise<Record<string, any>> {
  const r = await runCli(args);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as Record<string, any>;
}

/** A library result's logprobs in OpenAI's snake_case shape, as --json prints them. */
function openAiShape(logprobs: TokenLogprob[]) {
  const plain = (t: { id: number; token: string; bytes: number[]; logprob: number }) => ({ id: t.id, token: t.token, bytes: t.bytes, logprob: t.logprob });
  return logprobs.map((t) => ({ ...plain(t), top_logprobs: t.topLogprobs.map(plain) }));
}

/** Equal ids, texts and bytes; log-probabilities within 1e-4. */
function expectSameLogprobs(got: ReturnType<typeof openAiShape>, expected: ReturnType<typeof openAiShape>): void {
  const strip = (list: ReturnType<typeof openAiShape>) => list.map((t) => ({ ...t, logprob: 0, top_logprobs: t.top_logprobs.map((a) => ({ ...a, logprob: 0 })) }));
  expect(strip(got)).toEqual(strip(expected));
  got.forEach((t, i) => {
    expect(t.logprob).toBeCloseTo(expected[i]!.logprob, 4);
    t.top_logprobs.forEach((a, k) => expect(a.logprob).toBeCloseTo(expected[i]!.top_logprobs[k]!.logprob, 4));
  });
}

describe('sampling flags: one per SAMPLING_FIELDS field, checked before any model loads', () => {
  it('complete --help and chat --help list every field by its kebab-case wire name', async () => {
    for (const command of ['complete', 'chat']) {
      const help = (await runCli([command, '--help'])).stdout;
      for (const f of Object.values(SAMPLING_FIELDS)) {
        const flag = f.kind === 'strings' ? f.wire.replace(/_/g, '-').replace(/s$/, '') : f.wire.replace(/_/g, '-');
        expect(help, `${command} --${flag}`).toMatch(new RegExp(`^ {2}(-n, | {4})--${flag}\\b`, 'm'));
      }
      expect(help).toContain('--lora FILE');
    }
    expect((await runCli(['complete', '--help'])).stdout).toContain('--context-shift');
    expect((await runCli(['serve', '--help'])).stdout).toContain('--lora-scaled FILE=SCALE');
  });

  it('a wrong value is exit code 2 with one line naming the flag', async () => {
    const model = ['--model', join(tempHome(), 'absent.gguf')];
    const cases: [string[], string][] = [
      [['--top-k', '1.5'], '--top-k must be an integer from 0 to'],
      [['--mirostat', '3'], '--mirostat must be an integer from 0 to 2, not "3"'],
      [['--dry-multiplier', 'strong'], '--dry-multiplier must be a number from 0 to'],
      [['--xtc-probability', '2'], '--xtc-probability must be a number from 0 to 1'],
      [['--top-logprobs', '21', '--logprobs', '--json'], '--top-logprobs must be an integer from 0 to 20'],
      [['--samplers', 'top_k;top_kk'], '--samplers: "top_kk" is not a llama.cpp sampler; did you mean top_k?'],
      [['--logit-bias', '15043'], '--logit-bias takes TOKEN=BIAS'],
      [['--logit-bias', 'hello=+inf'], '--logit-bias takes TOKEN=BIAS'],
      [['--stop', ''], '--stop needs a non-empty text'],
      [['--dry-sequence-breaker', 'none'], '--dry-sequence-breaker none'],
      [['--logprobs'], '--logprobs needs --json'],
      [['--top-logprobs', '2', '--json'], '--top-logprobs needs --logprobs'],
      [['--n-keep', '4'], '--n-keep needs --context-shift'],
      [['--context-shift', '--n-discard=-1'], '--n-discard must be an integer from 0 to'],
      [['--lora-scaled', 'a.gguf'], '--lora-scaled takes FILE=SCALE'],
      [['--lora-scaled', 'a.gguf=big'], '--lora-scaled takes FILE=SCALE'],
    ];
    for (const [flags, message] of cases) {
      const r = await runCli(['complete', ...model, ...flags, PROMPT]);
      expect(r.code, flags.join(' ')).toBe(2);
      expect(r.stdout).toBe('');
      expect(r.stderr.trim().split('\n'), flags.join(' ')).toHaveLength(1);
      expect(r.stderr, flags.join(' ')).toContain(message);
    }
    const chat = await runCli(['chat', ...model, '--logprobs', 'Hello']);
    expect(chat.code).toBe(2);
    expect(chat.stderr).toContain('--logprobs needs --json');
  });
});

describe.runIf(haveModel(STORIES))('complete and chat with the new flags equal the library on stories260K', () => {
  const stories = modelPath(STORIES);
  let model: LlamaModel;

  beforeAll(async () => {
    model = await loadModel(stories, LOAD);
  });
  afterAll(async () => {
    await model?.dispose();
  });

  it('a seeded sampled completion with top-k, mirostat 2 and DRY prints the library text, unlike one without them', async () => {
    const base = ['complete', '--json', '--model', stories, ...CLI_LOAD, '--temperature', '1', '--seed', '7', '-n', '40'];
    const flags = ['--top-k', '5', '--mirostat', '2', '--dry-multiplier', '0.8'];
    const got = await json([...base, ...flags, PROMPT]);
    const expected = await model.complete(PROMPT, { temperature: 1, seed: 7, maxTokens: 40, topK: 5, mirostat: 2, dryMultiplier: 0.8 });
    expect(got.content).toBe(expected.text);
    const without = await json([...base, PROMPT]);
    expect(without.content).toBe((await model.complete(PROMPT, { temperature: 1, seed: 7, maxTokens: 40 })).text);
    expect(without.content).not.toBe(got.content);
  });

  it('every kind of flag (int, number, bool, repeated text, sampler order, logit bias) reaches the sampler as the library option', async () => {
    const flags = [
      '--samplers', 'penalties;top-k,typ_p;min_p;xtc;temperature',
      '--top-k', '12', '--typical-p', '0.9', '--min-p', '0.02', '--min-keep', '2',
      '--xtc-probability', '0.5', '--xtc-threshold', '0.1',
      '--dynatemp-range', '0.5', '--dynatemp-exponent', '1.5',
      '--repeat-penalty', '1.3', '--repeat-last-n', '32', '--frequency-penalty', '0.2', '--presence-penalty', '0.1',
      '--dry-multiplier', '0.5', '--dry-base', '2', '--dry-allowed-length', '3', '--dry-penalty-last-n=-1',
      '--dry-sequence-breaker', '.', '--dry-sequence-breaker', ',',
      '--logit-bias', ' the=-2', '--logit-bias', '13+1.5',
      '--ignore-eos', '--top-n-sigma', '2',
    ];
    const got = await json(['complete', '--json', '--model', stories, ...CLI_LOAD, '--temperature', '0.9', '--seed', '11', '-n', '48', ...flags, PROMPT]);
    const expected = await model.complete(PROMPT, {
      temperature: 0.9, seed: 11, maxTokens: 48,
      samplers: ['penalties', 'top_k', 'typ_p', 'min_p', 'xtc', 'temperature'],
      topK: 12, typicalP: 0.9, minP: 0.02, minKeep: 2, xtcProbability: 0.5, xtcThreshold: 0.1,
      dynatempRange: 0.5, dynatempExponent: 1.5,
      repeatPenalty: 1.3, repeatLastN: 32, frequencyPenalty: 0.2, presencePenalty: 0.1,
      dryMultiplier: 0.5, dryBase: 2, dryAllowedLength: 3, dryPenaltyLastN: -1, drySequenceBreakers: ['.', ','],
      logitBias: [[' the', -2], [13, 1.5]], ignoreEos: true, topNSigma: 2,
    });
    expect(got.content).toBe(expected.text);
    // --ignore-eos: no end of generation before the 48 tokens.
    expect(got.usage.completion_tokens).toBe(48);
  });

  it('--logprobs --top-logprobs N --json: OpenAI-shaped logprobs equal the library; --logit-bias ID-inf bans the first greedy token', async () => {
    const greedy = ['complete', '--json', '--model', stories, ...CLI_LOAD, '--temperature', '0', '-n', '12', '--logprobs', '--top-logprobs', '3'];
    const got = await json([...greedy, PROMPT]);
    const expected = await model.complete(PROMPT, { temperature: 0, maxTokens: 12, logprobs: true, topLogprobs: 3 });
    expect(got.content).toBe(expected.text);
    expect(got.logprobs).toHaveLength(expected.completionTokens);
    expectSameLogprobs(got.logprobs, openAiShape(expected.logprobs!));
    expect(got.logprobs[0].top_logprobs).toHaveLength(3);

    // llama.cpp's form (ID-inf) and TOKEN=BIAS with the token's text: the first token can no longer be chosen.
    const first = got.logprobs[0] as { id: number; token: string };
    for (const bias of [`${first.id}-inf`, `${first.token}=-inf`]) {
      const banned = await json([...greedy, '--logit-bias', bias, PROMPT]);
      expect(banned.logprobs[0].id, bias).not.toBe(first.id);
      const library = await model.complete(PROMPT, { temperature: 0, maxTokens: 12, logprobs: true, topLogprobs: 3, logitBias: [[bias.includes('=') ? first.token : first.id, -Infinity]] });
      expect(banned.content, bias).toBe(library.text);
      expectSameLogprobs(banned.logprobs, openAiShape(library.logprobs!));
    }
    // Without --logprobs the object has none.
    expect((await json(['complete', '--json', '--model', stories, ...CLI_LOAD, '--temperature', '0', '-n', '4', PROMPT])).logprobs).toBeUndefined();
  });

  it('chat --json with sampling flags and --logprobs equals the library chat', async () => {
    const message = 'Tell me a story.';
    const got = await json(['chat', '--json', '--model', stories, ...CLI_LOAD, '--temperature', '0.8', '--seed', '3', '--top-k', '8', '--mirostat', '1', '-n', '20', '--logprobs', message]);
    // stories260K has no chat template: the CLI uses its family's, chatml.
    const expected = await model.chat([{ role: 'user', content: message }], { template: 'chatml', temperature: 0.8, seed: 3, topK: 8, mirostat: 1, maxTokens: 20, logprobs: true });
    expect(got.content).toBe(expected.text);
    expectSameLogprobs(got.logprobs, openAiShape(expected.logprobs!));
  });

  it('complete --context-shift --n-keep generates past a small context as the library does', async () => {
    await using small = await loadModel(stories, { contextSize: 128, threads: 2 });
    const got = await json(['complete', '--json', '--model', stories, '-c', '128', '-t', '2', '--temperature', '0', '-n', '300', '--context-shift', '--n-keep', '4', '--n-discard', '30', PROMPT]);
    const expected = await small.complete(PROMPT, { temperature: 0, maxTokens: 300, contextShift: true, nKeep: 4, nDiscard: 30 });
    expect(got.content).toBe(expected.text);
    expect(got.usage.completion_tokens).toBe(300);
    // Without it the context's end ends the generation.
    const plain = await json(['complete', '--json', '--model', stories, '-c', '128', '-t', '2', '--temperature', '0', '-n', '300', PROMPT]);
    expect(plain.usage.completion_tokens).toBeLessThan(128);
  });
});

describe.runIf(haveModel(STORIES))('--lora, --lora-scaled and llm.lora on stories260K', () => {
  const stories = modelPath(STORIES);
  let model: LlamaModel;
  let first: LoraAdapter;
  let second: LoraAdapter;
  let paths: { first: string; second: string; mismatch: string };

  async function adapter(name: string, options: { seed?: number; mismatch?: boolean }): Promise<string> {
    // @ts-expect-error plain ESM script without type declarations
    const { ensureSyntheticLora } = await import('../scripts/synthetic-lora.mjs');
    return ensureSyntheticLora({ base: stories, out: resolve(cacheDir, 'models', name), ...options }) as Promise<string>;
  }

  beforeAll(async () => {
    // The adapters test/lora.test.ts makes (and compares with llama-server --lora).
    paths = {
      first: await adapter('lora-stories260K-s1.gguf', { seed: 1 }),
      second: await adapter('lora-stories260K-s2.gguf', { seed: 2 }),
      mismatch: await adapter('lora-stories260K-mismatch.gguf', { mismatch: true }),
    };
    model = await loadModel(stories, LOAD);
    first = await model.loadLora(paths.first);
    second = await model.loadLora(paths.second);
  });
  afterAll(async () => {
    await model?.dispose();
  });

  const greedy = ['complete', '--json', '--model', stories, ...CLI_LOAD, '--temperature', '0', '-n', '32'];
  const library = async (lora: { adapter: LoraAdapter; scale?: number }[]) => (await model.complete(PROMPT, { temperature: 0, maxTokens: 32, lora })).text;

  it('print the library text with the same adapters and scales', async () => {
    const plain = await library([]);
    const one = await json([...greedy, '--lora', paths.first, PROMPT]);
    expect(one.content).toBe(await library([{ adapter: first }]));
    expect(one.content).not.toBe(plain);
    const scaled = await json([...greedy, '--lora-scaled', `${paths.first}=0.5`, PROMPT]);
    expect(scaled.content).toBe(await library([{ adapter: first, scale: 0.5 }]));
    expect(scaled.content).not.toBe(one.content);
    // Both forms together, and llama.cpp's FILE:SCALE.
    const both = await json([...greedy, '--lora', paths.second, '--lora-scaled', `${paths.first}:0.4`, PROMPT]);
    expect(both.content).toBe(await library([{ adapter: second }, { adapter: first, scale: 0.4 }]));

    // The same from a settings file's llm.lora.
    const dir = tempHome();
    const settings = join(dir, 'settings.yaml');
    writeFileSync(settings, `llm:\n  lora:\n    - path: ${paths.first}\n      scale: 0.5\n`);
    expect((await json([...greedy, '--settings', settings, PROMPT])).content).toBe(scaled.content);
  });

  it('a mismatched adapter exits 1 with ERR_LORA_INVALID; a missing one with ERR_MODEL_NOT_FOUND; a bad llm.lora with ERR_SETTINGS_INVALID', async () => {
    const mismatch = await runCli([...greedy, '--lora', paths.mismatch, PROMPT]);
    expect(mismatch.code).toBe(1);
    expect(mismatch.stdout).toBe('');
    expect(mismatch.stderr).toMatch(/^tea-llama: ERR_LORA_INVALID: /);
    expect(mismatch.stderr.trim().split('\n')).toHaveLength(1);

    const absent = join(tempHome(), 'absent-lora.gguf');
    const missing = await runCli([...greedy, '--lora', absent, PROMPT]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toBe(`tea-llama: ERR_MODEL_NOT_FOUND: LoRA adapter file not found: ${absent}\n`);

    const dir = tempHome();
    const settings = join(dir, 'settings.yaml');
    writeFileSync(settings, `llm:\n  lora:\n    - path: ${paths.first}\n      scal: 0.5\n    - 7\n`);
    const bad = await runCli([...greedy, '--settings', settings, PROMPT]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('ERR_SETTINGS_INVALID');
    expect(bad.stderr).toContain('llm.lora[0].scal: expected one of the known keys (path, scale), got an unknown key; did you mean "scale"?');
    expect(bad.stderr).toContain('llm.lora[1]: expected a path or { path, scale }, got 7 (number)');

    // An API server loads its adapters as it was started: none can be sent from here.
    const api = await runCli(['complete', '--backend', 'api', '--api-base', 'http://127.0.0.1:9', '--lora', paths.first, PROMPT]);
    expect(api.code).toBe(1);
    expect(api.stderr).toMatch(/^tea-llama: ERR_SETTINGS_INVALID: .*lora: expected LoRA adapters only with the local backend/);

    writeFileSync(settings, `llm:\n  lora:\n    - ${absent}\n`);
    const fromSettings = await runCli([...greedy, '--settings', settings, PROMPT]);
    expect(fromSettings.code).toBe(1);
    expect(fromSettings.stderr).toBe(`tea-llama: ERR_MODEL_NOT_FOUND: LoRA adapter file not found: ${absent} (the lora setting)\n`);
  });
});
