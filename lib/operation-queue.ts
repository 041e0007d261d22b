import { LlamaError } from './errors';

type Task = { start: () => void; reject: (error: LlamaError) => void };

/**
 * Runs async operations one at a time, in call order. A native context runs one operation at a time, so every
 * call on a context goes through its queue: concurrent callers wait instead of corrupting each other's state.
 */
export class OperationQueue {
  #waiting: Task[] = [];
  #running: Promise<unknown> | undefined;
  #closed = false;

  run<T>(operation: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    if (this.#closed) return Promise.reject(new LlamaError('ERR_DISPOSED', 'the model has been disposed'));
    if (signal?.aborted) return Promise.reject(new LlamaError('ERR_ABORTED', 'aborted before it started'));
    return new Promise<T>((resolve, reject) => {
      const onAbort = () => {
        const index = this.#waiting.indexOf(task);
        if (index >= 0) {
          this.#waiting.splice(index, 1);
          reject(new LlamaError('ERR_ABORTED', 'aborted while waiting for an earlier operation'));
        }
      };
      const task: Task = {
        start: () => {
          signal?.removeEventListener('abort', onAbort);
          const running = operation().then(resolve, reject);
          this.#running = running.finally(() => {
            this.#running = undefined;
            this.#next();
          });
        },
        reject: (error) => {
          signal?.removeEventListener('abort', onAbort);
          reject(error);
        },
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#waiting.push(task);
      if (!this.#running) this.#next();
    });
  }

  /** Rejects everything not yet started and resolves once the running operation (if any) has settled. */
  async close(): Promise<void> {
    this.#closed = true;
    for (const task of this.#waiting.splice(0)) task.reject(new LlamaError('ERR_DISPOSED', 'the model was disposed'));
    await this.#running;
  }

  #next(): void {
    const task = this.#waiting.shift();
    task?.start();
  }
}
