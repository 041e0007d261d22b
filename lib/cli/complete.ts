import { openAiLogprobs } from '../backends/api-logprobs';
import type { LlmResult } from '../backends/llm-backend';
import {
  checkLogprobsJson,
  GLOBAL_HELP,
  GLOBAL_OPTIONS,
  MODEL_HELP,
  MODEL_OPTIONS,
  parse,
  SAMPLING_HELP,
  SAMPLING_OPTIONS,
  samplingOptions,
  SEQUENCE_HELP,
  SEQUENCE_OPTIONS,
} from './args';
import { commandLogger, openBackend } from './backend';
import { EXIT, readStdin, UsageError, writeOut } from './output';
import { onInterrupt } from './signals';

export const COMPLETE_HELP = `Usage: tea-llama complete [options] PROMPT...

Streams the model's continuation of PROMPT (raw text, no chat template) to stdout as it is generated.
Without PROMPT (or with -), the prompt is read from stdin (without its last newline). Ctrl+C stops the
generation and prints what was generated.

Options:
      --json             print one JSON object (content, finish_reason, usage, timings) instead of streamed text

${SAMPLING_HELP}

${SEQUENCE_HELP}

${MODEL_HELP}

${GLOBAL_HELP}`;

const OPTIONS = { ...MODEL_OPTIONS, ...SAMPLING_OPTIONS, ...SEQUENCE_OPTIONS, ...GLOBAL_OPTIONS, json: { type: 'boolean' } } as const;

/**
 * The JSON form of a result (`--json`), with snake_case keys as the OpenAI API has them; with --logprobs,
 * `logprobs` is the list of OpenAI's `choices[0].logprobs.content` ({ id, token, bytes, logprob, top_logprobs }).
 */
export function resultJson(r: LlmResult): Record<string, unknown> {
  return {
    content: r.content,
    finish_reason: r.finishReason,
    model: r.model,
    backend: r.backend,
    usage: { prompt_tokens: r.promptTokens, completion_tokens: r.completionTokens, total_tokens: r.tokensUsed },
    timings: {
      total_ms: r.timings.totalMs,
      prompt_ms: r.timings.promptMs,
      generation_ms: r.timings.generationMs,
      first_token_ms: r.timings.firstTokenMs,
      tokens_per_second: r.timings.tokensPerSecond,
    },
    ...(r.parsed !== undefined ? { parsed: r.parsed } : {}),
    ...(r.logprobs !== undefined ? { logprobs: openAiLogprobs(r.logprobs) } : {}),
  };
}

/** The generation's numbers, for --verbose. */
export function statsLine(r: LlmResult): string {
  const speed = r.timings.tokensPerSecond !== undefined ? `, ${r.timings.tokensPerSecond.toFixed(1)} tokens/s` : '';
  return `${r.promptTokens} prompt tokens, ${r.completionTokens} generated${speed}, ${Math.round(r.timings.totalMs)} ms, finish: ${r.finishReason}`;
}

export async function completeCommand(args: string[]): Promise<number> {
  const { values: v, positionals } = parse('complete', args, OPTIONS);
  if (v.help) {
    await writeOut(COMPLETE_HELP + '\n');
    return EXIT.ok;
  }
  const sampling = samplingOptions('complete', v);
  checkLogprobsJson('complete', sampling, v.json);
  let prompt = positionals.length === 1 && positionals[0] === '-' ? undefined : positionals.join(' ');
  if (!prompt) {
    if (process.stdin.isTTY) throw new UsageError('give a prompt, or pipe one into stdin', 'complete');
    // `echo text | tea-llama complete`: the newline echo adds is not part of the prompt.
    prompt = (await readStdin()).replace(/\r?\n$/, '');
    if (prompt.length === 0) throw new UsageError('the prompt on stdin is empty', 'complete');
  }

  const backend = await openBackend('complete', v);
  const controller = new AbortController();
  const stopInterrupt = onInterrupt(() => controller.abort());
  try {
    let result: LlmResult;
    if (v.json) {
      result = await backend.call({ prompt, ...sampling, signal: controller.signal });
      await writeOut(JSON.stringify(resultJson(result)) + '\n');
    } else {
      const stream = backend.stream({ prompt, ...sampling, signal: controller.signal });
      let last = '';
      for await (const chunk of stream) {
        process.stdout.write(chunk);
        last = chunk;
      }
      result = await stream;
      await writeOut(last.endsWith('\n') ? '' : '\n');
    }
    commandLogger(v).info(statsLine(result));
    return controller.signal.aborted ? EXIT.interrupted : EXIT.ok;
  } finally {
    stopInterrupt();
    await backend.dispose();
  }
}
