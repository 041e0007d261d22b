// The contenders and how one session of each runs. llama-bench is a CLI run from here; the others run in a
// fresh Node process (worker.mjs) each.
import { fork, spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { median, now } from './stats.mjs';

const here = dirname(fileURLToPath(import.meta.url));

export const CONTENDERS = {
  bench: { label: 'llama-bench', short: 'llama-bench', color: '#6b7280' },
  tea: { label: 'tea-llama', short: 'tea-llama', color: '#2563eb' },
  // The same package with its prebuilt binary (what `npm install` gives): llama.cpp as shared libraries and the
  // best CPU variant for the machine picked at run time, like node-llama-cpp's prebuilt binary. The source build
  // above uses the portable profile (AVX2, no AVX-512), exactly as build/tools/llama-bench does.
  pre: { label: 'tea-llama prebuild', short: 'tea-llama prebuild', color: '#7c3aed' },
  nlc: { label: 'node-llama-cpp 3.22.1', short: 'node-llama-cpp', color: '#d97706' },
  api: { label: 'tea-llama API → llama-server', short: 'API→llama-server', color: '#059669' },
};
export const CONTENDER_IDS = Object.keys(CONTENDERS);

/** The serving scenario's contenders (serving.mjs): the engines themselves, llama-server over plain HTTP. */
export const SERVING_CONTENDERS = {
  tea: CONTENDERS.tea,
  serve: { label: 'tea-llama serve (HTTP)', short: 'tea-llama serve', color: '#0891b2' },
  server: { label: 'llama-server', short: 'llama-server', color: '#059669' },
  nlc: CONTENDERS.nlc,
};
export const SERVING_IDS = Object.keys(SERVING_CONTENDERS);

/** The contender of a planned or recorded session, of either scenario. */
export const contenderOf = (session) => (session.scenario === 'serving' ? SERVING_CONTENDERS : CONTENDERS)[session.contender];

/**
 * llama.cpp's own benchmark tool: pp<n> and tg<n> from one invocation, one repetition (the parent repeats).
 * JSON lines, so the tests that finished before a timeout still count.
 */
async function llamaBenchSession(spec, onProgress, timeoutMs, signal) {
  // Two invocations: prompt processing repeated ppReps times (the median kept, as the other contenders do), then
  // generation once.
  const started = Date.now();
  const pp = spec.inputs.pp.length ? await llamaBench(spec, ['-p', spec.inputs.pp.map((p) => p.n).join(','), '-n', '0', '-r', String(spec.ppReps ?? 1)], onProgress, timeoutMs, signal) : undefined;
  if (pp?.cut || !spec.inputs.tg) return pp ?? { samples: {}, info: {} };
  const remaining = timeoutMs ? Math.max(1, timeoutMs - (Date.now() - started)) : undefined;
  const tg = await llamaBench(spec, ['-p', '0', '-n', String(spec.inputs.tg.n), '-r', '1'], onProgress, remaining, signal, pp?.samples);
  return { ...tg, info: { ...pp?.info, ...tg.info } };
}

function llamaBench(spec, tests, onProgress, timeoutMs, signal, earlier = {}) {
  const args = [
    '-m', spec.model, '-t', String(spec.threads), '-b', String(spec.batch), '-ub', String(spec.batch), '-fa', 'auto',
    ...tests, '-o', 'jsonl',
  ];
  return new Promise((resolve, reject) => {
    const child = spawn(spec.benchBin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const samples = { ...earlier };
    let info = {};
    let stdout = '';
    let stderr = '';
    let cut = false;
    const take = (line) => {
      if (!line.trim()) return;
      const t = JSON.parse(line);
      if (t.n_prompt > 0 && t.n_gen === 0) samples[`pp${t.n_prompt}`] = median(t.samples_ts ?? [t.avg_ts]);
      else if (t.n_gen > 0 && t.n_prompt === 0) samples.tg = t.avg_ts;
      info = { build_commit: t.build_commit, build_number: t.build_number, cpu_info: t.cpu_info, flash_attn: t.flash_attn, n_ubatch: t.n_ubatch, type_k: t.type_k };
      onProgress?.(Object.keys(samples).join(' '));
    };
    child.stdout.on('data', (d) => {
      stdout += d.toString();
      const lines = stdout.split('\n');
      stdout = lines.pop();
      lines.forEach(take);
    });
    child.stderr.on('data', (d) => {
      stderr = (stderr + d.toString()).slice(-2000);
    });
    const stop = () => ((cut = true), child.kill('SIGKILL'));
    const timer = timeoutMs ? setTimeout(stop, timeoutMs) : undefined;
    signal?.addEventListener('abort', stop, { once: true });
    child.on('exit', (code, sig) => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', stop);
      take(stdout);
      if (cut) resolve({ samples, info, cut: true });
      else if (code === 0) resolve({ samples, info });
      else reject(new Error(`llama-bench exited with ${sig ?? code}: ${stderr}`));
    });
  });
}

function workerSession(spec, onProgress, timeoutMs, signal) {
  return new Promise((resolve, reject) => {
    const env = spec.contender === 'pre' ? { ...process.env, PREBUILDS_ONLY: '1' } : process.env;
    const child = fork(join(here, 'worker.mjs'), [], { stdio: ['ignore', 'ignore', 'pipe', 'ipc'], env });
    let stderr = '';
    child.stderr.on('data', (d) => {
      stderr = (stderr + d.toString()).slice(-4000);
    });
    let outcome;
    let partial = {};
    const grandchildren = [];
    let cut = false;
    child.on('message', (m) => {
      if (m.type === 'progress') {
        partial = m.samples;
        onProgress?.(m.test);
      } else if (m.type === 'child') grandchildren.push(m.pid);
      else outcome = m;
    });
    const kill = () => {
      for (const pid of grandchildren) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
      child.kill('SIGKILL');
    };
    const stop = () => ((cut = true), kill());
    const timer = timeoutMs ? setTimeout(stop, timeoutMs) : undefined;
    signal?.addEventListener('abort', stop, { once: true });
    // Natives may keep a process alive a moment after its last handle closes: give it 10 s, then kill it.
    let killer;
    child.on('disconnect', () => {
      killer = setTimeout(kill, 10_000);
    });
    child.on('exit', (code, sig) => {
      clearTimeout(timer);
      clearTimeout(killer);
      signal?.removeEventListener('abort', stop);
      if (outcome?.type === 'result') resolve(outcome.result);
      else if (cut) resolve({ samples: partial, info: {}, cut: true });
      else if (outcome?.type === 'error') reject(Object.assign(new Error(outcome.message), { partial: outcome.samples }));
      else reject(new Error(`the ${spec.contender} worker exited (${sig ?? code}) without a result\n${stderr}`));
    });
    child.send(spec);
  });
}

/**
 * Runs one session; resolves { samples, info, wallMs, cut? }. A session longer than timeoutMs, or still running
 * when `signal` aborts, is cut short with the samples it has.
 */
export async function runSession(spec, onProgress, timeoutMs, signal) {
  const started = now();
  const run = spec.contender === 'bench' ? llamaBenchSession : workerSession;
  const result = await run(spec, onProgress, timeoutMs, signal);
  return { ...result, wallMs: now() - started };
}
