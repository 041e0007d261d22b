import { spawn } from 'node:child_process';
import { connect, createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { LlamaError, listRpcDevices, loadModel, resolveSettings, type LlamaModel } from '../lib';
import { ensureCliBuilt, runCli } from './support/cli';
import { freePort } from './support/llama-server';
import { haveModel, modelPath, repoRoot, STORIES, STORY_PROMPTS } from './support/models';
import { startRpcServer, type RpcServer } from './support/rpc-server';
import { failure } from './support/failure';

// llama.cpp's RPC backend: two real rpc-servers (build/tools/ggml-rpc-server) on loopback, the model's layers on
// them, greedy text compared with the same model on the local CPU.

/** Graph computations a server ran (GGML_RPC_DEBUG=1 logs one line per command; a repeated graph is a recompute). */
function computations(server: RpcServer): number {
  return server.output().split('\n').filter((l) => /\[graph_(re)?compute\]/.test(l)).length;
}

const GREEDY = { maxTokens: 48, temperature: 0 };

describe.runIf(haveModel(STORIES))('RPC: a model over rpc-servers on loopback', () => {
  let servers: RpcServer[] = [];
  const local = new Map<string, string>();

  beforeAll(async () => {
    servers = await Promise.all([startRpcServer(), startRpcServer()]);
    const model = await loadModel(modelPath(STORIES), { threads: 1, contextSize: 512 });
    for (const prompt of STORY_PROMPTS.slice(0, 3)) local.set(prompt, (await model.complete(prompt, GREEDY)).text);
    await model.dispose();
  });
  afterAll(async () => {
    await Promise.all(servers.map((s) => s.stop()));
  });

  async function greedyTexts(model: LlamaModel): Promise<void> {
    for (const [prompt, text] of local) {
      expect(text.length).toBeGreaterThan(20);
      expect((await model.complete(prompt, GREEDY)).text).toBe(text);
    }
  }

  it('every layer over two rpc-servers (and a tensor split between them): the local greedy text', async () => {
    const [a, b] = servers;
    const [before, beforeB] = [computations(a), computations(b)];
    const model = await loadModel(modelPath(STORIES), { threads: 1, contextSize: 512, rpcServers: [a.endpoint, b.endpoint] });
    try {
      await greedyTexts(model);
    } finally {
      await model.dispose();
    }
    expect(computations(a)).toBeGreaterThan(before);
    expect(computations(b)).toBeGreaterThan(beforeB);

    const split = await loadModel(modelPath(STORIES), { threads: 1, contextSize: 512, rpcServers: [a.endpoint, b.endpoint], gpuLayers: -1, tensorSplit: [1, 3] });
    try {
      await greedyTexts(split);
    } finally {
      await split.dispose();
    }
  });

  it('layers split between the local CPU and one rpc-server: the local greedy text', async () => {
    const [a] = servers;
    const before = computations(a);
    const model = await loadModel(modelPath(STORIES), { threads: 1, contextSize: 512, rpcServers: [a.endpoint], gpuLayers: 2 });
    try {
      expect(model.info.layerCount).toBeGreaterThan(2);
      await greedyTexts(model);
    } finally {
      await model.dispose();
    }
    expect(computations(a)).toBeGreaterThan(before);
  });

  it('listRpcDevices: each server with its protocol version and its devices memory', async () => {
    const listed = await listRpcDevices(servers.map((s) => s.endpoint));
    expect(listed).toHaveLength(2);
    for (const [k, entry] of listed.entries()) {
      expect(entry).toMatchObject({ endpoint: servers[k].endpoint, version: '7.0.0', inUse: false });
      expect(entry.devices).toHaveLength(1);
      expect(entry.devices[0].totalBytes).toBeGreaterThan(2 ** 20);
      expect(entry.devices[0].freeBytes).toBeGreaterThan(0);
    }
    // While a model holds a server (it serves one client at a time), it is listed as in use, not waited for.
    const model = await loadModel(modelPath(STORIES), { threads: 1, contextSize: 512, rpcServers: [servers[0].endpoint] });
    try {
      const started = performance.now();
      const [held] = await listRpcDevices([servers[0].endpoint], { timeoutMs: 3000 });
      expect(performance.now() - started).toBeLessThan(1000);
      expect(held).toMatchObject({ inUse: true, devices: [] });
    } finally {
      await model.dispose();
    }
  });

  it('an unreachable, silent or foreign endpoint is ERR_RPC_CONNECTION within the connect timeout, before llama.cpp sees it', async () => {
    const refused = `127.0.0.1:${await freePort()}`;
    let started = performance.now();
    let error = await failure(loadModel(modelPath(STORIES), { rpcServers: [refused] }));
    expect(performance.now() - started).toBeLessThan(2000);
    expect(error.code).toBe('ERR_RPC_CONNECTION');
    expect(error.message).toBe(`RPC server ${refused}: ECONNREFUSED`);

    // Accepts, never answers (a server busy with another client looks like this).
    const silent: Server = createServer(() => undefined);
    // Answers HTTP, not RPC.
    const foreign: Server = createServer((socket) => socket.end('HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n'));
    await Promise.all([silent, foreign].map((s) => new Promise<void>((done) => s.listen(0, '127.0.0.1', done))));
    const at = (s: Server) => `127.0.0.1:${(s.address() as { port: number }).port}`;
    try {
      started = performance.now();
      error = await failure(loadModel(modelPath(STORIES), { rpcServers: [servers[0].endpoint, at(silent), at(foreign)], rpcConnectTimeoutMs: 400 }));
      const ms = performance.now() - started;
      expect(ms).toBeGreaterThanOrEqual(390);
      expect(ms).toBeLessThan(3000);
      expect(error.code).toBe('ERR_RPC_CONNECTION');
      expect(error.message).toContain('2 RPC servers failed');
      expect(error.message).toContain(`RPC server ${at(silent)}: no answer to HELLO within 400 ms (rpcConnectTimeoutMs)`);
      expect(error.message).toContain(`RPC server ${at(foreign)}: not a llama.cpp rpc-server of this version`);
    } finally {
      silent.close();
      foreign.close();
    }
    // The servers that were fine still serve.
    const model = await loadModel(modelPath(STORIES), { threads: 1, contextSize: 512, rpcServers: [servers[0].endpoint] });
    await greedyTexts(model);
    await model.dispose();
  });

  it('options are checked before anything connects', async () => {
    for (const [options, message] of [
      [{ rpcServers: 'a:1' }, /rpcServers must be an array/],
      [{ rpcServers: ['http://a:1'] }, /rpcServers\[0\] must be "host:port"/],
      [{ rpcServers: ['a:0'] }, /port from 1 to 65535/],
      [{ rpcServers: ['a:1', 'a:1'] }, /twice/],
      [{ tensorSplit: [0, 0] }, /not all 0/],
      [{ tensorSplit: [1, Number.NaN] }, /tensorSplit/],
      [{ rpcConnectTimeoutMs: 0 }, /rpcConnectTimeoutMs/],
      [{ rpcServer: ['a:1'] }, /unknown option 'rpcServer'.*rpcServers/],
    ] as const) {
      const error = await failure(loadModel(modelPath(STORIES), options as never));
      expect(error.code).toBe('ERR_INVALID_ARGUMENT');
      expect(error.message).toMatch(message);
    }
  });

  it('settings and the command line: llm.rpc_servers, LLM_RPC_SERVERS, --rpc (every layer by default), info lists the devices', async () => {
    const [a, b] = servers;
    const fromYaml = await resolveSettings({ yaml: `llm:\n  rpc_servers: [${a.endpoint}, ${b.endpoint}]\n`, env: {} });
    expect(fromYaml).toMatchObject({ rpcServers: [a.endpoint, b.endpoint], gpuLayers: -1 });
    const fromEnv = await resolveSettings({ env: { LLM_RPC_SERVERS: `${a.endpoint},${b.endpoint}` }, yaml: 'llm:\n  n_gpu_layers: 1\n' });
    expect(fromEnv).toMatchObject({ rpcServers: [a.endpoint, b.endpoint], gpuLayers: 1 });
    const bad = await failure(resolveSettings({ env: { LLM_RPC_SERVERS: 'http://a:1' } }));
    expect(bad.message).toContain('LLM_RPC_SERVERS: expected "host:port" RPC servers');

    ensureCliBuilt();
    const before = computations(a);
    const prompt = [...local.keys()][0];
    const cli = await runCli(['complete', '--model', modelPath(STORIES), '--rpc', a.endpoint, '-c', '512', '-t', '1', '-n', '48', '--temperature', '0', prompt]);
    expect(cli.stderr).toBe('');
    expect(cli.code).toBe(0);
    expect(cli.stdout.trimEnd()).toBe(local.get(prompt)!.trimEnd());
    expect(computations(a)).toBeGreaterThan(before);

    const info = await runCli(['info', modelPath(STORIES), '--rpc', `${a.endpoint},127.0.0.1:${await freePort()}`]);
    expect(info.code).toBe(0);
    expect(info.stdout).toMatch(/gpu layers\s+-1\s+the default with RPC servers: every layer/);
    expect(info.stdout).toMatch(new RegExp(`${a.endpoint}  protocol 7\\.0\\.0; device 0: .* free of `));
    expect(info.stdout).toContain('unreachable: ERR_RPC_CONNECTION');
  });

  // llama.cpp's RPC client aborted the process on a lost server; with patches/rpc-lost-server.patch it throws, and
  // the model's requests get ERR_RPC_CONNECTION. The model is unusable from then on, the process is not.
  it('a server killed mid-generation: ERR_RPC_CONNECTION within a bound, later requests fail fast, dispose works, the process goes on', async () => {
    const victim = await startRpcServer();
    const rssBefore = process.memoryUsage().rss;
    const model = await loadModel(modelPath(STORIES), { threads: 1, contextSize: 512, rpcServers: [victim.endpoint] });
    let chunks = 0;
    let killedAt = 0;
    try {
      const error = await failure(
        (async () => {
          for await (const chunk of model.stream('Once upon a time', { maxTokens: 450, temperature: 0 })) {
            void chunk;
            if (++chunks === 1) {
              await victim.stop(); // SIGKILL, and its exit seen
              killedAt = performance.now();
            }
          }
        })(),
      );
      expect(chunks).toBeGreaterThan(0);
      expect(chunks).toBeLessThan(450);
      expect(error.code).toBe('ERR_RPC_CONNECTION');
      expect(error.message).toContain(`ggml-rpc: server lost: ${victim.endpoint}`);
      expect(performance.now() - killedAt).toBeLessThan(5000);

      // The model's layers were on that server: every later request fails at once with the same error.
      for (const next of [() => model.complete('Once', GREEDY), () => model.complete('The dog', GREEDY)]) {
        const started = performance.now();
        const again = await failure(next());
        expect(again.code).toBe('ERR_RPC_CONNECTION');
        expect(again.message).toContain(`ggml-rpc: server lost: ${victim.endpoint}`);
        expect(performance.now() - started).toBeLessThan(500);
      }
    } finally {
      const started = performance.now();
      await model.dispose();
      expect(performance.now() - started).toBeLessThan(5000);
    }
    // The process goes on: a model on the local CPU gives the local greedy text, and the other servers still serve.
    const [prompt, text] = [...local.entries()][0];
    const fresh = await loadModel(modelPath(STORIES), { threads: 1, contextSize: 512 });
    try {
      expect((await fresh.complete(prompt, GREEDY)).text).toBe(text);
    } finally {
      await fresh.dispose();
    }
    const remote = await loadModel(modelPath(STORIES), { threads: 1, contextSize: 512, rpcServers: [servers[0].endpoint] });
    try {
      expect((await remote.complete(prompt, GREEDY)).text).toBe(text);
    } finally {
      await remote.dispose();
    }
    expect(process.memoryUsage().rss - rssBefore).toBeLessThan(256 * 2 ** 20);
  });

  it('a stalled server (SIGSTOP, connection open): ERR_RPC_CONNECTION after rpcTimeoutMs, not a hang', async () => {
    const victim = await startRpcServer();
    const model = await loadModel(modelPath(STORIES), { threads: 1, contextSize: 512, rpcServers: [victim.endpoint], rpcTimeoutMs: 800 });
    let stoppedAt = 0;
    try {
      const error = await failure(
        (async () => {
          let chunks = 0;
          for await (const chunk of model.stream('Once upon a time', { maxTokens: 450, temperature: 0 })) {
            void chunk;
            if (++chunks === 1) {
              victim.child.kill('SIGSTOP');
              stoppedAt = performance.now();
            }
          }
        })(),
      );
      const waited = performance.now() - stoppedAt;
      expect(error.code).toBe('ERR_RPC_CONNECTION');
      expect(error.message).toContain(`ggml-rpc: server lost: ${victim.endpoint}`);
      expect(waited).toBeGreaterThanOrEqual(700);
      expect(waited).toBeLessThan(5000);
      expect((await failure(model.complete('Once', GREEDY))).code).toBe('ERR_RPC_CONNECTION');
    } finally {
      await model.dispose();
      victim.child.kill('SIGCONT');
      await victim.stop();
    }
    const bad = await failure(loadModel(modelPath(STORIES), { rpcServers: [servers[0].endpoint], rpcTimeoutMs: -1 }));
    expect(bad.code).toBe('ERR_INVALID_ARGUMENT');
    expect(bad.message).toContain('rpcTimeoutMs');
  });

  it('a connection lost while the weights are sent: loadModel rejects with ERR_RPC_CONNECTION, nothing aborts', async () => {
    // A loopback proxy to a real rpc-server that cuts the model's connection after 64 KiB of weights (the
    // preflight's connection, a few bytes, passes).
    const [target] = servers;
    const targetPort = Number(target.endpoint.split(':')[1]);
    const proxy: Server = createServer((client) => {
      const upstream = connect(targetPort, '127.0.0.1');
      let sent = 0;
      client.on('data', (d: Buffer) => {
        sent += d.length;
        if (sent > 64 * 1024) {
          client.destroy();
          upstream.destroy();
        } else upstream.write(d);
      });
      upstream.on('data', (d: Buffer) => client.write(d));
      client.on('error', () => upstream.destroy());
      upstream.on('error', () => client.destroy());
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
    });
    await new Promise<void>((done) => proxy.listen(0, '127.0.0.1', done));
    const endpoint = `127.0.0.1:${(proxy.address() as { port: number }).port}`;
    try {
      const started = performance.now();
      const error = await failure(loadModel(modelPath(STORIES), { threads: 1, contextSize: 512, rpcServers: [endpoint] }));
      expect(error.code).toBe('ERR_RPC_CONNECTION');
      expect(error.message).toContain(`ggml-rpc: server lost: ${endpoint}`);
      expect(performance.now() - started).toBeLessThan(5000);
    } finally {
      proxy.close();
    }
    // The server behind the proxy serves the next client.
    const model = await loadModel(modelPath(STORIES), { threads: 1, contextSize: 512, rpcServers: [target.endpoint] });
    try {
      await greedyTexts(model);
    } finally {
      await model.dispose();
    }
  });
});

describe('tea-llama rpc-server', () => {
  it('--help names the security rule; a bad port is a usage error', async () => {
    const help = await runCli(['rpc-server', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('no authentication');
    const bad = await runCli(['rpc-server', '--port', '70000']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--port must be an integer from 1 to 65535');
  });

  it('serves on 127.0.0.1 by default; another address gets the loud warning', async () => {
    // 127.0.0.2 is another address (so the warning shows) that is still only reachable from this machine.
    for (const host of [undefined, '127.0.0.2']) {
      const port = await freePort();
      const args = ['rpc-server', '--port', String(port), '--threads', '1', ...(host ? ['--host', host] : [])];
      const child = spawn(process.execPath, [join(repoRoot, 'bin', 'tea-llama.js'), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      try {
        const deadline = Date.now() + 20_000;
        let listed;
        for (;;) {
          try {
            listed = await listRpcDevices([`${host ?? '127.0.0.1'}:${port}`], { timeoutMs: 2000 });
            break;
          } catch (error) {
            if (Date.now() > deadline) throw error;
            await new Promise((r) => setTimeout(r, 100));
          }
        }
        expect(listed[0].devices.length).toBeGreaterThan(0);
        if (host) expect(stderr).toContain('listening on 127.0.0.2, not 127.0.0.1. The RPC protocol has NO authentication');
        else expect(stderr).not.toContain('NO authentication');
      } finally {
        const exited = new Promise((done) => child.once('exit', done));
        child.kill('SIGTERM');
        await exited;
      }
    }
  });
});
