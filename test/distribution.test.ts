import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { loadModel } from '../lib';
import { haveModel, modelPath, repoRoot, STORIES } from './support/models';
import { syntheticModel } from './support/synthetic';

const PROMPT = 'Once upon a time';

function sizeOf(path: string): number {
  const st = statSync(path);
  if (!st.isDirectory()) return st.size;
  return readdirSync(path).reduce((sum, name) => sum + sizeOf(join(path, name)), 0);
}

/** A PATH with node, npm and sh only: no compiler, no cmake, no make, no ninja, no git. */
function bareBin(dir: string): string {
  mkdirSync(dir);
  const npmCli = execFileSync('npm', ['root', '-g'], { encoding: 'utf8' }).trim();
  symlinkSync(process.execPath, join(dir, 'node'));
  writeFileSync(join(dir, 'npm'), `#!/bin/sh\nexec "${process.execPath}" "${join(npmCli, 'npm', 'bin', 'npm-cli.js')}" "$@"\n`, { mode: 0o755 });
  symlinkSync('/bin/sh', join(dir, 'sh'));
  return dir;
}

// `npm pack`, then install the tarball into a fresh project whose PATH has no compiler and no cmake, and run
// a greedy completion from it: the prebuild, not a source build, is what must load and give the same text.
describe.runIf(process.platform === 'linux' && haveModel(STORIES))('the packed tarball installs and runs with no toolchain', () => {
  const work = mkdtempSync(join(tmpdir(), 'tea-llama-dist-'));
  const project = join(work, 'project');
  let tarball: string;
  let env: NodeJS.ProcessEnv;
  let reference: string;

  beforeAll(async () => {
    const packed = execFileSync('npm', ['pack', '--silent', '--pack-destination', work], { cwd: repoRoot, encoding: 'utf8' });
    tarball = join(work, packed.trim().split('\n').pop() as string);
    mkdirSync(project);
    writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', private: true }));
    env = { HOME: process.env.HOME, PATH: bareBin(join(work, 'bin')), npm_config_cache: join(work, 'npm-cache') };
    for (const tool of ['cmake', 'cc', 'c++', 'gcc', 'g++', 'make', 'ninja', 'git']) {
      expect(() => execFileSync('sh', ['-c', `command -v ${tool}`], { env })).toThrow();
    }
    // --ignore-scripts: npm 11 may hold a dependency's install script for approval; the prebuild must not need it.
    execFileSync('npm', ['install', '--ignore-scripts', '--no-audit', '--no-fund', tarball], { cwd: project, env, stdio: 'pipe' });
    await using model = await loadModel(modelPath(STORIES), { contextSize: 256 });
    reference = (await model.complete(PROMPT, { maxTokens: 64, temperature: 0 })).text;
  });
  afterAll(() => {
    const installed = join(project, 'node_modules', 'tea-llama');
    if (tarball && existsSync(installed)) {
      console.log(`[distribution] tarball ${(sizeOf(tarball) / 1048576).toFixed(1)} MiB, installed ${(sizeOf(installed) / 1048576).toFixed(1)} MiB`);
    }
  });

  const run = (extraEnv: NodeJS.ProcessEnv = {}, model = modelPath(STORIES), maxTokens = 64) => {
    const script = `
      const t = require('tea-llama');
      (async () => {
        const m = await t.loadModel(${JSON.stringify(model)}, { contextSize: 256, threads: 2 });
        const r = await m.complete(${JSON.stringify(PROMPT)}, { maxTokens: ${maxTokens}, temperature: 0 });
        await m.dispose();
        console.log(JSON.stringify({ text: r.text, tokens: r.completionTokens, finishReason: r.finishReason, native: t.nativeInfo() }));
      })();`;
    const options = { cwd: project, env: { ...env, ...extraEnv }, encoding: 'utf8' as const, stdio: 'pipe' as const };
    return JSON.parse(execFileSync('node', ['-e', script], options));
  };

  it('packs prebuilds and sources, never build output or vendored source', () => {
    const files = execFileSync('tar', ['-tzf', tarball], { encoding: 'utf8' }).split('\n');
    expect(files.some((f) => /^package\/prebuilds\/linux-x64\/tea-llama\.glibc\.napi\.node$/.test(f))).toBe(true);
    expect(files).toContain('package/vendor/llama.cpp.lock.json');
    expect(files).toContain('package/CMakeLists.txt');
    expect(files).toContain('package/patches/jinja-limits.patch'); // a source build applies it
    expect(files.filter((f) => /^package\/(build|vendor\/llama\.cpp|test|\.cache)\//.test(f))).toEqual([]);
    expect(files.filter((f) => /sapphirerapids/.test(f))).toEqual([]);
  });

  it('runs a greedy completion from the prebuild equal to the source build', () => {
    const out = run();
    expect(out.native.prebuild).toBe(true);
    expect(out.native.addonPath).toContain(join('node_modules', 'tea-llama', 'prebuilds', 'linux-x64'));
    expect(out.native.dynamic).toBe(true);
    expect(out.native.cpuVariant).not.toBe('');
    expect(out.text).toBe(reference);
  });

  it('PREBUILDS_ONLY=1 loads the prebuild (a stale local build is never used)', () => {
    const out = run({ PREBUILDS_ONLY: '1' });
    expect(out.native.prebuild).toBe(true);
    expect(out.text).toBe(reference);
  });

  it('the install step takes the prebuild without building', () => {
    const result = spawnSync('node', ['node_modules/tea-llama/scripts/install.mjs'], { cwd: project, env, encoding: 'utf8' });
    expect(result.status).toBe(0);
    expect(result.stderr).toContain('using the existing native binary');
  });

  it('every CPU variant shipped runs here, or is refused before it can fault', () => {
    const dir = join(project, 'node_modules', 'tea-llama', 'prebuilds', 'linux-x64');
    const variants = readdirSync(dir)
      .map((f) => f.match(/^libggml-cpu-(.+)\.so$/)?.[1])
      .filter((v): v is string => v !== undefined);
    expect(variants).toEqual(expect.arrayContaining(['x64', 'haswell']));
    const ran: string[] = [];
    for (const variant of variants) {
      let out: { text: string; native: { cpuVariant: string } };
      try {
        out = run({ TEA_CPU_VARIANT: variant });
      } catch (error) {
        // Refused up front (the CPU or the OS lacks what it needs), never a crash.
        expect(String((error as { stderr?: string }).stderr)).toContain(`CPU variant '${variant}'`);
        continue;
      }
      expect(out.native.cpuVariant).toBe(variant);
      expect(out.text).toBe(reference);
      ran.push(variant);
    }
    expect(ran).toEqual(expect.arrayContaining(['x64', 'haswell']));
    console.log(`[distribution] CPU variants that run here: ${ran.join(', ')}`);
  });

  it('quantized models (Q4_K_M, Q8_0) generate through the prebuild on every CPU variant that runs here', async () => {
    // stories260K is F32: the quantized kernels (where a CPU that advertises AMX crashed a GGML_NATIVE build) need
    // their own run. Random weights, so the text may differ between SIMD widths; each must generate, not fault.
    const q4 = await syntheticModel('130m', 'Q4_K_M');
    const q8 = await syntheticModel('tiny', 'Q8_0');
    const auto = run({ PREBUILDS_ONLY: '1' }, q4, 16);
    expect(auto.native.prebuild).toBe(true);
    await using source = await loadModel(q4, { contextSize: 256, threads: 2 });
    const sourceText = (await source.complete(PROMPT, { maxTokens: 16, temperature: 0 })).text;
    const dir = join(project, 'node_modules', 'tea-llama', 'prebuilds', 'linux-x64');
    const variants = readdirSync(dir)
      .map((f) => f.match(/^libggml-cpu-(.+)\.so$/)?.[1])
      .filter((v): v is string => v !== undefined);
    const texts = new Map<string, string[]>();
    for (const variant of variants) {
      for (const model of [q4, q8]) {
        let out: { text: string; tokens: number; finishReason: string; native: { cpuVariant: string } };
        try {
          out = run({ PREBUILDS_ONLY: '1', TEA_CPU_VARIANT: variant }, model, 16);
        } catch (error) {
          expect(String((error as { stderr?: string }).stderr)).toContain(`CPU variant '${variant}'`);
          break;
        }
        expect(out.native.cpuVariant).toBe(variant);
        expect(out.finishReason === 'stop' || out.tokens === 16, `${variant}: ${out.finishReason} after ${out.tokens} tokens`).toBe(true);
        if (model === q4) texts.set(out.text, [...(texts.get(out.text) ?? []), variant]);
      }
    }
    expect([...texts.values()].flat()).toEqual(expect.arrayContaining(['x64', 'haswell']));
    // The AVX2 variant computes as the source build does (the portable profile is AVX2).
    expect(texts.get(sourceText) ?? []).toContain('haswell');
    console.log(`[distribution] Q4_K_M text groups by CPU variant: ${[...texts.values()].map((v) => v.join('/')).join(' | ')}`);
  }, 300_000);

  it('falls back to the CPU when a GPU module cannot load, and says why when one was asked for', () => {
    // A module whose GPU runtime library is absent: dlopen fails exactly as with a missing libcudart.
    const dir = join(project, 'node_modules', 'tea-llama', 'prebuilds', 'linux-x64');
    const fake = join(dir, 'libggml-cuda.so');
    writeFileSync(join(work, 'runtime.c'), 'int cuda_runtime_version(void) { return 13; }\n');
    writeFileSync(join(work, 'module.c'), 'int cuda_runtime_version(void);\nint ggml_backend_score(void) { return cuda_runtime_version(); }\n');
    execFileSync('cc', ['-shared', '-fPIC', '-o', join(work, 'libfakecudart.so'), join(work, 'runtime.c')]);
    execFileSync('cc', ['-shared', '-fPIC', '-o', fake, join(work, 'module.c'), `-L${work}`, '-lfakecudart']);
    rmSync(join(work, 'libfakecudart.so'));
    const auto = run();
    expect(auto.native.gpuLoaded).toEqual([]);
    expect(auto.native.gpuFailed.join()).toContain('libggml-cuda.so');
    expect(auto.text).toBe(reference);
    expect(() => run({ TEA_GPU: 'cuda' })).toThrow(/ERR_BACKEND_UNAVAILABLE|could not be used/);
    const none = run({ TEA_GPU: 'none' });
    expect(none.native.gpuFailed).toEqual([]);
  });
});
