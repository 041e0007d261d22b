import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { loadModel, type ChatMessage, type LlamaModel, type ReasoningFormat, type ToolDefinition } from '../lib';
import { startLlamaServer } from './support/llama-server';
import { haveModel, modelPath, repoRoot, STORIES } from './support/models';

// The real templates of llama.cpp's models/templates: the prompt rendered with tools (and a conversation that
// carries a tool call and its result) equals llama-server's /apply-template for the same inputs, and each family's
// own markup parses into content, reasoning and tool calls (outputs in the shapes of llama.cpp's test-chat.cpp),
// whole and as a partial stream.

const templatePath = (name: string) => join(repoRoot, 'vendor', 'llama.cpp', 'models', 'templates', `${name}.jinja`);

const TOOL: ToolDefinition = {
  type: 'function',
  function: { name: 'special_function', description: 'I need an arg', parameters: { type: 'object', properties: { arg1: { type: 'integer' } }, required: ['arg1'] } },
};

interface Family {
  template: string;
  output: string;
  reasoningFormat?: ReasoningFormat;
  enableThinking?: boolean;
  content: string;
  reasoning?: string;
  calls: { name: string; args: unknown }[];
}

const CALL = [{ name: 'special_function', args: { arg1: 1 } }];

const FAMILIES: Family[] = [
  { template: 'Qwen-Qwen2.5-7B-Instruct', output: '<tool_call>\n{"name": "special_function", "arguments": {"arg1": 1}}\n</tool_call>', content: '', calls: CALL },
  { template: 'Qwen-Qwen3-0.6B', output: '<think>\nI think\n</think>\n\nHello<tool_call>\n{"name": "special_function", "arguments": {"arg1": 1}}\n</tool_call>', reasoningFormat: 'deepseek', content: 'Hello', reasoning: 'I think', calls: CALL },
  { template: 'meta-llama-Llama-3.1-8B-Instruct', output: 'Hello, world!\nWhat\'s up?', content: "Hello, world!\nWhat's up?", calls: [] },
  { template: 'meta-llama-Llama-3.2-3B-Instruct', output: 'Hello, world!\nWhat\'s up?', content: "Hello, world!\nWhat's up?", calls: [] },
  { template: 'NousResearch-Hermes-2-Pro-Llama-3-8B-tool_use', output: 'Hello, world!\nWhat\'s up?<tool_call>\n{"name": "special_function", "arguments": {"arg1": 1}}</tool_call>', content: "Hello, world!\nWhat's up?", calls: CALL },
  { template: 'mistralai-Mistral-Nemo-Instruct-2407', output: '[TOOL_CALLS][{"name": "special_function", "arguments": {"arg1": 1}, "id": "123456789"}]', content: '', calls: CALL },
  { template: 'meetkai-functionary-medium-v3.2', output: 'special_function\n{"arg1": 1}', content: '', calls: CALL },
  { template: 'deepseek-ai-DeepSeek-R1-Distill-Qwen-32B', output: "I'm\nthinking</think>Hello, world!\nWhat's up?", reasoningFormat: 'deepseek', content: "Hello, world!\nWhat's up?", reasoning: "I'm\nthinking", calls: [] },
  {
    template: 'CohereForAI-c4ai-command-r7b-12-2024-tool_use',
    output: '<|START_THINKING|>I\'m\nthinking<|END_THINKING|><|START_ACTION|>[\n    {"tool_call_id": "0", "tool_name": "special_function", "parameters": {"arg1": 1}}\n]<|END_ACTION|>',
    reasoningFormat: 'deepseek',
    content: '',
    reasoning: "I'm\nthinking",
    calls: CALL,
  },
  {
    template: 'openai-gpt-oss-120b',
    output: "<|channel|>analysis<|message|>I'm\nthinking<|end|><|start|>assistant<|channel|>final<|message|>Hello, world!\nWhat's up?",
    reasoningFormat: 'auto',
    content: "Hello, world!\nWhat's up?",
    reasoning: "I'm\nthinking",
    calls: [],
  },
];

const CONVERSATION: ChatMessage[] = [
  { role: 'system', content: 'You are a helpful assistant.' },
  { role: 'user', content: 'Call the special function.' },
  { role: 'assistant', content: '', toolCalls: [{ id: 'call_0123456789', type: 'function', function: { name: 'special_function', arguments: '{"arg1":1}' } }] },
  { role: 'tool', toolCallId: 'call_0123456789', content: '{"result":42}' },
  { role: 'user', content: 'And again?' },
];

function snake(m: ChatMessage) {
  return {
    role: m.role,
    content: m.content,
    ...(m.toolCalls ? { tool_calls: m.toolCalls } : {}),
    ...(m.toolCallId ? { tool_call_id: m.toolCallId } : {}),
  };
}

describe.runIf(haveModel(STORIES))("llama.cpp's model templates through the common chat layer", () => {
  let model: LlamaModel;
  beforeAll(async () => {
    model = await loadModel(modelPath(STORIES), { contextSize: 512, threads: 2 });
  });
  afterAll(async () => {
    await model?.dispose();
  });

  it.each(FAMILIES.map((f) => [f.template, f] as const))('%s: the prompt equals llama-server /apply-template; its markup parses', async (name, family) => {
    const server = await startLlamaServer(modelPath(STORIES), ['-c', '512', '-np', '1', '--jinja', '--chat-template-file', templatePath(name)]);
    try {
      const source = readFileSync(templatePath(name), 'utf8');
      for (const messages of [CONVERSATION.slice(0, 2), CONVERSATION]) {
        const body = { messages: messages.map(snake), tools: [TOOL], ...(family.enableThinking !== undefined ? { chat_template_kwargs: { enable_thinking: family.enableThinking } } : {}) };
        const options = { template: source, tools: [TOOL], ...(family.enableThinking !== undefined ? { enableThinking: family.enableThinking } : {}) };
        const answer = await fetch(`${server.baseUrl}/apply-template`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
        if (!answer.ok) {
          // The template itself refuses the conversation (Mistral Nemo: roles must alternate): so do we, typed.
          expect(answer.status).toBe(400);
          await expect(model.prepareChat(messages, options)).rejects.toMatchObject({ code: 'ERR_TEMPLATE_UNSUPPORTED' });
          continue;
        }
        const reference = (await answer.json()) as { prompt: string };
        const ours = await model.prepareChat(messages, options);
        expect(ours.prompt).toBe(reference.prompt);
        expect(await model.applyChatTemplate(messages.slice(0, 2), { template: source })).toContain('Call the special function.');
      }

      const prepared = await model.prepareChat(CONVERSATION.slice(0, 2), { template: source, tools: [TOOL], reasoningFormat: family.reasoningFormat });
      const parsed = model.parseChat(family.output, prepared, { reasoningFormat: family.reasoningFormat });
      expect(parsed.content).toBe(family.content);
      if (family.reasoning !== undefined) expect(parsed.reasoningContent.trim()).toBe(family.reasoning);
      expect(parsed.toolCalls.map((c) => ({ name: c.function.name, args: JSON.parse(c.function.arguments) }))).toEqual(family.calls);
      // A partial stream: every prefix parses without an error, and its content is a prefix of the final one
      // (markup never shows up as content on the way).
      for (let cut = 1; cut < family.output.length; cut += Math.max(1, Math.floor(family.output.length / 12))) {
        const partial = model.parseChat(family.output.slice(0, cut), prepared, { reasoningFormat: family.reasoningFormat, partial: true });
        expect(family.content.startsWith(partial.content), `${cut}: ${JSON.stringify(partial.content)}`).toBe(true);
      }
    } finally {
      await server.stop();
    }
  }, 60_000);
});
