import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';

import { createLlmBackend, loadModel, silentLogger } from '../lib';
import { cliEnv, ensureCliBuilt, runCli, tempHome } from './support/cli';
import { haveModel, modelPath, PHI3_VOCAB, repoRoot, STORIES } from './support/models';
import { syntheticModel } from './support/synthetic';

// `tea-llama run WORKFLOW.yaml`: the shipped examples against real models, and the checks that stop a bad
// workflow before any model loads. Run as a user runs it, through a child process.

const example = (name: string) => join(repoRoot, 'examples', name);

/** stdout of `run` is exactly one thing: the final state as JSON. */
function stateOf(r: { stdout: string; code: number | null; stderr: string }): Record<string, any> {
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout);
}

function writeWorkflow(text: string): string {
  const file = join(tempHome(), 'workflow.yaml');
  writeFileSync(file, text);
  return file;
}

const isVector = (v: unknown, dimensions: number) => Array.isArray(v) && v.length === dimensions && v.every((x) => typeof x === 'number');

beforeAll(() => ensureCliBuilt(), 300_000);

// The design's five YAML examples (examples/workflow-*.yaml), as written, on stories260K: the state holds the
// design's types: the generated text as a string, the embedding as a list of numbers.
describe.runIf(haveModel(STORIES))("the design's example workflows", () => {
  const stories = modelPath(STORIES);

  it('1. llm.call (workflow-call.yaml): state.complete is the generated text', async () => {
    const state = stateOf(await runCli(['run', example('workflow-call.yaml'), '--model', stories]));
    expect(typeof state.complete).toBe('string');
    expect(state.complete.length).toBeGreaterThan(0);
    expect(state._meta.complete).toMatchObject({ backend: 'local', model: STORIES, usage: { completion_tokens: expect.any(Number) } });
    expect(state._meta.complete.usage.completion_tokens).toBeLessThanOrEqual(50);
    expect(Object.keys(state)).toEqual(['complete', '_meta']);
  });

  it('2. llm.chat (workflow-chat.yaml): state.chat_response is the reply; the conversation is in its metadata', async () => {
    const state = stateOf(await runCli(['run', example('workflow-chat.yaml'), '--model', stories, '--input', 'question=What is a closure?']));
    expect(typeof state.chat_response).toBe('string');
    expect(state._meta.chat_response.messages).toEqual([
      { role: 'system', content: 'You are a helpful coding assistant.' },
      { role: 'user', content: 'What is a closure?' },
      { role: 'assistant', content: state.chat_response },
    ]);
  });

  it('3. llm.stream (workflow-stream.yaml): the text on stderr as it comes, stdout only the JSON; --stream swaps them', async () => {
    const r = await runCli(['run', example('workflow-stream.yaml'), '--model', stories]);
    const state = stateOf(r);
    expect(typeof state.stream_response).toBe('string');
    expect(state.stream_response.length).toBeGreaterThan(0);
    expect(r.stderr).toBe(state.stream_response + (state.stream_response.endsWith('\n') ? '' : '\n'));
    // With --stream: stdout carries the streamed text and no JSON (greedy here, to compare with the library).
    const streamed = await runCli(['run', example('workflow-stream.yaml'), '--model', stories, '--stream'], { env: cliEnv({ LLM_TEMPERATURE: '0' }) });
    expect(streamed.code).toBe(0);
    expect(streamed.stderr).toBe('');
    expect(streamed.stdoutChunks).toBeGreaterThan(1);
    const m = await loadModel(stories);
    const lib = await m.complete('Write a short poem about programming', { maxTokens: 200, temperature: 0 });
    await m.dispose();
    expect(streamed.stdout).toBe(lib.text + (lib.text.endsWith('\n') ? '' : '\n'));
  });

  it('4. llm.embed (workflow-embed.yaml): state.embed_text is the vector `tea-llama embed` prints', async () => {
    const state = stateOf(await runCli(['run', example('workflow-embed.yaml'), '--model', stories, '--input', 'document=The cat sat on the mat.']));
    expect(isVector(state.embed_text, 64)).toBe(true);
    expect(Math.hypot(...state.embed_text)).toBeCloseTo(1, 4);
    expect(state._meta.embed_text).toEqual({ dimensions: 64, model: STORIES, backend: 'local' });
    const cli = await runCli(['embed', '--model', stories, 'The cat sat on the mat.']);
    expect(state.embed_text).toEqual(JSON.parse(cli.stdout));
  });

  it('5. multi-turn (workflow-multi-turn.yaml): run: nodes add the input and the reply to state.messages', async () => {
    const input = ['--input', 'input=Hello!', '--input', `messages=${JSON.stringify([{ role: 'system', content: 'You are a storyteller.' }])}`];
    const state = stateOf(await runCli(['run', example('workflow-multi-turn.yaml'), '--model', stories, ...input], { env: cliEnv({ LLM_TEMPERATURE: '0' }) }));
    expect(typeof state.get_response).toBe('string');
    expect(state.response).toBe(state.get_response);
    const sent = [
      { role: 'system', content: 'You are a storyteller.' },
      { role: 'user', content: 'Hello!' },
    ];
    expect(state.messages).toEqual([...sent, { role: 'assistant', content: state.get_response }]);
    expect(state._meta.get_response.messages).toEqual(state.messages);
    // The reply is the library's greedy reply to the conversation the first script built.
    const llm = await createLlmBackend({ modelPath: stories, temperature: 0, env: {}, logger: silentLogger });
    const lib = await llm.chat(sent, { maxTokens: 500 });
    await llm.dispose();
    expect(state.get_response).toBe(lib.content);
  }, 300_000);

  describe.runIf(haveModel(PHI3_VOCAB))('with a model that has a chat template (synthetic tiny phi-3)', () => {
    let model: string;
    beforeAll(async () => {
      model = await syntheticModel('tiny', 'F16');
    });

    it('the chat and multi-turn examples give the replies the library gives', async () => {
      const env = cliEnv({ LLM_TEMPERATURE: '0' });
      const input = ['--input', 'input=What is the capital of France?', '--input', 'messages=[]'];
      const state = stateOf(await runCli(['run', example('workflow-multi-turn.yaml'), '--model', model, ...input], { env }));
      const llm = await createLlmBackend({ modelPath: model, temperature: 0, contextSize: 4096, env: {}, logger: silentLogger });
      const lib = await llm.chat([{ role: 'user', content: 'What is the capital of France?' }], { maxTokens: 500 });
      await llm.dispose();
      expect(state.get_response).toBe(lib.content);
      const chat = stateOf(await runCli(['run', example('workflow-chat.yaml'), '--model', model, '--input', 'question=Hi'], { env }));
      expect(typeof chat.chat_response).toBe('string');
    }, 300_000);
  });

  it('--input-file gives the initial state, --output writes the final state to a file, --check loads nothing', async () => {
    const dir = tempHome();
    writeFileSync(join(dir, 'input.json'), JSON.stringify({ document: 'One day' }));
    const out = join(dir, 'state.json');
    const r = await runCli(['run', example('workflow-embed.yaml'), '--model', stories, '--input-file', join(dir, 'input.json'), '--output', out]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('');
    const state = JSON.parse(readFileSync(out, 'utf8'));
    expect(state.document).toBe('One day');
    expect(isVector(state.embed_text, 64)).toBe(true);

    const check = await runCli(['run', example('workflow-multi-turn.yaml'), '--check', '--progress', '--model', '/no/such/model.gguf', '-i', 'input=x', '-i', 'messages=[]']);
    expect(check.code).toBe(0);
    expect(check.stdout).toBe('');
    expect(check.stderr).toMatch(/workflow-multi-turn\.yaml: 3 nodes, valid\n$/);
  });
});

describe('the README', () => {
  it('shows examples/workflow-multi-turn.yaml as it is', () => {
    const readme = readFileSync(join(repoRoot, 'README.md'), 'utf8');
    expect(readme).toContain('```yaml\n' + readFileSync(example('workflow-multi-turn.yaml'), 'utf8').trimEnd() + '\n```');
  });
});

describe('a bad workflow fails before any model loads, with the node name and the problem', () => {
  // A valid model is configured and progress bars are forced on: "loading" on stderr would mean a model loaded.
  const env = () => cliEnv({ TEA_MODEL_PATH: modelPath(STORIES) });
  const cases: Array<[string, string, RegExp]> = [
    [
      'an unknown action',
      'nodes:\n  - { name: ask, action: llm.completion, params: { prompt: hi } }\n',
      /node "ask": action: unknown action "llm\.completion" \(known: llm\.call, llm\.chat, llm\.stream, llm\.embed\)/,
    ],
    ['a missing param', 'nodes:\n  - { name: talk, action: llm.chat, params: { max_tokens: 8 } }\n', /node "talk": params: missing the required parameter "messages"/],
    [
      'a template naming an absent key',
      'nodes:\n  - { name: ask, action: llm.call, params: { prompt: "{{ state.question }}" } }\n',
      /node "ask": params\.prompt: \{\{ state\.question \}\} names an absent key: state\.question is not in the input and no node is named "question"/,
    ],
    [
      'invalid settings',
      'settings:\n  llm:\n    n_ctx: -5\nnodes:\n  - { name: ask, action: llm.call, params: { prompt: hi } }\n',
      /settings\.llm\.n_ctx: expected an integer from 1 to 16777216, got -5 \(number\)/,
    ],
  ];
  for (const [what, yaml, problem] of cases) {
    it(what, async () => {
      const file = writeWorkflow(yaml);
      const r = await runCli(['run', file, '--progress'], { env: env() });
      expect(r.code).toBe(1);
      expect(r.stdout).toBe('');
      expect(r.stderr.split('\n').filter(Boolean)).toHaveLength(1);
      expect(r.stderr).toMatch(new RegExp(`^tea-llama: ERR_WORKFLOW_INVALID: invalid workflow ${file.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: `));
      expect(r.stderr).toMatch(problem);
      expect(r.stderr).not.toContain('loading');
    });
  }

  it('a YAML syntax error gives its line; an input of the wrong type is named', async () => {
    const broken = await runCli(['run', writeWorkflow('nodes:\n  - name: a\n   action: llm.call\n')], { env: env() });
    expect(broken.code).toBe(1);
    expect(broken.stderr).toMatch(/^tea-llama: ERR_WORKFLOW_INVALID: invalid workflow .*: line 3, column \d+: not valid YAML: /);
    const typed = await runCli(
      ['run', writeWorkflow('state_schema:\n  n: int\nnodes:\n  - { name: a, action: llm.call, params: { prompt: hi, max_tokens: "{{ state.n }}" } }\n'), '-i', 'n=many'],
      { env: env() },
    );
    expect(typed.code).toBe(1);
    expect(typed.stderr).toMatch(/input n: expected int, got "many"/);
    const usage = await runCli(['run', example('workflow-chat.yaml'), '--input', 'question'], { env: env() });
    expect(usage.code).toBe(2);
    expect(usage.stderr).toBe('tea-llama: ERR_INVALID_ARGUMENT: --input takes KEY=VALUE, not "question" (see tea-llama run --help)\n');
  });

  it('a script with a syntax error fails before any model loads; a script that loops stops with its node', async () => {
    const syntax = await runCli(['run', writeWorkflow('nodes:\n  - name: edit\n    run: "state.x = ;"\n  - { name: a, action: llm.call, params: { prompt: hi } }\n'), '--progress'], { env: env() });
    expect(syntax.code).toBe(1);
    expect(syntax.stdout).toBe('');
    expect(syntax.stderr).toMatch(/^tea-llama: ERR_WORKFLOW_INVALID: invalid workflow .*: node "edit": run, line 1: the script does not compile: SyntaxError: /);
    expect(syntax.stderr).not.toContain('loading');
    const loop = await runCli(['run', writeWorkflow('nodes:\n  - name: spin\n    run: "while (true) {}"\n')], { env: env() });
    expect(loop.code).toBe(1);
    expect(loop.stdout).toBe('');
    expect(loop.stderr).toBe('tea-llama: ERR_WORKFLOW_SCRIPT: node "spin" (run): the script ran longer than 1000 ms (a loop without end?) and was stopped\n');
  });
});
