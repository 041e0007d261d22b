import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { LlamaError, loadModel, loadWorkflow, MockLlmBackend, parseWorkflow, runWorkflow, setLogLevel, type LlamaModel } from '../../lib';
import { cliEnv, ensureCliBuilt, runCli } from '../support/cli';
import { haveModel, modelPath, STORIES } from '../support/models';

// Names that are Object.prototype's own (`__proto__`, `constructor`, `toString`) and YAML built to exhaust the
// parser: each is a typed error with a stable code, or a key like any other; never a TypeError, a lost value or a
// process out of memory.

const dir = mkdtempSync(join(tmpdir(), 'tea-hardening-'));
const file = (name: string, text: string | Buffer) => {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
};

/** A YAML "billion laughs": 9 levels of 10 aliases each, a few hundred bytes that expand to 10^9 strings. */
const ALIAS_BOMB = [
  'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
  ...'bcdefghi'.split('').map((c, i) => {
    const prev = 'abcdefghi'[i]!;
    return `${c}: &${c} [${Array(10).fill(`*${prev}`).join(',')}]`;
  }),
].join('\n');

async function typed(work: () => unknown): Promise<{ error: LlamaError; ms: number }> {
  const started = performance.now();
  try {
    await work();
  } catch (error) {
    expect(error).toBeInstanceOf(LlamaError);
    return { error: error as LlamaError, ms: performance.now() - started };
  }
  throw new Error('expected a typed error');
}

beforeAll(() => ensureCliBuilt(), 300_000);

describe.runIf(haveModel(STORIES))('embedding options read through an object lookup', () => {
  let model: LlamaModel;
  beforeAll(async () => {
    model = await loadModel(modelPath(STORIES));
  });
  afterAll(async () => {
    await model?.dispose();
  });

  it("pooling: '__proto__', 'constructor', 'toString' are ERR_INVALID_ARGUMENT listing the poolings", async () => {
    for (const pooling of ['__proto__', 'constructor', 'toString', 'hasOwnProperty']) {
      const { error, ms } = await typed(() => model.embed('hi', { pooling: pooling as 'mean' }));
      expect(error.code, pooling).toBe('ERR_INVALID_ARGUMENT');
      expect(error.message).toBe('pooling must be one of mean, cls, last, rank');
      expect(ms).toBeLessThan(2000);
    }
    expect((await model.embed('hi', { pooling: 'mean' })).length).toBeGreaterThan(0);
  });
});

describe('other lookups by name', () => {
  it('setLogLevel, the command name, a state_schema type, an action parameter', async () => {
    for (const level of ['__proto__', 'constructor']) expect(() => setLogLevel(level as 'error')).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }));
    const r = await runCli(['constructor'], { env: cliEnv(), timeoutMs: 30_000 });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^tea-llama: ERR_INVALID_ARGUMENT: unknown command "constructor"/);

    const schema = await typed(() => parseWorkflow('state_schema:\n  x: constructor\nnodes:\n  - name: a\n    action: llm.call\n    params: { prompt: hi }\n'));
    expect(schema.error.code).toBe('ERR_WORKFLOW_INVALID');
    expect(schema.error.message).toContain('state_schema.x: unknown type "constructor"');
    const param = await typed(() => parseWorkflow('nodes:\n  - name: a\n    action: llm.call\n    params: { prompt: hi, constructor: x, __proto__: y }\n'));
    expect(param.error.code).toBe('ERR_WORKFLOW_INVALID');
    expect(param.error.message).toContain('llm.call has no parameter "constructor"');
    expect(param.error.message).toContain('llm.call has no parameter "__proto__"');
  });
});

describe('workflow state: __proto__, constructor and prototype are keys like any other', () => {
  const WORKFLOW = [
    'nodes:',
    '  - name: __proto__',
    '    action: llm.call',
    '    params: { prompt: first }',
    '  - name: constructor',
    '    action: llm.call',
    '    params: { prompt: "{{ state.__proto__ }} then" }',
    '  - name: prototype',
    '    run: |',
    '      return { prototype: state["constructor"] + " and " + state["__proto__"] + " / " + state["toString"] };',
    '',
  ].join('\n');

  it('a node named __proto__ keeps its result; so do constructor and prototype, and the input of those names', async () => {
    const workflow = parseWorkflow(WORKFLOW);
    const mock = new MockLlmBackend({ respond: ({ prompt }) => `<${prompt}>` });
    const input = JSON.parse('{"__proto__": {"polluted": true}, "toString": "my own"}') as Record<string, unknown>;
    const state = await runWorkflow(workflow, { input, backend: mock });
    expect(Object.hasOwn(state, '__proto__')).toBe(true);
    expect(state['__proto__']).toBe('<first>');
    expect(state['constructor']).toBe('<<first> then>');
    expect(state['prototype']).toBe('<<first> then> and <first> / my own');
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    const json = JSON.parse(JSON.stringify(state)) as Record<string, unknown>;
    expect(Object.keys(json)).toEqual(expect.arrayContaining(['__proto__', 'constructor', 'prototype', '_meta']));
    expect(Object.keys(json._meta as object)).toEqual(['__proto__', 'constructor']);
    await mock.dispose();
  });

  it('tea-llama run --input constructor=x (and __proto__=y): the keys are set, not a TypeError', async () => {
    const path = file('names.yaml', WORKFLOW);
    const r = await runCli(['run', path, '--backend', 'mock', '--input', 'constructor=x', '--input', '__proto__=y', '--input', 'toString=z'], { env: cliEnv(), timeoutMs: 60_000 });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const state = JSON.parse(r.stdout) as Record<string, unknown>;
    // The inputs were there from the start; the nodes of those names then replaced them with their results.
    expect(state['toString']).toBe('z');
    expect(state['__proto__']).toBe('mock answer to: first');
    expect(state['prototype']).toBe('mock answer to: mock answer to: first then and mock answer to: first / z');
    const check = await runCli(['run', file('plain.yaml', 'state_schema:\n  constructor: int\nnodes:\n  - name: a\n    action: llm.call\n    params: { prompt: "{{ state.constructor }}" }\n'), '--check', '--input', 'constructor=x'], {
      env: cliEnv(),
      timeoutMs: 30_000,
    });
    expect(check.code).toBe(1);
    expect(check.stderr).toMatch(/^tea-llama: ERR_WORKFLOW_INVALID: invalid workflow .*plain\.yaml: input constructor: expected int, got "x"$/m);
  });
});

describe('YAML built to exhaust memory', () => {
  it('an alias bomb: ERR_WORKFLOW_INVALID / ERR_SETTINGS_INVALID naming maxAliasCount, at once', async () => {
    const rss = process.memoryUsage().rss;
    const { error, ms } = await typed(() => parseWorkflow(`${ALIAS_BOMB}\nnodes: []\n`));
    expect(error.code).toBe('ERR_WORKFLOW_INVALID');
    expect(error.message).toContain('its aliases expand to more than 100 nodes (maxAliasCount');
    expect(ms).toBeLessThan(2000);
    expect(process.memoryUsage().rss - rss).toBeLessThan(100 * 1024 * 1024);
    // The option raises it; a workflow with a few aliases passes the default.
    const few = parseWorkflow('nodes:\n  - name: a\n    action: llm.call\n    params: { prompt: &p hi }\n  - name: b\n    action: llm.call\n    params: { prompt: *p }\n');
    expect(few.nodes.map((n) => n.params)).toEqual([{ prompt: 'hi' }, { prompt: 'hi' }]);
    await expect(typed(() => parseWorkflow('nodes: []\n', { maxAliasCount: 0 }))).resolves.toMatchObject({ error: { code: 'ERR_INVALID_ARGUMENT' } });

    // In a child with a small heap, as the command line meets it: as a workflow, and as a settings file.
    const wf = file('bomb.yaml', `${ALIAS_BOMB}\nnodes: []\n`);
    const env = cliEnv({ NODE_OPTIONS: '--max-old-space-size=64' });
    const run = await runCli(['run', wf, '--check'], { env, timeoutMs: 30_000 });
    expect(run.signal).toBeNull();
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/^tea-llama: ERR_WORKFLOW_INVALID: invalid workflow .*bomb\.yaml: the document: its aliases expand to more than 100 nodes/m);
    const settings = file('settings-bomb.yaml', `${ALIAS_BOMB}\nllm:\n  backend: mock\n`);
    const complete = await runCli(['complete', '--settings', settings, 'hi'], { env, timeoutMs: 30_000 });
    expect(complete.signal).toBeNull();
    expect(complete.code).toBe(1);
    expect(complete.stderr).toMatch(/^tea-llama: ERR_SETTINGS_INVALID: .*settings-bomb\.yaml.*the document: expected valid YAML within the limits, got its aliases expand to more than 100 nodes/m);
  });

  it('a workflow file past maxBytes (default 1 MiB) is not read: ERR_WORKFLOW_INVALID naming the limit', async () => {
    // 50 MB of YAML took 1.8 GB to load: refused from its size, in a child whose heap could not parse it.
    const big = file('big.yaml', Buffer.alloc(50 * 1024 * 1024, 'nodes: []\n# padding\n'));
    const started = performance.now();
    const r = await runCli(['run', big, '--check'], { env: cliEnv({ NODE_OPTIONS: '--max-old-space-size=64' }), timeoutMs: 30_000 });
    expect(r.signal).toBeNull();
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/ERR_WORKFLOW_INVALID: invalid workflow .*big\.yaml: the workflow is 52428800 bytes, more than the 1048576 allowed \(maxBytes\)/);
    expect(performance.now() - started).toBeLessThan(10_000);

    const text = `nodes:\n  - name: a\n    action: llm.call\n    params: { prompt: hi }\n# ${'x'.repeat(2 * 1024 * 1024)}\n`;
    const path = file('two-mib.yaml', text);
    await expect(typed(() => loadWorkflow(path))).resolves.toMatchObject({ error: { code: 'ERR_WORKFLOW_INVALID', message: expect.stringContaining('(maxBytes)') } });
    await expect(typed(() => parseWorkflow(text))).resolves.toMatchObject({ error: { code: 'ERR_WORKFLOW_INVALID' } });
    expect((await loadWorkflow(path, { maxBytes: 4 * 1024 * 1024 })).nodes).toHaveLength(1);
  });
});
