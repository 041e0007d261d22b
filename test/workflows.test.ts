import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';

import { repoRoot, strict } from './support/models';

// The release workflows cannot run here: they are checked by linters instead. The schema check comes from the
// npm registry (pinned, run through npx); shellcheck from the system (apt-get install shellcheck).
const workflowsDir = join(repoRoot, '.github', 'workflows');
const workflows = readdirSync(workflowsDir).filter((f) => f.endsWith('.yml'));
const haveShellcheck = spawnSync('shellcheck', ['--version']).status === 0;
if (!haveShellcheck && strict) throw new Error('shellcheck is missing (TEA_REQUIRE_MODELS=1 runs every check)');

interface Step {
  run?: string;
  shell?: string;
}

describe.each(workflows)('.github/workflows/%s', (file) => {
  const text = readFileSync(join(workflowsDir, file), 'utf8');

  it('is a valid GitHub Actions workflow (SchemaStore schema, via action-validator)', () => {
    const result = spawnSync('npx', ['--yes', '@action-validator/cli@0.6.0', join(workflowsDir, file)], { encoding: 'utf8' });
    expect(result.stdout + result.stderr).not.toMatch(/"errors"/);
    expect(result.status).toBe(0);
  }, 180_000);

  it.runIf(haveShellcheck)('has run steps that pass shellcheck', () => {
    const doc = parse(text) as { jobs: Record<string, { steps?: Step[] }> };
    const dir = mkdtempSync(join(tmpdir(), 'tea-llama-shellcheck-'));
    const scripts: string[] = [];
    for (const [job, { steps = [] }] of Object.entries(doc.jobs)) {
      steps.forEach((step, i) => {
        if (!step.run) return;
        // ${{ }} expressions are substituted by GitHub before the shell runs: stand them in as a variable.
        const body = step.run.replace(/\$\{\{[^}]*\}\}/g, '"$GITHUB_EXPRESSION"');
        const path = join(dir, `${job}-${i}.sh`);
        writeFileSync(path, `#!/usr/bin/env bash\nexport GITHUB_EXPRESSION=x\n${body}\n`);
        scripts.push(path);
      });
    }
    expect(scripts.length).toBeGreaterThan(0);
    const result = spawnSync('shellcheck', ['-s', 'bash', ...scripts], { encoding: 'utf8' });
    expect(result.stdout).toBe('');
    expect(result.status).toBe(0);
  });
});

it.runIf(haveShellcheck)('the shell scripts pass shellcheck', () => {
  const scripts = [join(repoRoot, '.ci', 'run'), ...readdirSync(join(repoRoot, '.github', 'scripts')).map((f) => join(repoRoot, '.github', 'scripts', f))];
  expect(execFileSync('shellcheck', scripts, { encoding: 'utf8' })).toBe('');
});
