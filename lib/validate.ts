import { LlamaError } from './errors';

// Checks run in TypeScript before any native call, so bad input fails with a clear message and a stable code.

function invalid(message: string): never {
  throw new LlamaError('ERR_INVALID_ARGUMENT', message);
}

function describe(value: unknown): string {
  if (typeof value === 'number') return String(value);
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  return value === null ? 'null' : typeof value;
}

export function optionalNumber(value: unknown, name: string, min: number, max: number, integer = false): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isFinite(value)) invalid(`${name} must be a finite number (got ${describe(value)})`);
  if (integer && !Number.isInteger(value)) invalid(`${name} must be an integer (got ${value})`);
  if (value < min || value > max) invalid(`${name} must be between ${min} and ${max} (got ${value})`);
  return value;
}

export function optionalInt(value: unknown, name: string, min: number, max: number): number | undefined {
  return optionalNumber(value, name, min, max, true);
}

export function optionalBool(value: unknown, name: string): boolean | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'boolean') invalid(`${name} must be a boolean (got ${describe(value)})`);
  return value;
}

export function optionalFunction<T extends (...args: never[]) => unknown>(value: unknown, name: string): T | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'function') invalid(`${name} must be a function (got ${describe(value)})`);
  return value as T;
}

export function optionalSignal(value: unknown, name = 'signal'): AbortSignal | undefined {
  if (value === undefined) return undefined;
  if (!(value instanceof AbortSignal)) invalid(`${name} must be an AbortSignal`);
  return value;
}

export function requireString(value: unknown, name: string): string {
  if (typeof value !== 'string') invalid(`${name} must be a string (got ${describe(value)})`);
  return value;
}

export function requireObject(value: unknown, name: string): Record<string, unknown> {
  if (value === undefined) return {};
  if (typeof value !== 'object' || value === null || Array.isArray(value)) invalid(`${name} must be an object`);
  return value as Record<string, unknown>;
}

export function stopStrings(value: unknown): string[] | undefined {
  if (value === undefined) return undefined;
  const list = typeof value === 'string' ? [value] : value;
  if (!Array.isArray(list) || list.some((s) => typeof s !== 'string' || s.length === 0)) {
    invalid('stop must be a non-empty string or an array of non-empty strings');
  }
  return list as string[];
}
