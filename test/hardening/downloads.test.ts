import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import type { ServerResponse } from 'node:http';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { parseSize } from '../../lib/cli/pull';
import { cliEnv, ensureCliBuilt, runCli, spawnCli, collect, tempHome } from '../support/cli';
import { startHttpFixture, type HttpFixture } from '../support/http-fixture';

// `tea-llama pull` against hostile servers on 127.0.0.1, in a child process (what a user runs): compressed
// answers, bodies longer than announced or without end, a server that goes quiet mid-body, and what a failed or
// interrupted pull leaves behind. Each ends with a typed error in bounded time, and the folder holds nothing
// but what a resume needs.

const MiB = 1024 * 1024;

interface Served {
  bytes: number;
  closed: boolean;
}

let server: HttpFixture;
const served = new Map<string, Served>();
const bomb = gzipSync(Buffer.alloc(32 * MiB));

/** Writes zeros for ever (as fast as the client reads) until the connection closes. */
function forever(res: ServerResponse, stat: Served): void {
  const piece = Buffer.alloc(64 * 1024);
  const pump = () => {
    while (!res.destroyed && res.write(piece)) stat.bytes += piece.length;
    if (!res.destroyed) res.once('drain', pump);
  };
  pump();
}

beforeAll(async () => {
  ensureCliBuilt();
  server = await startHttpFixture((req, res) => {
    const path = new URL(req.url, 'http://x').pathname;
    const stat: Served = { bytes: 0, closed: false };
    served.set(path, stat);
    res.on('close', () => (stat.closed = true));
    switch (path) {
      case '/gzip.gguf':
        // Ignores Accept-Encoding: identity and compresses anyway: 32 MiB of zeros in a few KiB.
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-encoding': 'gzip', 'content-length': String(bomb.length) });
        stat.bytes = bomb.length;
        return void res.end(bomb);
      case '/endless.gguf':
        res.writeHead(200, { 'content-type': 'application/octet-stream' }); // chunked, no length
        return forever(res, stat);
      case '/huge.gguf':
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(300 * 1024 * 1024 * MiB) });
        return forever(res, stat);
      case '/more-than-announced.gguf':
        // Resumes at the byte asked for, announces a 1000-byte file, then does not stop.
        res.writeHead(206, { 'content-type': 'application/octet-stream', 'content-range': `bytes ${/bytes=(\d+)-/.exec(req.headers.range ?? '')?.[1] ?? 0}-999/1000` });
        return forever(res, stat);
      case '/quiet.gguf':
        // A few bytes, then nothing, with the connection open.
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(MiB) });
        stat.bytes = 10;
        return void res.write(Buffer.from('GGUF\x03\x00\x00\x00\x00\x00', 'latin1'));
      case '/slow.gguf': {
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(64 * MiB) });
        const timer = setInterval(() => {
          stat.bytes += 16 * 1024;
          res.write(Buffer.alloc(16 * 1024));
        }, 20);
        return void res.on('close', () => clearInterval(timer));
      }
      case '/empty-then-close.gguf':
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(MiB) });
        return void res.socket?.destroy();
      default:
        return void res.writeHead(404).end();
    }
  });
}, 300_000);
afterAll(async () => {
  await server?.close();
});

/** A `tea-llama pull` in a child process; fails the test if it runs longer than `limitMs`. */
async function pull(args: string[], limitMs = 15_000) {
  const started = performance.now();
  // A small heap: a pull that held a body in memory (or expanded one) would die here instead of passing.
  const r = await runCli(['pull', ...args], { env: cliEnv({ NODE_OPTIONS: '--max-old-space-size=64' }), timeoutMs: limitMs });
  const ms = performance.now() - started;
  expect(r.signal, `pull ${args.join(' ')} was killed after ${limitMs} ms:\n${r.stderr}`).toBeNull();
  return { ...r, ms, errors: r.stderr.split('\n').filter((l) => l.startsWith('tea-llama:')) };
}

const newDir = () => join(tempHome(), 'models');
const contents = (dir: string) => (existsSync(dir) ? readdirSync(dir).sort() : []);

describe('tea-llama pull against hostile servers', () => {
  it('asks for no content encoding, and does not expand a gzip answer: ERR_DOWNLOAD, nothing kept', async () => {
    const dir = newDir();
    const r = await pull([`${server.url}/gzip.gguf`, '--dir', dir]);
    expect(r.code).toBe(1);
    expect(r.errors).toEqual([expect.stringMatching(/^tea-llama: ERR_DOWNLOAD: .*gzip\.gguf sent the file with Content-Encoding "gzip" although none was asked for: not expanded/)]);
    expect(server.requests.at(-1)!.headers['accept-encoding']).toBe('identity');
    expect(contents(dir)).toEqual([]);
    expect(r.ms).toBeLessThan(10_000);
  });

  it('a body without end stops at --max-size; a Content-Length past it is refused before a byte is read', async () => {
    const dir = newDir();
    const r = await pull([`${server.url}/endless.gguf`, '--dir', dir, '--max-size', '2M']);
    expect(r.code).toBe(1);
    expect(r.errors).toEqual([expect.stringMatching(/ERR_DOWNLOAD: .*endless\.gguf sent more than the 2\.00 MiB allowed \(--max-size\) without announcing a size: the download was deleted$/)]);
    expect(contents(dir)).toEqual([]);
    expect(served.get('/endless.gguf')!.closed).toBe(true);
    // What the server got out before the client hung up: the limit plus socket buffers, not gigabytes.
    expect(served.get('/endless.gguf')!.bytes).toBeLessThan(64 * MiB);

    // The default (256 GiB) refuses a 300 TiB Content-Length at once.
    const huge = await pull([`${server.url}/huge.gguf`, '--dir', dir]);
    expect(huge.code).toBe(1);
    expect(huge.errors).toEqual([expect.stringMatching(/ERR_DOWNLOAD: .*huge\.gguf is 300 TiB, more than the 256 GiB allowed \(--max-size\): not downloaded$/)]);
    expect(contents(dir)).toEqual([]);
    expect(huge.ms).toBeLessThan(10_000);

    expect(parseSize('256G')).toBe(256 * 1024 ** 3);
    expect(parseSize('1.5 GiB')).toBe(1.5 * 1024 ** 3);
    expect(parseSize('100')).toBe(100);
    for (const bad of ['', '0', '-1', '1X', 'lots']) expect(parseSize(bad), bad).toBeUndefined();
    const usage = await pull([`${server.url}/endless.gguf`, '--dir', dir, '--max-size', 'lots']);
    expect(usage.code).toBe(2);
    expect(usage.errors[0]).toContain('--max-size takes a size');
  });

  it('stops at the announced size: a resumed body longer than its Content-Range is ERR_DOWNLOAD and deleted', async () => {
    const dir = newDir();
    mkdirSync(dir, { recursive: true });
    const url = `${server.url}/more-than-announced.gguf`;
    writeFileSync(join(dir, 'more-than-announced.gguf.partial'), Buffer.alloc(100));
    writeFileSync(join(dir, 'more-than-announced.gguf.partial.json'), JSON.stringify({ url, total: 1000 }));
    const r = await pull([url, '--dir', dir]);
    expect(server.requests.at(-1)!.headers.range).toBe('bytes=100-');
    expect(r.code).toBe(1);
    expect(r.errors).toEqual([expect.stringMatching(/ERR_DOWNLOAD: .*more-than-announced\.gguf sent more than the 1000 bytes it announced: the download was deleted$/)]);
    expect(contents(dir)).toEqual([]);
  });

  it('a server that goes quiet in the body is timed out (--timeout), not waited for', async () => {
    const dir = newDir();
    const r = await pull([`${server.url}/quiet.gguf`, '--dir', dir, '--timeout', '0.5', '--retries', '0']);
    expect(r.code).toBe(1);
    expect(r.errors).toEqual([expect.stringMatching(/ERR_DOWNLOAD: nothing received for 0\.5 s after 10 B of 1\.00 MiB \(10 B kept in .*quiet\.gguf\.partial: run the command again to resume\)$/)]);
    expect(r.ms).toBeLessThan(8000);
    // What a resume needs, and nothing else: the bytes and their validator, no lock.
    expect(contents(dir)).toEqual(['quiet.gguf.partial', 'quiet.gguf.partial.json']);
  });

  it('a failure before any byte leaves nothing; stale leftovers go at the next pull, resumable ones with --clean', async () => {
    const dir = newDir();
    const r = await pull([`${server.url}/empty-then-close.gguf`, '--dir', dir, '--retries', '0']);
    expect(r.code).toBe(1);
    expect(r.errors).toHaveLength(1);
    expect(contents(dir)).toEqual([]);

    // Leftovers of killed pulls: a lock of a process that is gone, metadata without data, an empty partial file;
    // and a resumable download (data and metadata), and one a running process holds.
    const gone = spawn(process.execPath, ['-e', '0']);
    const deadPid = await new Promise<number>((done) => gone.on('exit', () => done(gone.pid!)));
    writeFileSync(join(dir, 'a.gguf.lock'), String(deadPid));
    writeFileSync(join(dir, 'b.gguf.partial.json'), JSON.stringify({ url: 'http://127.0.0.1:9/b.gguf' }));
    writeFileSync(join(dir, 'c.gguf.partial'), '');
    writeFileSync(join(dir, 'd.gguf.partial'), 'GGUF');
    writeFileSync(join(dir, 'd.gguf.partial.json'), JSON.stringify({ url: 'http://127.0.0.1:9/d.gguf' }));
    writeFileSync(join(dir, 'e.gguf.partial'), 'GGUF');
    writeFileSync(join(dir, 'e.gguf.lock'), String(process.pid)); // this test process: alive
    const next = await pull([`${server.url}/missing.gguf`, '--dir', dir]);
    expect(next.code).toBe(1); // a 404: the sweep happened all the same
    expect(contents(dir)).toEqual(['d.gguf.partial', 'd.gguf.partial.json', 'e.gguf.lock', 'e.gguf.partial']);

    const clean = await pull(['--clean', '--dir', dir]);
    expect(clean.code).toBe(0);
    expect(clean.stderr).toContain('removed d.gguf.partial, d.gguf.partial.json');
    expect(clean.stderr).toContain('left alone (a pull is running): e.gguf');
    expect(contents(dir)).toEqual(['e.gguf.lock', 'e.gguf.partial']);
  });

  it('an interrupted pull (Ctrl+C) keeps what a resume needs and releases its lock', async () => {
    const dir = newDir();
    const child = spawnCli(['pull', `${server.url}/slow.gguf`, '--dir', dir], { env: cliEnv() });
    const result = collect(child, undefined, 20_000);
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline && !(existsSync(join(dir, 'slow.gguf.partial')) && statSync(join(dir, 'slow.gguf.partial')).size > 0)) {
      await new Promise((done) => setTimeout(done, 25));
    }
    child.kill('SIGINT');
    const r = await result;
    expect(r.code).toBe(130);
    expect(contents(dir)).toEqual(['slow.gguf.partial', 'slow.gguf.partial.json']);
  });
});
