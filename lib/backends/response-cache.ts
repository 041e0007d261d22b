import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';

import type { ChatMessage } from '../types';
import type { BackendKind, LlmResult } from './llm-backend';

/** Bumped when the key's contents or the stored format change, so old entries are never misread. */
const FORMAT = 1;

/** What identifies a response: the backend, the model, the input and every sampling parameter. */
export interface ResponseCacheKey {
  backend: BackendKind;
  /** The model's identity: a local file's absolute path, an API's base URL and model name. */
  model: string;
  prompt?: string;
  messages?: ChatMessage[];
  maxTokens: number;
  temperature: number;
  topP?: number;
  topK?: number;
  stop?: string[];
  seed?: number;
  /** Grammar, schema, tools and reasoning options, when the request has any. */
  structured?: Record<string, unknown>;
}

/**
 * An on-disk response cache: one JSON file per response, named by the SHA-256 of its key, under `dir`. Entries
 * are written atomically (temporary file, then rename); an unreadable entry is a miss. Off unless a backend is
 * given one (`enableCache` / `LLM_ENABLE_CACHE` in settings).
 */
export class ResponseCache {
  /** Absolute path of the cache folder. */
  readonly dir: string;

  constructor(dir: string) {
    this.dir = resolve(dir);
  }

  /** The hex SHA-256 naming the entry for `key`. */
  hash(key: ResponseCacheKey): string {
    const canonical = [
      FORMAT,
      key.backend,
      key.model,
      key.prompt ?? null,
      key.messages?.map((m) => [m.role, m.content]) ?? null,
      key.maxTokens,
      key.temperature,
      key.topP ?? null,
      key.topK ?? null,
      key.stop ?? null,
      key.seed ?? null,
    ];
    return createHash('sha256').update(JSON.stringify(canonical)).digest('hex');
  }

  /** The stored result for `key`, with `cached: true`, or undefined. */
  async get(key: ResponseCacheKey): Promise<LlmResult | undefined> {
    let text: string;
    try {
      text = await readFile(this.#file(this.hash(key)), 'utf8');
    } catch {
      return undefined;
    }
    try {
      const entry = JSON.parse(text) as { format?: number; result?: LlmResult };
      if (entry.format !== FORMAT || typeof entry.result?.content !== 'string') return undefined;
      return { ...entry.result, cached: true };
    } catch {
      return undefined;
    }
  }

  async set(key: ResponseCacheKey, result: LlmResult): Promise<void> {
    const file = this.#file(this.hash(key));
    await mkdir(join(file, '..'), { recursive: true });
    const temporary = `${file}.${randomBytes(6).toString('hex')}.tmp`;
    try {
      await writeFile(temporary, JSON.stringify({ format: FORMAT, result: { ...result, cached: false } }));
      await rename(temporary, file);
    } catch (error) {
      await rm(temporary, { force: true });
      throw error;
    }
  }

  /** Deletes every entry. */
  async clear(): Promise<void> {
    await rm(this.dir, { recursive: true, force: true });
  }

  #file(hash: string): string {
    return join(this.dir, hash.slice(0, 2), `${hash}.json`);
  }
}
