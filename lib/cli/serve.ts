import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { resolve } from 'node:path';

import { parse as parseYaml } from 'yaml';

import { LocalLlmBackend } from '../backends/local-backend';
import { suggestKey } from '../config/schema';
import { createServer } from '../server/server';
import { GLOBAL_HELP, GLOBAL_OPTIONS, intOption, MODEL_HELP, MODEL_OPTIONS, parse } from './args';
import { commandLogger, openBackend } from './backend';
import { EXIT, UsageError, writeOut } from './output';

export const SERVE_HELP = `Usage: tea-llama serve [options]

Serves the model over an OpenAI-compatible HTTP API: GET /v1/models, POST /v1/completions, POST
/v1/chat/completions (stream: true for server-sent events), POST /v1/embeddings, GET /health and GET /metrics
(Prometheus text). Prints the server's URL on stdout once it listens. SIGTERM or Ctrl+C stops accepting
connections, lets running requests finish (--drain-timeout), ends the rest cleanly and exits 0; a second Ctrl+C
ends them at once.

Options:
      --host HOST          address to listen on (default 127.0.0.1; another one without an API key prints a warning)
      --port N             port (default 8080; 0 picks a free one)
      --parallel N         requests that run at once, batched together (the model's sequences; default 4)
      --api-key KEY        require Authorization: Bearer KEY (default: TEA_SERVE_API_KEY, else no key)
      --cors ORIGIN        allow browsers on ORIGIN (* for any) to call the API (default: no CORS)
      --max-body BYTES     largest request body (default 4194304)
      --drain-timeout MS   how long a stop waits for running requests (default 10000)
      --context-shift      at a sequence's end, drop n_discard tokens after n_keep and go on (llama-server's
                           --context-shift); without it such a request finishes with finish_reason length

--settings FILE may hold these in a serve: block (host, port, parallel, api_key, cors, max_body_bytes,
drain_timeout_ms, context_shift), below the command line and the environment.

${MODEL_HELP}

${GLOBAL_HELP}`;

const OPTIONS = {
  ...MODEL_OPTIONS,
  ...GLOBAL_OPTIONS,
  host: { type: 'string' },
  port: { type: 'string' },
  parallel: { type: 'string' },
  'api-key': { type: 'string' },
  cors: { type: 'string' },
  'max-body': { type: 'string' },
  'drain-timeout': { type: 'string' },
  'context-shift': { type: 'boolean' },
} as const;

const SERVE_KEYS = ['host', 'port', 'parallel', 'api_key', 'cors', 'max_body_bytes', 'drain_timeout_ms', 'context_shift'];

/** The settings file's `serve:` block, checked. */
function serveBlock(file: string | undefined): Record<string, string> {
  if (file === undefined) return {};
  const root = parseYaml(readFileSync(resolve(file), 'utf8')) as Record<string, unknown> | null;
  const block = root?.serve;
  if (block === undefined || block === null) return {};
  if (typeof block !== 'object' || Array.isArray(block)) throw new UsageError(`${file}: serve must be a mapping`, 'serve');
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(block)) {
    if (!SERVE_KEYS.includes(key)) {
      const hint = suggestKey(key, SERVE_KEYS);
      throw new UsageError(`${file}: unknown key serve.${key}${hint ? `; did you mean "${hint}"?` : ''}`, 'serve');
    }
    if (key === 'context_shift' ? typeof value !== 'boolean' : typeof value !== 'string' && typeof value !== 'number') {
      throw new UsageError(`${file}: serve.${key} must be ${key === 'context_shift' ? 'true or false' : 'a string or a number'}`, 'serve');
    }
    out[key] = String(value);
  }
  return out;
}

export async function serveCommand(args: string[]): Promise<number> {
  const { values: v } = parse('serve', args, OPTIONS, false);
  if (v.help) {
    await writeOut(SERVE_HELP + '\n');
    return EXIT.ok;
  }
  const file = serveBlock(v.settings);
  const host = v.host ?? file.host ?? '127.0.0.1';
  const port = intOption('serve', 'port', v.port ?? file.port ?? '8080', 0, 65535)!;
  const parallel = intOption('serve', 'parallel', v.parallel ?? file.parallel, 1, 256);
  const maxBodyBytes = intOption('serve', 'max-body', v['max-body'] ?? file.max_body_bytes, 1, 2 ** 31 - 1);
  const drainTimeoutMs = intOption('serve', 'drain-timeout', v['drain-timeout'] ?? file.drain_timeout_ms, 0, 2 ** 31 - 1);
  const apiKey = v['api-key'] ?? (process.env.TEA_SERVE_API_KEY || undefined) ?? file.api_key;
  if (apiKey === '') throw new UsageError('--api-key needs a value', 'serve');
  const cors = v.cors ?? file.cors;
  const contextShift = Boolean(v['context-shift']) || file.context_shift === 'true';
  const logger = commandLogger(v);
  const loopback = host === '127.0.0.1' || host === 'localhost' || host === '::1';
  if (!loopback && apiKey === undefined) {
    logger.warn(`serving on ${host} without an API key: anyone who can reach this address can use the model (--api-key or TEA_SERVE_API_KEY)`);
  }

  const backend = await openBackend('serve', v, undefined, parallel === undefined ? {} : { sequences: parallel });
  try {
    // Loaded before listening, so /health answers ok from the first request on.
    if (backend instanceof LocalLlmBackend) await backend.load();
    const server = createServer(backend, {
      ...(apiKey !== undefined ? { apiKey } : {}),
      ...(cors !== undefined ? { cors } : {}),
      ...(maxBodyBytes !== undefined ? { maxBodyBytes } : {}),
      ...(drainTimeoutMs !== undefined ? { drainTimeoutMs } : {}),
      ...(contextShift ? { contextShift } : {}),
      logger,
    });
    await new Promise<void>((done, fail) => {
      server.once('error', fail);
      server.listen(port, host, () => {
        server.off('error', fail);
        done();
      });
    });
    const address = server.address() as AddressInfo;
    const shown = address.family === 'IPv6' ? `[${address.address}]` : address.address;
    await writeOut(`http://${shown}:${address.port}\n`);
    logger.info(`serving ${backend.model} (${backend.kind} backend) on http://${shown}:${address.port}`);

    await new Promise<void>((done) => {
      let signals = 0;
      const stop = (signal: NodeJS.Signals) => {
        signals++;
        process.stderr.write(signals === 1 ? `${signal}: finishing running requests, then exiting\n` : `${signal}: ending running requests now\n`);
        server.shutdown({ timeoutMs: signals === 1 ? drainTimeoutMs : 0 }).then(done, done);
      };
      process.on('SIGTERM', stop);
      process.on('SIGINT', stop);
    });
    return EXIT.ok;
  } finally {
    await backend.dispose();
  }
}
