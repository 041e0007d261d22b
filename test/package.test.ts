import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';

import { loadModel } from '../lib';
import { haveModel, modelPath, repoRoot, STORIES, strict } from './support/models';

// The built package (dist/), resolved through package.json "exports" the way a user's project resolves it.
describe.runIf(haveModel(STORIES))('the package from ESM and CommonJS', () => {
  const project = mkdtempSync(join(tmpdir(), 'tea-llama-consumer-'));
  mkdirSync(join(project, 'node_modules'));
  symlinkSync(repoRoot, join(project, 'node_modules', 'tea-llama'), 'dir');
  const model = modelPath(STORIES);
  const run = (args: string[]) => execFileSync(process.execPath, args, { cwd: project, encoding: 'utf8' }).trim();

  it('require() and import give the same classes and the same greedy text', () => {
    const body = (load: string) => `
      ${load}
      const m = await t.loadModel(${JSON.stringify(model)}, { contextSize: 128 });
      const r = await m.complete('Once upon a time', { maxTokens: 12, temperature: 0 });
      let code;
      try { await m.complete(1); } catch (e) { code = e instanceof t.LlamaError && e.code; }
      await m.dispose();
      console.log(JSON.stringify({ text: r.text, code, keys: Object.keys(t).sort() }));`;
    const cjs = JSON.parse(run(['-e', `(async () => { ${body("const t = require('tea-llama');")} })()`]));
    const esm = JSON.parse(run(['--input-type=module', '-e', body("import * as t from 'tea-llama';")]));
    expect(cjs.text.length).toBeGreaterThan(10);
    expect(esm.text).toBe(cjs.text);
    expect(cjs.code).toBe('ERR_INVALID_ARGUMENT');
    expect(esm.code).toBe('ERR_INVALID_ARGUMENT');
    expect(esm.keys.filter((k: string) => k !== 'default')).toEqual(cjs.keys);
    expect(cjs.keys).toEqual(expect.arrayContaining(['loadModel', 'LlamaError', 'LlamaModel', 'builtinChatTemplates']));
  });
});

/** A PATH with node, npm and sh only: no compiler, no cmake, no make, no git. */
function bareBin(dir: string): string {
  mkdirSync(dir);
  const npmCli = join(execFileSync('npm', ['root', '-g'], { encoding: 'utf8' }).trim(), 'npm', 'bin', 'npm-cli.js');
  symlinkSync(process.execPath, join(dir, 'node'));
  writeFileSync(join(dir, 'npm'), `#!/bin/sh\nexec "${process.execPath}" "${npmCli}" "$@"\n`, { mode: 0o755 });
  symlinkSync('/bin/sh', join(dir, 'sh'));
  return dir;
}

const target = `${process.platform}-${process.arch}`;
const prebuilt = existsSync(join(repoRoot, 'prebuilds', target));

// The packed tarball, installed into an empty project as a user installs it: no toolchain on PATH, no install
// script to approve, no build tools downloaded, and the library works from ESM, CommonJS, TypeScript and its bin.
// Without a prebuild for this platform `npm pack` would build one: outside CI (TEA_REQUIRE_MODELS=1, after
// `npm test`'s pretest made it) the test then waits for `npm run build:prebuild`.
describe.runIf(process.platform === 'linux' && haveModel(STORIES) && (prebuilt || strict))('the packed tarball in an empty project', () => {
  const work = mkdtempSync(join(tmpdir(), 'tea-llama-tarball-'));
  const project = join(work, 'project');
  const model = modelPath(STORIES);
  let env: NodeJS.ProcessEnv;
  let installLog: string;
  let manifest: Record<string, any>;
  let reference: string;

  beforeAll(async () => {
    const before = readFileSync(join(repoRoot, 'package.json'), 'utf8');
    const packed = execFileSync('npm', ['pack', '--silent', '--pack-destination', work], { cwd: repoRoot, encoding: 'utf8' });
    const tarball = join(work, packed.trim().split('\n').pop()!);
    // postpack put the clone's manifest back, byte for byte.
    expect(readFileSync(join(repoRoot, 'package.json'), 'utf8')).toBe(before);
    manifest = JSON.parse(execFileSync('tar', ['-xzOf', tarball, 'package/package.json'], { encoding: 'utf8' }));
    mkdirSync(project);
    writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', private: true }));
    env = { HOME: process.env.HOME, PATH: bareBin(join(work, 'bin')) };
    for (const tool of ['cmake', 'cc', 'c++', 'gcc', 'g++', 'make', 'ninja', 'git']) {
      expect(() => execFileSync('sh', ['-c', `command -v ${tool}`], { env })).toThrow();
    }
    // No --ignore-scripts: there must be nothing to run and nothing to approve.
    const install = spawnSync('npm', ['install', '--no-audit', '--no-fund', tarball], { cwd: project, env, encoding: 'utf8' });
    installLog = install.stdout + install.stderr;
    expect(install.status, installLog).toBe(0);
    const m = await loadModel(model, { contextSize: 256 });
    reference = (await m.complete('Once upon a time', { maxTokens: 24, temperature: 0 })).text;
    await m.dispose();
  });

  it('has no install or prepare script, so npm prints no warning and holds nothing for approval', () => {
    expect(manifest.scripts?.install).toBeUndefined();
    expect(manifest.scripts?.prepare).toBeUndefined();
    expect(installLog).not.toMatch(/npm warn|npm WARN|install-scripts|tea-llama/i);
  });

  it('installs no build toolchain and no framework: cmake-js, node-addon-api and the adapters\' packages are optional peers', () => {
    // The build toolchain for a source build; @ai-sdk/provider and @langchain/core for tea-llama/ai-sdk and
    // tea-llama/langchain, which only their users have installed.
    const peers = ['@ai-sdk/provider', '@langchain/core', 'cmake-js', 'node-addon-api'];
    expect(Object.keys(manifest.peerDependencies).sort()).toEqual(peers);
    expect(manifest.peerDependenciesMeta).toEqual(Object.fromEntries(peers.map((name) => [name, { optional: true }])));
    expect(Object.keys(manifest.dependencies)).not.toEqual(expect.arrayContaining(['cmake-js']));
    for (const name of [...peers, 'node-api-headers']) expect(existsSync(join(project, 'node_modules', name)), name).toBe(false);
    const lock = JSON.parse(readFileSync(join(project, 'package-lock.json'), 'utf8'));
    const installed = Object.keys(lock.packages).filter((p) => p.startsWith('node_modules/'));
    expect(installed.length).toBeLessThanOrEqual(8);
  });

  const node = (args: string[]) => execFileSync('node', args, { cwd: project, env, encoding: 'utf8' }).trim();

  it('CommonJS: require() loads the prebuild and completes as the source build does', () => {
    const out = JSON.parse(
      node([
        '-e',
        `const t = require('tea-llama');
         (async () => {
           const m = await t.loadModel(${JSON.stringify(model)}, { contextSize: 256 });
           const r = await m.complete('Once upon a time', { maxTokens: 24, temperature: 0 });
           await m.dispose();
           console.log(JSON.stringify({ text: r.text, prebuild: t.nativeInfo().prebuild, error: new t.LlamaError('ERR_INTERNAL', 'x') instanceof Error }));
         })();`,
      ]),
    );
    expect(out).toEqual({ text: reference, prebuild: true, error: true });
  });

  it('ESM: import, and createLlmBackend with the settings a host parsed', () => {
    const out = node([
      '--input-type=module',
      '-e',
      `import { createLlmBackend, LlamaError } from 'tea-llama';
       const llm = await createLlmBackend({ settings: { llm: { model_path: ${JSON.stringify(model)}, n_ctx: 256 } }, temperature: 0, maxTokens: 24 });
       const r = await llm.call({ prompt: 'Once upon a time' });
       await llm.dispose();
       console.log(JSON.stringify(r.content), typeof LlamaError);`,
    ]);
    expect(out).toBe(`${JSON.stringify(reference)} function`);
  });

  it('TypeScript: the types check under --strict from .cts and .mts files', () => {
    const body = `
      const model = await loadModel('m.gguf', { contextSize: 256 });
      const r = await model.complete('x', { maxTokens: 4 });
      const llm: LlmBackend = await createLlmBackend({ settings: { llm: { backend: 'mock' } } });
      const result: LlmResult = await llm.call({ prompt: 'x' });
      const state = await runWorkflow(parseWorkflow('nodes: []'), { backend: llm });
      const e: unknown = new LlamaError('ERR_INTERNAL', 'x');
      return [r.text, result.content, Object.keys(state).length, e instanceof LlamaError] as const;`;
    const imports = "import { createLlmBackend, LlamaError, loadModel, parseWorkflow, runWorkflow, type LlmBackend, type LlmResult } from 'tea-llama';";
    writeFileSync(join(project, 'check.cts'), `${imports}\nexport async function main() {${body}\n}\n`);
    writeFileSync(join(project, 'check.mts'), `${imports}\nexport async function main() {${body}\n}\n`);
    writeFileSync(
      join(project, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          strict: true,
          noEmit: true,
          module: 'nodenext',
          moduleResolution: 'nodenext',
          target: 'es2022',
          // The public types use AsyncDisposable (`await using model = …`).
          lib: ['es2022', 'esnext.disposable'],
          types: ['node'],
          typeRoots: [join(repoRoot, 'node_modules', '@types')],
        },
        files: ['check.cts', 'check.mts'],
      }),
    );
    const tsc = spawnSync('node', [join(repoRoot, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'], { cwd: project, env, encoding: 'utf8' });
    expect(tsc.stdout + tsc.stderr).toBe('');
    expect(tsc.status).toBe(0);
  });

  it('the bin: tea-llama complete prints the same text', () => {
    const bin = join(project, 'node_modules', '.bin', 'tea-llama');
    const r = spawnSync(bin, ['complete', '--model', model, '--temperature', '0', '--max-tokens', '24', 'Once upon a time'], { cwd: project, env, encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe(reference + '\n');
  });
});
