import { homedir } from 'node:os';

/** Environment variables, as in `process.env`. */
export type Env = Record<string, string | undefined>;

/**
 * Expands a leading `~` (the home folder) and `$VAR` / `${VAR}` (environment variables) in a path. A variable
 * that is not set is left as written, so the path that fails to exist shows what was asked for.
 */
export function expandPath(path: string, env: Env = process.env, home: string = homedir()): string {
  let out = path;
  if (out === '~' || out.startsWith('~/')) out = home + out.slice(1);
  return out.replace(/\$\{(\w+)\}|\$(\w+)/g, (whole, braced: string | undefined, bare: string | undefined) => env[(braced ?? bare)!] ?? whole);
}
