#!/usr/bin/env node
// Bench item of issue 16: a chat turn in a long session decodes only the new tokens. One conversation of --turns
// turns (greedy, --max-tokens per reply) on a --ctx context: tea-llama's ChatSession, and the same kept
// conversation sent to llama-server (same file, same template, cache_prompt on, one slot) in the same run. Per turn:
// the prompt's tokens, the tokens each decoded (tea-llama: promptTokens - reusedPromptTokens; llama-server:
// timings.prompt_n) and the turns the session dropped when the context was full.
//
//   node bench/chat-session.mjs [--turns 60] [--ctx 512] [--max-tokens 24] [--model file.gguf] [--out NAME]
//
// Writes bench/results/<NAME>.md (default chat-session). Needs dist/ and build/tools/llama-server.
import { writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { startLlamaServer } from '../scripts/llama-server-harness.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '..');
const require = createRequire(import.meta.url);
const lib = require(join(root, 'dist', 'cjs', 'index.js'));

const arg = (name, fallback) => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : fallback;
};
const turns = Number(arg('--turns', 60));
const ctx = Number(arg('--ctx', 512));
const maxTokens = Number(arg('--max-tokens', 24));
const threads = Number(arg('--threads', 2));
const modelFile = resolve(arg('--model', join(process.env.TEA_TEST_MODELS_DIR || resolve(root, '../shared/models'), 'stories260K.gguf')));
const out = arg('--out', 'chat-session');
const SYSTEM = 'You are a kind storyteller who tells short stories about animals.';

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? 0 : s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

const model = await lib.loadModel(modelFile, { contextSize: ctx, threads, sequences: 2 });
const server = await startLlamaServer(modelFile, ['-c', String(ctx), '-np', '1', '-t', String(threads), '--chat-template', 'chatml'], { timeoutMs: 60_000 });
const rows = [];
try {
  const session = await model.createChatSession({ systemPrompt: SYSTEM, template: 'chatml' });
  for (let i = 0; i < turns; i++) {
    const content = `Turn ${i}: tell me about animal number ${i}.`;
    const t = await session.send(content, { maxTokens, temperature: 0 });
    const seen = session.messages.slice(0, -1); // what the model saw: the kept conversation and the new message
    const ref = await server.post('/v1/chat/completions', { messages: seen, max_tokens: maxTokens, temperature: 0, cache_prompt: true });
    rows.push({
      turn: i,
      prompt: t.promptTokens,
      ours: t.promptTokens - t.reusedPromptTokens,
      server: ref.timings?.prompt_n ?? NaN,
      serverPrompt: ref.usage?.prompt_tokens ?? NaN,
      dropped: t.droppedTurns,
    });
  }
  await session.dispose();
} finally {
  await model.dispose();
  await server.stop();
}

const steady = rows.filter((r) => r.turn > 0 && r.dropped === 0);
const shifted = rows.filter((r) => r.dropped > 0);
const sum = (xs) => xs.reduce((a, b) => a + b, 0);
const lines = [
  `# A chat turn in a long session (issue 16)`,
  '',
  `${new Date().toISOString()}: \`node bench/chat-session.mjs --turns ${turns} --ctx ${ctx} --max-tokens ${maxTokens}\` on ${modelFile.split('/').pop()}, ${threads} threads,`,
  `template chatml, greedy. llama-server: the same file, \`-c ${ctx} -np 1 --chat-template chatml\`, cache_prompt, sent the conversation the session kept.`,
  '',
  `| | turns | median prompt tokens | median tokens decoded, tea-llama | median tokens decoded, llama-server | total decoded, tea-llama | total decoded, llama-server |`,
  `| --- | ---: | ---: | ---: | ---: | ---: | ---: |`,
  `| turns that fit (after the first) | ${steady.length} | ${median(steady.map((r) => r.prompt))} | ${median(steady.map((r) => r.ours))} | ${median(steady.map((r) => r.server))} | ${sum(steady.map((r) => r.ours))} | ${sum(steady.map((r) => r.server))} |`,
  `| turns after dropping old turns | ${shifted.length} | ${median(shifted.map((r) => r.prompt))} | ${median(shifted.map((r) => r.ours))} | ${median(shifted.map((r) => r.server))} | ${sum(shifted.map((r) => r.ours))} | ${sum(shifted.map((r) => r.server))} |`,
  '',
  'Per turn (prompt tokens / decoded by tea-llama / decoded by llama-server / turns dropped):',
  '',
  '```',
  ...rows.map((r) => `${String(r.turn).padStart(3)}  ${String(r.prompt).padStart(4)}  ${String(r.ours).padStart(4)}  ${String(r.server).padStart(4)}  ${r.dropped}`),
  '```',
  '',
];
writeFileSync(join(here, 'results', `${out}.md`), lines.join('\n'));
process.stdout.write(lines.slice(0, 10).join('\n') + '\n');
