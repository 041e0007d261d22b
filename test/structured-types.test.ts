import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

import { repoRoot } from './support/models';

// `parsed` has the type of a literal schema (jsonSchema, responseFormat), checked by compiling
// test/types/structured-types.ts with the project's compiler options.
describe('the type of parsed', () => {
  it('follows a literal jsonSchema or responseFormat schema, and is unknown otherwise', () => {
    const tsc = join(repoRoot, 'node_modules', 'typescript', 'bin', 'tsc');
    const r = spawnSync(
      process.execPath,
      [tsc, '--noEmit', '--strict', '--target', 'ES2022', '--module', 'commonjs', '--moduleResolution', 'node10', '--esModuleInterop', '--skipLibCheck',
        '--types', 'node', '--lib', 'ES2022,ESNext.Disposable', join(repoRoot, 'test', 'types', 'structured-types.ts')],
      { encoding: 'utf8', cwd: repoRoot },
    );
    expect(r.stdout + r.stderr).toBe('');
    expect(r.status).toBe(0);
  }, 120_000);
});
