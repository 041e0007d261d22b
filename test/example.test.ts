import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { startLlamaServer, type LlamaServer } from './support/llama-server';
import { haveModel, modelPath, repoRoot, STORIES } from './support/models';

const example = resolve(repoRoot, 'examples', 'hello-backend.mjs');

/** Runs the example with only the given settings variables (the test runner's LLM_* and TEA_* are dropped). */
async function run(vars: Record<string, string>): Promise<string[]> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !/^(LLM_|TEA_)/.test(k)) env[k] = v;
  env.HOME = mkdtempSync(join(tmpdir(), 'tea-example-home-'));
  const { stdout } = await promisify(execFile)(process.execPath, [example], { env: { ...env, ...vars }, cwd: repoRoot, encoding: 'utf8' });
  return stdout.trimEnd().split('\n');
}

describe('examples/hello-backend.mjs', () => {
  it('is the program the README shows', () => {
    const readme = readFileSync(resolve(repoRoot, 'README.md'), 'utf8');
    const code = readFileSync(example, 'utf8').trimEnd();
    expect(readme).toContain('```js\n' + code + '\n```');
    expect(code.split('\n').length).toBeLessThanOrEqual(10);
  });

  describe.runIf(haveModel(STORIES))('unchanged, against a local model and against llama-server', () => {
    let server: LlamaServer;
    beforeAll(async () => {
      server = await startLlamaServer(modelPath(STORIES), ['-c', '512', '-np', '1']);
    });
    afterAll(async () => {
      await server?.stop();
    });

    it('prints the same greedy text from both backends (selected by environment and by a YAML file)', async () => {
      const local = await run({ TEA_MODEL_PATH: modelPath(STORIES) });
      const api = await run({ LLM_BACKEND: 'api', LLM_API_BASE: server.baseUrl });
      const settings = join(mkdtempSync(join(tmpdir(), 'tea-example-')), 'settings.yaml');
      writeFileSync(settings, `llm:\n  backend: api\n  api:\n    base_url: ${server.baseUrl}/v1\n    timeout: 30\n`);
      const yaml = await run({ TEA_SETTINGS: settings });

      expect(local[0]).toMatch(/^\[local\] , there was a little girl/);
      expect(api[0]).toMatch(/^\[api\] /);
      expect(api[0].slice('[api] '.length)).toBe(local[0].slice('[local] '.length));
      expect(api.slice(1)).toEqual(local.slice(1));
      expect(local.slice(1).join('\n').length).toBeGreaterThan(20);
      expect(yaml).toEqual(api);
    });
  });
});
