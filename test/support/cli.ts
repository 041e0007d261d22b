import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

import { repoRoot } from './models';

/** The command as a user runs it: `node bin/tea-llama.js …`. */
export const cliBin = resolve(repoRoot, 'bin', 'tea-llama.js');

function newestSource(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestSource(path) : entry.name.endsWith('.ts') ? statSync(path).mtimeMs : 0);
  }
  return newest;
}

/**
 * Builds dist/ (npm run build:ts) when the CLI is missing or older than lib/: `npm test` builds first, but a
 * plain `npx vitest run test/cli.test.ts` does not.
 */
export function ensureCliBuilt(): void {
  const main = resolve(repoRoot, 'dist', 'cjs', 'cli', 'main.js');
  if (existsSync(main) && statSync(main).mtimeMs >= newestSource(resolve(repoRoot, 'lib'))) return;
  execFileSync(process.execPath, [resolve(repoRoot, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'], { cwd: repoRoot, stdio: 'inherit' });
  execFileSync(process.execPath, [resolve(repoRoot, 'scripts', 'write-esm-entry.mjs')], { cwd: repoRoot, stdio: 'inherit' });
}

/** A fresh HOME, so nothing is read from or written to the real ~/.cache. */
export function tempHome(): string {
  return mkdtempSync(join(tmpdir(), 'tea-cli-home-'));
}

/** The test runner's environment without settings variables (LLM_*, TEA_*), with a fresh HOME, plus `vars`. */
export function cliEnv(vars: Record<string, string | undefined> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !/^(LLM_|TEA_|HF_TOKEN$)/.test(k)) env[k] = v;
  env.HOME = tempHome();
  for (const [k, v] of Object.entries(vars)) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  return env;
}

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** How many separate pieces stdout arrived in (more than one: it was streamed). */
  stdoutChunks: number;
}

export interface RunCliOptions {
  env?: Record<string, string>;
  /** Written to stdin, which is then closed (stdin is a pipe either way, never a terminal). */
  input?: string;
  cwd?: string;
  /** Kill after this long (default 120 s). */
  timeoutMs?: number;
}

/** Runs `node bin/tea-llama.js …args` and collects its output and exit code. */
export function runCli(args: string[], options: RunCliOptions = {}): Promise<CliResult> {
  const child = spawnCli(args, options);
  return collect(child, options.input, options.timeoutMs);
}

export function spawnCli(args: string[], options: RunCliOptions = {}): ChildProcess {
  return spawn(process.execPath, [cliBin, ...args], { cwd: options.cwd ?? repoRoot, env: options.env ?? cliEnv(), stdio: ['pipe', 'pipe', 'pipe'] });
}

/** `tea-llama serve ARGS` in a child process, once it has printed its address: `stop()` signals it, resolves its exit code. */
export async function startServeCli(args: string[]): Promise<{ address: string; child: ChildProcess; output: { stderr: string }; exited: Promise<number | null>; stop(signal?: NodeJS.Signals): Promise<number | null> }> {
  ensureCliBuilt();
  const child = spawnCli(['serve', ...args], { env: cliEnv() });
  const output = { stderr: '' };
  child.stderr!.on('data', (d: Buffer) => (output.stderr += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  const address = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('\n')) resolve(out.trim());
    });
    child.on('close', () => reject(new Error(`serve exited: ${output.stderr}`)));
  });
  return {
    address,
    child,
    output,
    exited,
    stop(signal: NodeJS.Signals = 'SIGTERM') {
      child.kill(signal);
      return exited;
    },
  };
}

export function collect(child: ChildProcess, input?: string, timeoutMs = 120_000): Promise<CliResult> {
  let stdout = '';
  let stderr = '';
  let stdoutChunks = 0;
  child.stdout!.setEncoding('utf8');
  child.stderr!.setEncoding('utf8');
  child.stdout!.on('data', (d: string) => {
    stdout += d;
    stdoutChunks++;
  });
  child.stderr!.on('data', (d: string) => (stderr += d));
  child.stdin!.on('error', () => undefined);
  if (input !== undefined) child.stdin!.end(input);
  else child.stdin!.end();
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  return new Promise((done) => {
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      done({ code, signal, stdout, stderr, stdoutChunks });
    });
  });
}

/** Terminal escape sequences removed, \r\n as \n. */
export function plain(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '').replace(/\r+\n/g, '\n');
}

/** A process on a pseudo-terminal (python3's pty module): stdin, stdout and stderr are all the terminal. */
export interface PtySession {
  /** Everything the terminal showed, raw. */
  readonly output: string;
  /** The output with escape sequences removed. */
  readonly text: string;
  /** Types into the terminal ("\r" is Enter, "\x03" is Ctrl+C, "\x04" is Ctrl+D). */
  write(keys: string): void;
  /** Waits until the plain output after `from` (an offset in `text`) matches. */
  waitFor(pattern: RegExp, options?: { from?: number; timeoutMs?: number }): Promise<RegExpExecArray>;
  /** Resolves with the exit code. */
  exited: Promise<number | null>;
  kill(): void;
}

const PTY_DRIVER = 'import os, pty, sys\nsys.exit(os.waitstatus_to_exitcode(pty.spawn(sys.argv[1:])) % 256)';

export function spawnPty(args: string[], env: Record<string, string>): PtySession {
  const child = spawn('python3', ['-c', PTY_DRIVER, process.execPath, cliBin, ...args], {
    cwd: repoRoot,
    env: { ...env, TERM: 'xterm', COLUMNS: '200', LINES: '50' },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.setEncoding('utf8');
  child.stderr.setEncoding('utf8');
  child.stdout.on('data', (d: string) => (output += d));
  child.stderr.on('data', (d: string) => (output += d));
  child.stdin.on('error', () => undefined);
  child.on('error', (error) => (output += `\n[cannot start python3 for the pseudo-terminal: ${error.message}]\n`));
  const exited = new Promise<number | null>((done) => child.on('close', (code) => done(code)));
  return {
    get output() {
      return output;
    },
    get text() {
      return plain(output);
    },
    write(keys: string) {
      child.stdin.write(keys);
    },
    async waitFor(pattern, { from = 0, timeoutMs = 60_000 } = {}) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const m = pattern.exec(plain(output).slice(from));
        if (m) return m;
        if (child.exitCode !== null || child.signalCode !== null || Date.now() > deadline) {
          throw new Error(`${pattern} not seen ${child.exitCode !== null ? `(exited with ${child.exitCode})` : `in ${timeoutMs} ms`}; terminal:\n${plain(output)}`);
        }
        await new Promise((r) => setTimeout(r, 25));
      }
    },
    exited,
    kill() {
      child.kill('SIGKILL');
    },
  };
}
