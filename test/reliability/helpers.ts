import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { resolve } from 'node:path';

import { repoRoot } from '../support/models';
// @ts-expect-error plain ESM script without type declarations
import { rng as mutatorRng } from './fuzz/gguf-mutator.mjs';

/** Seed of the randomized reliability tests: TEA_RELIABILITY_SEED, else a fixed default (printed by each test). */
export const SEED = Number(process.env.TEA_RELIABILITY_SEED ?? 20240607);

/** The fuzzer's seeded generator (mulberry32), so a failing random schedule can be replayed with TEA_RELIABILITY_SEED. */
export const rng = mutatorRng as (seed: number) => { next(): number; int(n: number): number; pick<T>(list: readonly T[]): T };

export const sleep = (ms: number) => new Promise<void>((done) => setTimeout(done, ms));

/** Threads (/proc/self/task), open file descriptors (/proc/self/fd) and resident memory of this process. */
export function processStats(): { threads: number; fds: number; rssMb: number } {
  return {
    threads: readdirSync('/proc/self/task').length,
    fds: readdirSync('/proc/self/fd').length,
    rssMb: process.memoryUsage().rss / 1048576,
  };
}

export interface ChildResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
  timedOut: boolean;
}

/**
 * Runs a script from test/reliability/scripts in a child node process (so a crash fails a test instead of the
 * runner), killed after `timeoutMs` (a hang). The child finds the package at TEA_REPO_ROOT.
 */
export function runScript(name: string, args: string[] = [], { timeoutMs = 120_000, nodeArgs = [] as string[], env = {} as Record<string, string> } = {}): Promise<ChildResult> {
  const started = performance.now();
  const child = spawn(process.execPath, [...nodeArgs, resolve(__dirname, 'scripts', name), ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, TEA_REPO_ROOT: repoRoot, ...env },
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill('SIGKILL');
  }, timeoutMs);
  return new Promise((done, fail) => {
    child.on('error', fail);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      done({ code, signal, stdout, stderr, ms: performance.now() - started, timedOut });
    });
  });
}

/** The last JSON line a child printed. */
export function lastJson<T>(stdout: string): T {
  const lines = stdout.trim().split('\n').filter((l) => l.startsWith('{'));
  if (lines.length === 0) throw new Error(`the child printed no JSON:\n${stdout}`);
  return JSON.parse(lines[lines.length - 1]!) as T;
}

/** Prints a figure of a reliability test so the run's log can be quoted. */
export function figure(text: string): void {
  process.stdout.write(`[reliability] ${text}\n`);
}
