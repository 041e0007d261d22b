// One benchmark session in a fresh process: one contender, one model, one thread count. Started by run.mjs
// with child_process.fork(); receives the session spec as its first IPC message, reports progress with
// { type: 'progress', test, samples } and ends with { type: 'result', result } (or { type: 'error', message }).
//
// A separate process per session keeps contenders from sharing a process (two OpenMP or ggml thread pools
// spinning side by side), makes load time and resident memory comparable, and lets the parent interleave
// contenders run by run.
//
// Every session measures, in this order: load (until a first prompt token can be decoded) and resident memory,
// a warm-up, prompt processing (pp<n>: prompt only, no generation), time to first token (a 128-token prompt,
// one generated token, measured by the caller up to the first text), plain generation (tg), streamed
// generation with a per-chunk JS callback while a 1 ms timer measures event-loop lag, and embeddings.
//
// A spec with scenario 'serving' runs serving.mjs's session of that contender instead.
//
// tg counts decode steps: a generation of n + 1 tokens makes n decode calls after the prompt (the first token
// comes from the prompt's logits), so tg = n / generation time, as llama-bench's tg<n> makes n decode calls.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';

import { SERVING_SESSIONS } from './serving.mjs';
import { getCpuLlama, importNodeLlamaCpp, progress, serverArgs, startServer, track, tracked } from './session.mjs';
import { median, now, perSecond, startLagMonitor } from './stats.mjs';

/** Prompt-processing repetitions per session (the median is kept). */
const reps = (spec) => spec.ppReps ?? 1;

const require = createRequire(import.meta.url);

const rssMB = () => process.memoryUsage().rss / 2 ** 20;

// ---- tea-llama, in-process -----------------------------------------------------------------------------

async function teaSession(spec) {
  const tea = require(spec.root);
  const out = { samples: {}, info: { native: tea.nativeInfo() } };
  const s = track(out.samples);

  progress('load');
  const t0 = now();
  // One request at a time, in one sequence, as llama-bench, llama-server -np 1 and node-llama-cpp's default. With more
  // sequences the prompts of earlier requests stay cached in the idle ones: a repeated pp prompt would be found
  // there and not decoded, and every decode would attend over those cells as well.
  const model = await tea.loadModel(spec.model, { threads: spec.threads, contextSize: spec.ctx, batchSize: spec.batch, sequences: 1 });
  await model.complete(spec.inputs.ready.text, { maxTokens: 0 }); // creates the context, decodes 4 tokens
  s.loadMs = now() - t0;
  s.rssMB = rssMB();

  try {
    progress('warm-up');
    await model.complete(spec.inputs.warmup.text, { maxTokens: 4, temperature: 0 });

    for (const pp of spec.inputs.pp) {
      progress(`pp${pp.n}`);
      const rates = [];
      for (let rep = 0; rep < reps(spec); rep++) {
        // Another prompt in between, so that the KV cache holds nothing of this one (only the BOS is shared).
        if (rep > 0) await model.complete(spec.inputs.warmup.text, { maxTokens: 0 });
        const r = await model.complete(pp.text, { maxTokens: 0 });
        rates.push(perSecond(r.promptTokens - r.reusedPromptTokens, r.timings.promptMs));
        s[`pp${pp.n}Tokens`] = r.promptTokens - r.reusedPromptTokens;
      }
      s[`pp${pp.n}`] = median(rates);
    }

    if (spec.inputs.ttft) {
      progress('ttft');
      let first;
      const started = now();
      await model.complete(spec.inputs.ttft.text, {
        maxTokens: 1,
        temperature: 0,
        onChunk: () => {
          first ??= now() - started;
        },
      });
      s.ttftMs = first ?? now() - started;
    }

    const tg = spec.inputs.tg;
    if (tg) {
      progress(`tg${tg.n}`);
      const r = await model.complete(tg.text, { maxTokens: tg.n + 1, temperature: 0 });
      s.tg = perSecond(r.completionTokens - 1, r.timings.generationMs);
      s.tgTokens = r.completionTokens;
    }

    if (spec.inputs.tgStream) {
      progress(`tg${spec.inputs.tgStream.n} streamed`);
      let chunks = 0;
      const stop = startLagMonitor();
      const r = await model.complete(spec.inputs.tgStream.text, {
        maxTokens: spec.inputs.tgStream.n + 1,
        temperature: 0,
        onChunk: () => {
          chunks++;
        },
      });
      s.lag = stop();
      s.tgStream = perSecond(r.completionTokens - 1, r.timings.generationMs);
      s.tgStreamTokens = r.completionTokens;
      s.tgStreamChunks = chunks;
    }

    if (spec.inputs.tgJson) {
      const j = spec.inputs.tgJson;
      progress(`tg${j.n} json`);
      // Grammar set-up: one token with the schema less one without (schema to GBNF, parse, sampler).
      const setup = [];
      for (let rep = 0; rep < 3; rep++) {
        let t = now();
        await model.complete(j.text, { maxTokens: 1, temperature: 0 });
        const plain = now() - t;
        t = now();
        await model.complete(j.text, { maxTokens: 1, temperature: 0, jsonSchema: j.schema });
        setup.push(Math.max(0, now() - t - plain));
      }
      s.grammarSetupMs = median(setup);
      // The median of --pp-reps generations, as for pp: one generation of a small model lasts about a second, and
      // single samples of it varied by ±20% from run to run on a 2-core VM.
      const rates = [];
      for (let rep = 0; rep < reps(spec); rep++) {
        const r = await model.complete(j.text, { maxTokens: j.n + 1, temperature: 0, jsonSchema: j.schema });
        rates.push(perSecond(r.completionTokens - 1, r.timings.generationMs));
        s.tgJsonTokens = r.completionTokens;
      }
      s.tgJson = median(rates);
    }

    if (spec.inputs.embed) {
      progress('embeddings');
      const texts = spec.inputs.embed;
      await model.embed(texts.slice(0, 2)); // creates the embedding context
      const started = now();
      await model.embed(texts);
      s.embedPerSecond = perSecond(texts.length, now() - started);
    }
  } finally {
    await model.dispose();
  }
  return out;
}

// ---- node-llama-cpp, in-process ------------------------------------------------------------------------

async function nlcSession(spec) {
  const nlc = await importNodeLlamaCpp(spec);
  const out = { samples: {}, info: {} };
  const s = track(out.samples);

  progress('load');
  const t0 = now();
  const llama = await getCpuLlama(nlc, spec.threads);
  const model = await llama.loadModel({ modelPath: spec.model, gpuLayers: 0 });
  const context = await model.createContext({
    contextSize: spec.ctx,
    batchSize: spec.batch,
    threads: { ideal: spec.threads, min: spec.threads },
    flashAttention: 'auto',
    sequences: 1,
  });
  const sequence = context.getSequence();
  await sequence.evaluateWithoutGeneratingNewTokens(spec.inputs.ready.tokens);
  s.loadMs = now() - t0;
  s.rssMB = rssMB();
  out.info = {
    version: JSON.parse(readFileSync(join(spec.nlcDir, 'node_modules', 'node-llama-cpp', 'package.json'), 'utf8')).version,
    buildType: llama.buildType,
    llamaCppRelease: llama.llamaCppRelease,
    systemInfo: llama.systemInfo,
    contextSize: context.contextSize,
    batchSize: context.batchSize,
  };

  /** Generates up to n + 1 tokens; returns { count, firstMs (from the call), spanMs (first to last token) }. */
  async function generate(tokens, n, onToken) {
    await sequence.clearHistory();
    const started = now();
    let count = 0;
    let first = 0;
    let last = 0;
    for await (const token of sequence.evaluate(tokens, { temperature: 0 })) {
      onToken?.(token);
      last = now();
      if (count++ === 0) first = last;
      if (count >= n + 1) break;
    }
    return { count, firstMs: first - started, spanMs: last - first };
  }

  try {
    progress('warm-up');
    await generate(spec.inputs.warmup.tokens, 3);

    for (const pp of spec.inputs.pp) {
      progress(`pp${pp.n}`);
      const rates = [];
      for (let rep = 0; rep < reps(spec); rep++) {
        await sequence.clearHistory();
        const started = now();
        await sequence.evaluateWithoutGeneratingNewTokens(pp.tokens);
        rates.push(perSecond(pp.tokens.length, now() - started));
      }
      s[`pp${pp.n}`] = median(rates);
      s[`pp${pp.n}Tokens`] = pp.tokens.length;
    }

    if (spec.inputs.ttft) {
      progress('ttft');
      await sequence.clearHistory();
      const started = now();
      const iterator = sequence.evaluate(spec.inputs.ttft.tokens, { temperature: 0 });
      const first = await iterator.next();
      if (!first.done) model.detokenize([first.value]);
      s.ttftMs = now() - started;
      await iterator.return();
    }

    const tg = spec.inputs.tg;
    if (tg) {
      progress(`tg${tg.n}`);
      const r = await generate(tg.tokens, tg.n);
      s.tg = perSecond(r.count - 1, r.spanMs);
      s.tgTokens = r.count;
    }

    // node-llama-cpp's token loop is a JS async generator: streaming is its only mode. The streamed run adds
    // the per-token text (what a chunk callback receives) and the lag monitor.
    if (spec.inputs.tgStream) {
      progress(`tg${spec.inputs.tgStream.n} streamed`);
      let chunks = 0;
      const stop = startLagMonitor();
      const r = await generate(spec.inputs.tgStream.tokens, spec.inputs.tgStream.n, (token) => {
        if (model.detokenize([token]).length > 0) chunks++;
      });
      s.lag = stop();
      s.tgStream = perSecond(r.count - 1, r.spanMs);
      s.tgStreamTokens = r.count;
      s.tgStreamChunks = chunks;
    }

    if (spec.inputs.embed) {
      progress('embeddings');
      const texts = spec.inputs.embed;
      const embedding = await model.createEmbeddingContext({ contextSize: spec.ctx, batchSize: spec.batch, threads: spec.threads });
      try {
        await embedding.getEmbeddingFor(texts[0]);
        const started = now();
        // No batch API: one text at a time, as its documentation shows.
        for (const text of texts) await embedding.getEmbeddingFor(text);
        s.embedPerSecond = perSecond(texts.length, now() - started);
      } finally {
        await embedding.dispose();
      }
    }
  } finally {
    await context.dispose();
    await model.dispose();
    await llama.dispose();
  }
  return out;
}

// ---- tea-llama's API backend against llama-server --------------------------------------------------------

function processRssMB(pid) {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return match ? Number(match[1]) / 1024 : undefined;
}

async function apiSession(spec) {
  const tea = require(spec.root);
  const out = { samples: {}, info: {} };
  const s = track(out.samples);
  const backendFor = (baseUrl) =>
    new tea.ApiLlmBackend({ baseUrl, maxRetries: 0, timeoutMs: 600_000, logger: tea.silentLogger, defaults: { temperature: 0 } });

  progress('load');
  const t0 = now();
  let server = await startServer(spec, [...serverArgs(spec), '--threads-http', '1']);
  let backend = backendFor(server.baseUrl);
  try {
    await backend.call({ prompt: spec.inputs.ready.text, maxTokens: 1, temperature: 0 });
    s.loadMs = now() - t0; // process start, load, llama-server's own warm-up, one request
    s.rssMB = processRssMB(server.pid);

    progress('warm-up');
    await backend.call({ prompt: spec.inputs.warmup.text, maxTokens: 4, temperature: 0 });

    for (const pp of spec.inputs.pp) {
      progress(`pp${pp.n}`);
      const rates = [];
      for (let rep = 0; rep < reps(spec); rep++) {
        // Another prompt in between empties the server's prompt cache of this one, as above.
        if (rep > 0) await backend.call({ prompt: spec.inputs.warmup.text, maxTokens: 1, temperature: 0 });
        // maxTokens 1: the server reports the prompt's own time (prompt_ms) apart from the one generated token.
        const r = await backend.call({ prompt: pp.text, maxTokens: 1, temperature: 0 });
        rates.push(perSecond(r.promptTokens, r.timings.promptMs));
        s[`pp${pp.n}Tokens`] = r.promptTokens;
      }
      s[`pp${pp.n}`] = median(rates);
    }

    if (spec.inputs.ttft) {
      progress('ttft');
      let first;
      const started = now();
      await backend.stream({ prompt: spec.inputs.ttft.text, maxTokens: 1, temperature: 0 }, () => {
        first ??= now() - started;
      });
      s.ttftMs = first ?? now() - started;
    }

    const tg = spec.inputs.tg;
    if (tg) {
      progress(`tg${tg.n}`);
      // The server's own generation time: the same n + 1 tokens, n decode steps.
      const r = await backend.call({ prompt: tg.text, maxTokens: tg.n + 1, temperature: 0 });
      s.tg = perSecond(r.completionTokens - 1, r.timings.generationMs);
      s.tgTokens = r.completionTokens;
    }

    if (spec.inputs.tgStream) {
      progress(`tg${spec.inputs.tgStream.n} streamed`);
      // Server-sent events as the client sees them: first to last chunk.
      let chunks = 0;
      let first = 0;
      let last = 0;
      const stop = startLagMonitor();
      const r = await backend.stream({ prompt: spec.inputs.tgStream.text, maxTokens: spec.inputs.tgStream.n + 1, temperature: 0 }, () => {
        last = now();
        if (chunks++ === 0) first = last;
      });
      s.lag = stop();
      s.tgStream = perSecond(Math.min(chunks, r.completionTokens) - 1, last - first);
      s.tgStreamTokens = r.completionTokens;
      s.tgStreamChunks = chunks;
    }

    if (spec.inputs.tgJson) {
      const j = spec.inputs.tgJson;
      progress(`tg${j.n} json`);
      // The same schema as llama-server's json_schema; its own generation time.
      const rates = [];
      for (let rep = 0; rep < reps(spec); rep++) {
        const r = await backend.call({ prompt: j.text, maxTokens: j.n + 1, temperature: 0, jsonSchema: j.schema });
        rates.push(perSecond(r.completionTokens - 1, r.timings.generationMs));
        s.tgJsonTokens = r.completionTokens;
      }
      s.tgJson = median(rates);
    }
  } finally {
    await backend.dispose();
    await server.stop();
  }

  if (spec.inputs.embed) {
    // llama-server serves embeddings only when started for them (--embeddings); a second server, as one would run.
    progress('embeddings');
    server = await startServer(spec, [...serverArgs(spec), '--threads-http', '1', '--embeddings', '--pooling', 'mean']);
    backend = backendFor(server.baseUrl);
    try {
      const texts = spec.inputs.embed;
      await backend.embed(texts.slice(0, 2));
      const started = now();
      await backend.embed(texts);
      s.embedPerSecond = perSecond(texts.length, now() - started);
    } finally {
      await backend.dispose();
      await server.stop();
    }
  }
  return out;
}

const SESSIONS = { tea: teaSession, pre: teaSession, nlc: nlcSession, api: apiSession };

process.once('message', async (spec) => {
  try {
    const result = await (spec.scenario === 'serving' ? SERVING_SESSIONS : SESSIONS)[spec.contender](spec);
    process.send({ type: 'result', result });
  } catch (error) {
    process.send({ type: 'error', message: error?.stack ?? String(error), samples: tracked() });
  }
  // Native thread pools can outlive their handles for a moment; the parent waits for the exit.
  process.disconnect();
});
