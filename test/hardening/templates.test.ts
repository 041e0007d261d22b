import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { loadModel, TEMPLATE_LIMITS, type LlamaModel } from '../../lib';
import { getBinding } from '../../lib/native/load-binding';
import type { NativeModel } from '../../lib/native/binding-types';
import { haveModel, modelPath, repoRoot, STORIES } from '../support/models';
import { lastJson, runScript } from '../reliability/helpers';
import { PLAIN, TOOLS, WITH_TOOLS } from './template-conversation';

// Untrusted chat templates (issue 18): each attack runs in a child process (template-child.cjs), so a crash or a
// hang is a failed assertion, and must end in a typed error naming the limit, in bounded time and memory.

interface ChildReport {
  ok: boolean;
  code?: string;
  message?: string;
  length?: number;
  ms: number;
  ticks: number;
  maxRssMb: number;
}

const MODEL = modelPath(STORIES);

const tmp = mkdtempSync(join(tmpdir(), 'tea-templates-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
let jobs = 0;

async function renderInChild(job: Record<string, unknown>, timeoutMs = 60_000): Promise<ChildReport> {
  const file = join(tmp, `job-${jobs++}.json`); // a file: templates of megabytes do not fit in argv
  writeFileSync(file, JSON.stringify(job));
  const r = await runScript('template-child.cjs', [MODEL, file], { timeoutMs });
  expect(r.timedOut, 'the child hung').toBe(false);
  expect(r.signal, `the child died: ${r.stderr.slice(-2000)}`).toBeNull();
  expect(r.code, r.stderr.slice(-2000)).toBe(0);
  return lastJson<ChildReport>(r.stdout);
}

const ATTACKS: Array<{ name: string; template: string; limit: string; limits?: Record<string, number> }> = [
  { name: 'a macro that calls itself', template: '{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}', limit: 'maxDepth' },
  {
    name: 'a macro that calls itself, under the largest maxDepth (the stack holds it)',
    template: '{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}',
    limit: 'maxDepth',
    limits: { maxDepth: TEMPLATE_LIMITS.maxDepth.max },
  },
  { name: '20,000 nested ifs (parser)', template: '{% if true %}'.repeat(20_000) + 'x' + '{% endif %}'.repeat(20_000), limit: 'maxDepth' },
  { name: '100,000 nested parentheses (parser)', template: '{{ ' + '('.repeat(100_000) + '1' + ')'.repeat(100_000) + ' }}', limit: 'maxDepth' },
  { name: 'a namespace that holds itself, to tojson', template: '{% set ns = namespace(a=1) %}{% set ns.self = ns %}{{ ns | tojson }}', limit: 'maxDepth' },
  { name: 'a list that holds itself, printed', template: '{% set a = [] %}{% set _ = a.append(a) %}{{ a }}', limit: 'maxDepth' },
  { name: 'a loop of a billion iterations', template: '{% for i in range(1000000000) %}{% endfor %}', limit: 'maxSteps' },
  {
    name: 'nested loops of 10^10 iterations',
    template: '{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}',
    limit: 'maxSteps',
    limits: { timeoutMs: 60_000 }, // steps, not time, must stop it
  },
  {
    name: 'an endless loop under a time limit',
    template: '{% for a in range(1000000) %}{% for b in range(1000000) %}{% endfor %}{% endfor %}',
    limit: 'timeoutMs',
    limits: { maxSteps: 1e12, timeoutMs: 300 },
  },
  {
    name: 'a string doubled 64 times',
    template: "{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}",
    limit: 'maxOutputBytes',
  },
  { name: 'a string repeated 10^10 times', template: "{{ 'x' * 10000000000 }}", limit: 'maxOutputBytes' },
  { name: 'a huge join', template: "{% set s = 'x' * 1000000 %}{{ [s, s, s, s, s, s, s, s, s, s, s, s, s, s, s, s, s, s, s, s] | join('') }}", limit: 'maxOutputBytes' },
  { name: 'a huge indent', template: "{{ 'a\\nb\\nc' | indent(1000000000) }}", limit: 'maxOutputBytes' },
];

describe.runIf(haveModel(STORIES))('untrusted chat templates', () => {
  for (const attack of ATTACKS) {
    it(`${attack.name}: ERR_TEMPLATE naming ${attack.limit}, bounded time and memory, the process survives`, async () => {
      const r = await renderInChild({ template: attack.template, limits: attack.limits });
      expect(r).toMatchObject({ ok: false, code: 'ERR_TEMPLATE' });
      expect(r.message).toContain(attack.limit);
      expect(r.ms).toBeLessThan(15_000);
      expect(r.maxRssMb).toBeLessThan(1024);
    });
  }

  it('divisibleby(0) (found by the template fuzzer: SIGFPE) is a template error', async () => {
    const r = await renderInChild({ template: '{{ -1 is divisibleby(0) }}{{ -9223372036854775807 - 1 is divisibleby(-1) }}' });
    expect(r).toMatchObject({ ok: false, code: 'ERR_TEMPLATE_UNSUPPORTED', message: expect.stringContaining('divisor must not be zero') });
  });

  it('the sync form holds the same limits', async () => {
    const r = await renderInChild({ template: ATTACKS[0]!.template, sync: true });
    expect(r).toMatchObject({ ok: false, code: 'ERR_TEMPLATE' });
    expect(r.message).toContain('maxDepth');
  });

  it('a render is aborted by its AbortSignal, and the main thread stays free while it runs', async () => {
    const r = await renderInChild({
      template: '{% for a in range(1000000) %}{% for b in range(1000000) %}{% endfor %}{% endfor %}',
      limits: { maxSteps: 1e12, timeoutMs: 600_000 },
      abortAfterMs: 300,
    });
    expect(r).toMatchObject({ ok: false, code: 'ERR_ABORTED' });
    expect(r.ms).toBeGreaterThanOrEqual(250);
    expect(r.ms).toBeLessThan(5000);
    expect(r.ticks).toBeGreaterThan(5); // timers ran during the render
  });

  it('limits are options: a template past a default passes when the limit is raised', async () => {
    const template = '{% for i in range(5000) %}{% endfor %}ok';
    await expect(renderInChild({ template, limits: { maxSteps: 1000 } })).resolves.toMatchObject({ ok: false, code: 'ERR_TEMPLATE' });
    // llama.cpp renders a template several times (capability probes, the parser's analysis): all of it counts.
    await expect(renderInChild({ template, limits: { maxSteps: 10_000_000 } })).resolves.toMatchObject({ ok: true, length: 2 });
  });

  describe('in process', () => {
    let model: LlamaModel;
    beforeAll(async () => {
      model = await loadModel(MODEL, { vocabOnly: true });
    });
    afterAll(() => model?.dispose());

    it('a misspelt built-in name is ERR_TEMPLATE_NOT_FOUND listing the built-ins', async () => {
      const error = await model.applyChatTemplate([{ role: 'user', content: 'hi' }], { template: 'chatml2' }).catch((e: unknown) => e);
      expect(error).toMatchObject({ code: 'ERR_TEMPLATE_NOT_FOUND' });
      expect((error as Error).message).toContain("'chatml2'");
      expect((error as Error).message).toContain('chatml, ');
      expect((error as Error).message).toContain('llama3');
      expect(() => model.applyChatTemplateSync([{ role: 'user', content: 'hi' }], { template: 'lama3' })).toThrow(
        expect.objectContaining({ code: 'ERR_TEMPLATE_NOT_FOUND' }),
      );
    });

    it('a NUL in message content is kept by Jinja templates and refused by built-ins, never cut', async () => {
      const messages = [{ role: 'user', content: 'before\0after' }];
      const prompt = await model.applyChatTemplate(messages, { template: '{% for m in messages %}[{{ m.content }}]{% endfor %}' });
      expect(prompt).toBe('[before\0after]');
      await expect(model.applyChatTemplate(messages, { template: 'chatml' })).rejects.toMatchObject({
        code: 'ERR_INVALID_ARGUMENT',
        message: expect.stringContaining('NUL'),
      });
    });

    it('limit options are validated: unknown keys and out-of-range values are ERR_INVALID_ARGUMENT', async () => {
      const messages = [{ role: 'user', content: 'hi' }];
      await expect(model.applyChatTemplate(messages, { template: 'chatml', limits: { maxDepht: 3 } as never })).rejects.toMatchObject({
        code: 'ERR_INVALID_ARGUMENT',
      });
      await expect(model.applyChatTemplate(messages, { template: 'chatml', limits: { maxSteps: 0 } })).rejects.toMatchObject({
        code: 'ERR_INVALID_ARGUMENT',
      });
      await expect(model.applyChatTemplate(messages, { template: 'chatml', limits: { maxDepth: 1.5 } })).rejects.toMatchObject({
        code: 'ERR_INVALID_ARGUMENT',
      });
    });

    it('an already aborted signal rejects before rendering', async () => {
      await expect(
        model.applyChatTemplate([{ role: 'user', content: 'hi' }], { template: 'chatml', signal: AbortSignal.abort() }),
      ).rejects.toMatchObject({ code: 'ERR_ABORTED' });
    });
  });

  it('every real template in vendor/llama.cpp/models/templates renders a conversation (with tools where it uses them) under a quarter of the default limits exactly as without limits', async () => {
    const binding = getBinding();
    const native: NativeModel = await binding.loadModel(MODEL, { gpuLayers: 0, vocabOnly: true, useMmap: true });
    const dir = join(repoRoot, 'vendor', 'llama.cpp', 'models', 'templates');
    const files = readdirSync(dir).filter((f) => f.endsWith('.jinja'));
    expect(files.length).toBeGreaterThan(40);
    const unlimited = { maxDepth: 10_000, maxSteps: 1e12, maxOutputBytes: 1024 * 1024 * 1024, timeoutMs: 600_000 };
    const quarter = {
      maxDepth: TEMPLATE_LIMITS.maxDepth.default / 4,
      maxSteps: TEMPLATE_LIMITS.maxSteps.default / 4,
      maxOutputBytes: TEMPLATE_LIMITS.maxOutputBytes.default / 4,
      timeoutMs: TEMPLATE_LIMITS.timeoutMs.default,
    };
    const outcome = (p: Promise<string>) => p.then((prompt) => ({ prompt }), (e: { code: string }) => ({ code: e.code }));
    let rendered = 0;
    try {
      for (const file of files) {
        const source = readFileSync(join(dir, file), 'utf8');
        const usesTools = source.includes('tools');
        const json = JSON.stringify(usesTools ? { messages: WITH_TOOLS, tools: TOOLS } : { messages: PLAIN });
        const free = await outcome(native.applyChatTemplate([], source, true, unlimited, null, json));
        const limited = await outcome(native.applyChatTemplate([], source, true, quarter, null, json));
        // A few templates refuse this conversation on their own (raise_exception): the limits must change nothing.
        expect(limited, file).toEqual(free);
        expect((limited as { code?: string }).code, file).not.toBe('ERR_TEMPLATE');
        if ('prompt' in limited) {
          rendered++;
          expect(limited.prompt, file).toContain(usesTools ? 'Is it warm?' : 'And in French?');
        }
      }
    } finally {
      native.dispose();
    }
    expect(rendered).toBeGreaterThan(files.length - 5);
  }, 300_000);
});
