import type { TokenAlternative, TokenLogprob } from '../types';
import { malformed } from './api-response';

// Log-probabilities in an OpenAI-compatible answer: `choices[0].logprobs.content`, a list of { token, bytes,
// logprob, top_logprobs } (OpenAI's chat shape, which llama-server also uses for /v1/completions; it adds `id`).

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function alternative(where: string, path: string, v: unknown): TokenAlternative {
  if (!isObject(v) || typeof v.token !== 'string' || typeof v.logprob !== 'number') malformed(where, path, 'an object { token, logprob, bytes }', v);
  const bytes = Array.isArray(v.bytes) && v.bytes.every((b) => Number.isInteger(b)) ? (v.bytes as number[]) : [...Buffer.from(v.token, 'utf8')];
  // OpenAI sends no token ids: -1 then.
  return { id: typeof v.id === 'number' ? v.id : -1, token: v.token, bytes, logprob: v.logprob };
}

/** The entries of `logprobs` (a choice's field), each with at most `top` alternatives; undefined when absent. */
export function parseLogprobs(where: string, logprobs: unknown, top: number): TokenLogprob[] | undefined {
  if (logprobs === undefined || logprobs === null) return undefined;
  const content = isObject(logprobs) ? logprobs.content : undefined;
  if (!Array.isArray(content)) malformed(where, 'choices[0].logprobs.content', 'a list', content);
  return content.map((entry, i) => {
    const path = `choices[0].logprobs.content[${i}]`;
    const alternatives = isObject(entry) ? entry.top_logprobs : undefined;
    if (!Array.isArray(alternatives)) malformed(where, `${path}.top_logprobs`, 'a list', alternatives);
    return {
      ...alternative(where, path, entry),
      topLogprobs: alternatives.slice(0, top).map((a, k) => alternative(where, `${path}.top_logprobs[${k}]`, a)),
    };
  });
}

/** One token's log-probability in OpenAI's snake_case shape (with llama-server's `id`). */
export interface OpenAiTokenLogprob {
  id: number;
  token: string;
  bytes: number[];
  logprob: number;
  top_logprobs: { id: number; token: string; bytes: number[]; logprob: number }[];
}

/** A result's `logprobs` in OpenAI's shape (the entries of `choices[0].logprobs.content`): the inverse of parseLogprobs. */
export function openAiLogprobs(logprobs: readonly TokenLogprob[]): OpenAiTokenLogprob[] {
  const plain = (a: TokenAlternative) => ({ id: a.id, token: a.token, bytes: [...a.bytes], logprob: a.logprob });
  return logprobs.map((t) => ({ ...plain(t), top_logprobs: t.topLogprobs.map(plain) }));
}
