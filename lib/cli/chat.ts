import { createInterface } from 'node:readline';

import type { LlmBackend, LlmGenerateOptions } from '../backends/llm-backend';
import { toLlamaError } from '../errors';
import type { ChatMessage } from '../types';
import { checkLogprobsJson, GLOBAL_HELP, GLOBAL_OPTIONS, MODEL_HELP, MODEL_OPTIONS, parse, SAMPLING_HELP, SAMPLING_OPTIONS, samplingOptions } from './args';
import { commandLogger, openBackend } from './backend';
import { resultJson, statsLine } from './complete';
import { EXIT, formatError, readStdin, UsageError, writeOut } from './output';
import { onInterrupt } from './signals';

export const CHAT_HELP = `Usage: tea-llama chat [options] [MESSAGE]

An interactive conversation in the terminal: the model's chat template, streamed replies, and the history kept
for the session. Ctrl+C stops the current reply (press it twice at an empty prompt to leave); Ctrl+D or /exit
leaves; /reset clears the history.

For scripts: a MESSAGE argument, or a message piped into stdin, gets one reply on stdout: its text, or with
--json one JSON object (content, finish_reason, usage, timings).

Options:
  -s, --system TEXT      the system prompt
      --json             print the reply as one JSON object instead of streamed text (with MESSAGE or stdin)

${SAMPLING_HELP}

${MODEL_HELP}

${GLOBAL_HELP}`;

const OPTIONS = { ...MODEL_OPTIONS, ...SAMPLING_OPTIONS, ...GLOBAL_OPTIONS, system: { type: 'string', short: 's' }, json: { type: 'boolean' } } as const;

const COMMANDS_HELP = '/reset clears the history, /exit (or Ctrl+D) leaves, Ctrl+C stops a reply';

export async function chatCommand(args: string[]): Promise<number> {
  const { values: v, positionals } = parse('chat', args, OPTIONS);
  if (v.help) {
    await writeOut(CHAT_HELP + '\n');
    return EXIT.ok;
  }
  const sampling = samplingOptions('chat', v);
  checkLogprobsJson('chat', sampling, v.json);
  const system: ChatMessage[] = v.system !== undefined ? [{ role: 'system', content: v.system }] : [];
  let message: string | undefined = positionals.length > 0 ? positionals.join(' ') : undefined;
  if (message === undefined && !process.stdin.isTTY) {
    message = (await readStdin()).trim();
    if (message.length === 0) throw new UsageError('the message on stdin is empty', 'chat');
  }
  if (v.json && message === undefined) throw new UsageError('--json prints one reply: give a MESSAGE, or pipe one into stdin', 'chat');

  const backend = await openBackend('chat', v);
  try {
    if (message !== undefined) return await singleReply(backend, [...system, { role: 'user', content: message }], sampling, v);
    return await interactive(backend, system, sampling, v);
  } finally {
    await backend.dispose();
  }
}

/** One message, one reply on stdout (for scripts). */
async function singleReply(
  backend: LlmBackend,
  messages: ChatMessage[],
  sampling: LlmGenerateOptions,
  v: { verbose?: boolean; quiet?: boolean; json?: boolean },
): Promise<number> {
  const controller = new AbortController();
  const stopInterrupt = onInterrupt(() => controller.abort());
  try {
    let result;
    if (v.json) {
      result = await backend.chat(messages, { ...sampling, signal: controller.signal });
      await writeOut(JSON.stringify(resultJson(result)) + '\n');
    } else {
      const stream = backend.streamChat(messages, undefined, { ...sampling, signal: controller.signal });
      for await (const chunk of stream) process.stdout.write(chunk);
      result = await stream;
      await writeOut('\n');
    }
    commandLogger(v).info(statsLine(result));
    return controller.signal.aborted ? EXIT.interrupted : EXIT.ok;
  } finally {
    stopInterrupt();
  }
}

/** The terminal conversation. */
async function interactive(
  backend: LlmBackend,
  system: ChatMessage[],
  sampling: LlmGenerateOptions,
  v: { verbose?: boolean; quiet?: boolean },
): Promise<number> {
  const terminal = Boolean(process.stdin.isTTY && process.stdout.isTTY);
  const rl = createInterface({ input: process.stdin, output: process.stdout, terminal, prompt: '> ', historySize: 200 });
  let history: ChatMessage[] = [...system];
  let generating: AbortController | undefined;
  let idleInterrupts = 0;
  let closed = false;
  rl.on('close', () => {
    closed = true;
  });

  // Ctrl+C: in raw mode readline reports it as its own 'SIGINT' event; otherwise it is a real signal.
  const interrupt = () => {
    if (generating) {
      generating.abort();
      return;
    }
    if (rl.line.length > 0) {
      // Like a shell: Ctrl+C drops the line being typed.
      rl.write(null, { ctrl: true, name: 'u' });
      idleInterrupts = 0;
      return;
    }
    idleInterrupts++;
    if (idleInterrupts >= 2) {
      process.stdout.write('\n');
      rl.close();
      return;
    }
    process.stderr.write('\n(to leave, press Ctrl+C again or Ctrl+D, or type /exit)\n');
    rl.prompt();
  };
  rl.on('SIGINT', interrupt);
  process.on('SIGINT', interrupt);

  if (!v.quiet) process.stderr.write(`chat with ${backend.model} (${backend.kind}): ${COMMANDS_HELP}\n`);
  rl.prompt();
  try {
    for await (const line of rl) {
      idleInterrupts = 0;
      const text = line.trim();
      if (text === '') {
        rl.prompt();
        continue;
      }
      if (text.startsWith('/')) {
        const command = text.split(/\s+/)[0];
        if (command === '/exit' || command === '/quit') break;
        if (command === '/reset') {
          history = [...system];
          process.stderr.write('(history cleared)\n');
        } else {
          process.stderr.write(`${command === '/help' ? '' : `unknown command ${command}; `}${COMMANDS_HELP}\n`);
        }
        rl.prompt();
        continue;
      }

      history.push({ role: 'user', content: line });
      generating = new AbortController();
      try {
        const stream = backend.streamChat(history, undefined, { ...sampling, signal: generating.signal });
        for await (const chunk of stream) process.stdout.write(chunk);
        const result = await stream;
        // A stopped reply stays in the history as far as it went: it is what the user saw.
        history.push({ role: 'assistant', content: result.content });
        process.stdout.write('\n');
        if (result.finishReason === 'abort') process.stderr.write('[stopped]\n');
        commandLogger(v).info(statsLine(result));
      } catch (error) {
        history.pop();
        process.stdout.write('\n');
        const e = toLlamaError(error);
        process.stderr.write(formatError(e, Boolean(v.verbose)));
        if (e.code === 'ERR_CONTEXT_OVERFLOW') process.stderr.write('(the conversation no longer fits the context: /reset starts over)\n');
      } finally {
        generating = undefined;
      }
      if (closed) break;
      rl.prompt();
    }
  } finally {
    process.off('SIGINT', interrupt);
    rl.close();
  }
  return EXIT.ok;
}
