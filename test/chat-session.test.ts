import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { loadModel, type LlamaModel } from '../lib';
import { haveModel, modelPath, STORIES } from './support/models';

// Chat sessions (issue 16): the conversation stays in the session's sequence, so a turn decodes only its new
// tokens; when the context is full the oldest turns go and the system prompt stays; 200 turns on a 512-token
// context never fail, and what the model sees is exactly `messages`.

const SYSTEM = 'You are a kind storyteller who tells short stories about animals.';

describe.runIf(haveModel(STORIES))('chat sessions on stories260K', () => {
  let model: LlamaModel;

  beforeAll(async () => {
    model = await loadModel(modelPath(STORIES), { contextSize: 512, threads: 2, sequences: 3 });
  });
  afterAll(async () => {
    await model?.dispose();
  });

  /** The prompt tokens of `messages` rendered for the next reply, as the scheduler counts them. */
  async function promptTokens(messages: { role: string; content: string }[]): Promise<number> {
    return model.tokenize(await model.applyChatTemplate(messages, { template: 'chatml' })).length;
  }

  it('a turn decodes only the new message: the whole previous prompt and reply are reused', async () => {
    const session = await model.createChatSession({ systemPrompt: SYSTEM, template: 'chatml' });
    try {
      const first = await session.send('Tell me about a cat.', { maxTokens: 20, temperature: 0 });
      expect(first.reusedPromptTokens).toBe(0);
      // Traffic in between, on the other sequences, does not take the session's cells.
      await Promise.all([0, 1, 2].map((i) => model.complete(`Once upon a time ${i}`, { maxTokens: 30, temperature: 0 })));
      const second = await session.send('What did the cat find?', { maxTokens: 20, temperature: 0 });
      expect(second.sequence).toBe(first.sequence);
      expect(second.reusedPromptTokens).toBeGreaterThanOrEqual(first.promptTokens + first.completionTokens - 2);
      const fresh = await promptTokens([...session.messages.slice(0, 3), { role: 'user', content: 'x' }]);
      // Evaluated this turn: the new message and the template around it, not the conversation.
      expect(second.promptTokens - second.reusedPromptTokens).toBeLessThan(fresh - first.promptTokens + 12);
      // The same conversation through chat() gives the same reply (the session changes what is decoded, not the answer).
      const direct = await model.chat(session.messages.slice(0, 4), { template: 'chatml', maxTokens: 20, temperature: 0 });
      expect(direct.text).toBe(second.text);
    } finally {
      await session.dispose();
    }
  });

  it('200 turns on a 512-token context: never fails, keeps the system prompt and the last turns', async () => {
    const session = await model.createChatSession({ systemPrompt: SYSTEM, template: 'chatml' });
    try {
      let drops = 0;
      for (let i = 0; i < 200; i++) {
        const seen = session.messages;
        const content = `Turn ${i}: tell me about animal number ${i}.`;
        const turn = await session.send(content, { maxTokens: 24, temperature: 0 });
        const kept = session.messages;
        // What the model saw is exactly the kept conversation with the new message, and it fit.
        expect(kept[0]).toEqual({ role: 'system', content: SYSTEM });
        expect(kept.at(-2)).toEqual({ role: 'user', content });
        expect(kept.at(-1)).toEqual({ role: 'assistant', content: turn.text });
        expect(turn.promptTokens).toBe(await promptTokens(kept.slice(0, -1)));
        expect(turn.promptTokens + 24).toBeLessThanOrEqual(512);
        expect(turn.contextFull).toBe(false);
        // Kept turns are the most recent ones, in order: the tail of what was there before.
        expect(seen.slice(seen.length - (kept.length - 3))).toEqual(kept.slice(1, -2));
        if (turn.droppedTurns > 0) {
          drops++;
          expect(turn.reusedPromptTokens).toBeGreaterThan(0); // at least the system prompt's tokens
        } else if (i > 0) {
          expect(turn.reusedPromptTokens).toBeGreaterThanOrEqual(seen.length > 1 ? (await promptTokens(seen.slice(0, -1))) : 0);
        }
      }
      expect(drops).toBeGreaterThan(5);
      expect(session.droppedTurns).toBeGreaterThan(100);
      expect(session.messages.length).toBeGreaterThanOrEqual(5);
    } finally {
      await session.dispose();
    }
  }, 300_000);

  it('a message that cannot fit is ERR_CONTEXT_OVERFLOW; bad options are typed errors', async () => {
    const session = await model.createChatSession({ systemPrompt: SYSTEM, template: 'chatml' });
    try {
      await expect(session.send('dog '.repeat(600), { maxTokens: 24 })).rejects.toMatchObject({ code: 'ERR_CONTEXT_OVERFLOW' });
      await expect(session.send('hi', { maxTokens: -1 })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
      await expect(session.send('hi', { maxTokns: 3 } as never)).rejects.toThrow(/did you mean 'maxTokens'/);
      await expect(model.createChatSession({ shiftTarget: 2 })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
      // The session still works after the rejections.
      expect((await session.send('hi', { maxTokens: 4, temperature: 0 })).completionTokens).toBeGreaterThan(0);
    } finally {
      await session.dispose();
    }
    await expect(session.send('hi')).rejects.toMatchObject({ code: 'ERR_DISPOSED' });
  });

  it('reserves at most sequences - 1 sequences', async () => {
    const a = await model.createChatSession();
    const b = await model.createChatSession();
    try {
      await expect(model.createChatSession()).rejects.toMatchObject({ code: 'ERR_QUEUE_FULL' });
      expect(new Set([a.sequence, b.sequence]).size).toBe(2);
    } finally {
      await a.dispose();
      await b.dispose();
    }
    const c = await model.createChatSession();
    await c.dispose();
  });
});
