// Types of llama-server-harness.mjs, for the TypeScript tests (test/support/llama-server.ts).

export type ToolName = 'llama-server' | 'llama-bench' | 'llama-quantize' | 'llama-completion';

/** build/tools: llama.cpp's tools, built from the same vendored tree by `npm run build:tools`. */
export declare const toolsDir: string;

/** The path of one of llama.cpp's tools; throws when it has not been built. */
export declare function toolPath(name: ToolName): string;

/** A TCP port free on 127.0.0.1 at the time of the call. */
export declare function freePort(): Promise<number>;

/** The error of a non-2xx answer. */
export interface HttpError extends Error {
  status: number;
  body: string;
}

export interface LlamaServer {
  baseUrl: string;
  pid: number;
  /** POSTs JSON and returns the parsed JSON answer (throws an {@link HttpError} on a non-2xx status). */
  post<T = unknown>(path: string, body: unknown): Promise<T>;
  /**
   * POSTs JSON (with `stream: true` in the body) and calls onEvent with each server-sent event's parsed data;
   * resolves the last one. OpenAI's closing `[DONE]` is skipped.
   */
  stream<T = unknown>(path: string, body: unknown, onEvent?: (event: T) => void): Promise<T | undefined>;
  /** The last 8000 characters llama-server wrote to stderr. */
  stderrTail(): string;
  /** SIGTERM, then SIGKILL after 5 s; resolves when the process has exited. */
  stop(): Promise<void>;
}

export interface StartOptions {
  /** The llama-server binary. Default: build/tools/llama-server. */
  bin?: string;
  /**
   * Another server to start instead, as [executable, ...arguments]; it gets the same -m, --host and --port (not
   * --no-webui) and must answer GET /health. The benchmark starts `tea-llama serve` with it.
   */
  command?: string[];
  /** How long to wait for /health. Default 120 s. */
  timeoutMs?: number;
  /** Called with the child's pid as soon as it is spawned (before /health answers). */
  onSpawn?: (pid: number) => void;
}

/** Starts llama-server on 127.0.0.1 with `-m model`, a free port, --no-webui and `args`; waits for /health. */
export declare function startLlamaServer(model: string, args?: string[], options?: StartOptions): Promise<LlamaServer>;
