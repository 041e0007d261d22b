// The server's counters in Prometheus' text exposition format (version 0.0.4). Everything runs on the JS thread.

const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];

class Histogram {
  readonly counts = new Map<string, { buckets: number[]; sum: number; count: number }>();

  observe(labels: string, seconds: number): void {
    let h = this.counts.get(labels);
    if (!h) this.counts.set(labels, (h = { buckets: LATENCY_BUCKETS.map(() => 0), sum: 0, count: 0 }));
    LATENCY_BUCKETS.forEach((le, i) => {
      if (seconds <= le) h!.buckets[i]!++;
    });
    h.sum += seconds;
    h.count++;
  }

  render(name: string, out: string[]): void {
    for (const [labels, h] of this.counts) {
      const sep = labels ? `${labels},` : '';
      LATENCY_BUCKETS.forEach((le, i) => out.push(`${name}_bucket{${sep}le="${le}"} ${h.buckets[i]}`));
      out.push(`${name}_bucket{${sep}le="+Inf"} ${h.count}`);
      out.push(`${name}_sum${labels ? `{${labels}}` : ''} ${h.sum}`);
      out.push(`${name}_count${labels ? `{${labels}}` : ''} ${h.count}`);
    }
  }
}

function label(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

/** Counters of one server. */
export class ServerMetrics {
  readonly #requests = new Map<string, number>();
  readonly #finishes = new Map<string, number>();
  readonly #duration = new Histogram();
  readonly #firstToken = new Histogram();
  promptTokens = 0;
  completionTokens = 0;
  /** Generation and embedding requests the backend is working on or holding in its queue. */
  inFlight = 0;
  /** Times a streamed response waited for a slow reader to take what was written (backpressure). */
  writeWaits = 0;

  request(endpoint: string, status: number, seconds: number): void {
    const key = `endpoint="${label(endpoint)}",status="${status}"`;
    this.#requests.set(key, (this.#requests.get(key) ?? 0) + 1);
    this.#duration.observe(`endpoint="${label(endpoint)}"`, seconds);
  }

  finish(endpoint: string, reason: string, promptTokens: number, completionTokens: number): void {
    const key = `endpoint="${label(endpoint)}",finish_reason="${label(reason)}"`;
    this.#finishes.set(key, (this.#finishes.get(key) ?? 0) + 1);
    this.promptTokens += promptTokens;
    this.completionTokens += completionTokens;
  }

  firstToken(endpoint: string, seconds: number): void {
    this.#firstToken.observe(`endpoint="${label(endpoint)}"`, seconds);
  }

  /** `sequences`: the local model's, when known (slot use and queue depth are derived from it). */
  render(sequences: number | undefined): string {
    const out: string[] = [];
    const metric = (name: string, type: string, help: string) => out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    metric('tea_http_requests_total', 'counter', 'HTTP requests answered, by endpoint and status.');
    for (const [k, v] of this.#requests) out.push(`tea_http_requests_total{${k}} ${v}`);
    metric('tea_generations_total', 'counter', 'Generations ended, by endpoint and finish reason (abort: the client left or the server stopped).');
    for (const [k, v] of this.#finishes) out.push(`tea_generations_total{${k}} ${v}`);
    metric('tea_prompt_tokens_total', 'counter', 'Prompt tokens of ended generations.');
    out.push(`tea_prompt_tokens_total ${this.promptTokens}`);
    metric('tea_completion_tokens_total', 'counter', 'Generated tokens of ended generations.');
    out.push(`tea_completion_tokens_total ${this.completionTokens}`);
    metric('tea_requests_in_flight', 'gauge', 'Generation and embedding requests running or queued in the backend.');
    out.push(`tea_requests_in_flight ${this.inFlight}`);
    if (sequences !== undefined) {
      metric('tea_sequences', 'gauge', "The local model's sequences (requests that run at once).");
      out.push(`tea_sequences ${sequences}`);
      metric('tea_sequences_busy', 'gauge', 'Sequences in use.');
      out.push(`tea_sequences_busy ${Math.min(this.inFlight, sequences)}`);
      metric('tea_queue_depth', 'gauge', 'Requests waiting for a free sequence.');
      out.push(`tea_queue_depth ${Math.max(0, this.inFlight - sequences)}`);
    }
    metric('tea_http_write_waits_total', 'counter', 'Times a stream waited for a slow reader (backpressure).');
    out.push(`tea_http_write_waits_total ${this.writeWaits}`);
    metric('tea_request_duration_seconds', 'histogram', 'Time from the request to the end of its answer.');
    this.#duration.render('tea_request_duration_seconds', out);
    metric('tea_time_to_first_token_seconds', 'histogram', 'Time from the request to its first generated text.');
    this.#firstToken.render('tea_time_to_first_token_seconds', out);
    return out.join('\n') + '\n';
  }
}
