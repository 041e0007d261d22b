import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

import { afterAll, describe, expect, it } from 'vitest';

import { loadModel } from '../lib';
import { haveModel, modelPath, repoRoot, STORIES } from './support/models';
import { syntheticModel } from './support/synthetic';

// Saved state (issue 16): a sequence's KV state saved in one process and restored in another continues exactly as
// the uninterrupted generation; the file is untrusted (another model's, truncated, modified: ERR_INVALID_STATE).
// The fuzzing of state files is test/reliability/fuzz-state.test.ts.

const run = promisify(execFile);
const CHILD = join(repoRoot, 'test', 'support', 'state-child.mjs');
const tmp = mkdtempSync(join(tmpdir(), 'tea-state-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

async function child<T = Record<string, unknown>>(job: Record<string, unknown>): Promise<T> {
  const { stdout } = await run(process.execPath, [CHILD, JSON.stringify({ model: modelPath(STORIES), ...job })], {
    env: { ...process.env, TEA_LLAMA_LOG: 'none' },
    timeout: 120_000,
  });
  return JSON.parse(stdout.trim().split('\n').pop()!) as T;
}

const PROMPT = 'Once upon a time, there was a little dog named Max.';

describe.runIf(haveModel(STORIES))('saved state across processes', () => {
  it('a completion saved in one process continues in another exactly as without the save', async () => {
    const file = join(tmp, 'completion.state');
    const saved = await child<{ text: string; saved: { tokens: number } }>({ mode: 'save', file, prompt: PROMPT, maxTokens: 24 });
    expect(saved.saved.tokens).toBeGreaterThan(24);
    const prompt = PROMPT + saved.text;
    const [continued, fresh] = await Promise.all([
      child<{ text: string; reused: number; restored: { tokens: number } }>({ mode: 'continue', file, prompt, maxTokens: 32 }),
      child<{ text: string; reused: number }>({ mode: 'fresh', prompt, maxTokens: 32 }),
    ]);
    expect(fresh.reused).toBe(0);
    // The restored cells were used (all but the re-tokenized tail), and the text is the uninterrupted one.
    expect(continued.reused).toBeGreaterThan(saved.saved.tokens - 4);
    expect(continued.text).toBe(fresh.text);
    expect(continued.text.length).toBeGreaterThan(10);
  }, 240_000);

  it('a chat session saved after a turn continues in another process as the uninterrupted session', async () => {
    const file = join(tmp, 'session.state');
    const first = await child<{ turns: { promptTokens: number }[] }>({ mode: 'session', turns: ['Tell me about a cat.'], save: file, maxTokens: 20 });
    const [continued, whole] = await Promise.all([
      child<{ turns: { text: string; reused: number }[]; messages: { role: string }[] }>({ mode: 'session', load: file, turns: ['What did the cat do?'], maxTokens: 20 }),
      child<{ turns: { text: string; reused: number }[] }>({ mode: 'session', turns: ['Tell me about a cat.', 'What did the cat do?'], maxTokens: 20 }),
    ]);
    expect(continued.turns[0]!.text).toBe(whole.turns[1]!.text);
    // The restored conversation was reused, not decoded again: at least the whole first prompt.
    expect(continued.turns[0]!.reused).toBeGreaterThanOrEqual(first.turns[0]!.promptTokens);
    expect(continued.turns[0]!.reused).toBe(whole.turns[1]!.reused);
    expect(continued.messages.map((m) => m.role)).toEqual(['system', 'user', 'assistant', 'user', 'assistant']);
  }, 240_000);

  it('a truncated, modified or foreign file is ERR_INVALID_STATE', async () => {
    const model = await loadModel(modelPath(STORIES), { contextSize: 512, threads: 1, sequences: 2 });
    try {
      const r = await model.complete(PROMPT, { maxTokens: 8, temperature: 0 });
      const file = join(tmp, 'base.state');
      await model.saveState(file, { sequence: r.sequence! });
      const base = readFileSync(file);
      const variants: Record<string, Buffer> = {
        truncated: base.subarray(0, base.length - 100),
        header: base.subarray(0, 20),
        flipped: Buffer.from(base).fill(0x5a, 200, 201),
        appended: Buffer.concat([base, Buffer.from([1, 2, 3])]),
        magic: Buffer.concat([Buffer.from('NOTSTATE'), base.subarray(8)]),
        empty: Buffer.alloc(0),
      };
      for (const [name, bytes] of Object.entries(variants)) {
        const path = join(tmp, `${name}.state`);
        writeFileSync(path, bytes);
        await expect(model.loadState(path), name).rejects.toMatchObject({ code: 'ERR_INVALID_STATE' });
      }
      await expect(model.loadState(join(tmp, 'missing.state'))).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
      await expect(model.saveState(file, { sequence: 5 })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
      await expect(model.saveState(file, { sequence: 0, seqeunce: 1 } as never)).rejects.toThrow(/did you mean 'sequence'/);
      // The model still works after every rejection, and the good file still loads.
      expect((await model.loadState(file)).tokens).toBe(r.promptTokens + r.completionTokens - 1);
      expect((await model.complete(PROMPT, { maxTokens: 8, temperature: 0 })).text).toBe(r.text);

      // Another model (same tokenizer family does not matter: the fingerprint differs) rejects the file.
      const other = await loadModel(await syntheticModel('tiny', 'F16'), { contextSize: 512, threads: 1 });
      try {
        await expect(other.loadState(file)).rejects.toMatchObject({ code: 'ERR_INVALID_STATE', message: /another model/ });
      } finally {
        await other.dispose();
      }
    } finally {
      await model.dispose();
    }
  }, 240_000);
});
