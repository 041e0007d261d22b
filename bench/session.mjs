// What the sessions of a worker process (worker.mjs, serving.mjs) share: progress reports to the parent, and
// starting llama-server and node-llama-cpp the same way everywhere.
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

import { startLlamaServer } from '../scripts/llama-server-harness.mjs';

// The samples measured so far go with every progress message: a session the parent cuts short (the machine too
// busy to finish it in time) still reports what it measured.
let current = {};

/** Makes `samples` the object that progress messages (and an error) report; returns it. */
export function track(samples) {
  current = samples;
  return samples;
}

export const tracked = () => current;

export function progress(test) {
  process.send?.({ type: 'progress', test, samples: current });
}

/** llama-server options matching the in-process contenders' settings, with `parallel` slots. */
export function serverArgs(spec, parallel = 1) {
  return [
    '-t', String(spec.threads), '-tb', String(spec.threads), '-c', String(spec.ctx), '-b', String(spec.batch), '-ub', String(spec.batch),
    '-np', String(parallel), '-fa', 'auto', '--no-cache-prompt', '-cram', '0',
  ];
}

/**
 * Starts llama-server (or `command`, another server with its command line: tea-llama serve) and waits for /health;
 * the parent learns its pid, to kill it too if it cuts the session.
 */
export function startServer(spec, args, command) {
  return startLlamaServer(spec.model, args, { bin: spec.serverBin, command, timeoutMs: 120_000, onSpawn: (pid) => process.send?.({ type: 'child', pid }) });
}

/** node-llama-cpp's module, from the folder nlc.mjs installed it into. */
export function importNodeLlamaCpp(spec) {
  // Belt and braces: the prebuilt binary must be used as is, never downloaded or built.
  process.env.NODE_LLAMA_CPP_SKIP_DOWNLOAD = 'true';
  process.env.NODE_LLAMA_CPP_GPU = 'false';
  return import(pathToFileURL(join(spec.nlcDir, 'node_modules', 'node-llama-cpp', 'dist', 'index.js')).href);
}

/** node-llama-cpp's CPU backend: its prebuilt binary or an error. */
export function getCpuLlama(nlc, threads) {
  return nlc.getLlama({
    gpu: false,
    build: 'never',
    usePrebuiltBinaries: true,
    skipDownload: true,
    progressLogs: false,
    logLevel: nlc.LlamaLogLevel.error,
    maxThreads: threads,
  });
}
