// llama.cpp's own llama-server, started for tests and the benchmark: the vendored tools built by
// `npm run build:tools` into build/tools, on 127.0.0.1 and a free port, with /health awaited, the tail of its
// stderr kept for error messages, and small JSON and server-sent-event clients. Types: llama-server-harness.d.mts.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const toolsDir = resolve(dirname(fileURLToPath(import.meta.url)), '..', 'build', 'tools');

/**
 * The path of one of llama.cpp's tools in build/tools; throws when it has not been built.
 * @param {string} name e.g. 'llama-server'
 */
export function toolPath(name) {
  const path = join(toolsDir, name + (process.platform === 'win32' ? '.exe' : ''));
  if (!existsSync(path)) throw new Error(`${path} is missing: run \`npm run build:tools\``);
  return path;
}

/** A TCP port free on 127.0.0.1 at the time of the call. @returns {Promise<number>} */
export function freePort() {
  return new Promise((done, fail) => {
    const server = createServer();
    server.unref();
    server.on('error', fail);
    server.listen(0, '127.0.0.1', () => {
      const { port } = /** @type {import('node:net').AddressInfo} */ (server.address());
      server.close(() => done(port));
    });
  });
}

// Servers still running when this process exits (a test runner's worker that ends without stop()) go with it.
const live = new Set();
process.once('exit', () => live.forEach((child) => child.kill('SIGKILL')));

/**
 * Throws an Error carrying the status and body of a non-2xx answer.
 * @param {Response} res
 * @param {string} path
 */
async function check(res, path) {
  if (res.ok) return res;
  const body = await res.text();
  throw Object.assign(new Error(`${path} answered ${res.status}: ${body}`), { status: res.status, body });
}

/**
 * Starts llama-server on 127.0.0.1 with `-m model`, a free port, --no-webui and `args`, and waits until /health
 * answers ok. `command` starts another server with the same command line and health check instead (the benchmark
 * runs `tea-llama serve` so: its own process, as llama-server is), without --no-webui.
 * @param {string} model
 * @param {string[]} [args]
 * @param {import('./llama-server-harness.d.mts').StartOptions} [options]
 * @returns {Promise<import('./llama-server-harness.d.mts').LlamaServer>}
 */
export async function startLlamaServer(model, args = [], { bin, command, timeoutMs = 120_000, onSpawn } = {}) {
  const port = await freePort();
  const [file, ...leading] = command ?? [bin ?? toolPath('llama-server')];
  const own = ['-m', model, '--host', '127.0.0.1', '--port', String(port), ...(command ? [] : ['--no-webui'])];
  const child = spawn(/** @type {string} */ (file), [...leading, ...own, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  const name = command ? command.join(' ') : 'llama-server';
  live.add(child);
  child.once('exit', () => live.delete(child));
  if (child.pid !== undefined) onSpawn?.(child.pid);
  /** @type {Error | undefined} */
  let failed; // a spawn error (no such file, not executable): the child never runs
  child.once('error', (error) => {
    failed = error;
  });
  let stderr = '';
  child.stderr.on('data', (d) => {
    stderr = (stderr + d.toString()).slice(-8000);
  });
  const exited = new Promise((done) => child.once('exit', done));
  const running = () => child.exitCode === null && child.signalCode === null;
  const stop = async () => {
    if (!running()) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  };
  const baseUrl = `http://127.0.0.1:${port}`;

  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (failed) throw new Error(`${name} could not start: ${failed.message}`);
    if (!running()) throw new Error(`${name} exited with ${child.exitCode ?? child.signalCode}:\n${stderr}`);
    try {
      if ((await fetch(`${baseUrl}/health`)).ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`${name} did not become healthy in ${timeoutMs / 1000} s:\n${stderr}`);
    }
    // Short: the benchmark counts the time to healthy as load time.
    await new Promise((r) => setTimeout(r, 20));
  }

  /** @type {(path: string, body: unknown) => Promise<Response>} */
  const request = async (path, body) =>
    check(await fetch(baseUrl + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }), path);

  return {
    baseUrl,
    pid: /** @type {number} */ (child.pid),
    stop,
    /** The last 8000 characters llama-server wrote to stderr. */
    stderrTail: () => stderr,
    /** POSTs JSON; resolves the parsed JSON answer. */
    async post(path, body) {
      return JSON.parse(await (await request(path, body)).text());
    },
    /**
     * POSTs JSON (add `stream: true` to the body) and calls onEvent with every server-sent event's parsed data
     * as it arrives; resolves the last one. OpenAI's closing `[DONE]` is skipped.
     */
    async stream(path, body, onEvent) {
      const res = await request(path, body);
      const decoder = new TextDecoder();
      let buffer = '';
      /** @type {any} */
      let last;
      /** @param {string} line */
      const take = (line) => {
        if (!line.startsWith('data:')) return;
        const data = line.slice(5).trim();
        if (data === '[DONE]') return;
        last = JSON.parse(data);
        onEvent?.(last);
      };
      for await (const piece of /** @type {AsyncIterable<Uint8Array>} */ (res.body)) {
        buffer += decoder.decode(piece, { stream: true });
        const lines = buffer.split('\n');
        buffer = /** @type {string} */ (lines.pop());
        lines.forEach(take);
      }
      take(buffer + decoder.decode());
      return last;
    },
  };
}
