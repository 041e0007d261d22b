import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

import { haveModel, modelPath, repoRoot, STORIES } from './support/models';

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
