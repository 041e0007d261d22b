import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { loadModel } from '../lib';
import { cliEnv, ensureCliBuilt, runCli, tempHome } from './support/cli';
import { startLlamaServer, type LlamaServer } from './support/llama-server';
import { haveModel, modelPath, repoRoot, STORIES } from './support/models';
import { syntheticModel } from './support/synthetic';

// The `tea-llama` command, run as a user runs it: `node bin/tea-llama.js …` in a child process.

const GREEDY = ['--temperature', '0', '--max-tokens', '24'];
const PROMPT = 'Once upon a time';

/** No stack trace: "    at fn (file:line)" lines. */
const STACK = /^\s+at .+[:(]/m;

beforeAll(() => ensureCliBuilt(), 300_000);

describe('the command line itself', () => {
  it('is the package bin, a CommonJS script with a node shebang', () => {
    const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8'));
    expect(pkg.bin).toEqual({ 'tea-llama': 'bin/tea-llama.js' });
    expect(readFileSync(join(repoRoot, 'bin', 'tea-llama.js'), 'utf8')).toMatch(/^#!\/usr\/bin\/env node\n/);
  });

  const COMMANDS = ['complete', 'chat', 'embed', 'info', 'models', 'pull', 'run', 'serve'];

  it('prints its usage with --help (exit 0) and without a command (exit 2); each command has --help', async () => {
    const help = await runCli(['--help']);
    expect(help.code).toBe(0);
    for (const command of COMMANDS) expect(help.stdout).toContain(`  ${command} `);
    expect((await runCli([])).code).toBe(2);
    for (const command of COMMANDS) {
      for (const args of [[command, '--help'], ['help', command]]) {
        const r = await runCli(args);
        expect(r.code, args.join(' ')).toBe(0);
        expect(r.stdout, command).toContain(`Usage: tea-llama ${command}`);
        expect(r.stderr, command).toBe('');
      }
    }
  });

  it('rejects a wrong command line with one line, its code and exit code 2, suggesting the intended word', async () => {
    const command = await runCli(['complet', 'x']);
    expect(command.code).toBe(2);
    expect(command.stdout).toBe('');
    expect(command.stderr).toBe('tea-llama: ERR_INVALID_ARGUMENT: unknown command "complet"; did you mean "complete"? (see tea-llama --help)\n');
    const option = await runCli(['complete', '--max-token', '5', 'x']);
    expect(option.code).toBe(2);
    expect(option.stderr).toBe('tea-llama: ERR_INVALID_ARGUMENT: unknown option --max-token; did you mean --max-tokens? (see tea-llama complete --help)\n');
    const value = await runCli(['complete', '--temperature', 'hot', 'x']);
    expect(value.code).toBe(2);
    expect(value.stderr.trim().split('\n')).toHaveLength(1);
    expect(value.stderr).toContain('ERR_INVALID_ARGUMENT: --temperature must be a number from 0 to 100, not "hot"');
    // Every command: a wrong command line is exit code 2 with the code on stderr, nothing on stdout.
    const wrong: string[][] = [
      ['chat', '--json'],
      ['embed', '--nope'],
      ['info', 'a.gguf', 'b.gguf'],
      ['models', 'extra'],
      ['pull', 'ftp://example.com/m.gguf'],
      ['run'],
    ];
    for (const args of wrong) {
      const r = await runCli(args, { input: '' });
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stdout, args.join(' ')).toBe('');
      expect(r.stderr, args.join(' ')).toMatch(/^tea-llama: ERR_INVALID_ARGUMENT: .* \(see tea-llama \w+ --help\)\n$/);
    }
  });
});

describe.runIf(haveModel(STORIES))('complete, embed and info against stories260K', () => {
  const model = modelPath(STORIES);
  let greedy: string;

  beforeAll(async () => {
    const r = await runCli(['complete', '--model', model, ...GREEDY, PROMPT]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    greedy = r.stdout;
  });

  it('complete streams the greedy continuation to stdout, as the library generates it', async () => {
    expect(greedy).toMatch(/^, there was a little girl/);
    expect(greedy.endsWith('\n')).toBe(true);
    // The library's own greedy text for the same prompt and settings.
    const m = await loadModel(model, { contextSize: 2048 });
    const lib = await m.complete(PROMPT, { maxTokens: 24, temperature: 0 });
    await m.dispose();
    expect(greedy).toBe(lib.text + '\n');
  });

  it('complete writes the text as it is generated (several pieces arrive before the process ends)', async () => {
    const r = await runCli(['complete', '--model', model, '--temperature', '0', '--max-tokens', '200', PROMPT]);
    expect(r.code).toBe(0);
    expect(r.stdout.startsWith(greedy.trimEnd())).toBe(true);
    expect(r.stdoutChunks).toBeGreaterThan(1);
  });

  it('complete --json prints one object with content, usage and timings', async () => {
    const r = await runCli(['complete', '--model', model, ...GREEDY, '--json', PROMPT]);
    expect(r.code).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines).toHaveLength(1);
    const out = JSON.parse(lines[0]);
    expect(out.content + '\n').toBe(greedy);
    expect(out.finish_reason).toBe('length');
    expect(out.backend).toBe('local');
    expect(out.usage).toEqual({ prompt_tokens: expect.any(Number), completion_tokens: 24, total_tokens: out.usage.prompt_tokens + 24 });
    expect(out.timings.total_ms).toBeGreaterThan(0);
    expect(out.timings.tokens_per_second).toBeGreaterThan(0);
  });

  it('complete --stop ends before the stop text; --seed makes sampling reproducible; stdin gives the prompt', async () => {
    const stop = await runCli(['complete', '--model', model, ...GREEDY, '--stop', 'girl', PROMPT]);
    expect(stop.stdout).toBe(greedy.slice(0, greedy.indexOf('girl')) + '\n');
    const seeded = ['complete', '--model', model, '--temperature', '1', '--seed', '42', '-n', '30', PROMPT];
    const [a, b] = [await runCli(seeded), await runCli(seeded)];
    expect(a.stdout).toBe(b.stdout);
    expect(a.stdout.length).toBeGreaterThan(10);
    const piped = await runCli(['complete', '--model', model, ...GREEDY], { input: `${PROMPT}\n` });
    expect(piped.stdout).toBe(greedy);
  });

  it('finds the model as the library does: TEA_MODEL_PATH, or llm.model_path in a --settings file', async () => {
    const fromEnv = await runCli(['complete', ...GREEDY, PROMPT], { env: cliEnv({ TEA_MODEL_PATH: model }) });
    expect(fromEnv.stdout).toBe(greedy);
    const settings = join(tempHome(), 'settings.yaml');
    writeFileSync(settings, `llm:\n  model_path: ${model}\n  temperature: 0\n  max_tokens: 24\n`);
    const fromFile = await runCli(['complete', '--settings', settings, PROMPT]);
    expect(fromFile.code).toBe(0);
    expect(fromFile.stdout).toBe(greedy);
  });

  it('draws a load progress bar on stderr (forced with --progress when stderr is not a terminal)', async () => {
    const r = await runCli(['complete', '--model', model, ...GREEDY, '--progress', PROMPT]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(greedy);
    expect(r.stderr).toMatch(/^loading stories260K\.gguf \[#{24}\] 100%$/m);
  });

  it('errors are one line and a non-zero exit code; --verbose adds the stack trace', async () => {
    const missing = await runCli(['complete', '--model', '/nonexistent/model.gguf', PROMPT]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toBe('tea-llama: ERR_MODEL_NOT_FOUND: model file not found: /nonexistent/model.gguf\n');
    const verbose = await runCli(['complete', '--model', '/nonexistent/model.gguf', '--verbose', PROMPT]);
    expect(verbose.code).toBe(1);
    expect(verbose.stderr).toMatch(STACK);

    const invalid = await runCli(['complete', '--model', join(repoRoot, 'README.md'), PROMPT]);
    expect(invalid.code).toBe(1);
    expect(invalid.stderr.split('\n').filter(Boolean)).toHaveLength(1);
    expect(invalid.stderr).toMatch(/^tea-llama: ERR_NO_BACKEND: .*file invalid.*README\.md.*bad magic/);

    const settings = join(tempHome(), 'settings.yaml');
    writeFileSync(settings, 'llm:\n  n_cxt: 512\n  temperature: hot\n');
    const bad = await runCli(['complete', '--settings', settings, '--model', model, PROMPT]);
    expect(bad.code).toBe(1);
    expect(bad.stderr.split('\n').filter(Boolean)).toHaveLength(1);
    expect(bad.stderr).toContain('ERR_SETTINGS_INVALID');
    expect(bad.stderr).toContain('llm.n_cxt: expected one of the known keys');
    expect(bad.stderr).toContain('did you mean "n_ctx"?');
    expect(bad.stderr).toContain('llm.temperature: expected a number from 0 to 100, got "hot"');
    expect(bad.stderr).not.toMatch(STACK);

    const nothing = await runCli(['complete', PROMPT]);
    expect(nothing.code).toBe(1);
    expect(nothing.stderr.split('\n').filter(Boolean)).toHaveLength(1);
    expect(nothing.stderr).toMatch(/^tea-llama: ERR_NO_BACKEND: no LLM backend available: .*no model found/);
  });

  it('chat with a message prints the reply on stdout, or with --json one object; a runtime error is exit code 1', async () => {
    const env = cliEnv();
    const text = await runCli(['chat', '--model', model, ...GREEDY, 'Hello'], { env });
    expect(text.code).toBe(0);
    expect(text.stderr).toBe('');
    const json = await runCli(['chat', '--model', model, ...GREEDY, '--json', 'Hello'], { env });
    expect(json.code).toBe(0);
    const lines = json.stdout.trim().split('\n');
    expect(lines).toHaveLength(1);
    const out = JSON.parse(lines[0]);
    expect(out).toMatchObject({ backend: 'local', finish_reason: expect.any(String), usage: { completion_tokens: expect.any(Number) } });
    // Greedy: the streamed text and the JSON content are the same reply.
    expect(out.content + '\n').toBe(text.stdout);
    const piped = await runCli(['chat', '--model', model, ...GREEDY, '--json'], { env, input: 'Hello\n' });
    expect(JSON.parse(piped.stdout).content).toBe(out.content);
  });

  it('embed prints one unit-length vector per text, as JSON, from arguments or stdin lines', async () => {
    const r = await runCli(['embed', '--model', model, 'a cat sat', 'a dog ran', 'a cat sat']);
    expect(r.code).toBe(0);
    const vectors = r.stdout.trim().split('\n').map((line) => JSON.parse(line) as number[]);
    expect(vectors).toHaveLength(3);
    for (const v of vectors) {
      expect(v).toHaveLength(64);
      expect(Math.hypot(...v)).toBeCloseTo(1, 4);
    }
    // Texts are embedded together, one sequence each: the same text at another place in the batch may differ in the
    // last float bits (the CPU kernels' summation order), never more.
    const maxDiff = (a: number[], b: number[]) => Math.max(...a.map((x, i) => Math.abs(x - b[i]!)));
    expect(maxDiff(vectors[2]!, vectors[0]!)).toBeLessThan(1e-6);
    expect(maxDiff(vectors[1]!, vectors[0]!)).toBeGreaterThan(1e-3);
    const piped = await runCli(['embed', '--model', model], { input: 'a cat sat\n\na dog ran\n' });
    const pipedVectors = piped.stdout.trim().split('\n').map((line) => JSON.parse(line) as number[]);
    expect(pipedVectors).toHaveLength(2);
    pipedVectors.forEach((v, i) => expect(maxDiff(v, vectors[i]!)).toBeLessThan(1e-6));
  });

  it('info shows the metadata and the auto-configuration with a reason for each value', async () => {
    const r = await runCli(['info', model]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^architecture\s+llama$/m);
    expect(r.stdout).toMatch(/^parameters\s+293K \(292,800\)$/m);
    expect(r.stdout).toMatch(/^quantization\s+F32 .*tensors: F32 ×48$/m);
    expect(r.stdout).toMatch(/^trained context\s+2048 tokens$/m);
    expect(r.stdout).toMatch(/^chat template\s+none$/m);
    expect(r.stdout).toMatch(/^ {2}family\s+other\s+neither the metadata nor the file name names phi or gemma$/m);
    expect(r.stdout).toMatch(/^ {2}context\s+2048\s+the trained length: the other family's default 4096 is above it$/m);
    expect(r.stdout).toMatch(/^ {2}chat format\s+chatml\s+the file has no chat template/m);
    expect(r.stdout).toMatch(/^ {2}threads\s+\d+\s+every core/m);

    const explicit = await runCli(['info', model, '--ctx-size', '512', '--json']);
    const json = JSON.parse(explicit.stdout);
    expect(json.architecture).toBe('llama');
    expect(json.parameters).toBe(292800);
    expect(json.trained_context).toBe(2048);
    expect(json.auto_configuration.context).toEqual({ value: 512, reason: 'set by --ctx-size' });
    expect(json.chat_template).toBeNull();

    const notGguf = await runCli(['info', join(repoRoot, 'README.md')]);
    expect(notGguf.code).toBe(1);
    expect(notGguf.stderr).toMatch(/^tea-llama: ERR_MODEL_INVALID: .*bad magic/);
    expect(notGguf.stderr.split('\n').filter(Boolean)).toHaveLength(1);
  });

  it('info shows an excerpt of the chat template of a model that has one', async () => {
    const synthetic = await syntheticModel('tiny', 'F16');
    const r = await runCli(['info', synthetic]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^chat template\s+\d+ characters:\n {4}\{\{ bos_token \}\}\{% for message in messages %\}/m);
    expect(r.stdout).toMatch(/^ {2}chat format\s+the file's own\s+the file carries a chat template/m);
    expect(r.stdout).toMatch(/^quantization\s+F16; tensors: F16 ×\d+, F32 ×\d+$/m);
  });

  describe('--backend api --api-base URL: an OpenAI-compatible server instead', () => {
    let server: LlamaServer;
    beforeAll(async () => {
      server = await startLlamaServer(model, ['-c', '512', '-np', '1']);
    });
    afterAll(async () => {
      await server?.stop();
    });

    it('gives the same greedy text through llama-server', async () => {
      const r = await runCli(['complete', '--backend', 'api', '--api-base', server.baseUrl, ...GREEDY, PROMPT]);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      expect(r.stdout).toBe(greedy);
      const json = JSON.parse((await runCli(['complete', '--backend', 'api', '--api-base', server.baseUrl, ...GREEDY, '--json', PROMPT])).stdout);
      expect(json.backend).toBe('api');
      expect(json.content + '\n').toBe(greedy);
    });

    it('an unreachable server is one line, exit code 1', async () => {
      const r = await runCli(['complete', '--backend', 'api', '--api-base', 'http://127.0.0.1:9', '--max-tokens', '4', PROMPT]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/^tea-llama: ERR_API_CONNECTION: /);
      expect(r.stderr.split('\n').filter(Boolean)).toHaveLength(1);
    });
  });
});
