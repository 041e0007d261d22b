import { inspect } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { ApiLlmBackend, LlamaError, resolveSettings, settingsFromEnv } from '../../lib';
import { redactText, redactUrl } from '../../lib/redact';
import { captureLogger } from '../support/capture-logger';
import { cliEnv, ensureCliBuilt, runCli, tempHome } from '../support/cli';
import { json, startHttpFixture, type HttpFixture } from '../support/http-fixture';

// Credentials never reach a message or a log line: URL user info and secret query parameters, the API key in any
// of its encodings, and Authorization headers a hostile server echoes back.

describe('redactUrl: the one function every message and log uses for a URL', () => {
  it('redacts user info and secret query and fragment parameters, and keeps the rest', () => {
    expect(redactUrl('https://alice:hunter2@host.example:8443/a/b.gguf?download=true&token=t0k3n&X-Amz-Signature=abc&sig=s1&api_key=k&key=k2#access_token=zz')).toBe(
      'https://[redacted]@host.example:8443/a/b.gguf?download=true&token=[redacted]&X-Amz-Signature=[redacted]&sig=[redacted]&api_key=[redacted]&key=[redacted]#access_token=[redacted]',
    );
    for (const name of ['password', 'signature', 'access_token', 'hf_token', 'client_secret', 'X-Amz-Credential', 'X-Amz-Security-Token', 'apikey']) {
      expect(redactUrl(`http://h/p?${name}=SECRET1&page=2`), name).toBe(`http://h/p?${name}=[redacted]&page=2`);
    }
    // Not a URL the parser takes: the same by pattern.
    expect(redactUrl('ftp//user:pw@host:99999/?token=abc')).not.toMatch(/pw|abc/);
    expect(redactText('failed: GET http://u:p4ss@127.0.0.1:1/x?sig=q1w2 (ECONNREFUSED)')).toBe('failed: GET http://[redacted]@127.0.0.1:1/x?sig=[redacted] (ECONNREFUSED)');
  });

  it('redacts a key in its plain, URL-encoded and Base64 forms, and any Authorization header', () => {
    const key = 'sk-te/st+k=ey 9f8e7d6c';
    const forms = [
      key,
      encodeURIComponent(key),
      Buffer.from(key).toString('base64'),
      Buffer.from(key).toString('base64url'),
      Buffer.from(`user:${key}`).toString('base64'), // Basic user:key, at another alignment
      Buffer.from(`ab:${key}`).toString('base64'),
      Buffer.from(`a:${key}`).toString('base64'),
    ];
    for (const form of forms) {
      const out = redactText(`the server says: ${form} is wrong`, [key]);
      expect(out, form).not.toContain(form);
      expect(out).toContain('[redacted]');
    }
    const echoed = redactText('you sent {"authorization":"Bearer other-token-123"} and Authorization: Basic dXNlcjpwYXNzd29yZA==; proxy-authorization=xyz12345');
    expect(echoed).not.toMatch(/other-token-123|dXNlcjpwYXNzd29yZA|xyz12345/);
    // Plain words are not taken for credentials.
    expect(redactText('a basic model, authorization failed')).toBe('a basic model, authorization failed');
  });
});

describe('secrets in what the library and the command line print', () => {
  let server: HttpFixture;
  const key = 'sk-live/9a8b+7c6d=5e4f';
  beforeAll(async () => {
    ensureCliBuilt();
    server = await startHttpFixture((req, res) => {
      // A hostile server: it echoes every credential it got, in every form, in its error answers.
      const auth = req.headers.authorization ?? '';
      const echo = `you sent ${auth} (${encodeURIComponent(key)}, ${Buffer.from(key).toString('base64')}, ${Buffer.from(`me:${key}`).toString('base64')}) from ${req.url}`;
      if (req.url.includes('flaky')) return json(res, 503, { error: { message: echo } });
      return json(res, 401, { error: { message: echo } });
    });
  }, 300_000);
  afterAll(async () => {
    await server?.close();
  });

  it('pull: user info and signed query parameters appear in no warning and no ERR_DOWNLOAD message', async () => {
    const base = server.url.replace('http://', 'http://alice:pa55w0rd-xyz@');
    const home = tempHome();
    for (const file of ['flaky.gguf', 'gated.gguf']) {
      const url = `${base}/${file}?token=tok-abcdef123&X-Amz-Signature=sig-987654&download=1`;
      const r = await runCli(['pull', url, '--dir', `${home}/models`, '--retries', '1', '--verbose'], { env: cliEnv({ HF_TOKEN: 'hf_secret_token_42' }), timeoutMs: 30_000 });
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/ERR_DOWNLOAD: http:\/\/\[redacted\]@127\.0\.0\.1:\d+\/.*token=\[redacted\]&X-Amz-Signature=\[redacted\]&download=1 answered HTTP/);
      if (file === 'flaky.gguf') expect(r.stderr).toMatch(/warning: .*answered HTTP 503.*; resuming in/);
      for (const secret of ['pa55w0rd-xyz', 'alice:', 'tok-abcdef123', 'sig-987654', 'hf_secret_token_42']) expect(r.stderr, secret).not.toContain(secret);
    }
    // The user info was sent as it should be: a Basic Authorization header, to that server only.
    expect(server.requests.at(-1)!.headers.authorization).toBe(`Basic ${Buffer.from('alice:pa55w0rd-xyz').toString('base64')}`);
  });

  it('LLM_API_BASE, api.base_url and --api-base errors show no credentials', async () => {
    const bad = 'ftp://bob:s3cr3t-pass@host.example/v1?api_key=AKIA-12345';
    const errors: unknown[] = [];
    try {
      settingsFromEnv({ LLM_API_BASE: bad });
    } catch (e) {
      errors.push(e);
    }
    try {
      await resolveSettings({ yaml: `llm:\n  api:\n    base_url: "${bad}"\n`, env: {} });
    } catch (e) {
      errors.push(e);
    }
    try {
      new ApiLlmBackend({ baseUrl: 'http://bob:s3cr3t-pass@host.example/v1' });
    } catch (e) {
      errors.push(e);
    }
    expect(errors).toHaveLength(3);
    for (const e of errors) {
      expect(e).toBeInstanceOf(LlamaError);
      const text = `${(e as Error).message}\n${inspect(e, { depth: Infinity })}`;
      expect(text).not.toMatch(/s3cr3t-pass|AKIA-12345/);
    }
    expect((errors[0] as Error).message).toContain('LLM_API_BASE');
    const cli = await runCli(['complete', '--backend', 'api', '--api-base', bad, 'hi'], { env: cliEnv(), timeoutMs: 30_000 });
    expect(cli.code).not.toBe(0);
    expect(cli.stderr).toContain('ERR_');
    expect(cli.stderr).not.toMatch(/s3cr3t-pass|AKIA-12345/);
  });

  it('API errors and logs: the key in no encoding, no Authorization header echoed', async () => {
    const logger = captureLogger();
    const b = new ApiLlmBackend({ baseUrl: `${server.url}/flaky`, apiKey: key, logger, maxRetries: 1, retryDelayMs: 5 });
    const errors: LlamaError[] = [];
    for (const call of [() => b.call({ prompt: 'x' }), () => b.embed('x')]) errors.push(await call().catch((e: LlamaError) => e) as LlamaError);
    const u = new ApiLlmBackend({ baseUrl: server.url, apiKey: key, logger });
    errors.push(await u.chat([{ role: 'user', content: 'x' }]).catch((e: LlamaError) => e) as LlamaError);
    const health = await u.healthCheck();
    await b.dispose();
    await u.dispose();
    expect(errors.map((e) => e.code)).toEqual(['ERR_API_HTTP', 'ERR_API_HTTP', 'ERR_API_HTTP']);
    const everything = [...errors.map((e) => inspect(e, { depth: Infinity, showHidden: true })), logger.text(), JSON.stringify(health)].join('\n');
    expect(everything).toContain('you sent');
    for (const form of [key, encodeURIComponent(key), Buffer.from(key).toString('base64'), Buffer.from(`me:${key}`).toString('base64'), 'Bearer sk-']) {
      expect(everything, form).not.toContain(form);
    }
  });
});
