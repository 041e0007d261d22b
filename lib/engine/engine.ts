import { LlamaError, toLlamaError } from '../errors';
import type { NativeContext, NativeContextOptions, NativeEvent, NativeGeneration, NativeGenerateOptions, NativeInfill, NativeModel, NativeStateResult } from '../native/binding-types';

// The in-process engine's TypeScript side: one Engine per native scheduler (binding/core/scheduler.h). It submits
// requests by id, routes the scheduler's coalesced events to them, wires AbortSignals to cancel, and settles every
// request exactly once. Everything here runs on the JS thread that loaded the model.

interface Pending {
  onText?: (text: string) => void;
  resolve(value: NativeGeneration | Float32Array[] | NativeStateResult): void;
  reject(error: unknown): void;
}

/**
 * Routes events to pending requests. Deliberately holds no reference to the native context: the context's event
 * channel holds this router alive, and a reference back would keep a model that nobody disposes from being
 * garbage-collected.
 */
class EventRouter {
  readonly pending = new Map<number, Pending>();
  cancel: (id: number) => void = () => undefined;
  onIdle: () => void = () => undefined;

  /** Called by the native event channel; must not throw. */
  dispatch = (events: NativeEvent[]): void => {
    for (const event of events) {
      const p = this.pending.get(event.id);
      if (!p) continue;
      switch (event.type) {
        case 'text':
          if (!p.onText) break;
          try {
            p.onText(event.text);
          } catch (error) {
            // A throwing callback ends its own request with that error, and nothing else.
            this.pending.delete(event.id);
            this.cancel(event.id);
            p.reject(error);
          }
          break;
        case 'done':
          this.pending.delete(event.id);
          p.resolve(event.result);
          break;
        case 'embeddings':
          this.pending.delete(event.id);
          p.resolve(event.vectors);
          break;
        case 'state':
          this.pending.delete(event.id);
          p.resolve({ sequence: event.sequence, tokens: event.tokens, meta: event.meta, ...(event.data ? { data: event.data } : {}) });
          break;
        case 'error':
          this.pending.delete(event.id);
          p.reject(new LlamaError(event.code as never, event.message));
          break;
      }
    }
    if (this.pending.size === 0) this.onIdle();
  };
}

/**
 * Every native context not yet disposed, weakly (a model nobody disposes must still be garbage-collected; its
 * context's destructor stops its scheduler). process.exit() (and the exit after an uncaught exception) would
 * otherwise run the C++ static destructors while a scheduler thread still decodes: at exit each one is stopped,
 * its decode interrupted and its thread joined, which takes at most one graph node.
 */
const live = new Set<WeakRef<NativeContext>>();
let exitHook = false;

function register(native: NativeContext): WeakRef<NativeContext> {
  if (!exitHook) {
    exitHook = true;
    process.once('exit', () => {
      for (const ref of live) ref.deref()?.dispose();
    });
  }
  for (const ref of live) if (ref.deref() === undefined) live.delete(ref);
  const ref = new WeakRef(native);
  live.add(ref);
  return ref;
}

export class Engine {
  readonly #native: NativeContext;
  readonly #router: EventRouter;
  readonly #ref: WeakRef<NativeContext>;
  #settled: Promise<void> | undefined;

  private constructor(native: NativeContext, router: EventRouter) {
    this.#native = native;
    this.#router = router;
    this.#ref = register(native);
    const weak = this.#ref;
    router.cancel = (id) => weak.deref()?.cancel(id);
  }

  /** Creates the native context and starts its scheduler thread. */
  static async create(model: NativeModel, options: NativeContextOptions, draft?: NativeModel): Promise<Engine> {
    const router = new EventRouter();
    try {
      return new Engine(await model.createContext(options, router.dispatch, draft), router);
    } catch (error) {
      throw toLlamaError(error);
    }
  }

  get info() {
    return this.#native.info();
  }

  /** Runs one generation; resolves with the native result (finishReason 'abort' when aborted while running). */
  generate(prompt: string, options: NativeGenerateOptions, signal: AbortSignal | undefined, onText?: (text: string) => void, infill?: NativeInfill): Promise<NativeGeneration> {
    return this.#submit(() => this.#native.generate(prompt, options, onText !== undefined, infill), signal, onText) as Promise<NativeGeneration>;
  }

  /** Embeds texts in batches shared with other embed calls. */
  embed(texts: string[], normalize: boolean, signal: AbortSignal | undefined): Promise<Float32Array[]> {
    return this.#submit(() => this.#native.embed(texts, normalize), signal) as Promise<Float32Array[]>;
  }

  /** Scores documents against a query (a rank-pooling context): one Float32Array of n_cls_out scores each. */
  rerank(query: string, documents: string[], signal: AbortSignal | undefined): Promise<Float32Array[]> {
    return this.#submit(() => this.#native.embed(documents, false, query), signal) as Promise<Float32Array[]>;
  }

  /** Saves a sequence's KV state (on the scheduler thread, once the sequence is idle): the state file's bytes. */
  saveState(sequence: number, meta: string): Promise<NativeStateResult> {
    return this.#submit(() => this.#native.saveState(sequence, meta), undefined) as Promise<NativeStateResult>;
  }

  /** Restores a state file's bytes into `sequence` (-1: an idle unreserved one). */
  loadState(data: Buffer, sequence: number): Promise<NativeStateResult> {
    return this.#submit(() => this.#native.loadState(data, sequence), undefined) as Promise<NativeStateResult>;
  }

  /** Reserves a sequence that only requests naming it use (a chat session's); ERR_QUEUE_FULL when none is left. */
  reserveSequence(): number {
    try {
      return this.#native.reserveSequence();
    } catch (error) {
      throw toLlamaError(error);
    }
  }

  releaseSequence(sequence: number): void {
    if (!this.#native.disposed) this.#native.releaseSequence(sequence);
  }

  #submit(start: () => number, signal: AbortSignal | undefined, onText?: (text: string) => void): Promise<NativeGeneration | Float32Array[] | NativeStateResult> {
    if (signal?.aborted) return Promise.reject(new LlamaError('ERR_ABORTED', 'aborted before it started'));
    let id: number;
    try {
      id = start();
    } catch (error) {
      return Promise.reject(toLlamaError(error));
    }
    return new Promise((resolve, reject) => {
      const onAbort = () => this.#native.cancel(id);
      signal?.addEventListener('abort', onAbort, { once: true });
      const unlink = () => signal?.removeEventListener('abort', onAbort);
      this.#router.pending.set(id, {
        onText,
        resolve: (value) => {
          unlink();
          resolve(value);
        },
        reject: (error) => {
          unlink();
          reject(error);
        },
      });
    });
  }

  /**
   * Stops the scheduler: running requests resolve with what they produced (finishReason 'abort'), queued ones
   * reject with ERR_DISPOSED. Resolves once every request has settled.
   */
  dispose(): Promise<void> {
    if (this.#router.pending.size > 0) {
      this.#settled ??= new Promise<void>((done) => (this.#router.onIdle = done));
    }
    this.#native.dispose();
    live.delete(this.#ref);
    return this.#settled ?? Promise.resolve();
  }
}
