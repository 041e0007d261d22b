import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';

import { loadModel } from '../lib';
import { cliEnv, ensureCliBuilt, runCli, tempHome } from './support/cli';
import { haveModel, modelPath, PHI3_VOCAB, repoRoot, STORIES } from './support/models';
import { syntheticModel } from './support/synthetic';

// `tea-llama run WORKFLOW.yaml`: the shipped examples against real models, and the checks that stop a bad
// workflow before any model loads. Run as a user runs it, through a child process.

const example = (name: string) => join(repoRoot, 'examples', name);

/** Streamed text, then the final state as JSON starting with `firstKey`. */
function split(stdout: string, firstKey: string): { streamed: string; state: Record<string, any> } {
  const at = stdout.indexOf(`{\n  "${firstKey}"`);
  expect(at).toBeGreaterThanOrEqual(0);
  return { streamed: stdout.slice(0, at), state: JSON.parse(stdout.slice(at)) };
}

function writeWorkflow(text: string): string {
  const file = join(tempHome(), 'workflow.yaml');
  writeFileSync(file, text);
  return file;
}

beforeAll(() => ensureCliBuilt(), 300_000);

describe.runIf(haveModel(STORIES))('the example workflows', () => {
  const stories = modelPath(STORIES);

  it('workflow-completion.yaml: llm.call then llm.stream, templated from the state, as the library completes them', async () => {
    const r = await runCli(['run', example('workflow-completion.yaml'), '--model', stories, '--input', 'opening=Once upon a time']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const { streamed, state } = split(r.stdout, 'opening');
    expect(state.opening).toBe('Once upon a time');
    expect(state.story).toMatchObject({ finish_reason: 'length', backend: 'local', model: STORIES, usage: { completion_tokens: 24 } });
    expect(state.story.content).toMatch(/^, there was a little girl/);
    // llm.stream wrote its text to stdout as it came, and stored the whole of it.
    expect(state.sequel.content.length).toBeGreaterThan(0);
    expect(streamed).toBe(state.sequel.content + (state.sequel.content.endsWith('\n') ? '' : '\n'));

    const m = await loadModel(stories);
    const story = await m.complete('Once upon a time', { maxTokens: 24, temperature: 0 });
    const sequel = await m.complete('Once upon a time' + story.text, { maxTokens: 16, temperature: 0, stop: ['\n\n'] });
    await m.dispose();
    expect(state.story.content).toBe(story.text);
    expect(state.sequel.content).toBe(sequel.text);
  });

  it('workflow-embed.yaml: one vector for a text, one per text for a list, the vectors `tea-llama embed` prints', async () => {
    const r = await runCli(['run', example('workflow-embed.yaml'), '--model', stories, '--input', 'query=a kitten']);
    expect(r.code).toBe(0);
    const { streamed, state } = split(r.stdout, 'query');
    expect(streamed).toBe('');
    expect(state.query_vector).toMatchObject({ dimensions: 64, backend: 'local' });
    expect(Math.hypot(...state.query_vector.embedding)).toBeCloseTo(1, 4);
    expect(state.document_vectors.embeddings).toHaveLength(2);
    const cli = await runCli(['embed', '--model', stories, 'a kitten', ...state.documents]);
    const vectors = cli.stdout.trim().split('\n').map((line) => JSON.parse(line));
    expect(state.query_vector.embedding).toEqual(vectors[0]);
    expect(state.document_vectors.embeddings).toEqual(vectors.slice(1));
    // Lists of numbers print on one line each.
    expect(r.stdout).toMatch(/^ {4}"embedding": \[-?0\.\d+, /m);
  });

  describe.runIf(haveModel(PHI3_VOCAB))('workflow-chat.yaml with a model that has a chat template (synthetic tiny phi-3)', () => {
    let model: string;
    beforeAll(async () => {
      model = await syntheticModel('tiny', 'F16');
    });

    it('runs two turns: the second sends the first conversation with the reply, then the follow-up', async () => {
      const r = await runCli(['run', example('workflow-chat.yaml'), '--model', model, '--input', 'question=What is the capital of France?']);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      const { streamed, state } = split(r.stdout, 'system');
      const first = [
        { role: 'system', content: 'You are a concise assistant.' },
        { role: 'user', content: 'What is the capital of France?' },
      ];
      expect(state.first.messages).toEqual([...first, { role: 'assistant', content: state.first.content }]);
      const second = [...state.first.messages, { role: 'user', content: 'And of Italy?' }];
      expect(state.second.messages).toEqual([...second, { role: 'assistant', content: state.second.content }]);
      expect(streamed).toBe(state.second.content + '\n');

      const m = await loadModel(model, { contextSize: 4096 });
      const a = await m.chat(first, { maxTokens: 48, temperature: 0 });
      const b = await m.chat(second, { maxTokens: 32, temperature: 0 });
      await m.dispose();
      expect(state.first.content).toBe(a.text);
      expect(state.second.content).toBe(b.text);
    });
  });

  it('--input-file gives the initial state, --output writes the final state to a file, --check loads nothing', async () => {
    const dir = tempHome();
    writeFileSync(join(dir, 'input.json'), JSON.stringify({ opening: 'One day' }));
    const out = join(dir, 'state.json');
    const r = await runCli(['run', example('workflow-completion.yaml'), '--model', stories, '--input-file', join(dir, 'input.json'), '--output', out]);
    expect(r.code).toBe(0);
    const state = JSON.parse(readFileSync(out, 'utf8'));
    expect(state.opening).toBe('One day');
    expect(r.stdout).toBe(state.sequel.content + (state.sequel.content.endsWith('\n') ? '' : '\n'));

    const check = await runCli(['run', example('workflow-chat.yaml'), '--check', '--progress', '--model', '/no/such/model.gguf']);
    expect(check.code).toBe(0);
    expect(check.stderr).toMatch(/workflow-chat\.yaml: 2 nodes, valid\n$/);
  });
});

describe('the README', () => {
  it('shows examples/workflow-chat.yaml as it is', () => {
    const readme = readFileSync(join(repoRoot, 'README.md'), 'utf8');
    expect(readme).toContain('```yaml\n' + readFileSync(example('workflow-chat.yaml'), 'utf8').trimEnd() + '\n```');
  });

  it("its action-registry program runs from the built package (here with LLM_BACKEND=mock)", () => {
    const readme = readFileSync(join(repoRoot, 'README.md'), 'utf8');
    const code = /```js\n(import \{ createLlmActions[\s\S]*?)```/.exec(readme)![1];
    const project = tempHome();
    mkdirSync(join(project, 'node_modules'));
    symlinkSync(repoRoot, join(project, 'node_modules', 'tea-llama'), 'dir');
    const file = join(project, 'host.mjs');
    writeFileSync(file, code + 'console.log(JSON.stringify(state.reply));\n');
    const out = execFileSync(process.execPath, [file], { cwd: project, env: cliEnv({ LLM_BACKEND: 'mock' }), encoding: 'utf8' });
    expect(JSON.parse(out)).toMatchObject({
      content: 'mock answer to: Hello!',
      backend: 'mock',
      messages: [
        { role: 'user', content: 'Hello!' },
        { role: 'assistant', content: 'mock answer to: Hello!' },
      ],
    });
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
      /settings\.llm\.n_ctx: expected an integer from 1 to 16777216, found -5 \(number\)/,
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
    expect(typed.stderr).toMatch(/input n: expected int, found "many"/);
    const usage = await runCli(['run', example('workflow-chat.yaml'), '--input', 'question'], { env: env() });
    expect(usage.code).toBe(2);
    expect(usage.stderr).toBe('tea-llama: --input takes KEY=VALUE, not "question" (see tea-llama run --help)\n');
  });
});
