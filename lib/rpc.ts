// llama.cpp's RPC backend, client side: checking servers before llama.cpp connects to them.
//
// llama.cpp's RPC client (as patched, patches/rpc-lost-server.patch) throws a bare "server lost" when a server
// cannot be reached or refuses the handshake, and it waits without a timeout for a server that accepts and never answers.
// So before loadModel hands `rpcServers` to llama.cpp, each one is checked here, on the event loop, with a connect
// timeout: a TCP connection and the protocol's HELLO (the first bytes llama.cpp's client sends), then closed.
// listRpcDevices() goes on with the two read-only queries (device count, device memory) for the device listing.
// The wire format is llama.cpp's (ggml/src/ggml-rpc/ggml-rpc.cpp): | cmd: u8 | size: u64 LE | payload |, answered
// by | size: u64 LE | payload |.
import { Socket } from 'node:net';

import { LlamaError } from './errors';

/** The RPC protocol version the vendored llama.cpp speaks (RPC_PROTO_MAJOR_VERSION.MINOR); a server must match. */
export const RPC_PROTOCOL = { major: 7, minor: 0 } as const;

/** Default connect (and answer) timeout of the checks, in ms. */
export const DEFAULT_RPC_CONNECT_TIMEOUT_MS = 5000;

const CMD_GET_DEVICE_MEMORY = 11;
const CMD_HELLO = 14;
const CMD_DEVICE_COUNT = 15;
/** rpc_msg_hello_req: the connection capabilities (all zero: plain TCP, no RDMA). */
const CONN_CAPS_SIZE = 24;
/** rpc_msg_hello_rsp: major, minor, patch, padding, conn_caps. */
const HELLO_RSP_SIZE = 4 + CONN_CAPS_SIZE;

const ENDPOINT = /^([A-Za-z0-9.\-_]+):(\d{1,5})$/;

/** Whether `value` is an endpoint parseRpcEndpoint accepts (the settings file and the command line check with it). */
export function isRpcEndpoint(value: unknown): boolean {
  const match = typeof value === 'string' ? ENDPOINT.exec(value.trim()) : null;
  return match !== null && Number(match[2]) >= 1 && Number(match[2]) <= 65535;
}

/**
 * Checks a `host:port` endpoint as llama.cpp parses it (host up to the first colon, a decimal port): no scheme,
 * no IPv6 literal, a port from 1 to 65535. Returns it trimmed.
 */
export function parseRpcEndpoint(value: unknown, name = 'rpcServers[i]'): { endpoint: string; host: string; port: number } {
  if (typeof value !== 'string') throw new LlamaError('ERR_INVALID_ARGUMENT', `${name} must be a "host:port" string`);
  const endpoint = value.trim();
  const match = ENDPOINT.exec(endpoint);
  const port = match ? Number(match[2]) : NaN;
  if (!match || port < 1 || port > 65535) {
    throw new LlamaError('ERR_INVALID_ARGUMENT', `${name} must be "host:port" with a port from 1 to 65535, as llama.cpp's --rpc takes it (got ${JSON.stringify(value.slice(0, 100))})`);
  }
  return { endpoint, host: match[1], port };
}

/** One device of an RPC server, as llama.cpp's client sees it. */
export interface RpcDevice {
  /** `host:port` of the server. */
  endpoint: string;
  /** The device's index on that server (llama.cpp names them RPC0, RPC1, … across all servers of a model). */
  index: number;
  freeBytes: number;
  totalBytes: number;
}

/** An RPC server's answer to the checks. */
export interface RpcServerInfo {
  endpoint: string;
  /** The protocol version it speaks, `major.minor.patch`. */
  version: string;
  devices: RpcDevice[];
}

/** A connection that reads exact answers, every wait bounded by `timeoutMs`. Main thread (event loop) only. */
class RpcConnection {
  readonly #socket = new Socket();
  readonly #endpoint: string;
  readonly #timeoutMs: number;
  #buffer = Buffer.alloc(0);
  #error: LlamaError | undefined;
  #wake: (() => void) | undefined;

  private constructor(endpoint: string, timeoutMs: number) {
    this.#endpoint = endpoint;
    this.#timeoutMs = timeoutMs;
    this.#socket.on('data', (chunk: Buffer) => {
      this.#buffer = Buffer.concat([this.#buffer, chunk]);
      this.#wake?.();
    });
    this.#socket.on('error', (error: NodeJS.ErrnoException) => this.#fail(`${error.code ?? error.message}`));
    this.#socket.on('close', () => this.#fail('the server closed the connection'));
  }

  static async open(host: string, port: number, endpoint: string, timeoutMs: number): Promise<RpcConnection> {
    const c = new RpcConnection(endpoint, timeoutMs);
    await c.#wait('connect', () => c.#connected, () => c.#socket.connect({ host, port }, () => {
      c.#connected = true;
      c.#wake?.();
    }));
    return c;
  }

  #connected = false;

  #fail(reason: string): void {
    this.#error ??= new LlamaError('ERR_RPC_CONNECTION', `RPC server ${this.#endpoint}: ${reason}`);
    this.#wake?.();
  }

  /** Waits until `ready()`, failing on a socket error or after the timeout. */
  async #wait(what: string, ready: () => boolean, start?: () => void): Promise<void> {
    await new Promise<void>((done, fail) => {
      const timer = setTimeout(() => {
        this.#wake = undefined;
        const hint = what === 'connect' ? '' : ' (an rpc-server serves one client at a time: is another process using it?)';
        fail(new LlamaError('ERR_RPC_CONNECTION', `RPC server ${this.#endpoint}: no ${what} within ${this.#timeoutMs} ms (rpcConnectTimeoutMs)${hint}`));
      }, this.#timeoutMs);
      this.#wake = () => {
        if (!this.#error && !ready()) return;
        clearTimeout(timer);
        this.#wake = undefined;
        if (this.#error && !ready()) fail(this.#error);
        else done();
      };
      start?.();
      this.#wake();
    });
  }

  /** Sends a command and reads its answer of exactly `size` bytes. */
  async call(cmd: number, payload: Buffer, size: number, what: string): Promise<Buffer> {
    const header = Buffer.alloc(9);
    header.writeUInt8(cmd, 0);
    header.writeBigUInt64LE(BigInt(payload.length), 1);
    this.#socket.write(Buffer.concat([header, payload]));
    await this.#wait(`answer to ${what}`, () => this.#buffer.length >= 8);
    const announced = this.#buffer.readBigUInt64LE(0);
    if (announced !== BigInt(size)) {
      throw new LlamaError('ERR_RPC_CONNECTION', `RPC server ${this.#endpoint}: not a llama.cpp rpc-server of this version (${what} answered ${announced} bytes, expected ${size})`);
    }
    await this.#wait(`answer to ${what}`, () => this.#buffer.length >= 8 + size);
    const answer = this.#buffer.subarray(8, 8 + size);
    this.#buffer = this.#buffer.subarray(8 + size);
    return answer;
  }

  close(): void {
    this.#socket.destroy();
  }
}

/**
 * Connects to an rpc-server, checks its protocol version and, with `devices`, reads its devices' memory; closes
 * the connection (the server then takes its next client). Every step is bounded by `timeoutMs`.
 *
 * @throws LlamaError ERR_RPC_CONNECTION: refused, unreachable or silent within the timeout, not an rpc-server, or
 *   another protocol version; ERR_INVALID_ARGUMENT for a malformed endpoint.
 */
export async function checkRpcServer(endpoint: string, { timeoutMs = DEFAULT_RPC_CONNECT_TIMEOUT_MS, devices = false } = {}): Promise<RpcServerInfo> {
  const { host, port, endpoint: trimmed } = parseRpcEndpoint(endpoint, 'endpoint');
  const connection = await RpcConnection.open(host, port, trimmed, timeoutMs);
  try {
    const hello = await connection.call(CMD_HELLO, Buffer.alloc(CONN_CAPS_SIZE), HELLO_RSP_SIZE, 'HELLO');
    const [major, minor, patch] = [hello[0], hello[1], hello[2]];
    const version = `${major}.${minor}.${patch}`;
    if (major !== RPC_PROTOCOL.major || minor > RPC_PROTOCOL.minor) {
      throw new LlamaError('ERR_RPC_CONNECTION', `RPC server ${trimmed} speaks protocol ${version}; this build of llama.cpp needs ${RPC_PROTOCOL.major}.${RPC_PROTOCOL.minor}.x (run the rpc-server of the same llama.cpp release: tea-llama rpc-server)`);
    }
    const list: RpcDevice[] = [];
    if (devices) {
      const count = (await connection.call(CMD_DEVICE_COUNT, Buffer.alloc(0), 4, 'DEVICE_COUNT')).readUInt32LE(0);
      for (let index = 0; index < Math.min(count, 64); index++) {
        const request = Buffer.alloc(4);
        request.writeUInt32LE(index, 0);
        const memory = await connection.call(CMD_GET_DEVICE_MEMORY, request, 16, 'GET_DEVICE_MEMORY');
        list.push({ endpoint: trimmed, index, freeBytes: Number(memory.readBigUInt64LE(0)), totalBytes: Number(memory.readBigUInt64LE(8)) });
      }
    }
    return { endpoint: trimmed, version, devices: list };
  } finally {
    connection.close();
  }
}

/** Endpoints that a live model of this process holds a connection to (an rpc-server serves one client at a time). */
const inUse = new Map<string, number>();

/** Marks endpoints as held by a model; the returned function releases them (once). */
export function holdRpcServers(endpoints: readonly string[]): () => void {
  for (const e of endpoints) inUse.set(e, (inUse.get(e) ?? 0) + 1);
  let released = false;
  return () => {
    if (released) return;
    released = true;
    for (const e of endpoints) {
      const n = (inUse.get(e) ?? 1) - 1;
      if (n <= 0) inUse.delete(e);
      else inUse.set(e, n);
    }
  };
}

/**
 * The check loadModel runs before llama.cpp connects: every server at once, each within `timeoutMs`. A server a
 * live model of this process already uses is not checked (llama.cpp shares that connection, and the server would
 * not answer a second one while it serves the first).
 *
 * @throws LlamaError ERR_RPC_CONNECTION naming every server that failed.
 */
export async function preflightRpcServers(endpoints: readonly string[], timeoutMs: number): Promise<void> {
  const results = await Promise.allSettled(endpoints.filter((e) => !inUse.has(e)).map((e) => checkRpcServer(e, { timeoutMs })));
  const failed = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected').map((r) => (r.reason as Error).message);
  if (failed.length > 0) throw new LlamaError('ERR_RPC_CONNECTION', failed.length === 1 ? failed[0] : `${failed.length} RPC servers failed: ${failed.join('; ')}`);
}

/**
 * The devices of each RPC server with their memory, as llama.cpp will see them: `[{ endpoint, version, devices:
 * [{ index, freeBytes, totalBytes }] }]`. A server in use by a model of this process cannot answer a second
 * connection, so it is listed without devices.
 *
 * @throws LlamaError ERR_RPC_CONNECTION for a server that cannot be reached within `timeoutMs` (default 5000).
 */
export async function listRpcDevices(endpoints: readonly string[], { timeoutMs = DEFAULT_RPC_CONNECT_TIMEOUT_MS } = {}): Promise<(RpcServerInfo & { inUse: boolean })[]> {
  if (!Array.isArray(endpoints)) throw new LlamaError('ERR_INVALID_ARGUMENT', 'endpoints must be an array of "host:port" strings');
  const checked = endpoints.map((e, k) => parseRpcEndpoint(e, `endpoints[${k}]`).endpoint);
  return Promise.all(
    checked.map(async (e) =>
      inUse.has(e) ? { endpoint: e, version: `${RPC_PROTOCOL.major}.${RPC_PROTOCOL.minor}.x`, devices: [], inUse: true } : { ...(await checkRpcServer(e, { timeoutMs, devices: true })), inUse: false },
    ),
  );
}
