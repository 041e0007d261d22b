import type { Logger } from '../logger';

/** The program name in messages. */
export const PROGRAM = 'tea-llama';

/** A wrong command line: printed with its code and a hint to --help, exit code 2. */
export class UsageError extends Error {
  readonly code = 'ERR_INVALID_ARGUMENT';

  constructor(
    message: string,
    readonly command?: string,
  ) {
    super(message);
    this.name = 'UsageError';
  }
}

/** Exit codes. */
export const EXIT = { ok: 0, failure: 1, usage: 2, interrupted: 130 } as const;

/**
 * Folds a multi-line message into one line: "looked in:\n  a\n  b" becomes "looked in: a; b".
 */
export function oneLine(message: string): string {
  const lines = message
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l.length > 0);
  let out = '';
  for (const line of lines) {
    if (out === '') out = line;
    else out += (/[:;,]$/.test(out) ? ' ' : '; ') + line;
  }
  return out;
}

/** An error as the CLI prints it: one line (`tea-llama: ERR_CODE: message`), or with --verbose the stacks too. */
export function formatError(error: unknown, verbose: boolean): string {
  if (error instanceof UsageError) {
    const help = error.command ? `${PROGRAM} ${error.command} --help` : `${PROGRAM} --help`;
    return `${PROGRAM}: ${error.code}: ${oneLine(error.message)} (see ${help})\n`;
  }
  const e = error instanceof Error ? error : new Error(String(error));
  const code = (e as { code?: unknown }).code;
  const prefix = typeof code === 'string' && code.startsWith('ERR_') ? `${code}: ` : '';
  let out = `${PROGRAM}: ${prefix}${oneLine(e.message)}\n`;
  if (verbose) {
    let cause: unknown = e;
    const seen = new Set<unknown>();
    while (cause instanceof Error && !seen.has(cause)) {
      seen.add(cause);
      out += `${cause.stack ?? String(cause)}\n`;
      cause = cause.cause;
      if (cause instanceof Error) out += 'caused by: ';
    }
  }
  return out;
}

/** The CLI's logger: warnings on stderr as one line (unless quiet), info and debug only with --verbose. */
export function cliLogger(options: { verbose: boolean; quiet: boolean }): Logger {
  const write = (prefix: string) => (message: string) => process.stderr.write(`${PROGRAM}: ${prefix}${oneLine(message)}\n`);
  const drop = () => undefined;
  return {
    debug: options.verbose ? write('') : drop,
    info: options.verbose ? write('') : drop,
    warn: options.quiet ? drop : write('warning: '),
  };
}

/** JSON with two-space indentation, but lists of numbers (embeddings) on one line. */
export function formatJson(value: unknown): string {
  const flat = new Map<string, string>();
  const text = JSON.stringify(
    value,
    (_key, v: unknown) => {
      if (Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === 'number')) {
        const id = `\u0000${flat.size}\u0000`;
        flat.set(id, JSON.stringify(v).replace(/,/g, ', '));
        return id;
      }
      return v;
    },
    2,
  );
  return text.replace(/"\\u0000(\d+)\\u0000"/g, (_m, n: string) => flat.get(`\u0000${n}\u0000`)!);
}

/** Bytes as text: 512 B, 1.5 KiB, 12.3 MiB, 4.07 GiB. */
export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(value < 10 ? 2 : value < 100 ? 1 : 0)} ${units[unit]}`;
}

/** Seconds as text: 0:42, 12:05, 1:02:03. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '--:--';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${sec}` : `${m}:${sec}`;
}

/** A count with a suffix: 292.4K, 3.82B. */
export function formatCount(n: number): string {
  if (n < 1000) return String(n);
  const units: Array<[number, string]> = [
    [1e12, 'T'],
    [1e9, 'B'],
    [1e6, 'M'],
    [1e3, 'K'],
  ];
  for (const [size, suffix] of units) {
    if (n >= size) {
      const v = n / size;
      return `${v.toFixed(v < 10 ? 2 : v < 100 ? 1 : 0)}${suffix}`;
    }
  }
  return String(n);
}

/** Writes to stdout and resolves once it is handed to the system (so a following exit loses nothing). */
export function writeOut(text: string): Promise<void> {
  return new Promise((done) => {
    if (!process.stdout.write(text)) process.stdout.once('drain', done);
    else done();
  });
}

/** Reads stdin to the end as text. */
export async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer));
  return Buffer.concat(chunks).toString('utf8');
}
