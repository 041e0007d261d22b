import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

import { LlamaError } from '../errors';
import { packageRoot } from '../native/load-binding';
import { GLOBAL_HELP, GLOBAL_OPTIONS, intOption, parse } from './args';
import { EXIT, UsageError } from './output';

export const RPC_SERVER_HELP = `Usage: tea-llama rpc-server [options]

Starts llama.cpp's rpc-server (ggml-rpc-server, built with tea-llama from the same llama.cpp release), which lends
this machine's devices to a model loaded elsewhere with --rpc HOST:PORT (loadModel's rpcServers, llm.rpc_servers).
It runs until interrupted.

The RPC protocol has no authentication and no encryption: anyone who can reach the port can run code on this
machine's devices and read what it computes. Keep the default host 127.0.0.1 and reach it through an SSH or
WireGuard tunnel (README: RPC); any other address gets a loud warning.

Options:
      --host HOST        address to listen on (default 127.0.0.1)
  -p, --port N           port (default 50052)
      --threads N        CPU threads of the CPU device (default: llama.cpp's choice)
      --device LIST      devices to lend, comma-separated (default: every accelerator, else the CPU)
      --cache DIR        cache large tensors in DIR, so a model is sent once (llama.cpp's -c, LLAMA_CACHE=DIR)

${GLOBAL_HELP}`;

const OPTIONS = {
  ...GLOBAL_OPTIONS,
  host: { type: 'string' },
  port: { type: 'string', short: 'p' },
  threads: { type: 'string' },
  device: { type: 'string' },
  cache: { type: 'string' },
} as const;

/** ggml-rpc-server of this installation: beside the addon (prebuild layout) or in build/tools (a source build). */
export function rpcServerPath(): string {
  const exe = `ggml-rpc-server${process.platform === 'win32' ? '.exe' : ''}`;
  const root = packageRoot();
  const candidates = [process.env.TEA_RPC_SERVER_BIN, join(root, 'build', 'tools', exe), join(root, 'build', 'Release', exe)].filter((p): p is string => !!p);
  const found = candidates.find((p) => existsSync(p));
  if (!found) {
    throw new LlamaError('ERR_BACKEND_UNAVAILABLE', `llama.cpp's rpc-server is not built (looked for ${candidates.join(', ')}): run \`node scripts/build-native.mjs\` in ${root}`);
  }
  return found;
}

/** The warning for a non-loopback address: the protocol lets anyone who reaches the port use this machine. */
export function exposedWarning(host: string): string | undefined {
  if (host === '127.0.0.1' || host === 'localhost') return undefined;
  const bar = '!'.repeat(100);
  return [
    bar,
    `tea-llama rpc-server: listening on ${host}, not 127.0.0.1. The RPC protocol has NO authentication and NO encryption:`,
    'anyone who can reach this port can allocate memory and run computations on this machine and read the model and the',
    'prompts it processes. Never expose it to an untrusted network; prefer 127.0.0.1 and an SSH or WireGuard tunnel.',
    bar,
  ].join('\n');
}

/** `tea-llama rpc-server`: runs the vendored rpc-server in the foreground, passing its exit status on. */
export async function rpcServerCommand(args: string[]): Promise<number> {
  const { values: v } = parse('rpc-server', args, OPTIONS, false);
  if (v.help) {
    process.stdout.write(RPC_SERVER_HELP + '\n');
    return EXIT.ok;
  }
  const host = v.host ?? '127.0.0.1';
  // llama.cpp splits host:port at the first colon, so an IPv6 literal cannot be served.
  if (!/^[A-Za-z0-9.\-_]+$/.test(host)) throw new UsageError(`--host must be an IPv4 address or a host name, not ${JSON.stringify(host)}`, 'rpc-server');
  const port = intOption('rpc-server', 'port', v.port, 1, 65535) ?? 50052;
  const threads = intOption('rpc-server', 'threads', v.threads, 1, 1024);
  const argv = ['--host', host, '--port', String(port)];
  if (threads !== undefined) argv.push('--threads', String(threads));
  if (v.device !== undefined) argv.push('--device', v.device);
  const env = { ...process.env };
  if (v.cache !== undefined) {
    argv.push('--cache');
    // llama.cpp's cache lives in $LLAMA_CACHE/rpc.
    env.LLAMA_CACHE = v.cache;
  }
  const warning = exposedWarning(host);
  if (warning) process.stderr.write(`\n${warning}\n\n`);
  const bin = rpcServerPath();
  const child = spawn(bin, argv, { stdio: 'inherit', env });
  // SIGINT and SIGTERM are passed on (Ctrl+C in a terminal reaches both anyway); we exit when the child does.
  const forward = (signal: NodeJS.Signals) => child.kill(signal);
  process.on('SIGTERM', forward);
  process.on('SIGINT', forward);
  return await new Promise<number>((done) => {
    child.once('error', (error) => {
      process.stderr.write(`tea-llama rpc-server: cannot start ${bin}: ${error.message}\n`);
      done(EXIT.failure);
    });
    child.once('exit', (code, signal) => {
      process.off('SIGTERM', forward);
      process.off('SIGINT', forward);
      done(signal === 'SIGINT' || signal === 'SIGTERM' ? EXIT.interrupted : (code ?? EXIT.failure));
    });
  });
}
