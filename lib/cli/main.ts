import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { suggestKey } from '../config/schema';
import { chatCommand } from './chat';
import { completeCommand } from './complete';
import { embedCommand } from './embed';
import { infoCommand } from './info';
import { modelsCommand } from './models';
import { EXIT, formatError, PROGRAM, UsageError, writeOut } from './output';
import { pullCommand } from './pull';
import { rerankCommand } from './rerank';
import { rpcServerCommand } from './rpc-server';
import { runCommand } from './run';
import { serveCommand } from './serve';

export const USAGE = `Usage: tea-llama <command> [options]

Run GGUF language models in-process (llama.cpp), or through an OpenAI-compatible server.

Commands:
  complete PROMPT     stream a completion of PROMPT to stdout
  chat [MESSAGE]      chat in the terminal (streamed replies, history, Ctrl+C stops a reply), or answer one message
  embed TEXT...       print one embedding vector per text (or per stdin line) as JSON
  info [FILE]         show a model's metadata and the configuration tea-llama would choose, with reasons
  models              list the models in the search folders, and which one is used without --model
  rerank QUERY DOC... score documents against a query with a reranking model, best first, as JSON lines
  pull URL            download a GGUF model (resumable, checksum, hf:USER/REPO/FILE.gguf) into ~/.cache/tea/models
  run WORKFLOW.yaml   run a YAML workflow of llm.call / llm.chat / llm.stream / llm.embed nodes
  serve               serve the model over an OpenAI-compatible HTTP API (/v1/chat/completions, ...)
  rpc-server          lend this machine's devices to a model loaded elsewhere (llama.cpp's RPC; --rpc HOST:PORT)

The model: --model PATH, else TEA_MODEL_PATH, llm.model_path (--settings FILE), $APPDIR/usr/share/models, then
~/.cache/tea/models (a default model, else the only or the most recently pulled one: see tea-llama models).
--backend api --api-base URL uses an OpenAI-compatible server instead.

Run tea-llama <command> --help for a command's options. stdout carries the result only. Errors are one line on
stderr with their code, and the exit code says how it ended (0: done, 1: failed, 2: wrong command line,
130: interrupted); --verbose adds the details.

Example:
  tea-llama pull hf:ggml-org/models/tinyllamas/stories260K.gguf
  tea-llama complete "Once upon a time"`;

const COMMANDS: Record<string, (args: string[]) => Promise<number>> = {
  complete: completeCommand,
  chat: chatCommand,
  embed: embedCommand,
  info: infoCommand,
  models: modelsCommand,
  pull: pullCommand,
  rerank: rerankCommand,
  run: runCommand,
  serve: serveCommand,
  'rpc-server': rpcServerCommand,
};

function version(): string {
  try {
    return (JSON.parse(readFileSync(join(__dirname, '..', '..', '..', 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

/**
 * The `tea-llama` command. Returns the exit code; never throws: errors are printed as one line on stderr (with
 * the stack traces under --verbose).
 */
export async function main(argv: string[]): Promise<number> {
  const verbose = argv.includes('--verbose') || argv.includes('-v');
  const [command, ...rest] = argv;
  try {
    if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
      if (command === 'help' && rest[0] && Object.hasOwn(COMMANDS, rest[0])) return await COMMANDS[rest[0]]!(['--help']);
      await writeOut(USAGE + '\n');
      return command === undefined ? EXIT.usage : EXIT.ok;
    }
    if (command === '--version' || command === '-V') {
      await writeOut(`${PROGRAM} ${version()}\n`);
      return EXIT.ok;
    }
    // Own keys only: `tea-llama constructor` is an unknown command, not Object's constructor.
    const run = Object.hasOwn(COMMANDS, command) ? COMMANDS[command] : undefined;
    if (!run) {
      const hint = suggestKey(command, Object.keys(COMMANDS));
      throw new UsageError(`unknown command ${JSON.stringify(command)}${hint ? `; did you mean "${hint}"?` : ''}`);
    }
    return await run(rest);
  } catch (error) {
    process.stderr.write(formatError(error, verbose));
    return error instanceof UsageError ? EXIT.usage : EXIT.failure;
  }
}

/** Runs the command line of this process and exits with its code. */
export function run(): void {
  // A closed pipe (`tea-llama complete … | head -c 20`) ends the command quietly.
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE') process.exit(EXIT.ok);
    throw error;
  });
  main(process.argv.slice(2)).then(
    (code) => {
      // Output is flushed (writeOut waits for it); exit now rather than wait for lingering handles.
      process.exitCode = code;
      setImmediate(() => process.exit(code));
    },
    (error: unknown) => {
      process.stderr.write(formatError(error, true));
      process.exit(EXIT.failure);
    },
  );
}
