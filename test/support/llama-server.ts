// The tests' llama-server: the harness the benchmark uses too (scripts/llama-server-harness.mjs), with the
// tests' default of 2 threads.
import { startLlamaServer as start, type LlamaServer } from '../../scripts/llama-server-harness.mjs';

export { freePort, toolPath, type LlamaServer } from '../../scripts/llama-server-harness.mjs';

/** Starts the vendored llama-server on 127.0.0.1 with a free port and waits until /health says ok. */
export function startLlamaServer(model: string, extraArgs: string[] = []): Promise<LlamaServer> {
  // llama-server takes the last of repeated options: extraArgs may override the threads.
  return start(model, ['-t', '2', ...extraArgs], { timeoutMs: 60_000 });
}
