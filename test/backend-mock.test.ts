import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

import { MockLlmBackend, ResponseCache, type LlmBackend } from '../lib';
import { captureLogger } from './support/capture-logger';

describe('MockLlmBackend', () => {
  it('answers from canned responses, deterministically, through the LlmBackend interface', async () => {
    const backend: LlmBackend = new MockLlmBackend({ responses: { 'What is 2+2?': 'It is 4.' }, defaultResponse: 'I do not know.' });
    expect(backend.kind).toBe('mock');
    const a = await backend.call({ prompt: 'What is 2+2?' });
    expect(a).toMatchObject({ content: 'It is 4.', backend: 'mock', model: 'mock', cached: false, finishReason: 'stop', completionTokens: 3, promptTokens: 3, tokensUsed: 6 });
    expect((await backend.call({ prompt: 'Anything else' })).content).toBe('I do not know.');
    const chat = await backend.chat([
      { role: 'system', content: 'be brief' },
      { role: 'user', content: 'What is 2+2?' },
    ]);
    expect(chat.content).toBe('It is 4.');
    expect((await new MockLlmBackend().call({ prompt: 'ping' })).content).toBe('mock answer to: ping');
  });

  it('honours maxTokens (words), stop strings, streaming and abort', async () => {
    const backend = new MockLlmBackend({ defaultResponse: 'one two three four five six' });
    expect(await backend.call({ prompt: 'x', maxTokens: 2 })).toMatchObject({ content: 'one two', finishReason: 'length', completionTokens: 2 });
    expect((await backend.call({ prompt: 'x', stop: ' four' })).content).toBe('one two three');
    const chunks: string[] = [];
    const streamed = await backend.stream({ prompt: 'x' }, (c) => chunks.push(c));
    expect(chunks).toEqual(['one', ' two', ' three', ' four', ' five', ' six']);
    expect(streamed.content).toBe(chunks.join(''));
    let iterated = '';
    for await (const c of backend.streamChat([{ role: 'user', content: 'x' }])) iterated += c;
    expect(iterated).toBe('one two three four five six');

    const controller = new AbortController();
    const aborted = await backend.stream({ prompt: 'x', signal: controller.signal }, (c) => c === ' two' && controller.abort());
    expect(aborted).toMatchObject({ content: 'one two', finishReason: 'abort' });

    // A throwing onChunk stops the stream and rejects with its error.
    const boom = new Error('consumer failed');
    await expect(backend.stream({ prompt: 'x' }, () => {
      throw boom;
    }).result).rejects.toBe(boom);
    expect(() => backend.stream({ prompt: 'x' }, 'not a function' as never)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }));
  });

  it('embeds deterministically into unit vectors and records every call', async () => {
    const backend = new MockLlmBackend({ embeddingDimensions: 12, respond: ({ prompt, messages }) => (prompt ?? messages!.at(-1)!.content).toUpperCase() });
    const [a, b] = await backend.embed(['cat', 'dog']);
    const again = await new MockLlmBackend({ embeddingDimensions: 12 }).embed('cat');
    expect(a.length).toBe(12);
    expect(Array.from(again)).toEqual(Array.from(a));
    expect(Array.from(a)).not.toEqual(Array.from(b));
    expect(Math.abs(Math.hypot(...a) - 1)).toBeLessThan(1e-6);
    expect((await backend.call({ prompt: 'shout' })).content).toBe('SHOUT');
    expect(backend.calls).toEqual([
      { method: 'embed', texts: ['cat', 'dog'] },
      { method: 'call', prompt: 'shout' },
    ]);
    expect(await backend.healthCheck()).toMatchObject({ ok: true, backend: 'mock' });
    await backend.dispose();
    await expect(backend.call({ prompt: 'x' })).rejects.toMatchObject({ code: 'ERR_DISPOSED' });
    expect((await backend.healthCheck()).ok).toBe(false);
  });
});

describe('ResponseCache', () => {
  it('keys by backend, model, input and every sampling parameter; a hit says cached: true', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tea-cache-'));
    let n = 0;
    const backend = new MockLlmBackend({ respond: () => `answer ${++n}`, cache: new ResponseCache(dir) });
    const first = await backend.call({ prompt: 'p', maxTokens: 10, temperature: 0.3 });
    const second = await backend.call({ prompt: 'p', maxTokens: 10, temperature: 0.3 });
    expect(first).toMatchObject({ content: 'answer 1', cached: false });
    expect(second).toMatchObject({ content: 'answer 1', cached: true });
    for (const variant of [
      { prompt: 'q', maxTokens: 10, temperature: 0.3 },
      { prompt: 'p', maxTokens: 11, temperature: 0.3 },
      { prompt: 'p', maxTokens: 10, temperature: 0.4 },
      { prompt: 'p', maxTokens: 10, temperature: 0.3, topP: 0.9 },
      { prompt: 'p', maxTokens: 10, temperature: 0.3, topK: 5 },
      { prompt: 'p', maxTokens: 10, temperature: 0.3, seed: 3 },
      { prompt: 'p', maxTokens: 10, temperature: 0.3, stop: ['x'] },
    ]) {
      expect((await backend.call(variant)).cached, JSON.stringify(variant)).toBe(false);
    }
    // chat and call with the same text are different entries; so are other models and backends.
    expect((await backend.chat([{ role: 'user', content: 'p' }], { maxTokens: 10, temperature: 0.3 })).cached).toBe(false);
    const otherModel = new MockLlmBackend({ model: 'other', respond: () => 'x', cache: new ResponseCache(dir) });
    expect((await otherModel.call({ prompt: 'p', maxTokens: 10, temperature: 0.3 })).cached).toBe(false);
    const cache = new ResponseCache(dir);
    expect(cache.hash({ backend: 'mock', model: 'm', prompt: 'p', maxTokens: 1, temperature: 0 })).not.toBe(
      cache.hash({ backend: 'api', model: 'm', prompt: 'p', maxTokens: 1, temperature: 0 }),
    );
    expect(readdirSync(dir, { recursive: true }).filter((f) => String(f).endsWith('.json'))).toHaveLength(10);
  });

  it('a corrupt entry is a miss, and an unwritable folder only logs a warning', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tea-cache-'));
    const cache = new ResponseCache(dir);
    const backend = new MockLlmBackend({ defaultResponse: 'fresh', cache });
    await backend.call({ prompt: 'p' });
    // The one entry that call wrote, whatever the key's fields.
    const entries = readdirSync(dir, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.json'));
    expect(entries).toHaveLength(1);
    writeFileSync(join(dir, entries[0]!), '{ truncated');
    expect(await backend.call({ prompt: 'p' })).toMatchObject({ content: 'fresh', cached: false });

    const blocker = join(dir, 'a-file');
    writeFileSync(blocker, '');
    const logger = captureLogger();
    const unwritable = new MockLlmBackend({ defaultResponse: 'still works', cache: new ResponseCache(join(blocker, 'sub')), logger });
    expect((await unwritable.call({ prompt: 'p' })).content).toBe('still works');
    expect(logger.text('warn')).toContain('could not write the response cache');
  });
});
