#!/usr/bin/env node
// The chat-session scenario: a chat turn in a long session decodes only the new tokens. One conversation of
// --turns turns (greedy, --max-tokens per reply) on a --ctx context: tea-llama's ChatSession, and the same kept
// conversation sent to llama-server (same file, same template, cache_prompt on, one slot) in the same run. Per turn:
// the prompt's tokens, the tokens each decoded (tea-llama: promptTokens - reusedPromptTokens; llama-server:
// timings.prompt_n) and the turns the session dropped when the context was full.
//
//   node bench/chat-session.mjs [--turns 60] [--ctx 512] [--max-tokens 24] [--model file.gguf] [--out NAME]
//   npm run bench -- --scenarios chat-session
//
// Run on its own, it writes bench/results/<NAME>.md (default chat-session). Needs dist/ and build/tools/llama-server.
import { writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { startLlamaServer } from '../scripts/llama-server-harness.mjs';
import { argValue, median } from './stats.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '..');
const SYSTEM = 'You are a kind storyteller who tells short stories about animals.';

/** Runs the scenario; resolves { model, turns, ctx, maxTokens, threads, rows: [{ turn, prompt, ours, server, dropped }] }. */
export async function chatSessionScenario({ turns = 60, ctx = 512, maxTokens = 24, threads = 2, model, log = () => {} } = {}) {
  const lib = createRequire(import.meta.url)(join(root, 'dist', 'cjs', 'index.js'));
  const modelFile = resolve(model ?? join(process.env.TEA_TEST_MODELS_DIR || resolve(root, '../shared/models'), 'stories260K.gguf'));
  const loaded = await lib.loadModel(modelFile, { contextSize: ctx, threads, sequences: 2 });
  const rows = [];
  let server;
  try {
    server = await startLlamaServer(modelFile, ['-c', String(ctx), '-np', '1', '-t', String(threads), '--chat-template', 'chatml'], { timeoutMs: 60_000 });
    const session = await loaded.createChatSession({ systemPrompt: SYSTEM, template: 'chatml' });
    for (let i = 0; i < turns; i++) {
      if (i % 20 === 0) log(`[bench] chat session turn ${i + 1}/${turns}`);
      const t = await session.send(`Turn ${i}: tell me about animal number ${i}.`, { maxTokens, temperature: 0 });
      const seen = session.messages.slice(0, -1); // what the model saw: the kept conversation and the new message
      const ref = await server.post('/v1/chat/completions', { messages: seen, max_tokens: maxTokens, temperature: 0, cache_prompt: true });
      rows.push({ turn: i, prompt: t.promptTokens, ours: t.promptTokens - t.reusedPromptTokens, server: ref.timings?.prompt_n ?? NaN, dropped: t.droppedTurns });
    }
    await session.dispose();
  } finally {
    await loaded.dispose();
    await server?.stop();
  }
  return { model: basename(modelFile), turns, ctx, maxTokens, threads, rows };
}

/** The report's section (`perTurn`: also every turn's numbers). */
export function renderChatSession(r, { perTurn = false } = {}) {
  const steady = r.rows.filter((x) => x.turn > 0 && x.dropped === 0);
  const shifted = r.rows.filter((x) => x.dropped > 0);
  const sum = (xs) => xs.reduce((a, b) => a + b, 0);
  const mid = (xs) => median(xs) ?? '-';
  const row = (label, xs) =>
    `| ${label} | ${xs.length} | ${mid(xs.map((x) => x.prompt))} | ${mid(xs.map((x) => x.ours))} | ${mid(xs.map((x) => x.server))} | ${sum(xs.map((x) => x.ours))} | ${sum(xs.map((x) => x.server))} |`;
  return [
    '## A chat turn in a long session',
    '',
    `A ${r.turns}-turn ChatSession on ${r.model}, context ${r.ctx}, ${r.maxTokens} tokens per reply, ${r.threads} threads, template chatml, greedy; llama-server (\`-c ${r.ctx} -np 1 --chat-template chatml\`, cache_prompt) sent the conversation the session kept. Tokens decoded per turn: tea-llama promptTokens - reusedPromptTokens, llama-server timings.prompt_n.`,
    '',
    '| turns | count | median prompt tokens | median decoded, tea-llama | median decoded, llama-server | total decoded, tea-llama | total decoded, llama-server |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: |',
    row('that fit (after the first)', steady),
    row('after dropping old turns', shifted),
    '',
    ...(perTurn
      ? [
          'Per turn (prompt tokens / decoded by tea-llama / decoded by llama-server / turns dropped):',
          '',
          '```',
          ...r.rows.map((x) => `${String(x.turn).padStart(3)}  ${String(x.prompt).padStart(4)}  ${String(x.ours).padStart(4)}  ${String(x.server).padStart(4)}  ${x.dropped}`),
          '```',
          '',
        ]
      : []),
  ].join('\n');
}

const isMain = process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url);
if (isMain) {
  const r = await chatSessionScenario({
    turns: Number(argValue('turns', 60)),
    ctx: Number(argValue('ctx', 512)),
    maxTokens: Number(argValue('max-tokens', 24)),
    threads: Number(argValue('threads', 2)),
    model: argValue('model', undefined),
    log: (l) => console.error(l),
  });
  const text = [`# A chat turn in a long session (issue 16)`, '', `${new Date().toISOString()}: \`node bench/chat-session.mjs ${process.argv.slice(2).join(' ')}\``.trimEnd(), '', renderChatSession(r, { perTurn: true }).replace(/^## .*\n\n/, '')].join('\n');
  writeFileSync(join(here, 'results', `${argValue('out', 'chat-session')}.md`), text);
  process.stdout.write(text.split('\n').slice(0, 12).join('\n') + '\n');
}
