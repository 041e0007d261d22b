import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { resolve } from 'node:path';

import { repoRoot } from './models';

/** llama.cpp's own tools, built from the same vendored tree by `npm run build:tools`. */
export function toolPath(name: 'llama-server' | 'llama-bench' | 'llama-quantize' | 'llama-completion'): string {
  const path = resolve(repoRoot, 'build', 'tools', name + (process.platform === 'win32' ? '.exe' : ''));
  if (!existsSync(path)) throw new Error(`${path} is missing: run \`npm run build:tools\``);
  return path;
}

export async function freePort(): Promise<number> {
  return new Promise((done, fail) => {
    const server = createServer();
    server.unref();
    server.on('error', fail);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => done(port));
    });
  });
}

export interface LlamaServer {
  baseUrl: string;
  /** POSTs JSON and returns the parsed JSON answer (throws on a non-2xx status). */
  post<T = unknown>(path: string, body: unknown): Promise<T>;
  stop(): Promise<void>;
}

/** Starts the vendored llama-server on 127.0.0.1 with a free port and waits until /health says ok. */
export async function startLlamaServer(model: string, extraArgs: string[] = []): Promise<LlamaServer> {
  const port = await freePort();
  const child: ChildProcess = spawn(
    toolPath('llama-server'),
    ['-m', model, '--host', '127.0.0.1', '--port', String(port), '-t', '2', '--no-webui', ...extraArgs],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-8000);
  });
  const baseUrl = `http://127.0.0.1:${port}`;
  const exited = new Promise<void>((done) => child.once('exit', () => done()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    }
  };

  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`llama-server exited with ${child.exitCode}:\n${stderr}`);
    try {
      const res = await fetch(`${baseUrl}/health`);
      if (res.ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`llama-server did not become healthy in 60 s:\n${stderr}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }

  return {
    baseUrl,
    stop,
    async post<T>(path: string, body: unknown): Promise<T> {
      const res = await fetch(baseUrl + path, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      const text = await res.text();
      if (!res.ok) throw new Error(`${path} answered ${res.status}: ${text}`);
      return JSON.parse(text) as T;
    },
  };
}
