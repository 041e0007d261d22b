// llama.cpp's rpc-server (build/tools/ggml-rpc-server) on 127.0.0.1 and a free port, for the RPC tests.
import { spawn, type ChildProcess } from 'node:child_process';

import { checkRpcServer } from '../../lib';
import { freePort, toolPath } from './llama-server';

export interface RpcServer {
  /** `127.0.0.1:<port>` */
  endpoint: string;
  child: ChildProcess;
  /** Everything it printed (with GGML_RPC_DEBUG=1: one line per command it served). */
  output: () => string;
  stop: () => Promise<void>;
}

/** Starts one rpc-server with one CPU thread and waits until it answers the protocol's HELLO. */
export async function startRpcServer(): Promise<RpcServer> {
  const port = await freePort();
  const child = spawn(toolPath('ggml-rpc-server'), ['-H', '127.0.0.1', '-p', String(port), '-t', '1'], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, GGML_RPC_DEBUG: '1' },
  });
  let output = '';
  const keep = (d: Buffer) => {
    // Kept whole (tests count its lines); bounded all the same.
    if (output.length < 50_000_000) output += d.toString();
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const exited = new Promise<void>((done) => child.once('exit', () => done()));
  const endpoint = `127.0.0.1:${port}`;
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`rpc-server exited: ${output}`);
    try {
      await checkRpcServer(endpoint, { timeoutMs: 2000 });
      break;
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  return {
    endpoint,
    child,
    output: () => output,
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGKILL');
      await exited;
    },
  };
}
