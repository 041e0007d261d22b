import type { Logger } from '../logger';
import { redactUrl as displayUrl } from '../redact';

/** One OpenAI-compatible server of an {@link EndpointPool}. */
export interface Endpoint {
  /** The OpenAI API base, e.g. `http://127.0.0.1:8080/v1`. */
  readonly api: string;
  /** The server root, where `/health` is. */
  readonly root: string;
  /** Requests sent to it whose answer has not been read to its end. */
  outstanding: number;
  /** False after a connection error or a 5xx answer, until a probe of its health succeeds. */
  healthy: boolean;
  /** Why it was last marked down, for messages. */
  lastFailure: string | undefined;
  /** Probes that failed in a row since it went down (the backoff doubles with each). */
  failedProbes: number;
  /** Requests it has been given (for tests and logs). */
  served: number;
}

export interface EndpointPoolOptions {
  /** First wait before a down endpoint is probed, in ms; each failed probe doubles it. */
  probeDelayMs: number;
  /** Longest wait between two probes, in ms. */
  maxProbeDelayMs: number;
  /** One probe: true when the endpoint answers as healthy. Never throws. */
  probe: (endpoint: Endpoint) => Promise<boolean>;
  logger: Logger;
}

/**
 * The servers of an API backend and their health. Requests go to the healthy endpoint with the fewest outstanding
 * requests; ties go round robin, so idle servers share the load evenly. A connection error or a 5xx marks an
 * endpoint down; a timer probes it back in (`/health`, else `/v1/models`) after `probeDelayMs`, doubling up to
 * `maxProbeDelayMs` while it stays down. Everything runs on the JavaScript thread; the probe timers are unref'd
 * (they never keep a process alive) and dispose() stops them.
 */
export class EndpointPool {
  readonly endpoints: readonly Endpoint[];
  readonly #o: EndpointPoolOptions;
  readonly #timers = new Map<Endpoint, NodeJS.Timeout>();
  #next = 0;
  #disposed = false;

  constructor(bases: readonly { api: string; root: string }[], options: EndpointPoolOptions) {
    this.endpoints = bases.map((b) => ({ ...b, outstanding: 0, healthy: true, lastFailure: undefined, failedProbes: 0, served: 0 }));
    this.#o = options;
  }

  /**
   * The endpoint for the next attempt: the healthy one with the fewest outstanding requests among those not in
   * `exclude`, ties in round-robin order; when none of those is healthy, a down one (it may be back before its probe
   * says so); undefined when every endpoint is excluded.
   */
  pick(exclude: ReadonlySet<Endpoint> = new Set()): Endpoint | undefined {
    const n = this.endpoints.length;
    let best: Endpoint | undefined;
    for (let k = 0; k < n; k++) {
      const e = this.endpoints[(this.#next + k) % n];
      if (exclude.has(e)) continue;
      if (!best || rank(e) < rank(best)) best = e;
    }
    if (best) {
      this.#next = (this.endpoints.indexOf(best) + 1) % n;
      best.served++;
    }
    return best;
  }

  /** Marks an endpoint down (a connection error, a 5xx) and schedules its probe. A single endpoint is never probed. */
  markDown(endpoint: Endpoint, reason: string): void {
    endpoint.lastFailure = reason;
    if (this.endpoints.length < 2 || this.#disposed) return;
    if (endpoint.healthy) {
      endpoint.healthy = false;
      endpoint.failedProbes = 0;
      this.#o.logger.warn(`API endpoint ${displayUrl(endpoint.root)} is down (${reason}); the other endpoints take its requests`);
    }
    if (!this.#timers.has(endpoint)) this.#schedule(endpoint);
  }

  /** An endpoint answered (a 2xx, or a 4xx that is the request's fault): it is up. */
  markUp(endpoint: Endpoint): void {
    if (endpoint.healthy) return;
    endpoint.healthy = true;
    endpoint.failedProbes = 0;
    clearTimeout(this.#timers.get(endpoint));
    this.#timers.delete(endpoint);
    this.#o.logger.info(`API endpoint ${displayUrl(endpoint.root)} is back`);
  }

  #schedule(endpoint: Endpoint): void {
    const delay = Math.min(this.#o.probeDelayMs * 2 ** Math.min(endpoint.failedProbes, 30), this.#o.maxProbeDelayMs);
    const timer = setTimeout(() => {
      void this.#o.probe(endpoint).then((ok) => {
        this.#timers.delete(endpoint);
        if (this.#disposed || endpoint.healthy) return;
        if (ok) this.markUp(endpoint);
        else {
          endpoint.failedProbes++;
          this.#schedule(endpoint);
        }
      });
    }, delay);
    timer.unref();
    this.#timers.set(endpoint, timer);
  }

  dispose(): void {
    this.#disposed = true;
    for (const timer of this.#timers.values()) clearTimeout(timer);
    this.#timers.clear();
  }
}

/** Healthy before down, then fewer outstanding requests first. */
function rank(e: Endpoint): number {
  return (e.healthy ? 0 : 1e9) + e.outstanding;
}
