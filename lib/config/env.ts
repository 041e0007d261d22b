import type { Env } from './expand-path';
import { parseEnvValue, SETTING_KEYS, SettingsError, toInput, type LlmSettingsInput, type SettingsIssue } from './schema';

/** The environment variables the settings read, in the order of the README's table. */
export const SETTING_ENV_VARS: readonly string[] = SETTING_KEYS.filter((k) => k.env).map((k) => k.env!);

/** Reads the LLM_* variables into values by option path, recording a problem per variable that does not parse. */
export function collectEnvSettings(env: Env, issues: SettingsIssue[]): Map<string, unknown> {
  const values = new Map<string, unknown>();
  for (const key of SETTING_KEYS) {
    if (!key.env) continue;
    const text = env[key.env];
    // An empty variable counts as unset (`LLM_BACKEND= node app.js`).
    if (text === undefined || text.trim() === '') continue;
    const value = parseEnvValue(key, text, issues);
    if (value !== undefined) values.set(key.option, value);
  }
  return values;
}

/**
 * The settings the LLM_* environment variables set (only those set).
 *
 * @throws SettingsError (ERR_SETTINGS_INVALID) naming every variable that does not parse.
 */
export function settingsFromEnv(env: Env = process.env): LlmSettingsInput {
  const issues: SettingsIssue[] = [];
  const values = collectEnvSettings(env, issues);
  if (issues.length > 0) throw new SettingsError('the environment', issues);
  return toInput(values);
}
