import { mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';

import { DEFAULT_MODEL_FILES, resolveModelPath, resolveSettings } from '../lib';
import { describeSearch } from '../lib/config/model-path';
import { captureLogger } from './support/capture-logger';

const [PHI, GEMMA] = DEFAULT_MODEL_FILES;

describe('resolveModelPath', () => {
  let root: string;
  let home: string;
  let appdir: string;
  let cache: string;
  let appModels: string;

  function touch(path: string): string {
    mkdirSync(join(path, '..'), { recursive: true });
    writeFileSync(path, 'GGUF');
    return path;
  }

  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), 'tea-model-path-'));
    home = join(root, 'home');
    appdir = join(root, 'AppDir');
    cache = join(home, '.cache', 'tea', 'models');
    appModels = join(appdir, 'usr', 'share', 'models');
    mkdirSync(home, { recursive: true });
  });

  it('looks in order: TEA_MODEL_PATH, llm.model_path, $APPDIR/usr/share/models, ~/.cache/tea/models', () => {
    const fromEnv = touch(join(root, 'env', 'env-model.gguf'));
    const fromSettings = touch(join(root, 'settings', 'settings-model.gguf'));
    touch(join(appModels, PHI));
    touch(join(cache, PHI));
    const env = { TEA_MODEL_PATH: fromEnv, APPDIR: appdir };
    const resolveWith = (e: Record<string, string>, modelPath?: string) =>
      resolveModelPath({ modelPath }, { env: e, homeDir: home, logger: captureLogger() });

    expect(resolveWith(env, fromSettings)).toMatchObject({ path: fromEnv, source: 'TEA_MODEL_PATH' });
    rmSync(fromEnv);
    const second = resolveWith(env, fromSettings);
    expect(second).toMatchObject({ path: fromSettings, source: 'settings' });
    expect(second.searched.map((c) => [c.source, c.state])).toEqual([
      ['TEA_MODEL_PATH', 'missing'],
      ['settings', 'file'],
    ]);
    expect(resolveWith(env)).toMatchObject({ path: join(appModels, PHI), source: 'APPDIR' });
    expect(resolveWith({})).toMatchObject({ path: join(cache, PHI), source: 'cache' });
    rmSync(join(cache, PHI));
    expect(resolveWith({}).path).toBeNull();
  });

  it('prefers Phi-4-mini over Gemma in each folder, and a folder earlier in the order over both', () => {
    touch(join(appModels, GEMMA));
    touch(join(cache, PHI));
    const r = resolveModelPath({}, { env: { APPDIR: appdir }, homeDir: home, logger: captureLogger() });
    expect(r).toMatchObject({ path: join(appModels, GEMMA), source: 'APPDIR' });
    expect(r.searched.map((c) => c.path)).toEqual([join(appModels, PHI), join(appModels, GEMMA)]);
    touch(join(appModels, PHI));
    expect(resolveModelPath({}, { env: { APPDIR: appdir }, homeDir: home, logger: captureLogger() }).path).toBe(join(appModels, PHI));
  });

  it('expands ~ and $VARS in llm.model_path, and accepts a folder holding a default model', async () => {
    const file = touch(join(home, 'models', 'mine.gguf'));
    const env = { MODELS: join(home, 'models') };
    for (const written of ['~/models/mine.gguf', '$MODELS/mine.gguf', '${MODELS}/mine.gguf']) {
      const settings = await resolveSettings({ yaml: `llm:\n  model_path: ${written}\n`, env, homeDir: home });
      expect(settings.modelPath, written).toBe(file);
      expect(resolveModelPath(settings, { env, homeDir: home, logger: captureLogger() }), written).toMatchObject({ path: file, source: 'settings' });
      // resolveModelPath expands too, for settings that did not come from resolveSettings.
      expect(resolveModelPath({ modelPath: written }, { env, homeDir: home, logger: captureLogger() }).path).toBe(file);
    }
    const inFolder = touch(join(root, 'folder', GEMMA));
    expect(resolveModelPath({ modelPath: join(root, 'folder') }, { env: {}, homeDir: home, logger: captureLogger() })).toMatchObject({
      path: inFolder,
      source: 'settings',
    });
  });

  it('logs each candidate that is set but missing, and lists every place when nothing is found', () => {
    const logger = captureLogger();
    const r = resolveModelPath(
      { modelPath: '$NOPE/model.gguf' },
      { env: { TEA_MODEL_PATH: join(root, 'gone.gguf'), APPDIR: appdir }, homeDir: home, logger },
    );
    expect(r.path).toBeNull();
    expect(r.source).toBeNull();
    const warnings = logger.lines.filter((l) => l.level === 'warn').map((l) => l.message);
    expect(warnings).toEqual([
      `TEA_MODEL_PATH does not exist: ${join(root, 'gone.gguf')}`,
      `llm.model_path does not exist: ${join(process.cwd(), '$NOPE', 'model.gguf')}`,
    ]);
    expect(r.searched.map((c) => c.path)).toEqual([
      join(root, 'gone.gguf'),
      join(process.cwd(), '$NOPE', 'model.gguf'),
      join(appModels, PHI),
      join(appModels, GEMMA),
      join(cache, PHI),
      join(cache, GEMMA),
    ]);
    expect(r.skipped).toEqual([]);
    const bare = resolveModelPath({}, { env: {}, homeDir: home, logger: captureLogger() });
    expect(bare.skipped).toEqual(['TEA_MODEL_PATH is not set', 'llm.model_path is not set', 'APPDIR is not set']);
  });

  it('an explicit modelPath option comes before TEA_MODEL_PATH (explicit > environment)', async () => {
    const explicit = touch(join(root, 'explicit.gguf'));
    const fromEnv = touch(join(root, 'env.gguf'));
    const env = { TEA_MODEL_PATH: fromEnv };
    const settings = await resolveSettings({ options: { modelPath: explicit }, env, homeDir: home });
    expect(resolveModelPath(settings, { env, homeDir: home, logger: captureLogger() })).toMatchObject({ path: explicit, source: 'option' });
    const fromYaml = await resolveSettings({ yaml: `llm: { model_path: ${explicit} }`, env, homeDir: home });
    expect(resolveModelPath(fromYaml, { env, homeDir: home, logger: captureLogger() })).toMatchObject({ path: fromEnv, source: 'TEA_MODEL_PATH' });
  });

  it('nothing configured: a folder without a default model gives its only model, else the most recently pulled one', () => {
    const logger = captureLogger();
    const only = touch(join(cache, 'stories260K.gguf'));
    touch(join(cache, 'next.gguf.partial'));
    const first = resolveModelPath({}, { env: {}, homeDir: home, logger });
    expect(first).toMatchObject({ path: only, source: 'cache' });
    expect(first.searched.at(-1)).toEqual({ source: 'cache', path: only, state: 'file', chosen: 'only' });
    expect(logger.text('info')).toContain(`${only} is the only model in ${cache}`);

    const older = touch(join(cache, 'older.gguf'));
    const newer = touch(join(cache, 'newer.gguf'));
    utimesSync(older, new Date(2020, 0, 1), new Date(2020, 0, 1));
    utimesSync(only, new Date(2021, 0, 1), new Date(2021, 0, 1));
    utimesSync(newer, new Date(2022, 0, 1), new Date(2022, 0, 1));
    const several = captureLogger();
    const r = resolveModelPath({}, { env: {}, homeDir: home, logger: several });
    expect(r).toMatchObject({ path: newer, source: 'cache' });
    expect(r.searched.at(-1)).toMatchObject({ chosen: 'newest', others: [only, older] });
    expect(several.text('warn')).toBe(
      `using ${newer}, the most recently pulled of 3 models in ${cache} (others: stories260K.gguf, older.gguf); set TEA_MODEL_PATH or llm.model_path to choose`,
    );
    // A default model still wins over the newest file.
    touch(join(cache, GEMMA));
    utimesSync(join(cache, GEMMA), new Date(2019, 0, 1), new Date(2019, 0, 1));
    expect(resolveModelPath({}, { env: {}, homeDir: home, logger: captureLogger() }).path).toBe(join(cache, GEMMA));
  });

  it('equally recent models are ambiguous: none is taken, and the search lists them', () => {
    const a = touch(join(cache, 'a.gguf'));
    const b = touch(join(cache, 'b.gguf'));
    const when = new Date(2024, 5, 1);
    utimesSync(a, when, when);
    utimesSync(b, when, when);
    const r = resolveModelPath({}, { env: {}, homeDir: home, logger: captureLogger() });
    expect(r.path).toBeNull();
    expect(r.ambiguous).toEqual([{ source: 'cache', folder: cache, models: [a, b] }]);
    expect(describeSearch(r)).toContain(`cache: ${cache} holds equally recent models, none taken: ${a}, ${b}`);
  });

  it('an explicit modelPath option that does not exist ends the search: no other model replaces it', async () => {
    touch(join(cache, PHI));
    const missing = join(root, 'missing.gguf');
    const settings = await resolveSettings({ options: { modelPath: missing }, env: {}, homeDir: home });
    const r = resolveModelPath(settings, { env: {}, homeDir: home, logger: captureLogger() });
    expect(r).toMatchObject({ path: null, explicitMissing: true });
    expect(r.searched).toEqual([{ source: 'option', path: missing, state: 'missing' }]);
    // The same path from a settings file is only a candidate: the search goes on.
    const fromFile = await resolveSettings({ yaml: `llm: { model_path: ${missing} }`, env: {}, homeDir: home });
    expect(resolveModelPath(fromFile, { env: {}, homeDir: home, logger: captureLogger() })).toMatchObject({ path: join(cache, PHI), explicitMissing: false });
    expect(() => resolveModelPath({}, { env: {}, homedir: home } as never)).toThrow("unknown option 'homedir' in resolveModelPath() options (did you mean 'homeDir'?)");
  });
});
