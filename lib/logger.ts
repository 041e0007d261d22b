/**
 * The backend layer's logger: where it says which backend it chose and why, which model paths it tried, and why
 * it lowered a context size. Pass your own to any backend, `resolveSettings()` or `createLlmBackend()`; the
 * default writes warnings to stderr, prefixed "[tea-llama]", and drops info and debug lines.
 */
export interface Logger {
  debug(message: string): void;
  info(message: string): void;
  warn(message: string): void;
}

export type LoggerLevel = 'debug' | 'info' | 'warn' | 'silent';

const RANK: Record<LoggerLevel, number> = { debug: 0, info: 1, warn: 2, silent: 3 };

/** A logger that writes lines at `level` and above to stderr, each prefixed "[tea-llama]". */
export function createStderrLogger(level: LoggerLevel = 'warn'): Logger {
  const at = (lineLevel: Exclude<LoggerLevel, 'silent'>) => (message: string) => {
    if (RANK[lineLevel] >= RANK[level]) process.stderr.write(`[tea-llama] ${lineLevel === 'warn' ? 'warning: ' : ''}${message}\n`);
  };
  return { debug: at('debug'), info: at('info'), warn: at('warn') };
}

/** The default logger: warnings to stderr. */
export const defaultLogger: Logger = createStderrLogger('warn');

/** A logger that drops everything. */
export const silentLogger: Logger = createStderrLogger('silent');
