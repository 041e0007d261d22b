import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { LLM_ACTIONS, loadModel, parseWorkflow, WorkflowError, type LlamaModel, type TokenLogprob, type WorkflowIssue } from '../lib';
import { SAMPLING_FIELDS, type SamplingField } from '../lib/engine/request';
import { ensureCliBuilt, runCli, tempHome } from './support/cli';
import { haveModel, modelPath, STORIES } from './support/models';

// Workflow actions take every sampling option of SAMPLING_FIELDS by its wire name (issue 16): checked with their
// types before any model loads, and given to the request model as the library's options; logprobs land in
// state._meta.<node>.logprobs. Real runs go through `tea-llama run` on stories260K, compared with the library.

beforeAll(() => ensureCliBuilt(), 300_000);

function issuesOf(text: string): WorkflowIssue[] {
  try {
    parseWorkflow(text);
  } catch (error) {
    expect(error).toBeInstanceOf(WorkflowError);
    expect((error as WorkflowError).code).toBe('ERR_WORKFLOW_INVALID');
    return (error as WorkflowError).issues;
  }
  throw new Error('no WorkflowError was thrown');
}

const node = (params: string, action = 'llm.call') => `nodes:\n  - name: ask\n    action: ${action}\n    params:\n      prompt: Hello\n${params}`;

describe('sampling params of llm.call, llm.chat and llm.stream', () => {
  it('are every SAMPLING_FIELDS field by its wire name, with its type and range', () => {
    for (const action of ['llm.call', 'llm.chat', 'llm.stream'] as const) {
      const params = LLM_ACTIONS[action].params;
      for (const f of Object.values(SAMPLING_FIELDS) as SamplingField[]) {
        expect(params[f.wire], `${action} ${f.wire}`).toBeDefined();
        const type = { int: 'int', number: 'number', bool: 'bool', stop: 'stop', strings: 'json', samplers: 'json', logitBias: 'json' }[f.kind];
        expect(params[f.wire]).toMatchObject({ type, ...(f.min !== undefined ? { min: f.min, max: f.max } : {}) });
      }
      expect(LLM_ACTIONS[action].metaKeys).toContain('logprobs');
    }
    // Numbers and bools may come as text (from --input or a template).
    expect(() => parseWorkflow(node('      top_k: "5"\n      logprobs: "true"\n      top_logprobs: 2\n      samplers: "top_k;temperature"\n      logit_bias: { "13": -.inf }\n'))).not.toThrow();
  });

  it('a wrong type or value is ERR_WORKFLOW_INVALID naming the node and the param', () => {
    const cases: [string, string, RegExp][] = [
      ['      top_k: many\n', 'params.top_k', /expected an integer from 0 to \d+, got "many"/],
      ['      mirostat: 3\n', 'params.mirostat', /expected an integer from 0 to 2, got number 3/],
      ['      logprobs: 3\n', 'params.logprobs', /expected true or false, got number 3/],
      ['      ignore_eos: maybe\n', 'params.ignore_eos', /expected true or false/],
      ['      dry_multiplier: [1]\n', 'params.dry_multiplier', /expected a number from 0 to/],
      ['      samplers: [top_k, top_kk]\n', 'params.samplers', /"top_kk" is not a llama.cpp sampler \(did you mean 'top_k'\?\)/],
      ['      dry_sequence_breakers: []\n', 'params.dry_sequence_breakers', /non-empty array/],
      ['      logit_bias: 5\n', 'params.logit_bias', /expected a mapping or a list/],
      ['      logit_bias: { "13": hot }\n', 'params.logit_bias', /must be a number, -Infinity or false/],
      ['      top_logprobs: 2\n', 'params.top_logprobs', /needs logprobs: true/],
      ['      top_kk: 2\n', 'params.top_kk', /did you mean "top_k"\?/],
    ];
    for (const [params, path, problem] of cases) {
      const issues = issuesOf(node(params));
      expect(issues, params).toHaveLength(1);
      expect(issues[0], params).toMatchObject({ node: 'ask', path });
      expect(issues[0]!.problem, params).toMatch(problem);
    }
  });
});

describe.runIf(haveModel(STORIES))('tea-llama run with sampling params on stories260K', () => {
  const stories = modelPath(STORIES);
  let model: LlamaModel;

  beforeAll(async () => {
    model = await loadModel(stories, { contextSize: 512, threads: 2 });
  });
  afterAll(async () => {
    await model?.dispose();
  });

  const shape = (logprobs: TokenLogprob[]) =>
    logprobs.map((t) => ({ id: t.id, token: t.token, bytes: t.bytes, logprob: t.logprob, top_logprobs: t.topLogprobs.map((a) => ({ id: a.id, token: a.token, bytes: a.bytes, logprob: a.logprob })) }));

  function expectSameLogprobs(got: ReturnType<typeof shape>, expected: ReturnType<typeof shape>): void {
    expect(got.map((t) => [t.id, t.token, t.bytes, t.top_logprobs.map((a) => a.id)])).toEqual(expected.map((t) => [t.id, t.token, t.bytes, t.top_logprobs.map((a) => a.id)]));
    got.forEach((t, i) => {
      expect(t.logprob).toBeCloseTo(expected[i]!.logprob, 4);
      t.top_logprobs.forEach((a, k) => expect(a.logprob).toBeCloseTo(expected[i]!.top_logprobs[k]!.logprob, 4));
    });
  }

  it('llm.call and llm.chat nodes with top_k, mirostat, logprobs (and more) give the library text and logprobs', async () => {
    const file = join(tempHome(), 'sampling.yaml');
    writeFileSync(
      file,
      [
        'state_schema:',
        '  k: int',
        'nodes:',
        '  - name: story',
        '    action: llm.call',
        '    params:',
        '      prompt: Once upon a time',
        '      temperature: 1',
        '      seed: 7',
        '      max_tokens: 24',
        '      top_k: "{{ state.k }}"',
        '      mirostat: 2',
        '      dry_multiplier: 0.8',
        '      logprobs: true',
        '      top_logprobs: 2',
        '  - name: reply',
        '    action: llm.chat',
        '    params:',
        '      messages: [{ role: user, content: Tell me a story. }]',
        '      temperature: 0.8',
        '      seed: 3',
        '      max_tokens: 16',
        '      samplers: top_k;min_p;temperature',
        '      logit_bias: { " the": -.inf }',
        '      ignore_eos: true',
        '      logprobs: true',
      ].join('\n') + '\n',
    );
    const r = await runCli(['run', file, '--model', stories, '-c', '512', '-t', '2', '--input', 'k=5']);
    expect(r.code, r.stderr).toBe(0);
    const state = JSON.parse(r.stdout);

    const story = await model.complete('Once upon a time', { temperature: 1, seed: 7, maxTokens: 24, topK: 5, mirostat: 2, dryMultiplier: 0.8, logprobs: true, topLogprobs: 2 });
    expect(state.story).toBe(story.text);
    expectSameLogprobs(state._meta.story.logprobs, shape(story.logprobs!));
    expect(state._meta.story.logprobs[0].top_logprobs).toHaveLength(2);
    // Different from the same node without the new params.
    expect(state.story).not.toBe((await model.complete('Once upon a time', { temperature: 1, seed: 7, maxTokens: 24 })).text);

    const reply = await model.chat([{ role: 'user', content: 'Tell me a story.' }], {
      template: 'chatml', temperature: 0.8, seed: 3, maxTokens: 16, samplers: ['top_k', 'min_p', 'temperature'], logitBias: { ' the': -Infinity }, ignoreEos: true, logprobs: true,
    });
    expect(state.reply).toBe(reply.text);
    expect(state._meta.reply.usage.completion_tokens).toBe(16);
    expectSameLogprobs(state._meta.reply.logprobs, shape(reply.logprobs!));
  });

  it('a wrong param type stops the run before the model loads, exit code 1, ERR_WORKFLOW_INVALID naming it', async () => {
    // As written in the file, and as it comes from the input through a template.
    const written = join(tempHome(), 'bad.yaml');
    writeFileSync(written, node('      logprobs: yes please\n'));
    const templated = join(tempHome(), 'bad-input.yaml');
    writeFileSync(templated, node('      top_k: "{{ state.k }}"\n').replace('nodes:', 'state_schema:\n  k: str\nnodes:'));
    for (const [file, input, problem] of [
      [written, [], 'node "ask": params.logprobs: expected true or false, got "yes please"'],
      [templated, ['--input', 'k=five'], 'node "ask": params.top_k: after templating: expected an integer from 0 to 2147483647, got "five"'],
    ] as const) {
      const r = await runCli(['run', file, '--model', stories, ...input]);
      expect(r.code, problem).toBe(1);
      expect(r.stdout).toBe('');
      expect(r.stderr).toMatch(/^tea-llama: ERR_WORKFLOW_INVALID: /);
      expect(r.stderr).toContain(problem);
    }
  });
});
