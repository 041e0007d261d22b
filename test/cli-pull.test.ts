import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync, mkdirSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { expandModelUrl, fileNameFromUrl } from '../lib/cli/pull';
import { cliEnv, ensureCliBuilt, runCli, tempHome } from './support/cli';
import { haveModel, modelPath, STORIES } from './support/models';

// `tea-llama pull` against local HTTP servers on 127.0.0.1: never the internet, never the real ~/.cache.

describe('hf: shorthand', () => {
  it('expands hf:USER/REPO/FILE to the Hugging Face download URL', () => {
    expect(expandModelUrl('hf:ggml-org/models/tinyllamas/stories260K.gguf')).toBe(
      'https://huggingface.co/ggml-org/models/resolve/main/tinyllamas/stories260K.gguf',
    );
    expect(expandModelUrl('hf:bartowski/Phi-4-mini-GGUF/microsoft_Phi-4-mini-instruct-Q3_K_S.gguf')).toBe(
      'https://huggingface.co/bartowski/Phi-4-mini-GGUF/resolve/main/microsoft_Phi-4-mini-instruct-Q3_K_S.gguf',
    );
    expect(expandModelUrl('hf:user/repo@v1.0/a b.gguf')).toBe('https://huggingface.co/user/repo/resolve/v1.0/a%20b.gguf');
    expect(expandModelUrl('https://example.com/m.gguf?x=1')).toBe('https://example.com/m.gguf?x=1');
    // HF_ENDPOINT (a mirror, as the Hugging Face tools read it) replaces https://huggingface.co.
    expect(expandModelUrl('hf:user/repo/f.gguf', { HF_ENDPOINT: 'http://127.0.0.1:8000/' })).toBe('http://127.0.0.1:8000/user/repo/resolve/main/f.gguf');
    expect(() => expandModelUrl('hf:user/repo/f.gguf', { HF_ENDPOINT: 'mirror' })).toThrow("HF_ENDPOINT: expected an http:// or https:// URL, got 'mirror'");
  });

  it('rejects what it cannot expand', () => {
    for (const bad of ['hf:user/file.gguf', 'hf:user//file.gguf', 'hf:user/repo@/f.gguf', 'ftp://host/m.gguf', 'models/m.gguf']) {
      expect(() => expandModelUrl(bad), bad).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }));
    }
  });

  it('takes the file name from the URL', () => {
    expect(fileNameFromUrl('https://huggingface.co/u/r/resolve/main/dir/a%20b.gguf')).toBe('a b.gguf');
    expect(fileNameFromUrl('https://host/dir/')).toBeUndefined();
    expect(fileNameFromUrl('https://host/%2e%2e')).toBeUndefined();
  });
});

type Mode = 'ok' | 'drop-first' | 'drop-without-range' | 'ignore-range';

interface FileServer {
  url: string;
  mode: Mode;
  requests: Array<{ url: string; headers: IncomingHttpHeaders }>;
  close(): Promise<void>;
}

/**
 * Serves `data` at /<name> with Range and If-Range support and an ETag, /missing.gguf as a 404 and /page.gguf as
 * an HTML page. `mode` makes it drop the connection half way through a response, or ignore Range headers.
 */
async function startFileServer(name: string, data: Buffer): Promise<FileServer> {
  const etag = `"${createHash('sha256').update(data).digest('hex').slice(0, 16)}"`;
  const state: FileServer = { url: '', mode: 'ok', requests: [], close: async () => undefined };
  const server: Server = createServer((req, res) => {
    state.requests.push({ url: req.url ?? '', headers: req.headers });
    const index = state.requests.length - 1;
    if (req.url === '/missing.gguf') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
      return;
    }
    if (req.url === '/page.gguf') {
      res.writeHead(200, { 'content-type': 'text/html' }).end('<html><body>Please log in</body></html>');
      return;
    }
    if (req.url !== `/${name}`) {
      res.writeHead(404).end();
      return;
    }
    const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    const ifRange = req.headers['if-range'];
    const useRange = range && state.mode !== 'ignore-range' && (ifRange === undefined || ifRange === etag);
    const start = useRange ? Number(range![1]) : 0;
    if (useRange && start >= data.length) {
      res.writeHead(416, { 'content-range': `bytes */${data.length}` }).end();
      return;
    }
    const body = data.subarray(start);
    res.writeHead(useRange ? 206 : 200, {
      'content-type': 'application/octet-stream',
      'content-length': String(body.length),
      'accept-ranges': 'bytes',
      etag,
      ...(useRange ? { 'content-range': `bytes ${start}-${data.length - 1}/${data.length}` } : {}),
    });
    const drop = (state.mode === 'drop-first' && index === 0) || (state.mode === 'drop-without-range' && !req.headers.range);
    if (drop) {
      res.write(body.subarray(0, Math.floor(body.length / 2)), () => res.socket?.destroy());
      return;
    }
    // In pieces, so the client sees progress.
    let at = 0;
    const next = () => {
      if (at >= body.length) return res.end();
      const piece = body.subarray(at, at + 64 * 1024);
      at += piece.length;
      res.write(piece, next);
    };
    next();
  });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  state.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  state.close = () =>
    new Promise<void>((done) => {
      server.closeAllConnections();
      server.close(() => done());
    });
  return state;
}

describe.runIf(haveModel(STORIES))('tea-llama pull from a local HTTP server', () => {
  const data = readFileSync(modelPath(STORIES));
  const sha256 = createHash('sha256').update(data).digest('hex');
  let server: FileServer;

  beforeAll(async () => {
    ensureCliBuilt();
    server = await startFileServer(STORIES, data);
  }, 300_000);
  afterAll(async () => {
    await server?.close();
  });

  const pull = (args: string[], env: Record<string, string>) => runCli(['pull', ...args], { env });
  const leftovers = (dir: string) => (existsSync(dir) ? readdirSync(dir).filter((f) => f !== STORIES) : []);

  it('downloads into ~/.cache/tea/models with a progress bar, prints the path, and the model works', async () => {
    server.mode = 'ok';
    server.requests.length = 0;
    const env = cliEnv();
    const dir = join(env.HOME, '.cache', 'tea', 'models');
    const r = await pull([`${server.url}/${STORIES}`, '--progress', '--sha256', sha256], env);
    expect(r.code).toBe(0);
    const dest = join(dir, STORIES);
    expect(r.stdout).toBe(`${dest}\n`);
    expect(readFileSync(dest).equals(data)).toBe(true);
    expect(leftovers(dir)).toEqual([]);
    expect(server.requests).toHaveLength(1);
    expect(server.requests[0].headers.range).toBeUndefined();
    // The last frame: bar, percent, bytes, speed, time left.
    expect(r.stderr).toMatch(/^stories260K\.gguf \[#{24}\] 100% {2}1\.13 MiB \/ 1\.13 MiB {2}[\d.]+ [KMG]?i?B\/s {2}0:00 left$/m);
    expect(r.stderr).toContain(`downloaded stories260K.gguf: 1.13 MiB in `);
    expect(r.stderr).toContain(`sha256 ${sha256} (verified)`);

    const again = await pull([`${server.url}/${STORIES}`], env);
    expect(again.code).toBe(0);
    expect(again.stderr).toContain('already in');
    expect(server.requests).toHaveLength(1);

    const text = await runCli(['complete', '--model', dest, '--temperature', '0', '-n', '8', 'Once upon a time'], { env });
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/^, there was a little girl/);
  });

  it('a dropped connection leaves only a .partial file; running the command again resumes it byte-identically', async () => {
    server.mode = 'drop-without-range';
    server.requests.length = 0;
    const dir = join(tempHome(), 'models');
    const first = await pull([`${server.url}/${STORIES}`, '--dir', dir, '--retries', '0'], cliEnv());
    expect(first.code).toBe(1);
    expect(first.stderr.split('\n').filter((l) => l.startsWith('tea-llama:'))).toHaveLength(1);
    expect(first.stderr).toMatch(/tea-llama: ERR_DOWNLOAD: the connection was lost after .* of 1\.13 MiB \(.* kept in .*stories260K\.gguf\.partial: run the command again to resume\)/);
    expect(existsSync(join(dir, STORIES))).toBe(false);
    const kept = statSync(join(dir, `${STORIES}.partial`)).size;
    expect(kept).toBeGreaterThan(0);
    expect(kept).toBeLessThan(data.length);
    expect(existsSync(join(dir, `${STORIES}.lock`))).toBe(false);

    const second = await pull([`${server.url}/${STORIES}`, '--dir', dir], cliEnv());
    expect(second.code).toBe(0);
    expect(second.stderr).toContain(`resuming at`);
    expect(server.requests.map((r) => r.headers.range)).toEqual([undefined, `bytes=${kept}-`]);
    expect(server.requests[1].headers['if-range']).toMatch(/^"[0-9a-f]{16}"$/);
    expect(readFileSync(join(dir, STORIES)).equals(data)).toBe(true);
    expect(leftovers(dir)).toEqual([]);
  });

  it('resumes by itself in the same run after a lost connection', async () => {
    server.mode = 'drop-first';
    server.requests.length = 0;
    const dir = join(tempHome(), 'models');
    const r = await pull([`${server.url}/${STORIES}`, '--dir', dir, '--sha256', sha256], cliEnv());
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/warning: the connection was lost after .*; resuming in [\d.]+ s \(attempt 1 of 3\)/);
    expect(server.requests).toHaveLength(2);
    expect(server.requests[1].headers.range).toMatch(/^bytes=\d+-$/);
    expect(readFileSync(join(dir, STORIES)).equals(data)).toBe(true);
    expect(leftovers(dir)).toEqual([]);
  });

  it('starts over when the server ignores the Range request, and still ends byte-identical', async () => {
    server.mode = 'drop-without-range';
    const dir = join(tempHome(), 'models');
    await pull([`${server.url}/${STORIES}`, '--dir', dir, '--retries', '0'], cliEnv());
    expect(existsSync(join(dir, `${STORIES}.partial`))).toBe(true);
    server.mode = 'ignore-range';
    server.requests.length = 0;
    const r = await pull([`${server.url}/${STORIES}`, '--dir', dir], cliEnv());
    expect(r.code).toBe(0);
    expect(server.requests[0].headers.range).toMatch(/^bytes=\d+-$/);
    expect(r.stderr).toContain('sent the whole file instead of resuming');
    expect(readFileSync(join(dir, STORIES)).equals(data)).toBe(true);
  });

  it('a checksum mismatch deletes the download: no model, no partial file', async () => {
    server.mode = 'ok';
    const dir = join(tempHome(), 'models');
    const wrong = 'ab'.repeat(32);
    const r = await pull([`${server.url}/${STORIES}`, '--dir', dir, '--sha256', wrong], cliEnv());
    expect(r.code).toBe(1);
    expect(r.stderr.split('\n').filter((l) => l.startsWith('tea-llama:'))).toEqual([
      `tea-llama: ERR_CHECKSUM: checksum mismatch for ${STORIES}: expected sha256 ${wrong}, got ${sha256}; the download was deleted`,
    ]);
    expect(readdirSync(dir)).toEqual([]);
    expect(r.stdout).toBe('');

    // A file already there with another checksum is not taken either.
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, STORIES), 'not the model');
    const present = await pull([`${server.url}/${STORIES}`, '--dir', dir, '--sha256', sha256], cliEnv());
    expect(present.code).toBe(1);
    expect(present.stderr).toContain('ERR_CHECKSUM');
    expect(present.stderr).toContain('use --force to download it again');
    const forced = await pull([`${server.url}/${STORIES}`, '--dir', dir, '--sha256', sha256, '--force'], cliEnv());
    expect(forced.code).toBe(0);
    expect(readFileSync(join(dir, STORIES)).equals(data)).toBe(true);
  });

  it('an HTTP error or a file that is not a GGUF model is one line, exit code 1, and leaves nothing', async () => {
    const dir = join(tempHome(), 'models');
    const missing = await pull([`${server.url}/missing.gguf`, '--dir', dir], cliEnv());
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/^tea-llama: ERR_DOWNLOAD: http:\/\/127\.0\.0\.1:\d+\/missing\.gguf answered HTTP 404 Not Found$/m);
    const page = await pull([`${server.url}/page.gguf`, '--dir', dir], cliEnv());
    expect(page.code).toBe(1);
    expect(page.stderr).toMatch(/^tea-llama: ERR_DOWNLOAD: .*page\.gguf is not a valid GGUF model \(.*\); the download was deleted$/m);
    expect(readdirSync(dir)).toEqual([]);
    const refused = await pull(['http://127.0.0.1:9/m.gguf', '--dir', dir, '--retries', '0'], cliEnv());
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/^tea-llama: ERR_DOWNLOAD: cannot reach http:\/\/127\.0\.0\.1:9\/m\.gguf: /m);
    for (const r of [missing, page, refused]) expect(r.stderr).not.toMatch(/^\s+at /m);
    // A URL the command cannot use is a wrong command line: exit code 2.
    const usage = await pull(['hf:only/two.gguf'], cliEnv());
    expect(usage.code).toBe(2);
    expect(usage.stderr).toBe('tea-llama: ERR_INVALID_ARGUMENT: "hf:only/two.gguf" is not hf:USER/REPO/FILE.gguf (see tea-llama pull --help)\n');
  });
});
