import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

import { repoRoot } from './support/models';

// One list of error codes: every code the native binding can raise is a LlamaErrorCode, and every one is documented.
function files(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? files(join(dir, e.name)) : [join(dir, e.name)]));
}

describe('error codes', () => {
  const union = readFileSync(join(repoRoot, 'lib', 'errors.ts'), 'utf8');
  const listed = new Set([...union.slice(0, union.indexOf(';')).matchAll(/'(ERR_[A-Z_]+)'/g)].map((m) => m[1]));

  it('every code raised in binding/ is in LlamaErrorCode', () => {
    const raised = new Set<string>();
    for (const file of files(join(repoRoot, 'binding')).filter((f) => /\.(cpp|h)$/.test(f) && !f.includes('tests'))) {
      for (const m of readFileSync(file, 'utf8').matchAll(/"(ERR_[A-Z_]+)"/g)) raised.add(m[1]!);
    }
    expect(raised.size).toBeGreaterThan(8);
    expect([...raised].filter((code) => !listed.has(code))).toEqual([]);
  });

  it('every LlamaErrorCode is in the README', () => {
    const readme = readFileSync(join(repoRoot, 'README.md'), 'utf8');
    expect([...listed].filter((code) => !readme.includes(code!))).toEqual([]);
  });
});
