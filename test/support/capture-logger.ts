import type { Logger } from '../../lib';

export interface CapturedLine {
  level: 'debug' | 'info' | 'warn';
  message: string;
}

/** A logger that keeps every line, for assertions. */
export function captureLogger(): Logger & { lines: CapturedLine[]; text(level?: CapturedLine['level']): string } {
  const lines: CapturedLine[] = [];
  return {
    lines,
    debug: (message) => lines.push({ level: 'debug', message }),
    info: (message) => lines.push({ level: 'info', message }),
    warn: (message) => lines.push({ level: 'warn', message }),
    text: (level) => lines.filter((l) => !level || l.level === level).map((l) => l.message).join('\n'),
  };
}
