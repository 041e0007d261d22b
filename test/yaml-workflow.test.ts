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
import { runScript, WorkflowScriptError } from '../lib/workflow';

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
    run: "state.x = 1"
    params: { text: hi }
  - name: _meta
    run: "state.x = 1"
  - name: empty
    run: ""
  - action: llm.call
    params: { prompt: x }
`),
      ),
    );
    const lines = issues.map((i) => `${i.node ?? '-'} | ${i.path} | ${i.problem}`);
    expect(lines).toEqual([
      'ask | action | unknown action "llm.cal" (known: llm.call, llm.chat, llm.stream, llm.embed); did you mean "llm.call"?',
      'chat | params.max_token | llm.chat has no parameter "max_token" (it takes messages, max_tokens, temperature, top_k, top_p, min_p, repeat_penalty, repeat_last_n, frequency_penalty, presence_penalty, seed, stop, typical_p, dynatemp_range, dynatemp_exponent, top_n_sigma, xtc_probability, xtc_threshold, mirostat, mirostat_tau, mirostat_eta, dry_multiplier, dry_base, dry_allowed_length, dry_penalty_last_n, dry_sequence_breakers, samplers, logit_bias, ignore_eos, min_keep, logprobs, top_logprobs, grammar, json_schema, response_format, tools, tool_choice); did you mean "max_tokens"?',
      'chat | params | missing the required parameter "messages" (a list of { role, content })',
      'hot | params.temperature | expected a number from 0 to 100, got "hot"',
      'hot | params.stop | expected a string or a list of strings, got an empty list',
      'shout | params.prompt | {{ state.question | upper }} is not a state reference: templates hold only {{ state.key }} (nested keys with dots), no expressions, filters or code',
      'hot | name | is used by an earlier node (node names must be unique)',
      'hot | run | a node has either run (a script) or action and params, not both',
      `_meta | name | "_meta" is reserved: the state keeps the action nodes' metadata there`,
      'empty | run | expected the JavaScript body of the script (a non-empty string)',
      '- | nodes[7] | missing its name',
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
      'settings.llm.n_cxt: expected one of the known keys (backend, model_path, n_ctx, n_threads, n_gpu_layers, chat_format, rpc_servers, embedding, draft_model, draft_max, draft_min, draft_ngram, lora, temperature, max_tokens, top_p, enable_cache, cache_dir, api), got an unknown key; did you mean "n_ctx"?',
      'settings.llm.temperature: expected a number from 0 to 100, got -1 (number)',
      'state_schema.count: unknown type "integr" (known: str, int, float, bool, list, dict, any); did you mean "integer"?',
    ]);
  });

  it('a relative model_path, draft_model or lora path is relative to the workflow file; a missing file is one problem', async () => {
    const workflow = parseWorkflow(
      yaml(
        '  - { name: a, action: llm.call, params: { prompt: hi } }\n',
        'settings:\n  ltm: { other: engine }\n  llm:\n    model_path: models/m.gguf\n    draft_model: ../d.gguf\n    lora: [a.gguf, { path: /abs/b.gguf, scale: 0.5 }]\n    n_ctx: 256\n',
      ),
      { source: '/flows/w.yaml', dir: '/flows' },
    );
    expect(workflow.llm).toEqual({
      model_path: '/flows/models/m.gguf',
      draft_model: '/d.gguf',
      lora: ['/flows/a.gguf', { path: '/abs/b.gguf', scale: 0.5 }],
      n_ctx: 256,
    });
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
    params: { prompt: "{{ state.late }}" }
  - name: late
    action: llm.call
    params: { prompt: "{{ state.ask.content }} {{ state._meta.ask.usage.total_tokens }} {{ state._meta.ask.useage }}" }
  - name: self
    action: llm.call
    params: { prompt: "{{ state.self }} {{ state._meta.later }}" }
  - name: later
    action: llm.embed
    params: { text: "{{ state.self }}" }
`,
        'state_schema:\n  question: str\n  limit: { type: int, default: 8 }\n',
      ),
    );
    const issues = issuesOf(() => prepareWorkflow(workflow, { user: { name: 'Ann' } }));
    expect(issues.map((i) => `${i.node} | ${i.path} | ${i.problem}`)).toEqual([
      'ask | params.prompt | {{ state.question }} names an absent key: state.question is not in the input (state_schema declares it, without a default) and no node is named "question"',
      'ask | params.prompt | {{ state.user.nmae }} names an absent key: state.user has no key "nmae" (it has name)',
      'early | params.prompt | {{ state.late }} names an absent key: node "late" runs later',
      'late | params.prompt | {{ state.ask.content }}: state.ask is the generated text (a string), it has no key "content"; llm.call\'s metadata is in state._meta.ask (finish_reason, model, backend, usage, timings, parsed, tool_calls, logprobs)',
      'late | params.prompt | {{ state._meta.ask.useage }}: the metadata of llm.call has no key "useage" (it has finish_reason, model, backend, usage, timings, parsed, tool_calls, logprobs)',
      "self | params.prompt | {{ state.self }} names an absent key: it is this node's own result, which does not exist yet",
      'self | params.prompt | {{ state._meta.later }} names an absent key: state._meta.later holds the metadata of an earlier action node, and node "later" runs later',
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
      '- | input n | expected int, got "twelve"',
      '- | input flags | expected list as JSON, got "x"',
      'a | params.temperature | after templating: expected a number from 0 to 100, got "warm"',
    ]);
  });

  it('an invalid workflow never creates the backend', async () => {
    const workflow = parseWorkflow(yaml('  - { name: a, action: llm.call, params: { prompt: "{{ state.missing }}" } }\n'));
    const backend = vi.fn(() => new MockLlmBackend());
    await expect(runWorkflow(workflow, { backend })).rejects.toMatchObject({ code: 'ERR_WORKFLOW_INVALID' });
    expect(backend).not.toHaveBeenCalled();
  });
});

describe('running: nodes in order, each value in state[<node name>], its metadata in state._meta[<node name>]', () => {
  it('stores the text and the vectors as plain data, splices a conversation into messages, streams llm.stream', async () => {
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
        - { role: user, content: "{{ state.call }}" }
  - name: second
    action: llm.stream
    params:
      messages: ["{{ state._meta.first.messages }}", { role: user, content: "More, {{ state._meta.call.usage.completion_tokens }} words" }]
  - name: vectors
    action: llm.embed
    params: { text: ["{{ state.topic }}", "{{ state.second }}"] }
  - name: one
    action: llm.embed
    params: { text: "{{ state.topic }}" }
`);
    const chunks: Array<[string, string]> = [];
    const state = await runWorkflow(workflow, { input: { topic: 'cats' }, backend: mock, onChunk: (chunk, node) => chunks.push([chunk, node]) });

    expect(Object.keys(state)).toEqual(['topic', 'call', '_meta', 'first', 'second', 'vectors', 'one']);
    // The design's contract: the generated text, and the embedding as a list of numbers.
    expect(state.call).toBe('echo: About cats');
    expect(state.first).toBe('turn 1');
    expect(state.second).toBe('turn 2');
    const meta = state._meta as Record<string, Record<string, unknown>>;
    expect(Object.keys(meta)).toEqual(['call', 'first', 'second', 'vectors', 'one']);
    expect(meta.call).toMatchObject({ finish_reason: 'stop', backend: 'mock', model: 'mock', usage: { completion_tokens: 3 } });
    expect(mock.calls[0]).toEqual({ method: 'call', prompt: 'About cats' });
    expect(meta.first.messages).toEqual([
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'echo: About cats' },
      { role: 'assistant', content: 'turn 1' },
    ]);
    expect(mock.calls[2].messages).toEqual([
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'echo: About cats' },
      { role: 'assistant', content: 'turn 1' },
      { role: 'user', content: 'More, 3 words' },
    ]);
    expect(chunks.map(([c]) => c).join('')).toBe('turn 2');
    expect(new Set(chunks.map(([, node]) => node))).toEqual(new Set(['second']));
    const vectors = state.vectors as number[][];
    expect(vectors).toHaveLength(2);
    expect(vectors.every((v) => Array.isArray(v) && v.length === 16 && v.every((x) => typeof x === 'number'))).toBe(true);
    expect(meta.vectors).toEqual({ dimensions: 16, count: 2, model: 'mock', backend: 'mock' });
    expect(state.one).toEqual(vectors[0]);
    expect(meta.one).toEqual({ dimensions: 16, model: 'mock', backend: 'mock' });
  });

  it('a whole-value template is the value itself: a list of messages stays a list', async () => {
    const mock = new MockLlmBackend({ defaultResponse: 'ok' });
    const history = [
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'Hi' },
    ];
    const workflow = parseWorkflow('nodes:\n  - name: reply\n    action: llm.chat\n    params:\n      messages: "{{ state.messages }}"\n');
    const state = await runWorkflow(workflow, { input: { messages: history }, backend: mock });
    expect(mock.calls[0].messages).toEqual(history);
    expect(state.reply).toBe('ok');
  });

  it("a failing node's error names the node and keeps the error's code", async () => {
    // The messages come from an earlier node's value, so they can only be checked when the node runs.
    const workflow = parseWorkflow(
      yaml('  - { name: first, action: llm.call, params: { prompt: hi } }\n  - { name: ask, action: llm.chat, params: { messages: "{{ state.first }}" } }\n'),
    );
    await expect(runWorkflow(workflow, { backend: new MockLlmBackend({ defaultResponse: 'not a list' }) })).rejects.toMatchObject({
      code: 'ERR_INVALID_ARGUMENT',
      message: 'node "ask" (llm.chat): llm.chat: params.messages: expected a list of { role, content } messages, got "not a list"',
    });
  });

  it('options are strict: a misspelt option is an error naming the nearest one', async () => {
    const workflow = parseWorkflow(yaml('  - { name: a, action: llm.call, params: { prompt: hi } }\n'));
    await expect(runWorkflow(workflow, { backend: new MockLlmBackend(), onchunk: () => undefined } as never)).rejects.toMatchObject({
      code: 'ERR_INVALID_ARGUMENT',
      message: expect.stringContaining("unknown option 'onchunk' in runWorkflow() options (did you mean 'onChunk'?)"),
    });
    expect(() => prepareWorkflow(workflow, {}, { textinput: new Set() } as never)).toThrow("unknown option 'textinput' in prepareWorkflow() options (did you mean 'textInput'?)");
    expect(() => parseWorkflow('nodes: []', { sorce: 'x' } as never)).toThrow("unknown option 'sorce' in parseWorkflow() options (did you mean 'source'?)");
  });
});

describe('run: nodes, JavaScript in a sandbox', () => {
  const mock = () => new MockLlmBackend({ respond: ({ messages }) => `reply to ${messages!.at(-1)!.content}` });

  it('edits the state between actions: the multi-turn conversation of the design', async () => {
    const workflow = parseWorkflow(`
state_schema:
  messages: list
  response: str
nodes:
  - name: add_user_message
    run: |
      state["messages"].push({ role: "user", content: state["input"] });
      return state;
  - name: get_response
    action: llm.chat
    params:
      messages: "{{ state.messages }}"
  - name: add_assistant_message
    run: |
      state["messages"].push({ role: "assistant", content: state["get_response"] });
      state["response"] = state["get_response"];
      return state;
  - name: count
    run: "return { turns: state.messages.length, nothing: undefined }"
`);
    const backend = mock();
    const state = await runWorkflow(workflow, { input: { input: 'Hello!', messages: [{ role: 'system', content: 'Be brief.' }] }, backend });
    expect(backend.calls[0].messages).toEqual([
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'Hello!' },
    ]);
    expect(state.get_response).toBe('reply to Hello!');
    expect(state.response).toBe('reply to Hello!');
    expect(state.messages).toEqual([
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'Hello!' },
      { role: 'assistant', content: 'reply to Hello!' },
    ]);
    // A returned mapping is merged into the state (through JSON: undefined is dropped).
    expect(state.turns).toBe(3);
    expect('nothing' in state).toBe(false);
  });

  it('sees only the state and the language: no host objects, no require, no eval escape', async () => {
    const probe = await runScript(
      'probe',
      `return {
        kinds: [typeof require, typeof process, typeof module, typeof fetch, typeof setTimeout, typeof globalThis.Buffer].join(","),
        escaped: (() => { try { return String((0, eval)("typeof process")); } catch (e) { return "threw"; } })(),
        fn: (() => { try { return Function("return typeof process")(); } catch (e) { return "threw"; } })(),
      };`,
      { a: 1 },
    );
    expect(probe).toEqual({ a: 1, kinds: 'undefined,undefined,undefined,undefined,undefined,undefined', escaped: 'undefined', fn: 'undefined' });
    // The state is a copy: the caller's object is not changed.
    const original = { list: [1] };
    const after = await runScript('copy', 'state.list.push(2)', original);
    expect(original.list).toEqual([1]);
    expect(after.list).toEqual([1, 2]);
  });

  const failures: Array<[string, string, Partial<WorkflowScriptError>, RegExp]> = [
    ['throws', 'const x = 1;\nnull.boom;', { reason: 'threw', line: 2 }, /^node "s" \(run\): the script threw TypeError: .*null.* \(line 2 of the script\)$/],
    ['loops', 'for (;;) {}', { reason: 'timeout' }, /^node "s" \(run\): the script ran longer than 200 ms \(a loop without end\?\) and was stopped/],
    ['allocates without end', 'const a = []; for (;;) a.push("x".repeat(1024) + a.length);', { reason: 'memory' }, /^node "s" \(run\): the script used more than 8 MiB of memory/],
    ['allocates one huge block', 'return { n: "x".repeat(64 * 1024 * 1024).length }', { reason: 'memory' }, /used more than 8 MiB of memory/],
    ['keeps typed arrays', 'const a = []; for (;;) a.push(new Uint8Array(1024 * 1024));', { reason: 'memory' }, /used more than 8 MiB of memory/],
    ['recurses without end', 'function f() { return f() + 1 } return { x: f() }', { reason: 'memory' }, /recursed too deeply/],
    ['returns a list', 'return [1, 2]', { reason: 'result' }, /the script returned a list: return a mapping/],
    ['replaces the state with a number', 'state = 5', { reason: 'result' }, /the script set state to number: state must stay a mapping/],
  ];
  for (const [what, code, expected, message] of failures) {
    it(`a script that ${what} gets a typed error naming the node`, async () => {
      const started = Date.now();
      // The time limit is short only where time is what is tested: filling 8 MiB takes a few hundred ms.
      const timeoutMs = expected.reason === 'timeout' ? 200 : 5000;
      const error = await runScript('s', code, {}, { timeoutMs, memoryBytes: 8 * 1024 * 1024 }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(WorkflowScriptError);
      expect(error).toBeInstanceOf(LlamaError);
      expect(error).toMatchObject({ node: 's', code: 'ERR_WORKFLOW_SCRIPT', ...expected });
      expect((error as Error).message).toMatch(message);
      expect(Date.now() - started).toBeLessThan(10_000);
    });
  }

  it('the sandbox still works after a script that failed', async () => {
    await runScript('s', 'function f() { return f() } f()', {}).catch(() => undefined);
    expect(await runScript('t', 'return { ok: true }', {})).toEqual({ ok: true });
  });

  it('a syntax error is found before any model loads, and a failing script stops the run with its node', async () => {
    const broken = parseWorkflow('nodes:\n  - name: edit\n    run: |\n      state.x = 1;\n      state.y = ;\n  - { name: a, action: llm.call, params: { prompt: hi } }\n');
    const backend = vi.fn(() => new MockLlmBackend());
    const error = await runWorkflow(broken, { backend }).catch((e: WorkflowError) => e);
    expect(error).toBeInstanceOf(WorkflowError);
    expect((error as WorkflowError).issues).toEqual([{ node: 'edit', path: 'run, line 2', problem: expect.stringMatching(/^the script does not compile: SyntaxError: /) }]);
    expect(backend).not.toHaveBeenCalled();

    const failing = parseWorkflow('nodes:\n  - { name: a, action: llm.call, params: { prompt: hi } }\n  - { name: check, run: "if (state.a.length > 0) throw new Error(\'too long: \' + state.a.length)" }\n');
    await expect(runWorkflow(failing, { backend: new MockLlmBackend({ defaultResponse: 'four' }) })).rejects.toMatchObject({
      code: 'ERR_WORKFLOW_SCRIPT',
      node: 'check',
      message: 'node "check" (run): the script threw Error: too long: 4 (line 1 of the script)',
    });
  });

  it('after a script, references to keys it may set are checked when they are rendered', async () => {
    const workflow = parseWorkflow('nodes:\n  - { name: set, run: "state.topic = \'cats\'" }\n  - { name: a, action: llm.call, params: { prompt: "About {{ state.topic }} and {{ state.other }}" } }\n');
    expect(prepareWorkflow(workflow, {})).toEqual({});
    await expect(runWorkflow(workflow, { backend: new MockLlmBackend() })).rejects.toMatchObject({
      code: 'ERR_INVALID_ARGUMENT',
      message: 'node "a" (llm.call): llm.call: {{ state.other }}: state.other is not set',
    });
  });
});

describe('the action registry, for a host workflow engine', () => {
  it('exports one handler per action, returning what a node stores; withMeta adds the metadata', async () => {
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
    expect(await actions['llm.chat']({ messages: '{{ state.history }}', max_tokens: 5 }, state)).toBe('ok');
    expect(await actions['llm.call']({ prompt: 'Q: {{ state.q }}' }, state)).toBe('ok');
    expect(await actions['llm.chat'].withMeta({ messages: '{{ state.history }}' }, state)).toEqual({
      value: 'ok',
      meta: expect.objectContaining({ finish_reason: 'stop', messages: [...state.history, { role: 'assistant', content: 'ok' }], usage: expect.any(Object) }),
    });
    expect(mock.calls.map((c) => c.prompt ?? c.messages)).toEqual([state.history, 'Q: Why?', state.history]);
    // Without state, params are taken as they are.
    const vector = await actions['llm.embed']({ text: 'plain' });
    expect(Array.isArray(vector) && vector.length === 16 && typeof vector[0] === 'number').toBe(true);
    expect(await actions['llm.embed']({ text: ['a', 'b'] })).toHaveLength(2);
    expect(created).toBe(1);
    await expect(actions['llm.call']({ prompt: 'x', top_q: 3 })).rejects.toMatchObject({
      code: 'ERR_INVALID_ARGUMENT',
      message: expect.stringContaining('llm.call: params.top_q: llm.call has no parameter "top_q"'),
    });
    await expect(actions['llm.call']({ prompt: 'x', max_token: 3 })).rejects.toThrow('did you mean "max_tokens"?');
    await expect(actions['llm.stream']({ prompt: 'x', messages: [] })).rejects.toThrow('takes "prompt" or "messages", not both');
    await expect(actions['llm.call']({ prompt: '{{ state.nope }}' }, state)).rejects.toThrow('llm.call: {{ state.nope }}: state.nope is not set');
    expect(() => createLlmActions({ backend: mock, onchunk: () => undefined } as never)).toThrow("unknown option 'onchunk' in createLlmActions() context (did you mean 'onChunk'?)");
  });
});
