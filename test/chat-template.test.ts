import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { builtinChatTemplates, loadModel, type ChatMessage, type LlamaModel } from '../lib';
import { startLlamaServer, type LlamaServer } from './support/llama-server';
import { haveModel, modelPath, PHI3_VOCAB, STORIES } from './support/models';
import { syntheticModel } from './support/synthetic';

const CONVERSATION: ChatMessage[] = [
  { role: 'system', content: 'You are a terse assistant.' },
  { role: 'user', content: 'Name a colour.' },
  { role: 'assistant', content: 'Blue.' },
  { role: 'user', content: 'Another one?' },
];

describe.runIf(haveModel(PHI3_VOCAB))("the phi-3 vocab's chat template", () => {
  let phi3: LlamaModel;
  let server: LlamaServer;
  let stories: LlamaModel;
  let chatmlServer: LlamaServer;

  beforeAll(async () => {
    // llama-server needs weights: a synthetic model carries the phi-3 tokenizer and template unchanged.
    const synthetic = await syntheticModel('tiny', 'F16');
    [phi3, server, stories, chatmlServer] = await Promise.all([
      loadModel(modelPath(PHI3_VOCAB), { vocabOnly: true }),
      startLlamaServer(synthetic, ['-c', '256']),
      loadModel(modelPath(STORIES)),
      startLlamaServer(modelPath(STORIES), ['-c', '256', '--chat-template', 'chatml']),
    ]);
  });
  afterAll(async () => {
    await Promise.all([phi3?.dispose(), stories?.dispose(), server?.stop(), chatmlServer?.stop()]);
  });

  it('renders system + user + assistant turns exactly as llama-server does', async () => {
    expect(phi3.info.chatTemplate).toContain('<|assistant|>');
    const reference = await server.post<{ prompt: string }>('/apply-template', { messages: CONVERSATION });
    const ours = await phi3.applyChatTemplate(CONVERSATION);
    expect(phi3.applyChatTemplateSync(CONVERSATION)).toBe(ours);
    expect(ours).toBe(reference.prompt);
    expect(ours).toContain('Name a colour.');
    expect(ours.endsWith('<|assistant|>\n')).toBe(true);
  });

  it('renders a built-in template by name as llama-server does', async () => {
    expect(builtinChatTemplates()).toContain('chatml');
    const reference = await chatmlServer.post<{ prompt: string }>('/apply-template', { messages: CONVERSATION });
    expect(await stories.applyChatTemplate(CONVERSATION, { template: 'chatml' })).toBe(reference.prompt);
  });

  it('renders an explicit Jinja template string, with and without the assistant prefix', async () => {
    const template = "{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}{% if add_generation_prompt %}[assistant] {% endif %}";
    expect(await stories.applyChatTemplate(CONVERSATION.slice(1, 2), { template })).toBe('[user] Name a colour.\n[assistant] ');
    expect(await stories.applyChatTemplate(CONVERSATION.slice(1, 2), { template, addAssistant: false })).toBe('[user] Name a colour.\n');
    expect(stories.applyChatTemplateSync(CONVERSATION.slice(1, 2), { template, addAssistant: false })).toBe('[user] Name a colour.\n');
  });

  it('gives clear errors for a missing or broken template', async () => {
    await expect(stories.applyChatTemplate(CONVERSATION)).rejects.toMatchObject({ code: 'ERR_TEMPLATE_NOT_FOUND' });
    await expect(stories.applyChatTemplate(CONVERSATION, { template: '{% for x in %}' })).rejects.toMatchObject({ code: 'ERR_TEMPLATE_UNSUPPORTED' });
    expect(() => stories.applyChatTemplateSync(CONVERSATION, { template: '{% for x in %}' })).toThrow(
      expect.objectContaining({ code: 'ERR_TEMPLATE_UNSUPPORTED' }),
    );
    await expect(phi3.applyChatTemplate([{ role: 'user' } as ChatMessage])).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
  });

  it('chat() completes the rendered prompt', async () => {
    const messages: ChatMessage[] = [{ role: 'user', content: 'Once upon a time' }];
    const viaChat = await stories.chat(messages, { template: 'chatml', maxTokens: 20, temperature: 0 });
    const direct = await stories.complete(await stories.applyChatTemplate(messages, { template: 'chatml' }), { maxTokens: 20, temperature: 0 });
    expect(viaChat.text).toBe(direct.text);
  });
});
