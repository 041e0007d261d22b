import type { CompletionResult } from './types';

/** An AsyncIterable of text chunks with the generation's final result. */
export interface ChunkStream<R> extends AsyncIterable<string> {
  readonly result: Promise<R>;
}

/**
 * Turns a callback-driven generation into an AsyncIterable of chunks. `start` receives the chunk sink and an
 * AbortSignal that fires when the consumer stops iterating early.
 */
export function chunkStream<R = CompletionResult>(start: (push: (chunk: string) => void, stop: AbortSignal) => Promise<R>): ChunkStream<R> {
  const chunks: string[] = [];
  let wake: (() => void) | undefined;
  let done = false;
  let failure: unknown;
  const stopper = new AbortController();

  const result = start((chunk) => {
    chunks.push(chunk);
    wake?.();
  }, stopper.signal);
  result.then(
    () => {
      done = true;
      wake?.();
    },
    (error: unknown) => {
      failure = error;
      done = true;
      wake?.();
    },
  );
  // The result promise is observed here, so an unawaited stream never raises an unhandled rejection.
  result.catch(() => undefined);

  return {
    result,
    async *[Symbol.asyncIterator]() {
      try {
        for (;;) {
          if (chunks.length > 0) {
            yield chunks.shift() as string;
            continue;
          }
          if (done) {
            if (failure !== undefined) throw failure;
            return;
          }
          await new Promise<void>((resolve) => {
            wake = resolve;
          });
          wake = undefined;
        }
      } finally {
        if (!done) stopper.abort();
      }
    },
  };
}
