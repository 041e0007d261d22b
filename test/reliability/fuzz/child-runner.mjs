// What both fuzz runners (run-fuzz.mjs, run-template-fuzz.mjs) share: their cases run in batches in child processes,
// each child under an address-space cap (ulimit -v) and a per-case time limit, and reporting each case on stdout as
// JSON lines (`start` before a case, `done` after it, `end` at the close). When a child dies or hangs, the last
// `start` names the case that did it, and the rest of its batch goes on in a new child.
import { spawn } from 'node:child_process';
import { availableParallelism } from 'node:os';

/**
 * Runs `indices` in children of `script`, `parallel` at a time, `batchSize` cases per child.
 * - job(batch): what the child reads on stdin;
 * - onDone(done, start, previousRss): a case's `done` line, its `start` line, the child's RSS before it;
 * - onDeath({ start, lastIndex, exit, stderr, hung }): a child that crashed (or was killed for a hang) after its
 *   first case; `start` is the case running then, if any, `lastIndex` the last case done.
 * A child that dies before its first case cannot start at all (dist/ missing, a broken addon): that rejects.
 */
export async function runInChildren({ name, script, indices, batchSize, parallel, caseTimeoutMs, addressSpaceMb, job, onDone, onDeath, onSpawn = () => undefined }) {
  function runChild(batch) {
    onSpawn();
    // exec keeps the pid, so a kill reaches node itself.
    const child = spawn('/bin/sh', ['-c', `ulimit -v ${addressSpaceMb * 1024} && exec "$0" "$@"`, process.execPath, script], {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { ...process.env, TEA_LLAMA_LOG: 'none' },
    });
    child.stdin.end(JSON.stringify(job(batch)));
    let stderr = '';
    child.stderr.on('data', (d) => {
      stderr = (stderr + d.toString()).slice(-4000);
    });
    let buffered = '';
    let current; // { line, at }
    let lastDone = -1;
    let ended = false;
    let hung = false;
    let previousRss = 0;
    const starts = new Map();
    child.stdout.on('data', (d) => {
      buffered += d.toString();
      let nl;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const text = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        let line;
        try {
          line = JSON.parse(text);
        } catch {
          continue; // not ours (a stray print from native code)
        }
        if (line.t === 'start') {
          current = { line, at: performance.now() };
          starts.set(line.i, line);
        } else if (line.t === 'done') {
          onDone(line, starts.get(line.i), previousRss);
          previousRss = line.rss;
          lastDone = batch.indexOf(line.i);
          current = undefined;
        } else if (line.t === 'end') ended = true;
      }
    });
    const watchdog = setInterval(() => {
      if (current && performance.now() - current.at > caseTimeoutMs) {
        hung = true;
        child.kill('SIGKILL');
      }
    }, 200);
    return new Promise((done, fail) => {
      child.on('error', fail);
      child.on('close', (exitCode, signal) => {
        clearInterval(watchdog);
        if (ended && exitCode === 0) return done([]);
        const start = current?.line;
        if (!start && lastDone < 0) return fail(new Error(`${name} child exited with ${signal ?? exitCode} before its first case:\n${stderr}`));
        onDeath({ start, lastIndex: batch[lastDone], exit: signal ?? exitCode, stderr: stderr.slice(-1500), hung });
        done(batch.slice(start ? batch.indexOf(start.i) + 1 : lastDone + 1));
      });
    });
  }

  const queue = [...indices];
  async function lane() {
    while (queue.length > 0) {
      let batch = queue.splice(0, batchSize);
      while (batch.length > 0) batch = await runChild(batch);
    }
  }
  await Promise.all(Array.from({ length: Math.max(1, parallel) }, lane));
}

/**
 * The report of a fuzz run over runInChildren and its onDone/onDeath handlers: outcomes and case kinds counted, a
 * result outside `expected` (besides 'ok'), a child past `rssLimitMb`, a crash or a hang each a finding (logged).
 * `finish()` rounds the figures and returns the report.
 */
export function fuzzReport({ seed, cases, expected, rssLimitMb, log = () => undefined }) {
  const started = performance.now();
  const report = { seed, cases, done: 0, outcomes: {}, kinds: {}, crashes: [], hangs: [], unexpected: [], oversized: [], peakRssMb: 0, slowest: { index: -1, ms: 0 }, elapsedMs: 0 };
  const finding = (list, item) => {
    list.push(item);
    log(`FINDING ${JSON.stringify(item)}`);
  };
  return {
    report,
    onDone: (line, start) => {
      report.done++;
      report.outcomes[line.result] = (report.outcomes[line.result] ?? 0) + 1;
      report.kinds[start?.kind] = (report.kinds[start?.kind] ?? 0) + 1;
      const rssMb = line.rss / 1024;
      if (line.ms > report.slowest.ms) report.slowest = { index: line.i, ms: Math.round(line.ms) };
      if (line.result !== 'ok' && !expected.has(line.result)) finding(report.unexpected, { index: line.i, description: start?.d, result: line.result });
      if (rssMb > rssLimitMb && report.peakRssMb <= rssLimitMb) finding(report.oversized, { index: line.i, description: start?.d, peakRssMb: Math.round(rssMb) });
      report.peakRssMb = Math.max(report.peakRssMb, rssMb);
    },
    onDeath: ({ start, lastIndex, exit, stderr, hung }) => {
      finding(hung ? report.hangs : report.crashes, { index: start ? start.i : lastIndex, description: start?.d ?? 'between cases', exit, stderr });
    },
    finish() {
      report.peakRssMb = Math.round(report.peakRssMb);
      report.elapsedMs = Math.round(performance.now() - started);
      return report;
    },
  };
}

/**
 * One fuzz campaign: cases 0 .. cases-1 run by `script` in child processes (runInChildren), each batch's job from
 * `job(indices)`, counted by fuzzReport. The defaults are every runner's: two children at most, 20 s per case, an
 * 8 GiB address space and a 768 MiB resident-memory finding threshold.
 */
export async function runFuzzCampaign({
  name,
  script,
  expected,
  job,
  seed,
  cases,
  parallel = Math.min(2, availableParallelism()),
  batchSize = 100,
  caseTimeoutMs = 20_000,
  addressSpaceMb = 8192,
  rssLimitMb = 768,
  log = () => undefined,
}) {
  const tally = fuzzReport({ seed, cases, expected, rssLimitMb, log });
  await runInChildren({
    name,
    script,
    indices: Array.from({ length: cases }, (_, i) => i),
    batchSize,
    parallel,
    caseTimeoutMs,
    addressSpaceMb,
    job,
    onDone: tally.onDone,
    onDeath: tally.onDeath,
  });
  return tally.finish();
}

/** The value after `name` on a runner's command line (run on its own), or undefined. */
export function cliArg(name) {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}
