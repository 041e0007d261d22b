#!/usr/bin/env node
// Generation over two rpc-servers on loopback: tea-llama (loadModel rpcServers) against llama-server --rpc with the
// same servers, the same split (every layer, by free memory) and the same threads. One greedy request at a time;
// tg is llama.cpp's own count of generated tokens per second (tea-llama's timings, llama-server's timings). Runs
// alternate between the two, medians of `--runs`.
//
//   node bench/rpc.mjs [--model FILE] [--runs N] [--tokens N]       (after npm run build:ts and the tools build)
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { parseArgs } from 'node:util';

import { freePort, startLlamaServer, toolPath } from '../scripts/llama-server-harness.mjs';

const require = createRequire(import.meta.url);
const { checkRpcServer, loadModel } = require('../dist/cjs/index.js');

const { values } = parseArgs({ options: { model: { type: 'string' }, runs: { type: 'string' }, tokens: { type: 'string' } } });
const model = values.model ?? '../shared/models/stories260K.gguf';
const runs = Number(values.runs ?? 5);
const tokens = Number(values.tokens ?? 128);
const prompt = 'Once upon a time';

async function rpcServer() {
  const port = await freePort();
  const child = spawn(toolPath('ggml-rpc-server'), ['-H', '127.0.0.1', '-p', String(port), '-t', '1'], { stdio: 'ignore' });
  const endpoint = `127.0.0.1:${port}`;
  for (let k = 0; ; k++) {
    try {
      await checkRpcServer(endpoint, { timeoutMs: 2000 });
      return { endpoint, stop: () => child.kill('SIGKILL') };
    } catch (error) {
      if (k > 200) throw error;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

async function tea(endpoints) {
  const m = await loadModel(model, { rpcServers: endpoints, gpuLayers: -1, threads: 1, contextSize: 1024, sequences: 1 });
  try {
    const r = await m.complete(prompt, { maxTokens: tokens, temperature: 0 });
    return { tps: r.timings.tokensPerSecond, n: r.completionTokens };
  } finally {
    await m.dispose();
  }
}

async function server(endpoints) {
  const s = await startLlamaServer(model, ['--rpc', endpoints.join(','), '-ngl', '99', '-t', '1', '-c', '1024', '-np', '1'], { timeoutMs: 120_000 });
  try {
    const r = await s.post('/completion', { prompt, n_predict: tokens, temperature: 0 });
    return { tps: r.timings.predicted_per_second, n: r.tokens_predicted };
  } finally {
    await s.stop();
  }
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const servers = [await rpcServer(), await rpcServer()];
const endpoints = servers.map((s) => s.endpoint);
const samples = { tea: [], server: [] };
try {
  for (let r = 0; r < runs; r++) {
    // An rpc-server serves one client at a time: the two contenders take turns.
    for (const [name, run] of r % 2 === 0 ? [['tea', tea], ['server', server]] : [['server', server], ['tea', tea]]) {
      const { tps, n } = await run(endpoints);
      samples[name].push(tps);
      console.error(`[rpc bench] run ${r + 1} ${name}: ${tps.toFixed(1)} tok/s (${n} tokens)`);
    }
  }
} finally {
  servers.forEach((s) => s.stop());
}
const [t, s] = [median(samples.tea), median(samples.server)];
console.log(`model ${model}, 2 rpc-servers on loopback (1 thread each), tg${tokens}, medians of ${runs}:`);
console.log(`  tea-llama rpcServers: ${t.toFixed(1)} tok/s; llama-server --rpc: ${s.toFixed(1)} tok/s; ratio ${(t / s).toFixed(2)}`);
console.log(`  commands: loadModel(model, { rpcServers: [a, b], gpuLayers: -1, threads: 1 }); llama-server -m ${model} --rpc a,b -ngl 99 -t 1 -c 1024 -np 1`);
