// What the API backend's fault tests share: HTTP fixtures and backends opened by a test, all closed after it.
import { afterEach } from 'vitest';

import { ApiLlmBackend, type ApiLlmBackendOptions } from '../../lib';
import { startHttpFixture, type HttpFixture } from './http-fixture';

/** Call at a test file's top level; `defaults` go under every backend's own options. */
export function apiTestScope(defaults: Partial<ApiLlmBackendOptions>) {
  const fixtures: HttpFixture[] = [];
  const backends: ApiLlmBackend[] = [];
  afterEach(async () => {
    await Promise.all(backends.splice(0).map((b) => b.dispose()));
    await Promise.all(fixtures.splice(0).map((f) => f.close()));
  });
  return {
    async fixture(handler: Parameters<typeof startHttpFixture>[0]): Promise<HttpFixture> {
      const f = await startHttpFixture(handler);
      fixtures.push(f);
      return f;
    },
    backend(options: ApiLlmBackendOptions): ApiLlmBackend {
      const b = new ApiLlmBackend({ ...defaults, ...options } as ApiLlmBackendOptions);
      backends.push(b);
      return b;
    },
  };
}
