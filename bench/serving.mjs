// The serving scenario, run by worker.mjs: N clients at once against one loaded model, each sending one greedy
// completion of its own short prompt with a fixed number of generated tokens. tea-llama in-process with
// `sequences: N`, llama-server with `-np N --kv-unified` (N > 1) and N streaming HTTP requests, node-llama-cpp with a
// context of N sequences. Then one batch of embeddings: tea-llama's embed(texts) against one /v1/embeddings
// request with the same texts. One session per model and contender runs every client count.
//
// Per client count: aggregate generated tokens/s (every client's tokens over the makespan, from the moment all
// requests are made to the end of the last), time to first token per client (p50, p99), and time between tokens
// per client as (last chunk - first chunk) / (tokens - 1): a chunk may carry several tokens, so the gaps between
// chunks would not measure it.
//
// llama-server and node-llama-cpp generate exactly the token count (ignore_eos; node-llama-cpp's token generator
// does not stop by itself); tea-llama has no such switch and stops early if a prompt leads to an end-of-generation
// token, which the reported token totals would show.
import { createRequire } from 'node:module';
import { join } from 'node:path';

import { getCpuLlama, importNodeLlamaCpp, progress, serverArgs, startServer, track } from './session.mjs';
import { median, now, percentile, perSecond } from './stats.mjs';

const require = createRequire(import.meta.url);

/** Runs every client's generate(prompt, onChunk) at once (each resolves its generated token count); the figures. */
async function serve(prompts, generate) {
  const t0 = now();
  const clients = await Promise.all(
    prompts.map(async (prompt) => {
      let first;
      let last;
      const tokens = await generate(prompt, () => {
        last = now();
        first ??= last;
      });
      return { tokens, first, last };
    }),
  );
  const makespan = now() - t0;
  const tokens = clients.reduce((sum, c) => sum + c.tokens, 0);
  const ttft = clients.map((c) => c.first - t0);
  const tbt = clients.filter((c) => c.tokens > 1).map((c) => (c.last - c.first) / (c.tokens - 1));
  // Whether the generations ran side by side at all, or one after another (an engine serving one at a time).
  const overlapped = clients.some((a) => clients.some((b) => a !== b && a.first < b.last && b.first < a.last));
  return { tokPerSec: perSecond(tokens, makespan), ttftP50: percentile(ttft, 50), ttftP99: percentile(ttft, 99), tbtP50: median(tbt), tokens, overlapped: overlapped ? 1 : 0 };
}

/** texts/s of embed(texts), the median of 3 batches after a warm-up that creates the embedding context. */
async function embedRate(texts, embed) {
  await embed(texts.slice(0, 2));
  const rates = [];
  for (let rep = 0; rep < 3; rep++) {
    const started = now();
    await embed(texts);
    rates.push(perSecond(texts.length, now() - started));
  }
  return median(rates);
}

/**
 * The session: for every client count, `open(n)` readies the contender for n clients and returns
 * { generate(prompt, maxTokens, onChunk) → tokens, close() }; then `embed(texts)` if the contender has one.
 */
async function session(spec, open, embed) {
  const out = { samples: {}, info: {} };
  const s = track(out.samples);
  const { clients, prompts, warmup, tokens, embedTexts } = spec.serving;
  for (const n of clients) {
    progress(`${n} client${n > 1 ? 's' : ''}`);
    const engine = await open(n);
    try {
      await engine.generate(warmup, 4, () => {});
      s[`c${n}`] = await serve(prompts.slice(0, n), (prompt, onChunk) => engine.generate(prompt, tokens, onChunk));
    } finally {
      await engine.close();
    }
  }
  if (embed && embedTexts) {
    progress('embeddings');
    s.embedPerSecond = await embed(embedTexts);
  }
  return out;
}

// Context: every client gets ctxPerClient cells. tea-llama and llama-server (unified KV cache) get the total,
// node-llama-cpp's contextSize is per sequence. The embedding batch is one context of embedCtx tokens for both.

async function teaServing(spec) {
  const tea = require(spec.root);
  const { ctxPerClient, embedCtx } = spec.serving;
  const open = async (n) => {
    const model = await tea.loadModel(spec.model, { sequences: n, contextSize: n * ctxPerClient, threads: spec.threads, batchSize: spec.batch });
    return {
      generate: async (prompt, maxTokens, onChunk) => (await model.complete(prompt.text, { maxTokens, temperature: 0, onChunk })).completionTokens,
      close: () => model.dispose(),
    };
  };
  const embed = async (texts) => {
    const model = await tea.loadModel(spec.model, { contextSize: embedCtx, embeddingContextSize: embedCtx, threads: spec.threads, batchSize: embedCtx });
    try {
      return await embedRate(texts, (batch) => model.embed(batch));
    } finally {
      await model.dispose();
    }
  };
  return session(spec, open, embed);
}

async function serverServing(spec) {
  const { ctxPerClient, embedCtx } = spec.serving;
  const open = async (n) => {
    // One KV cache shared by the sequences, as tea-llama's with more than one (with one, there is nothing to share).
    const server = await startServer(spec, [...serverArgs({ ...spec, ctx: n * ctxPerClient }, n), ...(n > 1 ? ['--kv-unified'] : [])]);
    return {
      generate: async (prompt, maxTokens, onChunk) => {
        const body = { prompt: prompt.text, n_predict: maxTokens, temperature: 0, ignore_eos: true, stream: true };
        const last = await server.stream('/completion', body, (event) => {
          if (event.content) onChunk();
        });
        return last?.tokens_predicted ?? 0;
      },
      close: () => server.stop(),
    };
  };
  const embed = async (texts) => {
    // A slot per text, so that the whole batch is decoded at once.
    const args = [...serverArgs({ ...spec, ctx: embedCtx, batch: embedCtx }, texts.length), '--kv-unified', '--embeddings', '--pooling', 'mean'];
    const server = await startServer(spec, args);
    try {
      return await embedRate(texts, (input) => server.post('/v1/embeddings', { input }));
    } finally {
      await server.stop();
    }
  };
  return session(spec, open, embed);
}

async function nlcServing(spec) {
  const llama = await getCpuLlama(await importNodeLlamaCpp(spec), spec.threads);
  const model = await llama.loadModel({ modelPath: spec.model, gpuLayers: 0 });
  const open = async (n) => {
    const context = await model.createContext({
      contextSize: spec.serving.ctxPerClient,
      batchSize: spec.batch,
      threads: { ideal: spec.threads, min: spec.threads },
      flashAttention: 'auto',
      sequences: n,
    });
    const idle = Array.from({ length: n }, () => context.getSequence());
    return {
      async generate(prompt, maxTokens, onChunk) {
        const sequence = idle.pop();
        let count = 0;
        try {
          for await (const token of sequence.evaluate(prompt.tokens, { temperature: 0 })) {
            if (model.detokenize([token]).length > 0) onChunk(); // the text a chunk callback would get
            if (++count >= maxTokens) break;
          }
        } finally {
          await sequence.clearHistory();
          idle.push(sequence);
        }
        return count;
      },
      close: () => context.dispose(),
    };
  };
  try {
    return await session(spec, open);
  } finally {
    await model.dispose();
    await llama.dispose();
  }
}

// tea-llama serve: the `tea-llama serve` command in its own process (as llama-server runs in its own), with
// `--parallel N`, the same context and threads (its batch size is its default, 512, the bench's default), and N streaming POST /v1/completions (the OpenAI API, as
// llama-server's clients above use its own /completion); against `tea` it is what the HTTP layer costs.
async function teaHttpServing(spec) {
  const { ctxPerClient } = spec.serving;
  const cli = [process.execPath, join(spec.root, 'bin', 'tea-llama.js'), 'serve'];
  const open = async (n) => {
    const args = ['--parallel', String(n), '-c', String(n * ctxPerClient), '-t', String(spec.threads), '-q'];
    const server = await startServer(spec, args, cli);
    return {
      generate: async (prompt, maxTokens, onChunk) => {
        const body = { prompt: prompt.text, max_tokens: maxTokens, temperature: 0, stream: true, stream_options: { include_usage: true } };
        let tokens = 0;
        await server.stream('/v1/completions', body, (event) => {
          if (event.choices?.[0]?.text) onChunk();
          if (event.usage) tokens = event.usage.completion_tokens;
        });
        return tokens;
      },
      close: () => server.stop(),
    };
  };
  return session(spec, open);
}

export const SERVING_SESSIONS = { tea: teaServing, serve: teaHttpServing, server: serverServing, nlc: nlcServing };
