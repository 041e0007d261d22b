#!/usr/bin/env node
// tea-llama's benchmark: token throughput and overheads side by side with llama.cpp's own llama-bench (the
// ceiling), node-llama-cpp (installed on demand into a temporary folder) and tea-llama's API backend against
// llama-server, all built from or pinned to the same llama.cpp release, with the same threads, context and
// batch size. Sessions are interleaved (every run visits every model, thread count and contender, in a
// rotating order) and repeated; the report gives medians, spreads and ratios to llama-bench.
// Five scenarios: `main` (the above: pp, tg, TTFT, streaming, embeddings, load, memory, one request at a time) and
// `serving` (serving.mjs: 1 to 16 concurrent clients on one model, tea-llama in-process and
// tea-llama serve over HTTP against llama-server -np N and node-llama-cpp with N sequences, plus one batch of embeddings), in the same interleaved runs. Third, `rerank`
// (rerank.mjs): one query against 64 documents, tea-llama rerank() against llama-server --reranking /v1/rerank.
// `speculative` (speculative.mjs): a draft model, tea-llama against llama-server --spec-type draft-simple.
// `chat-session` (chat-session.mjs): the tokens a turn of a 60-turn ChatSession decodes, against llama-server.
//
//   npm run bench                           full run, every scenario (about 38 minutes on 2 cores)
//   npm run bench -- --quick                a quick development run (about a minute and a half)
//   npm run bench -- --scenarios serving    the serving scenario alone (about 15 minutes; --quick: under 1)
//   npm run bench -- --scenarios main       the single-request scenario alone (about 20 minutes)
//   npm run bench -- --model my.gguf        your own model(s) instead of the default set (repeatable)
//   npm run bench -- --help                 every option (--threads, --runs, --contenders, --pp, --tg,
//                                           --tests, --embed, --clients, --serving-tokens, --serving-embed, ...)
//
// Outputs in bench/results/: <timestamp>.json (every sample, git-ignored), and <name>.md and <name>.svg where
// name is `latest` for a full default run, `quick` for --quick and `custom` otherwise (or --out NAME).
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { availableParallelism, cpus, loadavg, totalmem } from 'node:os';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { renderChart } from './chart.mjs';
import { CONTENDER_IDS, CONTENDERS, contenderOf, runSession, SERVING_IDS } from './contenders.mjs';
import { ensureNodeLlamaCpp, NLC_VERSION } from './nlc.mjs';
import { makePrompt, makeTexts } from './prompts.mjs';
import { chatSessionScenario } from './chat-session.mjs';
import { rerankScenario } from './rerank.mjs';
import { speculativeScenario } from './speculative.mjs';
import { hasMain, renderMarkdown } from './report.mjs';
import { now, summarize } from './stats.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '..');
const exe = process.platform === 'win32' ? '.exe' : '';
const tool = (name) => join(root, 'build', 'tools', name + exe);
const sharedModels = process.env.TEA_TEST_MODELS_DIR || resolve(root, '../shared/models');

// The default model set. Sizes are chosen so that a full run (3 runs x 2 thread counts x 4 contenders) stays
// well under 20 minutes on a 2-core machine: the ~1B model, where one pp512 takes seconds, gets pp128 only and
// a smaller embeddings batch.
const DEFAULT_MODELS = [
  { name: 'stories260K', file: join(sharedModels, 'stories260K.gguf') },
  { name: '130m Q4_K_M', preset: '130m', quant: 'Q4_K_M', serving: true },
  { name: '130m Q8_0', preset: '130m', quant: 'Q8_0' },
  { name: '1b Q4_K_M', preset: '1b', quant: 'Q4_K_M', pp: [128], embed: 8, serving: true },
];
const QUICK_MODELS = [DEFAULT_MODELS[0], DEFAULT_MODELS[1]];

const TESTS = ['pp', 'ttft', 'tg', 'stream', 'json', 'embed'];

/** The schema of the constrained-generation test (json). */
const JSON_SCHEMA = {
  type: 'object',
  properties: {
    title: { type: 'string' },
    year: { type: 'integer' },
    tags: { type: 'array', items: { enum: ['a', 'b', 'c', 'd'] } },
    entries: {
      type: 'array',
      items: { type: 'object', properties: { name: { type: 'string' }, score: { type: 'number' }, ok: { type: 'boolean' } }, required: ['name', 'score'] },
    },
  },
  required: ['title', 'entries'],
};
// rerank: rerank.mjs, one query against 64 documents, tea-llama against llama-server --reranking.
// speculative, chat-session: speculative.mjs and chat-session.mjs, after the interleaved sessions.
const SCENARIOS = ['main', 'serving', 'rerank', 'speculative', 'chat-session'];
// Serving: each client's prompt has this many tokens, and gets this many KV cells of context.
const SERVING_PROMPT = 16;
const SERVING_CTX_PER_CLIENT = 128;
// The embeddings batch is one context (and batch) of this many tokens, for both contenders.
const SERVING_EMBED_CTX = 1024;

const HELP = `usage: npm run bench -- [options]

  --quick              development run: stories260K and 130m Q4_K_M, 1 run, short tests
  --scenarios LIST     any of ${SCENARIOS.join(',')} (default all): main = one request at a time (pp, tg, TTFT, streaming,
                       embeddings, load, memory), serving = concurrent clients (below), rerank = one query against
                       64 documents, tea-llama rerank() against llama-server --reranking (bench/rerank.mjs),
                       speculative = a draft model against llama-server's (bench/speculative.mjs), chat-session =
                       tokens decoded per turn of a 60-turn ChatSession (bench/chat-session.mjs)
  --model FILE         benchmark this GGUF instead of the default set (repeatable)
  --threads LIST       thread counts, e.g. 1,2 (default 1,2; --quick: 2)
  --runs N             repetitions of every session (default 3; --quick: 1)
  --contenders LIST    any of ${CONTENDER_IDS.join(',')} (default all; bench: llama-bench, tea: tea-llama's
                       source build, pre: its prebuilt binary, nlc: node-llama-cpp, api: the API backend and llama-server)
  --pp LIST            prompt sizes (default 128,512; --quick: 128)
  --pp-reps N          prompt-processing repetitions within a session, median kept (default 3; --quick: 1):
                       one pp of a small model takes milliseconds, too short for a single sample
  --tg N               generated tokens (default 128; --quick: 32)
  --tests LIST         any of ${TESTS.join(',')} (default all)
  --embed N            texts in the embeddings batch, 0 to skip (default 32; --quick: 8)
  --ctx N              context size for every contender (default 1024)
  --batch N            batch and micro-batch size for every contender (default 512)
  --clients LIST       serving: concurrent client counts (default 1,2,4,8,16; --quick: 1,4), on the models marked
                       for serving (synthetic 130m and 1b Q4_K_M; --model: every model given), with the most
                       threads of --threads; contenders tea-llama, tea-llama serve (HTTP), llama-server and node-llama-cpp
  --serving-tokens N   serving: tokens generated per client (default 32; --quick: 16)
  --serving-embed N    serving: texts in the embeddings batch, 0 to skip (default 64; --quick: 16)
  --max-minutes N      stop starting sessions after N minutes (default 40; --quick: 5), and cut a session that runs
                       over 5x its own 1-thread duration: a busy machine gives a partial, flagged report in time
  --out NAME           base name of the .md/.svg outputs in bench/results (default latest, quick or custom)
  --render FILE        only rewrite the .md/.svg from a results JSON of an earlier run
  --nlc-dir DIR        where node-llama-cpp ${NLC_VERSION} is (or gets) installed (default: a folder in the OS temp dir)
`;

// The options that take a value: where parseArgs puts it, and how it reads it.
const numbers = (v) => v.split(',').filter(Boolean).map(Number);
const words = (v) => v.split(',').filter(Boolean);
const VALUE_OPTIONS = {
  '--threads': ['threads', numbers],
  '--runs': ['runs', Number],
  '--pp-reps': ['ppReps', Number],
  '--contenders': ['contenders', words],
  '--pp': ['pp', numbers],
  '--tg': ['tg', Number],
  '--tests': ['tests', words],
  '--embed': ['embed', Number],
  '--scenarios': ['scenarios', words],
  '--clients': ['clients', numbers],
  '--serving-tokens': ['servingTokens', Number],
  '--serving-embed': ['servingEmbed', Number],
  '--ctx': ['ctx', Number],
  '--batch': ['batch', Number],
  '--max-minutes': ['maxMinutes', Number],
  '--out': ['out', String],
  '--render': ['render', resolve],
  '--nlc-dir': ['nlcDir', resolve],
};

function parseArgs(argv) {
  const o = { models: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const eq = a.indexOf('=');
    const name = eq > 0 ? a.slice(0, eq) : a;
    const value = () => {
      const v = eq > 0 ? a.slice(eq + 1) : argv[++i];
      if (v === undefined) throw new Error(`${name} needs a value`);
      return v;
    };
    if (name === '-h' || name === '--help') o.help = true;
    else if (name === '--quick') o.quick = true;
    else if (name === '--model') o.models.push(resolve(value()));
    else if (VALUE_OPTIONS[name]) {
      const [key, read] = VALUE_OPTIONS[name];
      o[key] = read(value());
    } else throw new Error(`unknown option ${a} (see --help)`);
  }
  const positive = (v, what) => {
    if (!Number.isInteger(v) || v < 1) throw new Error(`${what} must be a positive integer`);
  };
  const q = o.quick;
  const config = {
    quick: Boolean(q),
    threads: o.threads ?? (q ? [2] : [1, 2]),
    runs: o.runs ?? (q ? 1 : 3),
    ppReps: o.ppReps ?? (q ? 1 : 3),
    contenders: o.contenders ?? CONTENDER_IDS,
    pp: o.pp ?? (q ? [128] : [128, 512]),
    tg: o.tg ?? (q ? 32 : 128),
    tests: o.tests ?? TESTS,
    scenarios: o.scenarios ?? SCENARIOS,
    clients: o.clients ?? (q ? [1, 4] : [1, 2, 4, 8, 16]),
    servingTokens: o.servingTokens ?? (q ? 16 : 32),
    servingEmbed: o.servingEmbed ?? (q ? 16 : 64),
    embed: o.embed ?? (q ? 8 : 32),
    maxMinutes: o.maxMinutes ?? (q ? 5 : 40),
    ctx: o.ctx ?? 1024,
    batch: o.batch ?? 512,
    userModels: o.models,
    nlcDir: o.nlcDir,
    out: o.out ?? (o.models.length > 0 || o.threads || o.runs || o.ppReps || o.contenders || o.pp || o.tg || o.embed !== undefined || o.tests || o.ctx || o.batch || o.scenarios || o.clients || o.servingTokens || o.servingEmbed !== undefined ? 'custom' : q ? 'quick' : 'latest'),
    help: o.help,
    render: o.render,
    outGiven: o.out !== undefined,
  };
  config.threads.forEach((t) => positive(t, '--threads'));
  config.pp.forEach((n) => positive(n, '--pp'));
  positive(config.runs, '--runs');
  positive(config.ppReps, '--pp-reps');
  positive(config.tg, '--tg');
  positive(config.ctx, '--ctx');
  if (!(config.maxMinutes > 0)) throw new Error('--max-minutes must be a positive number');
  positive(config.batch, '--batch');
  if (!Number.isInteger(config.embed) || config.embed < 0) throw new Error('--embed must be 0 or a positive integer');
  for (const t of config.tests) if (!TESTS.includes(t)) throw new Error(`unknown test ${t} (known: ${TESTS.join(', ')})`);
  for (const sc of config.scenarios) if (!SCENARIOS.includes(sc)) throw new Error(`unknown scenario ${sc} (known: ${SCENARIOS.join(', ')})`);
  if (config.scenarios.length === 0) throw new Error(`--scenarios needs at least one of ${SCENARIOS.join(', ')}`);
  config.clients.forEach((n) => positive(n, '--clients'));
  positive(config.servingTokens, '--serving-tokens');
  if (SERVING_PROMPT + config.servingTokens + 8 > SERVING_CTX_PER_CLIENT) throw new Error(`--serving-tokens must be at most ${SERVING_CTX_PER_CLIENT - SERVING_PROMPT - 8}`);
  if (!Number.isInteger(config.servingEmbed) || config.servingEmbed < 0) throw new Error('--serving-embed must be 0 or a positive integer');
  if (!config.scenarios.includes('main')) config.contenders = [];
  if (!config.tests.includes('pp') && !config.tests.includes('tg')) config.contenders = config.contenders.filter((c) => c !== 'bench');
  for (const c of config.contenders) if (!CONTENDERS[c]) throw new Error(`unknown contender ${c} (known: ${CONTENDER_IDS.join(', ')})`);
  if (!/^[\w.-]+$/.test(config.out)) throw new Error('--out must be a plain file name');
  const longest = Math.max(...config.pp, 128, config.tg + 16);
  if (longest >= config.ctx) throw new Error(`--ctx ${config.ctx} is too small for a ${longest}-token test`);
  return config;
}

// ---- progress line ---------------------------------------------------------------------------------------

const tty = process.stderr.isTTY;
let lastLine = '';
/** One progress line on stderr, rewritten in place on a terminal; elsewhere (a log) only the major lines. */
function status(line, final = false, minor = false) {
  if (tty) process.stderr.write(`\r\x1b[K${line}${final ? '\n' : ''}`);
  else if (!minor && line !== lastLine) process.stderr.write(`${line}\n`);
  lastLine = line;
}
const clock = (ms) => {
  const s = Math.round(ms / 1000);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
};

// ---- machine ---------------------------------------------------------------------------------------------

function uptimeLine() {
  try {
    return execFileSync('uptime', { encoding: 'utf8' }).trim();
  } catch {
    return `load average: ${loadavg().map((x) => x.toFixed(2)).join(', ')}`;
  }
}

function machine() {
  let cpuModel = cpus()[0]?.model ?? 'unknown';
  let logical = cpus().length;
  try {
    const info = readFileSync('/proc/cpuinfo', 'utf8');
    cpuModel = /^model name\s*:\s*(.+)$/m.exec(info)?.[1] ?? cpuModel;
    logical = (info.match(/^processor\s*:/gm) ?? []).length || logical;
  } catch {
    // not Linux
  }
  return { cpuModel, logicalCpus: logical, availableParallelism: availableParallelism(), memoryGB: totalmem() / 2 ** 30, platform: `${process.platform}-${process.arch}`, node: process.version };
}

// ---- models and inputs -------------------------------------------------------------------------------------

async function resolveModels(config) {
  if (config.userModels.length > 0) {
    return config.userModels.map((file) => {
      if (!existsSync(file)) throw new Error(`${file} not found`);
      return { name: basename(file).replace(/\.gguf$/i, ''), file, serving: true };
    });
  }
  // The serving scenario alone needs only its own models; the scenarios that run after the sessions make their own.
  if (!config.scenarios.includes('main') && !config.scenarios.includes('serving')) return [];
  const set = (config.quick ? QUICK_MODELS : DEFAULT_MODELS).filter((m) => config.scenarios.includes('main') || m.serving);
  const out = [];
  for (const m of set) {
    if (m.file) {
      if (!existsSync(m.file)) throw new Error(`${m.file} not found (set TEA_TEST_MODELS_DIR, or pass --model)`);
      out.push({ ...m });
      continue;
    }
    const { ensureSyntheticModel } = await import(pathHref(join(root, 'scripts', 'synthetic-model.mjs')));
    status(`[bench] synthetic model ${m.name}: making or reusing it in .cache/models`);
    const file = await ensureSyntheticModel({
      preset: m.preset,
      quant: m.quant,
      vocab: join(sharedModels, 'ggml-vocab-phi-3.gguf'),
      cacheDir: join(root, '.cache', 'models'),
      quantizeBin: tool('llama-quantize'),
      seed: 1,
      log: (line) => status(`[bench] ${line}`),
    });
    out.push({ ...m, name: `synthetic ${m.name}`, file });
  }
  return out;
}

function pathHref(p) {
  return new URL(`file://${p.startsWith('/') ? '' : '/'}${p.replace(/\\/g, '/')}`).href;
}

/** The seed of one test's inputs in one run: the same for every contender, different in every run. */
const seedOf = (run, test) => 1000 * run + test;

/** The inputs of one run on one model: the same for every contender, different in every run. */
function makeInputs(tokenize, model, config, run) {
  const seed = (test) => seedOf(run, test);
  // A model may run fewer prompt sizes than the others (model.pp), never sizes the run does not ask for.
  const chosen = model.pp ? model.pp.filter((n) => config.pp.includes(n)) : config.pp;
  const ppSizes = chosen.length > 0 ? chosen : [Math.min(...config.pp)];
  const has = (test) => config.tests.includes(test);
  return {
    ready: makePrompt(tokenize, 4, seed(1)),
    warmup: makePrompt(tokenize, 8, seed(2)),
    pp: has('pp') ? ppSizes.map((n, i) => ({ n, ...makePrompt(tokenize, n, seed(10 + i)) })) : [],
    ttft: has('ttft') ? makePrompt(tokenize, 128, seed(3)) : undefined,
    // tg prompts are 2 tokens (BOS and one more): generation starts near position 0, as llama-bench's does.
    tg: has('tg') ? { n: config.tg, ...makePrompt(tokenize, 2, seed(4)) } : undefined,
    tgStream: has('stream') ? { n: config.tg, ...makePrompt(tokenize, 2, seed(5)) } : undefined,
    // Constrained generation: the same schema for every contender (a moderate one: an object of typed fields and
    // a list of records), greedy, as long as tg.
    tgJson: has('json') ? { n: config.tg, schema: JSON_SCHEMA, ...makePrompt(tokenize, 2, seed(7)) } : undefined,
    embed: has('embed') && config.embed > 0 ? makeTexts(Math.min(config.embed, model.embed ?? config.embed), seed(6)) : undefined,
  };
}

/** The serving scenario's inputs of one run on one model: a distinct prompt per client, and the embeddings batch. */
function makeServingInputs(tokenize, config, run) {
  const seed = (test) => seedOf(run, test);
  return {
    clients: config.clients,
    tokens: config.servingTokens,
    ctxPerClient: SERVING_CTX_PER_CLIENT,
    embedCtx: SERVING_EMBED_CTX,
    warmup: makePrompt(tokenize, 8, seed(99)),
    prompts: Array.from({ length: Math.max(...config.clients) }, (_, i) => makePrompt(tokenize, SERVING_PROMPT, seed(100 + i))),
    embedTexts: config.servingEmbed > 0 ? makeTexts(config.servingEmbed, seed(7)) : undefined,
  };
}

// ---- main --------------------------------------------------------------------------------------------------

async function main() {
  const config = parseArgs(process.argv.slice(2));
  if (config.help) {
    process.stdout.write(HELP);
    return;
  }
  if (config.render) {
    const results = JSON.parse(readFileSync(config.render, 'utf8'));
    writeOutputs(results, config.outGiven ? config.out : results.config.out, basename(config.render));
    return;
  }
  const started = now();
  const uptimeBefore = uptimeLine();
  const loadBefore = loadavg();

  const tea = createRequire(import.meta.url)(root);
  const needTools = ['llama-bench', 'llama-server', 'llama-quantize'].filter((t) => !existsSync(tool(t)));
  if (needTools.length > 0) {
    status(`[bench] building llama.cpp's tools (${needTools.join(', ')} missing): node scripts/build-native.mjs --tools --if-missing`, true);
    const r = spawnSync(process.execPath, [join(root, 'scripts', 'build-native.mjs'), '--tools', '--if-missing'], { stdio: 'inherit' });
    if (r.status !== 0) throw new Error('building the tools failed');
  }

  const models = await resolveModels(config);
  let contenders = [...config.contenders];
  const notes = [];
  let prebuildInfo;
  if (contenders.includes('pre')) {
    const dir = join(root, 'prebuilds', `${process.platform}-${process.arch}`);
    const preInfo = existsSync(dir) ? spawnSync(process.execPath, ['-p', 'const t = require("."); JSON.stringify({ ...t.nativeInfo(), systemInfo: t.systemInfo() })'], { cwd: root, env: { ...process.env, PREBUILDS_ONLY: '1' }, encoding: 'utf8' }) : undefined;
    if (preInfo?.status === 0) {
      prebuildInfo = JSON.parse(preInfo.stdout);
    } else {
      const why = existsSync(dir) ? (preInfo?.stderr ?? '').trim().split('\n').pop() : `no ${relative(root, dir)} (npm run build:prebuild makes it)`;
      notes.push(`tea-llama prebuild left out: ${why}`);
      contenders = contenders.filter((c) => c !== 'pre');
    }
  }
  const serving = config.scenarios.includes('serving');
  let servingContenders = serving ? [...SERVING_IDS] : [];
  let nlcDir;
  if (contenders.includes('nlc') || serving) {
    try {
      nlcDir = await ensureNodeLlamaCpp({ dir: config.nlcDir, log: (line) => status(`[bench] ${line}`) });
    } catch (error) {
      notes.push(`node-llama-cpp left out: ${error.message.split('\n')[0]}`);
      status(`[bench] node-llama-cpp left out: ${error.message.split('\n')[0]}`, true);
      contenders = contenders.filter((c) => c !== 'nlc');
      servingContenders = servingContenders.filter((c) => c !== 'nlc');
    }
  }

  // Inputs per model and run, tokenized by the model's own vocabulary.
  const inputs = new Map();
  for (const model of models) {
    const vocab = await tea.loadModel(model.file, { vocabOnly: true });
    const tokenize = (text) => vocab.tokenize(text);
    const info = vocab.info;
    model.meta = { file: relative(root, model.file), sizeMB: info.fileSize / 2 ** 20, architecture: info.architecture, parameters: info.parameterCount, vocabSize: info.vocabSize, description: info.description };
    for (let run = 1; run <= config.runs; run++) {
      if (config.scenarios.includes('main')) inputs.set(`${model.name}|${run}`, makeInputs(tokenize, model, config, run));
      if (serving && model.serving) inputs.set(`${model.name}|${run}|serving`, makeServingInputs(tokenize, config, run));
    }
    await vocab.dispose();
  }

  // The plan: every run visits every model and thread count; the contenders' order rotates so none always
  // goes first (or right after another one's heaviest test). The serving sessions of a run follow its main
  // sessions, with the most threads, one session per model and contender covering every client count.
  const plan = [];
  const rotated = (list, shift) => [...list.slice(shift % list.length), ...list.slice(0, shift % list.length)];
  const servingThreads = Math.max(...config.threads);
  for (let run = 1; run <= config.runs; run++) {
    models.forEach((model, mi) => {
      config.threads.forEach((threads, ti) => {
        for (const contender of rotated(contenders, run - 1 + mi + ti)) plan.push({ run, model, threads, contender });
      });
    });
    models
      .filter((model) => model.serving)
      .forEach((model, mi) => {
        for (const contender of rotated(servingContenders, run - 1 + mi)) plan.push({ run, model, threads: servingThreads, contender, scenario: 'serving' });
      });
  }
  // model|threads|contender (serving: model|serving|contender) -> wall ms of its first complete session, for the
  // ETA and the time limit of later runs.
  const keyOf = (p) => `${p.model.name}|${p.scenario ?? p.threads}|${p.contender}`;

  // Ctrl-C or a SIGTERM ends the run early but still writes the report of what was measured.
  const interrupt = new AbortController();
  const onSignal = (name) => {
    if (interrupt.signal.aborted) process.exit(130);
    notes.push(`Interrupted by ${name}: the sessions after that were not run.`);
    status(`[bench] ${name}: stopping, writing the report of what was measured (again to quit at once)`, true);
    interrupt.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const sessions = [];
  const durations = new Map();
  const deadline = started + config.maxMinutes * 60_000;
  for (let i = 0; i < plan.length; i++) {
    const { run, model, threads, contender, scenario } = plan[i];
    const key = keyOf(plan[i]);
    const what = `${model.name} · ${scenario ? 'serving · ' : ''}${threads} thr · ${contenderOf(plan[i]).short}`;
    const record = { run, model: model.name, threads, contender, scenario, loadavg1: loadavg()[0] };
    sessions.push(record);
    if (now() > deadline || interrupt.signal.aborted) {
      record.skipped = true;
      continue;
    }
    const elapsed = now() - started;
    const remaining = plan.slice(i).reduce((sum, p) => sum + (durations.get(keyOf(p)) ?? elapsed / Math.max(i, 1)), 0);
    const head = `[bench] ${i + 1}/${plan.length} run ${run}/${config.runs} · ${what}`;
    const tail = `${clock(elapsed)} elapsed${i > 0 ? `, ~${clock(remaining)} left` : ''}`;
    status(`${head} · ${tail}`);
    // A session may take 5x what the same model and contender took with the fewest threads (more threads are
    // never slower on an idle machine; serving: 5x its own first run), and never past the deadline.
    const reference = Math.min(...(scenario ? [key] : config.threads.map((t) => keyOf({ model, threads: t, contender }))).map((k) => durations.get(k) ?? Infinity));
    const timeoutMs = Math.max(1000, Math.min(deadline - now(), Number.isFinite(reference) ? Math.max(30_000, 5 * reference) : Infinity));
    const spec = {
      contender,
      scenario,
      root,
      model: model.file,
      threads,
      ctx: config.ctx,
      batch: config.batch,
      ppReps: config.ppReps,
      inputs: inputs.get(`${model.name}|${run}`),
      serving: inputs.get(`${model.name}|${run}|serving`),
      benchBin: tool('llama-bench'),
      serverBin: tool('llama-server'),
      nlcDir,
    };
    try {
      const r = await runSession(spec, (test) => status(`${head} · ${test} · ${tail}`, false, true), timeoutMs, interrupt.signal);
      Object.assign(record, r);
      if (r.cut) status(`[bench] ${what}: cut after ${clock(r.wallMs)} (run ${run}), partial samples kept`, true);
      else if (!durations.has(key)) durations.set(key, r.wallMs);
    } catch (error) {
      record.error = error.message;
      record.samples = error.partial;
      status(`[bench] ${what} failed: ${error.message.split('\n')[0]}`, true);
    }
  }
  const skipped = sessions.filter((s) => s.skipped).length;
  if (skipped > 0) {
    if (!interrupt.signal.aborted) notes.push(`${skipped} of ${plan.length} sessions skipped: the run reached its ${config.maxMinutes}-minute limit (--max-minutes).`);
  }
  const cut = sessions.filter((s) => s.cut);
  if (cut.length > 0) {
    notes.push(`${cut.length} session${cut.length > 1 ? 's' : ''} cut short (over 5x their 1-thread time, at the time limit or interrupted), partial samples kept: ${cut.map((s) => `run ${s.run} ${s.model}${s.scenario ? ' serving' : ''} ${s.threads} thr ${contenderOf(s).short}`).join('; ')}.`);
  }

  // The scenarios that run after the interleaved sessions, each on its own models.
  const threadsMax = Math.max(...config.threads);
  const extra = {
    rerank: () => rerankScenario({ threads: threadsMax, runs: config.runs, log: (line) => status(line) }),
    speculative: () => speculativeScenario({ threads: threadsMax, runs: config.runs, log: (line) => status(line) }),
    'chat-session': () => chatSessionScenario({ threads: threadsMax, turns: config.quick ? 12 : 60, log: (line) => status(line) }),
  };
  const after = {};
  for (const [name, run] of Object.entries(extra)) {
    if (!config.scenarios.includes(name) || interrupt.signal.aborted) continue;
    try {
      after[name] = await run();
    } catch (error) {
      notes.push(`${name} scenario failed: ${error.message.split('\n')[0]}`);
    }
  }

  const uptimeAfter = uptimeLine();
  const loadAfter = loadavg();
  const wallMs = now() - started;
  status(`[bench] done in ${clock(wallMs)}`, true);

  const results = {
    date: new Date().toISOString(),
    command: `npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`,
    machine: machine(),
    load: { before: loadBefore, after: loadAfter, uptimeBefore, uptimeAfter, duringMax1min: Math.max(...sessions.filter((s) => !s.skipped).map((s) => s.loadavg1)) },
    wallMs,
    config: { ...config, contenders, userModels: undefined },
    versions: {
      teaLlama: JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).version,
      native: { ...tea.nativeInfo(), systemInfo: tea.systemInfo() },
      prebuild: prebuildInfo,
      llamaCpp: readLock(),
      nodeLlamaCpp: NLC_VERSION,
    },
    models: models.map((m) => {
      const first = inputs.get(`${m.name}|1`);
      return { name: m.name, ...m.meta, pp: first?.pp.map((p) => p.n) ?? [], embedTexts: first?.embed?.length ?? 0, serving: serving && m.serving };
    }),
    notes,
    sessions,
    summary: aggregate(sessions.filter((s) => !s.scenario)),
    serving: serving
      ? {
          clients: config.clients,
          tokens: config.servingTokens,
          promptTokens: SERVING_PROMPT,
          ctxPerClient: SERVING_CTX_PER_CLIENT,
          embedTexts: config.servingEmbed,
          embedCtx: SERVING_EMBED_CTX,
          threads: servingThreads,
          contenders: servingContenders,
          summary: aggregateServing(sessions.filter((s) => s.scenario === 'serving')),
        }
      : undefined,
    rerank: after.rerank,
    speculative: after.speculative,
    chatSession: after['chat-session'],
  };

  const dir = join(here, 'results');
  mkdirSync(dir, { recursive: true });
  const jsonName = `${results.date.replace(/[:.]/g, '-')}.json`;
  writeFileSync(join(dir, jsonName), JSON.stringify(results, null, 1));
  process.stderr.write(`[bench] wrote bench/results/${jsonName}\n`);
  writeOutputs(results, config.out, jsonName);
}

function writeOutputs(results, name, jsonName) {
  const dir = join(here, 'results');
  mkdirSync(dir, { recursive: true });
  // The chart shows the main scenario only.
  const chartPath = hasMain(results) ? join(dir, `${name}.svg`) : undefined;
  if (chartPath) writeFileSync(chartPath, renderChart(results));
  const mdPath = join(dir, `${name}.md`);
  writeFileSync(mdPath, renderMarkdown(results, { chart: chartPath && basename(chartPath), json: jsonName }));
  process.stderr.write(`[bench] wrote ${[mdPath, chartPath].filter(Boolean).map((p) => relative(root, p)).join(', ')}\n`);
  process.stdout.write(readFileSync(mdPath, 'utf8'));
}

function readLock() {
  try {
    return JSON.parse(readFileSync(join(root, 'vendor', 'llama.cpp.lock.json'), 'utf8'));
  } catch {
    return undefined;
  }
}

const METRICS = ['pp128', 'pp512', 'tg', 'tgStream', 'tgJson', 'grammarSetupMs', 'ttftMs', 'embedPerSecond', 'loadMs', 'rssMB', 'lagP50', 'lagP99', 'lagMax'];

/** Appends the numbers of `values` whose key passes `keep` to slot[key]. */
function collect(slot, values, keep) {
  for (const [k, v] of Object.entries(values)) if (typeof v === 'number' && keep(k)) (slot[k] ??= []).push(v);
}

/** Replaces every list of samples in a tree of objects by its summary (with the samples). */
function summarizeTree(node) {
  for (const [k, v] of Object.entries(node)) node[k] = Array.isArray(v) ? { ...summarize(v), samples: v } : summarizeTree(v);
  return node;
}

/** { [model]: { [threads]: { [contender]: { [metric]: summary } } } } */
function aggregate(sessions) {
  const out = {};
  for (const s of sessions) {
    if (!s.samples) continue;
    const slot = (((out[s.model] ??= {})[s.threads] ??= {})[s.contender] ??= {});
    const values = { ...s.samples, lagP50: s.samples.lag?.p50, lagP99: s.samples.lag?.p99, lagMax: s.samples.lag?.max };
    collect(slot, values, (k) => METRICS.includes(k) || /^pp\d+$/.test(k));
  }
  return summarizeTree(out);
}

/** { [model]: { [clients]: { [contender]: { [metric]: summary } }, embed: { [contender]: summary } } } */
function aggregateServing(sessions) {
  const out = {};
  for (const s of sessions) {
    if (!s.samples) continue;
    const byModel = (out[s.model] ??= {});
    for (const [k, v] of Object.entries(s.samples)) if (/^c\d+$/.test(k)) collect(((byModel[k.slice(1)] ??= {})[s.contender] ??= {}), v, () => true);
    collect((byModel.embed ??= {}), { [s.contender]: s.samples.embedPerSecond }, () => true);
  }
  return summarizeTree(out);
}

main().catch((error) => {
  status(`[bench] failed: ${error.stack ?? error}`, true);
  process.exitCode = 1;
});
