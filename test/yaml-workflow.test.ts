import { describe, expect, it, vi } from 'vitest';

import {
  createLlmActions,
  LLM_ACTION_NAMES,
  LlamaError,
  loadWorkflow,
  MockLlmBackend,
  parseWorkflow,
  prepareWorkflow,
  renderTemplate,
  runWorkflow,
  WorkflowError,
  type LlmBackend,
  type WorkflowIssue,
} from '../lib';

// YAML workflows as a library: templating, checks before any model loads, the action registry and the runner.
// The LLM here is MockLlmBackend (deterministic answers); test/cli-run.test.ts runs real models.

/** The issues of a WorkflowError thrown by `fn`. */
function issuesOf(fn: () => unknown): WorkflowIssue[] {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(WorkflowError);
    expect((error as WorkflowError).code).toBe('ERR_WORKFLOW_INVALID');
    return (error as WorkflowError).issues;
  }
  throw new Error('no WorkflowError was thrown');
}

const yaml = (nodes: string, head = '') => `${head}nodes:\n${nodes}`;

describe('templating: {{ state.key }}, data substitution only', () => {
  const state = {
    question: 'Why is the sky blue?',
    count: 3,
    user: { name: 'Ann', tags: ['a', 'b'] },
    history: [
      { role: 'user', content: 'Hi' },
      { role: 'assistant', content: 'Hello!' },
    ],
    'odd key': 'x',
  };

  it('substitutes whole values with their type, and interpolates inside longer strings', () => {
    expect(renderTemplate('{{ state.history }}', state)).toEqual(state.history);
    expect(renderTemplate('  {{state.count}} ', state)).toBe(3);
    expect(renderTemplate('{{ state.user }}', state)).toEqual(state.user);
    expect(renderTemplate('Q: {{ state.question }} ({{ state.count }} times)', state)).toBe('Q: Why is the sky blue? (3 times)');
    expect(renderTemplate('tags: {{ state.user.tags }}', state)).toBe('tags: ["a","b"]');
    expect(renderTemplate({ a: ['{{ state.user.name }}', 1], b: '{{ state.user.tags.1 }}{{ state.user.tags[0] }}' }, state)).toEqual({ a: ['Ann', 1], b: 'ba' });
    expect(renderTemplate('{{ state["odd key"] }} {{ state.history[1].content }}', state)).toBe('x Hello!');
    expect(renderTemplate('plain }} text', state)).toBe('plain }} text');
  });

  it('a whole value is a copy: changing it does not change the state', () => {
    const copy = renderTemplate('{{ state.history }}', state) as Array<{ content: string }>;
    copy[0].content = 'changed';
    expect(state.history[0].content).toBe('Hi');
  });

  it('names an absent key precisely', () => {
    expect(() => renderTemplate('{{ state.missing }}', state)).toThrow('{{ state.missing }}: state.missing is not set');
    expect(() => renderTemplate('{{ state.user.nmae }}', state)).toThrow('state.user has no key "nmae" (it has name, tags)');
    expect(() => renderTemplate('{{ state.user.tags.5 }}', state)).toThrow('state.user.tags is a list of 2 items, it has no item 5');
    expect(() => renderTemplate('{{ state.count.x }}', state)).toThrow('state.count is number 3, not a mapping');
    // Inherited properties are not state: no way to reach Object's prototype.
    expect(() => renderTemplate('{{ state.constructor }}', state)).toThrow('state.constructor is not set');
    expect(() => renderTemplate('{{ state.user.__proto__ }}', state)).toThrow('has no key "__proto__"');
  });

  it('rejects anything but references: no expressions, filters or code', () => {
    for (const bad of ['{{ state.question | upper }}', '{{ 1 + 1 }}', "{{ constructor.constructor('return 1')() }}", '{{ state }}', '{{ state.a + state.b }}']) {
      expect(() => renderTemplate(bad, state), bad).toThrow(LlamaError);
    }
    expect(() => renderTemplate('{{ state.question', state)).toThrow(/unclosed template/);
  });
});

describe('checks before anything runs, each problem with its node and what is wrong', () => {
  it('unknown action, missing and unknown params, bad values, bad templates, duplicate names, code: all reported at once', () => {
    const issues = issuesOf(() =>
      parseWorkflow(
        yaml(`  - name: ask
    action: llm.cal
    params: { prompt: hi }
  - name: chat
    action: llm.chat
    params: { max_token: 5 }
  - name: hot
    action: llm.call
    params: { prompt: hi, temperature: hot, stop: [] }
  - name: shout
    action: llm.call
    params: { prompt: "{{ state.question | upper }}" }
  - name: hot
    action: llm.embed
    run: "import os"
    params: { text: hi }
  - action: llm.call
    params: { prompt: x }
`),
      ),
    );
    const lines = issues.map((i) => `${i.node ?? '-'} | ${i.path} | ${i.problem}`);
    expect(lines).toEqual([
      'ask | action | unknown action "llm.cal" (known: llm.call, llm.chat, llm.stream, llm.embed); did you mean "llm.call"?',
      'chat | params.max_token | llm.chat has no parameter "max_token" (it takes messages, max_tokens, temperature, top_p, stop, seed); did you mean "max_tokens"?',
      'chat | params | missing the required parameter "messages" (a list of { role, content })',
      'hot | params.temperature | expected a number from 0 to 100, found "hot"',
      'hot | params.stop | expected a string or a list of strings, found an empty list',
      'shout | params.prompt | {{ state.question | upper }} is not a state reference: templates hold only {{ state.key }} (nested keys with dots), no expressions, filters or code',
      'hot | name | is used by an earlier node (node names must be unique)',
      'hot | run | unknown key "run" in a node (known: name, action, params); this runner executes only actions, no code',
      '- | nodes[5] | missing its name',
    ]);
  });

  it('invalid settings are reported with their path in the workflow and the likely key', () => {
    const issues = issuesOf(() =>
      parseWorkflow(
        yaml(
          '  - { name: a, action: llm.call, params: { prompt: hi } }\n',
          'settings:\n  model_path: m.gguf\n  llm:\n    n_cxt: 512\n    temperature: -1\nstate_schema:\n  count: integr\n',
        ),
      ),
    );
    expect(issues.map((i) => `${i.path}: ${i.problem}`)).toEqual([
      'settings.model_path: LLM settings go under settings.llm (settings.llm.model_path)',
      'settings.llm.n_cxt: expected one of the known keys (backend, model_path, n_ctx, n_threads, n_gpu_layers, chat_format, embedding, temperature, max_tokens, top_p, enable_cache, cache_dir, api), found an unknown key; did you mean "n_ctx"?',
      'settings.llm.temperature: expected a number from 0 to 100, found -1 (number)',
      'state_schema.count: unknown type "integr" (known: str, int, float, bool, list, dict, any); did you mean "integer"?',
    ]);
  });

  it('a relative model_path is relative to the workflow file; a missing file is one problem', async () => {
    const workflow = parseWorkflow(yaml('  - { name: a, action: llm.call, params: { prompt: hi } }\n', 'settings:\n  ltm: { other: engine }\n  llm:\n    model_path: models/m.gguf\n    n_ctx: 256\n'), {
      source: '/flows/w.yaml',
      dir: '/flows',
    });
    expect(workflow.llm).toEqual({ model_path: '/flows/models/m.gguf', n_ctx: 256 });
    await expect(loadWorkflow('/no/such/workflow.yaml')).rejects.toMatchObject({
      code: 'ERR_WORKFLOW_INVALID',
      message: 'invalid workflow /no/such/workflow.yaml:\n  no such file',
    });
  });

  it('a template naming an absent key fails with the node, the reference and why it is absent', () => {
    const workflow = parseWorkflow(
      yaml(
        `  - name: ask
    action: llm.call
    params: { prompt: "{{ state.question }} {{ state.user.nmae }}", max_tokens: "{{ state.limit }}" }
  - name: early
    action: llm.call
    params: { prompt: "{{ state.late.content }}" }
  - name: late
    action: llm.call
    params: { prompt: "{{ state.ask.contnet }}" }
  - name: self
    action: llm.call
    params: { prompt: "{{ state.self.content }}" }
`,
        'state_schema:\n  question: str\n  limit: { type: int, default: 8 }\n',
      ),
    );
    const issues = issuesOf(() => prepareWorkflow(workflow, { user: { name: 'Ann' } }));
    expect(issues.map((i) => `${i.node} | ${i.path} | ${i.problem}`)).toEqual([
      'ask | params.prompt | {{ state.question }} names an absent key: state.question is not in the input (state_schema declares it, without a default) and no node is named "question"',
      'ask | params.prompt | {{ state.user.nmae }} names an absent key: state.user has no key "nmae" (it has name)',
      'early | params.prompt | {{ state.late.content }} names an absent key: node "late" runs later',
      'late | params.prompt | {{ state.ask.contnet }}: llm.call results have no key "contnet" (they have content, finish_reason, model, backend, usage, timings)',
      "self | params.prompt | {{ state.self.content }} names an absent key: it is this node's own result, which does not exist yet",
    ]);
  });

  it('input is converted to the state_schema types, and params fed by the input are checked once templated', () => {
    const workflow = parseWorkflow(
      yaml(
        '  - { name: a, action: llm.call, params: { prompt: "{{ state.q }}", max_tokens: "{{ state.n }}", temperature: "{{ state.t }}" } }\n',
        'state_schema:\n  q: str\n  n: int\n  t: any\n  flags: list\n',
      ),
    );
    const text = new Set(['q', 'n', 't', 'flags']);
    expect(prepareWorkflow(workflow, { q: 'hi', n: '12', t: '0.5', flags: '["x"]' }, { textInput: text })).toEqual({ q: 'hi', n: 12, t: '0.5', flags: ['x'] });
    const issues = issuesOf(() => prepareWorkflow(workflow, { q: 'hi', n: 'twelve', t: 'warm', flags: 'x' }, { textInput: text }));
    expect(issues.map((i) => `${i.node ?? '-'} | ${i.path} | ${i.problem}`)).toEqual([
      '- | input n | expected int, found "twelve"',
      '- | input flags | expected list as JSON, found "x"',
      'a | params.temperature | after templating: expected a number from 0 to 100, found "warm"',
    ]);
  });

  it('an invalid workflow never creates the backend', async () => {
    const workflow = parseWorkflow(yaml('  - { name: a, action: llm.call, params: { prompt: "{{ state.missing }}" } }\n'));
    const backend = vi.fn(() => new MockLlmBackend());
    await expect(runWorkflow(workflow, { backend })).rejects.toMatchObject({ code: 'ERR_WORKFLOW_INVALID' });
    expect(backend).not.toHaveBeenCalled();
  });
});

describe('running: nodes in order, each result in state[<node name>]', () => {
  it('templates params from the state, splices a conversation into messages, streams llm.stream', async () => {
    const mock = new MockLlmBackend({ respond: ({ prompt, messages }) => (prompt ? `echo: ${prompt}` : `turn ${messages!.filter((m) => m.role === 'user').length}`) });
    const workflow = parseWorkflow(`
state_schema:
  topic: str
nodes:
  - name: call
    action: llm.call
    params: { prompt: "About {{ state.topic }}", max_tokens: 50, temperature: 0, stop: ["zzz"], seed: 1 }
  - name: first
    action: llm.chat
    params:
      messages:
        - { role: system, content: "Be brief." }
        - { role: user, content: "{{ state.call.content }}" }
  - name: second
    action: llm.stream
    params:
      messages: ["{{ state.first.messages }}", { role: user, content: "More, {{ state.call.usage.completion_tokens }} words" }]
  - name: vectors
    action: llm.embed
    params: { text: ["{{ state.topic }}", "{{ state.second.content }}"] }
  - name: one
    action: llm.embed
    params: { text: "{{ state.topic }}" }
`);
    const chunks: Array<[string, string]> = [];
    const state = await runWorkflow(workflow, { input: { topic: 'cats' }, backend: mock, onChunk: (chunk, node) => chunks.push([chunk, node]) });

    expect(Object.keys(state)).toEqual(['topic', 'call', 'first', 'second', 'vectors', 'one']);
    expect(state.call).toMatchObject({ content: 'echo: About cats', finish_reason: 'stop', backend: 'mock', usage: { completion_tokens: 3 } });
    expect(mock.calls[0]).toEqual({ method: 'call', prompt: 'About cats' });
    expect(state.first).toMatchObject({
      content: 'turn 1',
      messages: [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: 'echo: About cats' },
        { role: 'assistant', content: 'turn 1' },
      ],
    });
    expect(mock.calls[2].messages).toEqual([
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'echo: About cats' },
      { role: 'assistant', content: 'turn 1' },
      { role: 'user', content: 'More, 3 words' },
    ]);
    expect(state.second).toMatchObject({ content: 'turn 2' });
    expect(chunks.map(([c]) => c).join('')).toBe('turn 2');
    expect(new Set(chunks.map(([, node]) => node))).toEqual(new Set(['second']));
    const vectors = state.vectors as { embeddings: number[][]; dimensions: number };
    expect(vectors.embeddings).toHaveLength(2);
    expect(vectors.dimensions).toBe(16);
    expect((state.one as { embedding: number[] }).embedding).toEqual(vectors.embeddings[0]);
  });

  it("a failing node's error names the node and keeps the error's code", async () => {
    // The messages come from an earlier node's result, so they can only be checked when the node runs.
    const workflow = parseWorkflow(
      yaml('  - { name: first, action: llm.call, params: { prompt: hi } }\n  - { name: ask, action: llm.chat, params: { messages: "{{ state.first.content }}" } }\n'),
    );
    await expect(runWorkflow(workflow, { backend: new MockLlmBackend({ defaultResponse: 'not a list' }) })).rejects.toMatchObject({
      code: 'ERR_INVALID_ARGUMENT',
      message: 'node "ask" (llm.chat): llm.chat: params.messages: expected a list of { role, content } messages, found "not a list"',
    });
  });
});

describe('the action registry, for a host workflow engine', () => {
  it('exports one handler per action, called with params and state', async () => {
    const mock = new MockLlmBackend({ defaultResponse: 'ok' });
    let created = 0;
    const actions = createLlmActions({
      backend: () => {
        created++;
        return mock as LlmBackend;
      },
    });
    expect(Object.keys(actions)).toEqual([...LLM_ACTION_NAMES]);
    expect(created).toBe(0);
    const state = { history: [{ role: 'user', content: 'Hi' }], q: 'Why?' };
    expect(await actions['llm.chat']({ messages: '{{ state.history }}', max_tokens: 5 }, state)).toMatchObject({
      content: 'ok',
      messages: [...state.history, { role: 'assistant', content: 'ok' }],
    });
    expect(await actions['llm.call']({ prompt: 'Q: {{ state.q }}' }, state)).toMatchObject({ content: 'ok', usage: { total_tokens: expect.any(Number) } });
    expect(mock.calls.map((c) => c.prompt ?? c.messages)).toEqual([state.history, 'Q: Why?']);
    // Without state, params are taken as they are.
    expect(await actions['llm.embed']({ text: 'plain' })).toMatchObject({ dimensions: 16 });
    expect(created).toBe(1);
    await expect(actions['llm.call']({ prompt: 'x', top_k: 3 })).rejects.toMatchObject({
      code: 'ERR_INVALID_ARGUMENT',
      message: expect.stringContaining('llm.call: params.top_k: llm.call has no parameter "top_k"'),
    });
    await expect(actions['llm.stream']({ prompt: 'x', messages: [] })).rejects.toThrow('takes "prompt" or "messages", not both');
    await expect(actions['llm.call']({ prompt: '{{ state.nope }}' }, state)).rejects.toThrow('llm.call: {{ state.nope }}: state.nope is not set');
  });
});
