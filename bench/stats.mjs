// Small statistics and measurement helpers shared by the benchmark's parent and worker processes.
import { performance } from 'node:perf_hooks';

export const now = () => performance.now();

export function median(xs) {
  const v = xs.filter(Number.isFinite).sort((a, b) => a - b);
  if (v.length === 0) return undefined;
  const mid = v.length >> 1;
  return v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
}

/** Nearest-rank percentile (p in 0..100) of a list of numbers. */
export function percentile(xs, p) {
  const v = xs.filter(Number.isFinite).sort((a, b) => a - b);
  if (v.length === 0) return undefined;
  return v[Math.min(v.length - 1, Math.max(0, Math.ceil((p / 100) * v.length) - 1))];
}

/** { median, min, max, n, spread }: spread is half the min-max range relative to the median (0.02 = ±2%). */
export function summarize(xs) {
  const v = xs.filter(Number.isFinite);
  if (v.length === 0) return undefined;
  const m = median(v);
  const min = Math.min(...v);
  const max = Math.max(...v);
  return { median: m, min, max, n: v.length, spread: m > 0 ? (max - min) / 2 / m : 0 };
}

/**
 * Event-loop lag: a 1 ms timer re-armed from its own callback; each firing records how late it ran.
 * start() returns stop(), which returns { p50, p99, max, count } in ms.
 */
export function startLagMonitor(intervalMs = 1) {
  const lags = [];
  let expected = now() + intervalMs;
  let timer;
  const tick = () => {
    const t = now();
    lags.push(Math.max(0, t - expected));
    expected = t + intervalMs;
    timer = setTimeout(tick, intervalMs);
  };
  timer = setTimeout(tick, intervalMs);
  return () => {
    clearTimeout(timer);
    return { p50: percentile(lags, 50) ?? 0, p99: percentile(lags, 99) ?? 0, max: lags.length ? Math.max(...lags) : 0, count: lags.length };
  };
}

/** Tokens per second from a count and a duration in ms. */
export const perSecond = (n, ms) => (ms > 0 ? (n * 1000) / ms : undefined);

/** The value after `--name` on a bench script's command line, else `fallback` (for the scripts run on their own). */
export function argValue(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}
