import { formatBytes, formatDuration } from './output';

const BAR_WIDTH = 24;

/** A bar of `width` cells, `fraction` of them full: `[#########...............]`. */
export function renderBar(fraction: number, width = BAR_WIDTH): string {
  const f = Math.min(1, Math.max(0, Number.isFinite(fraction) ? fraction : 0));
  const full = Math.round(f * width);
  return `[${'#'.repeat(full)}${'.'.repeat(width - full)}]`;
}

/** One frame of a download: bar, percent, bytes, speed and time left (or bytes and speed when the size is unknown). */
export function renderTransfer(label: string, done: number, total: number | undefined, bytesPerSecond: number | undefined): string {
  const speed = bytesPerSecond !== undefined && bytesPerSecond > 0 ? `${formatBytes(bytesPerSecond)}/s` : '-- B/s';
  if (total === undefined || total <= 0) return `${label} ${formatBytes(done)}  ${speed}`;
  const fraction = done / total;
  const left = bytesPerSecond && bytesPerSecond > 0 ? formatDuration((total - done) / bytesPerSecond) : '--:--';
  const percent = `${Math.floor(fraction * 100)}%`.padStart(4);
  return `${label} ${renderBar(fraction)} ${percent}  ${formatBytes(done)} / ${formatBytes(total)}  ${speed}  ${left} left`;
}

export interface ProgressOptions {
  /** Draw at all (false: every call is a no-op). */
  enabled: boolean;
  /** Redraw one line in place (a terminal); otherwise print a line at most every `lineIntervalMs`. */
  tty: boolean;
  /** Minimum time between two frames on a terminal. Default 100 ms. */
  intervalMs?: number;
  /** Minimum time between two lines when not on a terminal. Default 1000 ms. */
  lineIntervalMs?: number;
  stream?: NodeJS.WritableStream;
}

/** A progress line on stderr, redrawn in place on a terminal, throttled either way. */
export class ProgressLine {
  readonly #options: Required<ProgressOptions>;
  #last = 0;
  #drawn = false;
  #lastText = '';

  constructor(options: ProgressOptions) {
    this.#options = { intervalMs: 100, lineIntervalMs: 1000, stream: process.stderr, ...options };
  }

  /** Shows `text` unless the previous frame is too recent (`force` draws anyway). */
  draw(text: string, force = false): void {
    if (!this.#options.enabled) return;
    const now = Date.now();
    const interval = this.#options.tty ? this.#options.intervalMs : this.#options.lineIntervalMs;
    if (!force && now - this.#last < interval) return;
    if (text === this.#lastText && !force) return;
    this.#last = now;
    this.#lastText = text;
    if (this.#options.tty) this.#options.stream.write(`\r${text}\x1b[K`);
    else this.#options.stream.write(`${text}\n`);
    this.#drawn = true;
  }

  /** Draws the last frame and ends the line. */
  done(text: string): void {
    if (!this.#options.enabled) return;
    if (this.#options.tty) this.#options.stream.write(`\r${text}\x1b[K\n`);
    else if (text !== this.#lastText) this.#options.stream.write(`${text}\n`);
    this.#drawn = false;
  }

  /** Removes the line from a terminal (nothing to do elsewhere). */
  clear(): void {
    if (this.#options.enabled && this.#options.tty && this.#drawn) this.#options.stream.write('\r\x1b[K');
    this.#drawn = false;
  }
}

/** Speed over a sliding window of recent samples, in bytes per second. */
export class SpeedMeter {
  readonly #windowMs: number;
  readonly #samples: Array<{ at: number; bytes: number }> = [];

  constructor(windowMs = 5000) {
    this.#windowMs = windowMs;
  }

  /** Records the running total of bytes. */
  add(totalBytes: number, at = Date.now()): void {
    this.#samples.push({ at, bytes: totalBytes });
    while (this.#samples.length > 2 && at - this.#samples[0].at > this.#windowMs) this.#samples.shift();
  }

  /** Bytes per second over the window, or undefined before two samples 50 ms apart. */
  get bytesPerSecond(): number | undefined {
    if (this.#samples.length < 2) return undefined;
    const first = this.#samples[0];
    const last = this.#samples[this.#samples.length - 1];
    const ms = last.at - first.at;
    return ms >= 50 ? ((last.bytes - first.bytes) * 1000) / ms : undefined;
  }
}

/** The model-load bar: `loading model.gguf [######..........]  40%`. */
export function loadProgress(label: string, options: ProgressOptions): { update(fraction: number): void; finish(): void } {
  const line = new ProgressLine(options);
  let last = 0;
  return {
    update(fraction: number) {
      last = fraction;
      line.draw(`${label} ${renderBar(fraction)} ${`${Math.floor(fraction * 100)}%`.padStart(4)}`, fraction >= 1);
    },
    finish() {
      if (last > 0) line.clear();
    },
  };
}
