// The markdown report: medians with spreads, ratios to llama-bench, and the issue's targets checked.
import { renderChatSession } from './chat-session.mjs';
import { renderRerank } from './rerank.mjs';
import { renderSpeculative } from './speculative.mjs';
import { CONTENDER_IDS, CONTENDERS, contenderOf, SERVING_CONTENDERS } from './contenders.mjs';

export function fmt(x, digits) {
  if (x === undefined || x === null || !Number.isFinite(x)) return '—';
  const d = digits ?? (Math.abs(x) >= 100 ? 0 : Math.abs(x) >= 10 ? 1 : 2);
  return x.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d });
}

const pct = (s) => (s && s.n > 1 ? ` ±${Math.round(s.spread * 100)}%` : '');
let expectedRuns = 0; // set per report: a figure from fewer runs (cut or skipped sessions) says how many
const cell = (s, digits) => (s ? `${fmt(s.median, digits)}${pct(s)}${s.n < expectedRuns ? ` (${s.n} run${s.n > 1 ? 's' : ''})` : ''}` : '—');
const ratio = (a, b) => (a?.median > 0 && b?.median > 0 ? a.median / b.median : undefined);
// Best against best: interference from other work only ever slows a run down, so on a busy machine the ratio of
// the fastest runs is the steadier estimate. Shown next to the ratio of medians, which the targets are held to.
const bestRatio = (a, b) => (a?.max > 0 && b?.max > 0 && a.n > 1 ? a.max / b.max : undefined);
const bestNote = (a, b) => {
  const r = bestRatio(a, b);
  return r === undefined ? '' : `; best runs ${r.toFixed(3)}`;
};
const fmtRatio = (r) => (r === undefined ? '—' : r.toFixed(2));

/** Target thresholds from the issue; a user's own model is held to the ~130M/~1B bar. */
export function tgTarget(modelName) {
  return /stories260K/i.test(modelName) ? 0.9 : 0.97;
}

/** Every target of the issue, per model and thread count: [{ target, model, threads, measured, ok }]. */
export function checkTargets(results) {
  const rows = [];
  const { summary } = results;
  for (const model of results.models) {
    for (const threads of results.config.threads) {
      const by = summary[model.name]?.[threads] ?? {};
      const { tea, bench, nlc } = by;
      if (!tea && !by.pre) continue;
      const add = (target, measured, ok) => rows.push({ target, model: model.name, threads, measured, ok });
      if (bench && tea) {
        const r = ratio(tea.tg, bench.tg);
        const want = tgTarget(model.name);
        if (r !== undefined) add(`tg ≥ ${want.toFixed(2)} × llama-bench`, `${r.toFixed(3)} (${fmt(tea.tg.median)} vs ${fmt(bench.tg.median)} t/s${bestNote(tea.tg, bench.tg)})`, r >= want);
        for (const n of model.pp) {
          const p = ratio(tea[`pp${n}`], bench[`pp${n}`]);
          if (p !== undefined) add(`pp${n} ≥ 0.97 × llama-bench`, `${p.toFixed(3)} (${fmt(tea[`pp${n}`].median)} vs ${fmt(bench[`pp${n}`].median)} t/s${bestNote(tea[`pp${n}`], bench[`pp${n}`])})`, p >= 0.97);
        }
      }
      const api = by.api;
      const j = ratio(tea?.tgJson, api?.tgJson);
      if (j !== undefined) {
        add('JSON-schema tg ≥ 0.95 × llama-server', `${j.toFixed(3)} (${fmt(tea.tgJson.median)} vs ${fmt(api.tgJson.median)} t/s${bestNote(tea.tgJson, api.tgJson)}; grammar set-up ${fmt(tea.grammarSetupMs?.median)} ms)`, j >= 0.95);
      }
      const s = ratio(tea?.tgStream, tea?.tg);
      if (s !== undefined) add('streamed tg ≥ 0.95 × plain tg', `${s.toFixed(3)} (${fmt(tea.tgStream.median)} vs ${fmt(tea.tg.median)} t/s${bestNote(tea.tgStream, tea.tg)})`, s >= 0.95);
      if (tea?.lagP99) add('event-loop p99 lag < 10 ms', `${fmt(tea.lagP99.median)} ms median, ${fmt(tea.lagP99.max)} ms worst run`, tea.lagP99.max < 10);
      // Generation is where a binding shows: its token loop. Prompt processing is one llama_decode of ggml kernels,
      // the same in both, so there "ahead" can only mean level (within 3%), and only between binaries built alike:
      // the prebuilt binaries pick the same CPU variant at run time, while the source build is AVX2 only, so its
      // pp against node-llama-cpp's AVX-512 variant is shown but not judged.
      for (const [id, label, judgePp] of [['tea', 'tea-llama', false], ['pre', 'tea-llama prebuild', true]]) {
        const ours = by[id];
        if (!nlc || !ours) continue;
        const parts = [];
        let ok = true;
        for (const key of ['tg', ...model.pp.map((n) => `pp${n}`)]) {
          const r = ratio(ours[key], nlc[key]);
          if (r === undefined) continue;
          const judged = key === 'tg' || judgePp;
          parts.push(`${key === 'tg' ? `tg${results.config.tg}` : key} ×${fmt(r, r >= 10 ? 0 : 2)}${judged ? '' : ' (not judged)'}`);
          if (key === 'tg') ok &&= r > 1;
          else if (judged) ok &&= r >= 0.97;
        }
        const target = judgePp ? `${label} ahead of node-llama-cpp (tg > 1×, pp ≥ 0.97×)` : `${label} ahead of node-llama-cpp (tg > 1×)`;
        if (parts.length) add(target, parts.join(', '), ok);
      }
    }
  }
  return rows;
}

/** 'AVX-512, OpenMP' and the like, from llama.cpp's system info line. */
export function cpuFeatures(systemInfo) {
  if (!systemInfo) return '';
  const simd = /AVX512 = 1/.test(systemInfo) ? 'AVX-512' : /AVX2 = 1/.test(systemInfo) ? 'AVX2, no AVX-512' : /NEON = 1/.test(systemInfo) ? 'NEON' : 'no AVX2';
  return `${simd}, ${/OPENMP = 1/.test(systemInfo) ? 'OpenMP threads' : 'ggml thread pool'}`;
}

function loadLine(l) {
  const three = (a) => a.map((x) => x.toFixed(2)).join(', ');
  return `before ${three(l.before)} · after ${three(l.after)} · highest 1-min average at a session start ${l.duringMax1min.toFixed(2)}`;
}

/**
 * One compact table, every thread count side by side: tokens/s and, in parentheses, the ratio to llama-bench
 * (for the prebuilt binaries and node-llama-cpp, not like for like: see Builds). Used at the top of the report
 * and in the README.
 */
export function renderSummaryTable(results) {
  const { config: c, summary } = results;
  expectedRuns = c.runs;
  const contenders = CONTENDER_IDS.filter((id) => c.contenders.includes(id));
  const ppSizes = [...new Set(results.models.flatMap((mm) => mm.pp))].sort((a, b) => a - b);
  const cols = [['tg', `tg${c.tg}`], ...ppSizes.map((n) => [`pp${n}`, `pp${n}`])].flatMap(([key, label]) => c.threads.map((t) => ({ key, t, label: `${label}, ${t} thr` })));
  const lines = [`| model | contender | ${cols.map((col) => col.label).join(' | ')} |`, `| --- | --- | ${cols.map(() => '--:').join(' | ')} |`];
  for (const model of results.models) {
    contenders.forEach((id, i) => {
      const cells = cols.map(({ key, t }) => {
        const s = summary[model.name]?.[t]?.[id]?.[key];
        if (!s) return '—';
        const r = id === 'bench' ? undefined : ratio(s, summary[model.name]?.[t]?.bench?.[key]);
        return `${fmt(s.median)}${r === undefined ? '' : ` (${r.toFixed(2)})`}${s.n < c.runs ? '*' : ''}`;
      });
      const label = id === 'tea' ? `**${CONTENDERS[id].label}**` : CONTENDERS[id].label;
      lines.push(`| ${i === 0 ? model.name : ''} | ${label} | ${cells.join(' | ')} |`);
    });
  }
  return lines.join('\n');
}

/** Whether a run measured the main scenario (results of runs before there were scenarios did). */
export const hasMain = (results) => (results.config.scenarios ?? ['main']).includes('main');

/** The serving scenario's section: per model, client count and contender; then the embeddings batch. */
export function renderServing(results) {
  const sv = results.serving;
  const { runs, batch } = results.config;
  const label = (id) => (id === 'tea' ? `**${SERVING_CONTENDERS[id].label}**` : SERVING_CONTENDERS[id].label);
  const lines = ['## Serving: concurrent clients', ''];
  lines.push(
    `N clients at once on one loaded model (${sv.threads} threads, batch ${batch}): each sends its own ${sv.promptTokens}-token prompt and gets ${sv.tokens} greedy tokens, streamed. ` +
      `tea-llama: \`loadModel(file, { sequences: N, contextSize: N × ${sv.ctxPerClient} })\` and N concurrent \`complete()\` calls with onChunk; ` +
      `llama-server: \`-np N --kv-unified -c N×${sv.ctxPerClient}\` (\`--kv-unified\` for N > 1, as tea-llama shares one cache between sequences only when there are several), N streaming POST /completion with ignore_eos; ` +
      `node-llama-cpp: a context of N sequences of ${sv.ctxPerClient} cells, a token generator per sequence. ` +
      `tea-llama serve: the \`tea-llama serve --parallel N\` command in its own process (as llama-server), N streaming POST /v1/completions (its ratios: to llama-server, then in the last column to tea-llama in-process, which is what the HTTP layer costs). ` +
      `One fresh process per model and contender runs every client count; ${runs} run${runs > 1 ? 's' : ''} interleaved with the rest, medians of the runs.`,
    '',
    `tok/s = every client's generated tokens over the makespan (all requests sent at once to the last one done, prompts included). ` +
      `TTFT = from that start to a client's first chunk, p50 and p99 over the clients. Between tokens = per client (last chunk − first chunk) / (tokens − 1), p50 over the clients: ` +
      `chunks can carry several tokens, so gaps between chunks would not measure it. Tokens = all clients' generated tokens (the fewest of the runs) out of N × ${sv.tokens}: ` +
      `llama-server (ignore_eos) and node-llama-cpp (its generator does not stop by itself) always generate them all, tea-llama stops at an end-of-generation token. ` +
      `Ratios: tea-llama's tok/s over the others'.`,
    '',
  );
  const ids = sv.contenders;
  lines.push('| model | clients | contender | tok/s | TTFT p50 ms | TTFT p99 ms | between tokens p50 ms | tokens | tea ÷ llama-server | tea ÷ node-llama-cpp |');
  lines.push('| --- | --: | --- | --: | --: | --: | --: | --: | --: | --: |');
  let serial = false;
  for (const model of results.models.filter((m) => m.serving)) {
    const byModel = sv.summary[model.name] ?? {};
    sv.clients.forEach((n, ni) => {
      const by = byModel[n] ?? {};
      ids.forEach((id, i) => {
        const s = by[id];
        const first = ni === 0 && i === 0 ? model.name : '';
        if (!s) {
          lines.push(`| ${first} | ${i === 0 ? n : ''} | ${label(id)} | — | — | — | — | — | | |`);
          return;
        }
        // No overlap between the clients' generations in any run: they were served one after another.
        const oneByOne = n > 1 && s.overlapped?.max === 0;
        serial ||= oneByOne;
        // tea-llama serve: its ratio to llama-server (both over HTTP), then to tea-llama in-process (the HTTP layer).
        const others = id === 'tea' ? ['server', 'nlc'] : id === 'serve' ? ['server', 'tea'] : [];
        const ratios = others.length ? others.map((other) => fmtRatio(ratio(s.tokPerSec, by[other]?.tokPerSec))) : ['', ''];
        lines.push(
          `| ${first} | ${i === 0 ? n : ''} | ${label(id)}${oneByOne ? ' †' : ''} | ${cell(s.tokPerSec)} | ${cell(s.ttftP50)} | ${cell(s.ttftP99)} | ${cell(s.tbtP50, 1)} | ${fmt(s.tokens?.min, 0)} / ${n * sv.tokens} | ${ratios.join(' | ')} |`,
        );
      });
    });
  }
  lines.push('');
  if (serial) lines.push('† The clients were served one after another: their generations never overlapped.', '');
  if (sv.embedTexts > 0) {
    lines.push(
      `Embeddings batch: ${sv.embedTexts} short texts in one call, texts/s (the median of 3 batches in each session). tea-llama: \`model.embed(texts)\` (embedding context ${sv.embedCtx}); ` +
        `llama-server: one POST /v1/embeddings with the ${sv.embedTexts} inputs (\`--embeddings --pooling mean -np ${sv.embedTexts} --kv-unified -c ${sv.embedCtx} -b ${sv.embedCtx} -ub ${sv.embedCtx}\`).`,
      '',
    );
    lines.push('| model | tea-llama texts/s | llama-server texts/s | tea ÷ llama-server |', '| --- | --: | --: | --: |');
    for (const model of results.models.filter((m) => m.serving)) {
      const e = sv.summary[model.name]?.embed ?? {};
      lines.push(`| ${model.name} | ${cell(e.tea)} | ${cell(e.server)} | ${fmtRatio(ratio(e.tea, e.server))} |`);
    }
    lines.push('');
  }
  return lines.join('\n');
}

export function renderMarkdown(results, { chart, json } = {}) {
  const { machine: m, config: c, summary } = results;
  expectedRuns = c.runs;
  const contenders = CONTENDER_IDS.filter((id) => c.contenders.includes(id));
  const minutes = (results.wallMs / 60000).toFixed(1);
  const native = results.versions.native;
  const lock = results.versions.llamaCpp;
  const benchInfo = results.sessions.find((s) => s.contender === 'bench' && s.info)?.info;
  const nlcInfo = results.sessions.find((s) => s.contender === 'nlc' && s.info?.systemInfo)?.info;
  const lines = [];
  lines.push(`# tea-llama benchmark`, '');
  lines.push(`${results.date.slice(0, 16).replace('T', ' ')} UTC · \`${results.command}\` · ${minutes} min${c.quick ? ' · **quick run**' : ''}`, '');
  lines.push(
    `- **Machine**: ${m.cpuModel}, ${m.logicalCpus} logical CPU${m.logicalCpus === 1 ? '' : 's'} (/proc/cpuinfo), ${m.memoryGB.toFixed(0)} GiB RAM, ${m.platform}, Node ${m.node}.`,
    `- **Load averages** (1/5/15 min): ${loadLine(results.load)}. Above ${m.logicalCpus}, other work shared the cores during the run and the figures are noisier than their spreads suggest.`,
    `- **Builds**: llama.cpp ${lock?.tag ?? lock?.version ?? ''}${benchInfo?.build_commit ? ` (${benchInfo.build_commit})` : ''}; tea-llama ${results.versions.teaLlama} source build \`${native.prebuild ? 'prebuild' : 'build/Release'}\` (${cpuFeatures(native.systemInfo)}), llama-bench and llama-server built from the same tree with the same flags${results.versions.prebuild ? `; tea-llama prebuild \`${results.versions.prebuild.addonPath.split(/[\\/]/).slice(-3).join('/')}\` (CPU variant picked at run time: ${results.versions.prebuild.cpuVariant}, ${cpuFeatures(results.versions.prebuild.systemInfo)})` : ''}${nlcInfo ? `; node-llama-cpp ${nlcInfo.version} prebuilt binary (llama.cpp ${nlcInfo.llamaCppRelease?.release ?? '?'}, CPU variant picked at run time, ${cpuFeatures(nlcInfo.systemInfo)})` : ''}. Both prebuilt binaries may use wider SIMD than the source build and llama-bench: their ratios to llama-bench are not like for like, their ratios to each other are.`,
    `- **Settings**, the same for every contender: context ${c.ctx}, batch and micro-batch ${c.batch}, flash attention auto, greedy decoding, one sequence (tea-llama \`sequences: 1\`, llama-server \`-np 1\`); threads ${c.threads.join(' and ')}; ${c.runs} run${c.runs > 1 ? 's' : ''} of every session, interleaved (each run visits every model, thread count and contender in a rotating order, a fresh process per session). Figures are medians${c.runs > 1 ? ', ± half the min–max range' : ''}.`,
  );
  if (hasMain(results)) lines.push(`- **Tests**: pp*n* = a prompt of *n* tokens from an empty cache, no generation (the median of ${c.ppReps ?? 1} within each session); tg${c.tg} = ${c.tg} decode steps after a 2-token prompt (llama-bench: ${c.tg} decodes from an empty context); TTFT = a 128-token prompt to the first generated text, as the caller sees it; streamed = tg with a per-chunk JS callback (node-llama-cpp: its token generator, plus the text of each token; API: server-sent events, first to last chunk), while a 1 ms timer measures event-loop lag; json = tg${c.tg} constrained by one JSON schema of moderate size (tea-llama: \`jsonSchema\`; API: llama-server's \`json_schema\`), the median of ${c.ppReps ?? 1} within each session, with tea-llama's grammar set-up time (one token with the schema less one without); embeddings = a batch of ${[...new Set(results.models.map((mm) => mm.embedTexts))].join(' or ')} short texts (node-llama-cpp: one at a time, it has no batch call; API: a second llama-server started with --embeddings); load = until a first token can be decoded (API: server start to first answer); RSS = resident memory after load (API: the server process).`);
  if (results.notes.length) lines.push(...results.notes.map((n) => `- **Note**: ${n}`));
  lines.push('');
  if (hasMain(results)) {
    if (chart) lines.push(`![tokens per second per contender and model](${chart})`, '');
    lines.push('## Summary: tokens/s (ratio to llama-bench)', '');
    lines.push(renderSummaryTable(results), '');
    lines.push(`Medians of ${c.runs} runs; * fewer runs (sessions cut or skipped, see the notes). The ratios of the prebuilt binaries are not like for like (wider SIMD than llama-bench's build).`, '');

    for (const threads of c.threads) {
      const ppSizes = [...new Set(results.models.flatMap((mm) => mm.pp))].sort((a, b) => a - b);
      lines.push(`## ${threads} thread${threads > 1 ? 's' : ''}: throughput (tokens/s) and ratio to llama-bench`, '');
      lines.push(`| model | contender | ${ppSizes.map((n) => `pp${n}`).join(' | ')} | tg${c.tg} | ${ppSizes.map((n) => `pp${n} ×`).join(' | ')} | tg × |`);
      lines.push(`| --- | --- | ${ppSizes.map(() => '--:').join(' | ')} | --: | ${ppSizes.map(() => '--:').join(' | ')} | --: |`);
      for (const model of results.models) {
        const by = summary[model.name]?.[threads] ?? {};
        contenders.forEach((id, i) => {
          const s = by[id];
          const name = i === 0 ? model.name : '';
          if (!s) {
            lines.push(`| ${name} | ${CONTENDERS[id].label} | ${ppSizes.map(() => '—').join(' | ')} | — | ${ppSizes.map(() => '').join(' | ')} | |`);
            return;
          }
          const pp = ppSizes.map((n) => cell(s[`pp${n}`]));
          const ppR = ppSizes.map((n) => (id === 'bench' ? '' : fmtRatio(ratio(s[`pp${n}`], by.bench?.[`pp${n}`]))));
          const tgR = id === 'bench' ? '' : fmtRatio(ratio(s.tg, by.bench?.tg));
          const label = id === 'tea' ? `**${CONTENDERS[id].label}**` : CONTENDERS[id].label;
          lines.push(`| ${name} | ${label} | ${pp.join(' | ')} | ${cell(s.tg)} | ${ppR.join(' | ')} | ${tgR} |`);
        });
      }
      lines.push('');
      lines.push(`## ${threads} thread${threads > 1 ? 's' : ''}: latency and overheads`, '');
      lines.push(`| model | contender | TTFT ms | streamed tg${c.tg} t/s | streamed ÷ plain | loop lag p50 / p99 / max ms | embeddings/s | load ms | RSS MB |`);
      lines.push('| --- | --- | --: | --: | --: | --: | --: | --: | --: |');
      for (const model of results.models) {
        const by = summary[model.name]?.[threads] ?? {};
        contenders
          .filter((id) => id !== 'bench')
          .forEach((id, i) => {
            const s = by[id];
            const name = i === 0 ? model.name : '';
            const label = id === 'tea' ? `**${CONTENDERS[id].label}**` : CONTENDERS[id].label;
            if (!s) {
              lines.push(`| ${name} | ${label} | — | — | — | — | — | — | — |`);
              return;
            }
            const lag = s.lagP50 ? `${fmt(s.lagP50.median, 2)} / ${fmt(s.lagP99.median, 1)} / ${fmt(s.lagMax.max, 1)}` : '—';
            lines.push(
              `| ${name} | ${label} | ${cell(s.ttftMs)} | ${cell(s.tgStream)} | ${fmtRatio(ratio(s.tgStream, s.tg))} | ${lag} | ${cell(s.embedPerSecond)} | ${cell(s.loadMs)} | ${fmt(s.rssMB?.median, 0)} |`,
            );
          });
      }
      lines.push('');
    }
  }

  const targets = checkTargets(results);
  if (targets.length) {
    lines.push('## Targets (issue 5)', '');
    lines.push('Held to the ratio of medians; the ratio of the best runs is shown beside it, as the steadier figure when the machine was busy.', '');
    lines.push('| target | model | threads | measured | |');
    lines.push('| --- | --- | --: | --- | :-: |');
    for (const t of targets) lines.push(`| ${t.target} | ${t.model} | ${t.threads} | ${t.measured} | ${t.ok ? 'met' : '**missed**'} |`);
    lines.push('');
  }
  if (results.serving) lines.push(renderServing(results));
  if (results.rerank) lines.push(renderRerank(results.rerank));
  if (results.speculative) lines.push(renderSpeculative(results.speculative));
  if (results.chatSession) lines.push(renderChatSession(results.chatSession));
  const failed = results.sessions.filter((s) => s.error);
  if (failed.length) {
    lines.push('## Failed sessions', '');
    for (const s of failed) lines.push(`- run ${s.run}, ${s.model}${s.scenario ? ', serving' : ''}, ${s.threads} threads, ${contenderOf(s).label}: ${s.error.split('\n')[0]}`);
    lines.push('');
  }
  if (json) lines.push(`Every sample: \`bench/results/${json}\` (not committed).`, '');
  return lines.join('\n');
}
