import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

import { getModelInfo, LlamaError, readGguf, silentLogger, type GgufFile } from '../../lib';
import { haveModel, TOKENIZER_VOCABS, STORIES } from '../support/models';
import { figure } from './helpers';
// @ts-expect-error plain ESM modules without type declarations
import { GgufFuzzer } from './fuzz/gguf-mutator.mjs';
// @ts-expect-error plain ESM modules without type declarations
import { defaultSources, runFuzz, summarize } from './fuzz/run-fuzz.mjs';

// Fuzzing of model files. Every case is a seeded mutation of a real GGUF file (stories260K and the three
// vocabulary-only files): see test/reliability/fuzz/gguf-mutator.mjs for what is mutated. Defaults: the fixed cases
// (regressions and truncation at every section boundary) plus 2000 random cases; TEA_FUZZ_CASES sets the number
// of random cases (a nightly job runs more), TEA_FUZZ_SEED the seed. One case is replayed with
//   node test/reliability/fuzz/run-fuzz.mjs --seed <seed> --case <index>

const SEED = Number(process.env.TEA_FUZZ_SEED ?? 1);
const RANDOM_CASES = Number(process.env.TEA_FUZZ_CASES ?? 2000);
const READER_CASES = Number(process.env.TEA_FUZZ_READER_CASES ?? RANDOM_CASES);
/** Time limits grow with the case count (the default run takes about a minute; the limits are hang detectors). */
const LIMIT_MS = Math.max(900_000, RANDOM_CASES * 200);

interface Source {
  name: string;
  path: string;
  vocabOnly: boolean;
}

interface FuzzCase {
  source: string;
  vocabOnly: boolean;
  buffer: Buffer;
  description: string;
}

interface FuzzReport {
  seed: number;
  cases: number;
  done: number;
  systematic: number;
  reachedLlama: number;
  loaded: number;
  worked: number;
  peakRssMb: number;
  elapsedMs: number;
  regressions: Array<{ index: number; description: string; ok: boolean; problem?: string }>;
  crashes: unknown[];
  hangs: unknown[];
  unexpected: unknown[];
  oversized: unknown[];
}

const haveSources = haveModel(STORIES) && TOKENIZER_VOCABS.every((name) => haveModel(name));

const tmp = mkdtempSync(join(process.platform === 'linux' ? '/dev/shm' : tmpdir(), 'tea-reader-fuzz-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** What a reader result promises: every tensor's data lies inside the file, aligned, in order, without overlap. */
function checkInvariants(file: GgufFile, size: number): void {
  expect(file.fileSize).toBe(size);
  expect(file.dataOffset).toBeLessThanOrEqual(size);
  expect(file.alignment > 0 && (file.alignment & (file.alignment - 1)) === 0).toBe(true);
  let end = 0;
  for (const t of file.tensors) {
    expect(t.dims.length).toBeGreaterThanOrEqual(1);
    expect(t.dims.every((d) => Number.isSafeInteger(d) && d >= 1)).toBe(true);
    expect(t.offset % file.alignment).toBe(0);
    expect(t.offset).toBeGreaterThanOrEqual(end);
    end = t.offset + t.byteSize;
    expect(file.dataOffset + end).toBeLessThanOrEqual(size);
  }
  expect(Object.keys(file.metadata)).toHaveLength(file.entries.length);
}

describe.runIf(haveSources)('fuzzing model files', () => {
  it(
    `mutated files (fixed cases + ${RANDOM_CASES} random, seed ${SEED}) loaded in child processes: each loads and works or is a typed error`,
    async () => {
      const report = (await runFuzz({ seed: SEED, randomCases: RANDOM_CASES })) as FuzzReport;
      figure(summarize(report));
      for (const kind of ['crashes', 'hangs', 'unexpected', 'oversized'] as const) {
        for (const item of report[kind]) figure(`${kind}: ${JSON.stringify(item)}`);
      }
      expect(report.cases).toBeGreaterThanOrEqual(2000);
      expect(report.crashes).toEqual([]);
      expect(report.hangs).toEqual([]);
      expect(report.unexpected).toEqual([]);
      expect(report.oversized).toEqual([]);
      expect(report.done).toBe(report.cases);
      // Every crash found so far, rebuilt by hand, now ends in its typed error.
      expect(report.regressions.length).toBeGreaterThanOrEqual(18);
      expect(report.regressions.filter((r) => !r.ok)).toEqual([]);
      // The mutations are not all stopped by the TypeScript pre-check: many reach llama.cpp, many load and work.
      expect(report.reachedLlama).toBeGreaterThan((report.cases - report.systematic) * 0.3);
      expect(report.worked).toBeGreaterThan((report.cases - report.systematic) * 0.1);
    },
    LIMIT_MS,
  );

  it('a case is the same file whatever cases came before it in the process (replaying one reproduces it)', () => {
    const sources = defaultSources().map((s: Source) => ({ ...s, buffer: readFileSync(s.path) }));
    const alone = new GgufFuzzer(sources, SEED).case(1689).buffer as Buffer;
    const after = new GgufFuzzer(sources, SEED);
    // Case 1652 writes -Infinity over the weights: 1689 once inherited them and computed NaN (ERR_NUMERIC).
    for (let i = 1600; i < 1689; i++) after.case(i);
    expect(Buffer.compare(after.case(1689).buffer as Buffer, alone)).toBe(0);
  });

  it(`the TypeScript GGUF reader and auto-configuration on ${READER_CASES} random and every fixed mutated file, in-process`, async () => {
    const sources = (defaultSources() as Source[]).map((s) => ({ ...s, buffer: readFileSync(s.path) }));
    const fuzzer = new GgufFuzzer(sources, SEED + 1000);
    const total = fuzzer.systematicCount + READER_CASES;
    const path = join(tmp, 'case.gguf');
    let accepted = 0;
    let slowest = { ms: 0, index: -1 };
    let heapPeakMb = 0;
    const started = performance.now();
    for (let index = 0; index < total; index++) {
      const c = fuzzer.case(index) as FuzzCase;
      writeFileSync(path, c.buffer);
      const t0 = performance.now();
      // The default limit (what loadModel and getModelInfo use), and every fourth file with every array loaded.
      for (const maxArrayLength of index % 4 === 0 ? [1024, Infinity] : [1024]) {
        try {
          const file = await readGguf(path, { maxArrayLength });
          checkInvariants(file, c.buffer.length);
          if (maxArrayLength === 1024) accepted++;
        } catch (error) {
          if (!(error instanceof LlamaError) || error.code !== 'ERR_MODEL_INVALID') {
            throw new Error(`case ${index} (${c.source}: ${c.description}) threw ${String(error)}`);
          }
          expect(error.message).toMatch(/byte offset \d+/);
        }
      }
      // Auto-configuration reads the same header and derives numbers from it: a result with sane numbers, or the
      // reader's typed error.
      try {
        const info = await getModelInfo(path, { freeMemory: 8 * 2 ** 30, logger: silentLogger });
        expect(Number.isSafeInteger(info.contextSize) && info.contextSize >= 1, `case ${index}: context ${info.contextSize}`).toBe(true);
        if (info.kvBytesPerToken !== null) expect(Number.isFinite(info.kvBytesPerToken) && info.kvBytesPerToken > 0, `case ${index}`).toBe(true);
        if (info.trainedContextLength !== null) expect(Number.isSafeInteger(info.trainedContextLength), `case ${index}`).toBe(true);
      } catch (error) {
        if (!(error instanceof LlamaError) || error.code !== 'ERR_MODEL_INVALID') {
          throw new Error(`getModelInfo, case ${index} (${c.source}: ${c.description}) threw ${String(error)}`);
        }
      }
      const ms = performance.now() - t0;
      if (ms > slowest.ms) slowest = { ms, index };
      if (index % 250 === 0) heapPeakMb = Math.max(heapPeakMb, process.memoryUsage().heapUsed / 2 ** 20);
    }
    figure(
      `GGUF reader fuzz (seed ${SEED + 1000}): ${total} files (${fuzzer.systematicCount} fixed) read (a quarter twice, with every array) and auto-configured in ` +
        `${((performance.now() - started) / 1000).toFixed(1)} s; accepted ${accepted}, rejected ${total - accepted} with ERR_MODEL_INVALID; ` +
        `slowest case #${slowest.index} ${slowest.ms.toFixed(0)} ms; heap peak ${heapPeakMb.toFixed(0)} MB`,
    );
    expect(accepted).toBeGreaterThan(READER_CASES * 0.3);
    // Hang detector, not a speed test: the slowest file is a 1.7 MB vocabulary read in full.
    expect(slowest.ms).toBeLessThan(10_000);
  }, LIMIT_MS);

  it('auto-configuration of a header that lies about its layer count (found by the reader fuzz: a JavaScript heap OOM)', async () => {
    // getModelInfo sized an array by <arch>.block_count: 2^31 layers took the process down.
    const sources = (defaultSources() as Source[]).map((s) => ({ ...s, buffer: readFileSync(s.path) }));
    const stories = sources.find((s) => s.name === STORIES)!;
    const b = Buffer.from(stories.buffer);
    const key = Buffer.from('llama.block_count');
    const at = b.indexOf(key) + key.length + 4; // after the key and its value type (UINT32)
    expect(b.readUInt32LE(at)).toBe(5);
    const path = join(tmp, 'layers.gguf');
    for (const layers of [2 ** 31, 2 ** 32 - 1, 513, 0]) {
      b.writeUInt32LE(layers, at);
      writeFileSync(path, b);
      const info = await getModelInfo(path, { logger: silentLogger });
      expect(info.kvBytesPerToken, `block_count ${layers}`).toBeNull();
      expect(info.contextSize).toBe(2048);
    }
  });
});
