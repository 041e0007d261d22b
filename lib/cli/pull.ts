import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, rm, stat, utimes, writeFile, type FileHandle } from 'node:fs/promises';
import { homedir } from 'node:os';
import { basename, join, resolve } from 'node:path';

import { IdleTimer } from '../backends/http-client';
import { LlamaError } from '../errors';
import { readGguf } from '../gguf';
import type { Logger } from '../logger';
import { redactText, redactUrl } from '../redact';
import { GLOBAL_HELP, GLOBAL_OPTIONS, intOption, numberOption, parse, progressEnabled } from './args';
import { cliLogger, EXIT, formatBytes, formatDuration, UsageError, writeOut } from './output';
import { ProgressLine, renderTransfer, SpeedMeter } from './progress';

export const PULL_HELP = `Usage: tea-llama pull [options] URL

Downloads a GGUF model into ~/.cache/tea/models/ (where the model search looks when nothing is configured), with a
progress bar (bytes, speed, time left). An interrupted download resumes where it stopped, in the same run (--retries) or
when the command is run again. The file is written as NAME.partial and renamed only once it is complete (and its
checksum matches, when one is given), so a partial file is never taken for a model. The final path is printed on
stdout.

URL is an http:// or https:// URL, or hf:USER/REPO/FILE.gguf for a Hugging Face file
(hf:USER/REPO@REVISION/FILE.gguf for another revision than main). HF_TOKEN is sent to huggingface.co when set;
HF_ENDPOINT replaces https://huggingface.co (a mirror). Without --model, the other commands use the most
recently pulled model of ~/.cache/tea/models (see tea-llama models).

Options:
      --dir DIR          the folder to download into (default ~/.cache/tea/models)
      --name FILE        the file name (default: the URL's last part)
      --sha256 HEX       the expected SHA-256 of the file: a mismatch deletes the download
      --retries N        resume attempts after a lost connection in this run (default 3)
      --timeout SECONDS  give up on a connection that sends nothing for this long, headers or body (default 30)
      --max-size SIZE    refuse a file larger than this: 512M, 20G, 1T or bytes (default 256G)
      --clean            first delete the stale downloads of the folder (NAME.partial, NAME.partial.json, dead
                         locks) that no running pull uses; without URL, only that
  -f, --force            download again even when the file is already there

The file is asked for without content encoding (Accept-Encoding: identity); a server that compresses it anyway,
sends more than its Content-Length, or more than --max-size is an error and the download is deleted.

${GLOBAL_HELP}`;

const OPTIONS = {
  ...GLOBAL_OPTIONS,
  dir: { type: 'string' },
  name: { type: 'string' },
  sha256: { type: 'string' },
  retries: { type: 'string' },
  timeout: { type: 'string' },
  'max-size': { type: 'string' },
  clean: { type: 'boolean' },
  force: { type: 'boolean', short: 'f' },
} as const;

/**
 * The default --max-size: 256 GiB. Hugging Face stores no file above 50 GB (larger models are split into
 * shards), and an unsplit 405B-parameter model in Q4_K_M is about 228 GiB; a file past this is a server that
 * does not stop, not a model.
 */
export const DEFAULT_MAX_DOWNLOAD_BYTES = 256 * 1024 ** 3;

/** Parses a size: bytes, or a number with K, M, G or T (powers of 1024; `KiB`, `MB`, … are read the same). */
export function parseSize(text: string): number | undefined {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$/i.exec(text);
  if (!m) return undefined;
  const power = ' kmgt'.indexOf(m[2]!.toLowerCase() || ' ');
  const bytes = Math.floor(Number(m[1]) * 1024 ** power);
  return Number.isSafeInteger(bytes) && bytes > 0 ? bytes : undefined;
}

/**
 * The Hugging Face endpoint `hf:` URLs expand to: `HF_ENDPOINT` (a mirror, as the Hugging Face tools read it),
 * else https://huggingface.co.
 *
 * @throws LlamaError ERR_INVALID_ARGUMENT when HF_ENDPOINT is not an http(s) URL.
 */
export function hfEndpoint(env: Record<string, string | undefined> = process.env): string {
  const text = env.HF_ENDPOINT?.trim();
  if (!text) return 'https://huggingface.co';
  let url: URL | undefined;
  try {
    url = new URL(text);
  } catch {
    url = undefined;
  }
  if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:')) {
    throw new LlamaError('ERR_INVALID_ARGUMENT', `HF_ENDPOINT: expected an http:// or https:// URL, got '${text}'`);
  }
  return text.replace(/\/+$/, '');
}

/**
 * Expands `hf:USER/REPO/PATH/FILE.gguf` (or `hf:USER/REPO@REVISION/…`) into its Hugging Face download URL (on
 * `HF_ENDPOINT` when it is set); returns an http(s) URL unchanged.
 *
 * @throws LlamaError ERR_INVALID_ARGUMENT for anything else.
 */
export function expandModelUrl(spec: string, env: Record<string, string | undefined> = process.env): string {
  const text = spec.trim();
  if (/^hf:/i.test(text)) {
    const parts = text.slice(3).replace(/^\/+/, '').split('/');
    if (parts.length < 3 || parts.some((p) => p.length === 0)) {
      throw new LlamaError('ERR_INVALID_ARGUMENT', `${JSON.stringify(spec)} is not hf:USER/REPO/FILE.gguf`);
    }
    const [user, repoAndRevision, ...file] = parts;
    const at = repoAndRevision.indexOf('@');
    const repo = at < 0 ? repoAndRevision : repoAndRevision.slice(0, at);
    const revision = at < 0 ? 'main' : repoAndRevision.slice(at + 1);
    if (!repo || !revision) throw new LlamaError('ERR_INVALID_ARGUMENT', `${JSON.stringify(spec)} is not hf:USER/REPO[@REVISION]/FILE.gguf`);
    const encode = (segment: string) => encodeURIComponent(segment);
    return `${hfEndpoint(env)}/${encode(user)}/${encode(repo)}/resolve/${encode(revision)}/${file.map(encode).join('/')}`;
  }
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new LlamaError('ERR_INVALID_ARGUMENT', `${JSON.stringify(spec)} is neither an http(s):// URL nor hf:USER/REPO/FILE.gguf`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new LlamaError('ERR_INVALID_ARGUMENT', `${JSON.stringify(spec)}: only http:// and https:// URLs (or hf:USER/REPO/FILE.gguf) can be pulled`);
  }
  return url.toString();
}

/** The file name a URL names (its last path segment), or undefined when it names none usable. */
export function fileNameFromUrl(url: string): string | undefined {
  let name: string;
  try {
    name = decodeURIComponent(new URL(url).pathname.split('/').pop() ?? '');
  } catch {
    return undefined;
  }
  return isSafeName(name) ? name : undefined;
}

function isSafeName(name: string): boolean {
  return name.length > 0 && name !== '.' && name !== '..' && !/[/\\\0]/.test(name);
}

/** The URL for messages: credentials and secret query parameters (signed CDN URLs) redacted. */
const shown = redactUrl;

export interface DownloadProgress {
  /** Bytes on disk so far (including those of an earlier, resumed run). */
  done: number;
  /** The file's size, when the server gives it. */
  total: number | undefined;
}

export interface DownloadOptions {
  url: string;
  /** The final path; the download is written to `<dest>.partial` and renamed at the end. */
  dest: string;
  /** Expected SHA-256, hex. */
  sha256?: string;
  /** Resume attempts after a lost connection. Default 3. */
  retries?: number;
  /** Delay before the first resume attempt (doubles each time). Default 500 ms. */
  retryDelayMs?: number;
  /** Abort a connection idle for this long, waiting for the headers or for the next bytes of the body. Default 30000 ms. */
  idleTimeoutMs?: number;
  /** Refuse a file larger than this many bytes (announced or received). Default {@link DEFAULT_MAX_DOWNLOAD_BYTES} (256 GiB). */
  maxBytes?: number;
  /** Check that the file is a valid GGUF model before the rename. Default: when `dest` ends with .gguf. */
  checkGguf?: boolean;
  headers?: Record<string, string>;
  onProgress?: (progress: DownloadProgress) => void;
  logger?: Logger;
  signal?: AbortSignal;
}

export interface DownloadResult {
  path: string;
  bytes: number;
  sha256: string;
  /** Bytes that were already on disk from an earlier run. */
  resumedFrom: number;
  /** Connections that were lost and resumed in this run. */
  resumes: number;
}

interface PartialMeta {
  url: string;
  etag?: string;
  lastModified?: string;
  total?: number;
}

class Retryable extends Error {}

/** The body went past where it must end (its Content-Length, or the size limit). */
class Overflow extends Error {
  constructor(readonly bytes: number) {
    super('overflow');
  }
}

async function sizeOf(path: string): Promise<number> {
  try {
    return (await stat(path)).size;
  } catch {
    return 0;
  }
}

/** Hashes the first `bytes` of a file into a new hash. */
async function hashPrefix(path: string, bytes: number): Promise<Hash> {
  const hash = createHash('sha256');
  if (bytes === 0) return hash;
  for await (const chunk of createReadStream(path, { start: 0, end: bytes - 1 })) hash.update(chunk as Buffer);
  return hash;
}

/**
 * The process holding a lock file while it still runs; undefined when the lock is stale (its process is gone). A
 * lock without a readable pid that is only seconds old is one another pull is writing right now: held.
 */
async function lockHolder(path: string): Promise<number | 'unknown' | undefined> {
  const pid = Number((await readFile(path, 'utf8').catch(() => '')).trim());
  if (!Number.isInteger(pid) || pid <= 0) {
    const age = Date.now() - ((await stat(path).catch(() => undefined))?.mtimeMs ?? 0);
    return age < 10_000 ? 'unknown' : undefined;
  }
  if (pid === process.pid) return pid;
  try {
    process.kill(pid, 0);
    return pid;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM' ? pid : undefined;
  }
}

/** Holds `<dest>.lock` for the download (two pulls of one file would both append to the .partial file). */
async function lock(dest: string): Promise<() => Promise<void>> {
  const path = `${dest}.lock`;
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fh = await open(path, 'wx');
      await fh.writeFile(String(process.pid));
      await fh.close();
      return () => rm(path, { force: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const pid = await lockHolder(path);
      if (pid !== undefined) throw new LlamaError('ERR_DOWNLOAD', `another download of ${dest} is running (process ${pid})`);
      await rm(path, { force: true }); // left by a download that was killed
    }
  }
  throw new LlamaError('ERR_DOWNLOAD', `cannot lock ${dest}.lock`);
}

export interface CleanResult {
  /** Files deleted (names within the folder). */
  removed: string[];
  /** Downloads left alone because a running pull holds them. */
  inUse: string[];
}

/**
 * Deletes the leftovers of downloads in `dir` that no running pull holds: locks of processes that are gone, and
 * `.partial.json` files without their `.partial` data (nothing to resume). With `partials: true` (`pull --clean`),
 * the resumable `NAME.partial` downloads too.
 */
export async function cleanDownloads(dir: string, { partials = false }: { partials?: boolean } = {}): Promise<CleanResult> {
  const removed: string[] = [];
  const inUse: string[] = [];
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return { removed, inUse };
  }
  const present = new Set(names);
  const held = new Set<string>();
  for (const name of names.filter((n) => n.endsWith('.lock'))) {
    const base = name.slice(0, -'.lock'.length);
    if ((await lockHolder(join(dir, name))) !== undefined) {
      held.add(base);
      inUse.push(base);
      continue;
    }
    await rm(join(dir, name), { force: true });
    removed.push(name);
  }
  for (const name of names) {
    const json = name.endsWith('.partial.json');
    const data = !json && name.endsWith('.partial');
    if (!json && !data) continue;
    const base = name.slice(0, json ? -'.partial.json'.length : -'.partial'.length);
    if (held.has(base)) continue;
    const orphan = json && (!present.has(`${base}.partial`) || (await sizeOf(join(dir, `${base}.partial`))) === 0);
    const empty = data && (await sizeOf(join(dir, name))) === 0;
    if (partials || orphan || empty) {
      await rm(join(dir, name), { force: true });
      removed.push(name);
    }
  }
  return { removed, inUse };
}

/**
 * Downloads `url` to `dest` through `<dest>.partial`: resumes an existing partial file with an HTTP Range request
 * (If-Range guards against a file that changed on the server), retries a lost connection from where it stopped,
 * checks the SHA-256 when given and the GGUF structure of a .gguf file, then renames the partial file into place.
 *
 * @throws LlamaError ERR_DOWNLOAD (HTTP error, lost connection after the retries, not a GGUF file), ERR_CHECKSUM
 *   (the partial file is deleted), ERR_ABORTED.
 */
export async function downloadFile(options: DownloadOptions): Promise<DownloadResult> {
  // Every message and warning goes through the redaction: the URL's credentials and signed query, the token.
  const secrets = [options.headers?.authorization?.replace(/^\S+\s+/, ''), ...urlSecrets(options.url)];
  const scrub = (text: string) => redactText(text, secrets);
  const logger = options.logger;
  const safe: Logger | undefined = logger && {
    debug: (m) => logger.debug(scrub(m)),
    info: (m) => logger.info(scrub(m)),
    warn: (m) => logger.warn(scrub(m)),
  };
  try {
    return await download({ ...options, logger: safe });
  } catch (error) {
    if (error instanceof LlamaError) throw new LlamaError(error.code, scrub(error.message), { cause: error.cause });
    throw new LlamaError('ERR_DOWNLOAD', scrub(error instanceof Error ? error.message : String(error)));
  }
}

/** The user name and password of a URL (decoded), for redaction. */
function urlSecrets(url: string): string[] {
  try {
    const u = new URL(url);
    return [u.username, u.password].filter(Boolean).flatMap((s) => [s, decodeURIComponent(s)]);
  } catch {
    return [];
  }
}

/** A URL's user name and password as a Basic Authorization header (fetch refuses URLs that hold credentials). */
function splitCredentials(url: string): { url: string; authorization?: string } {
  const u = new URL(url);
  if (!u.username && !u.password) return { url };
  const authorization = `Basic ${Buffer.from(`${decodeURIComponent(u.username)}:${decodeURIComponent(u.password)}`).toString('base64')}`;
  u.username = '';
  u.password = '';
  return { url: u.toString(), authorization };
}

async function download(options: DownloadOptions): Promise<DownloadResult> {
  const { dest } = options;
  const { url: fetchUrl, authorization } = splitCredentials(options.url);
  // Messages show `url` (redacted); the partial file's metadata keeps `fetchUrl`: no password on disk.
  const url = options.url;
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_DOWNLOAD_BYTES;
  const retries = options.retries ?? 3;
  const idleTimeoutMs = options.idleTimeoutMs ?? 30_000;
  const partial = `${dest}.partial`;
  const metaPath = `${dest}.partial.json`;
  const expected = options.sha256?.trim().toLowerCase();
  const log = options.logger;
  const unlock = await lock(dest);
  // A download that failed for good: nothing of it is worth resuming.
  const discard = async () => {
    await rm(partial, { force: true });
    await rm(metaPath, { force: true });
  };
  try {
    let meta: PartialMeta | undefined;
    try {
      meta = JSON.parse(await readFile(metaPath, 'utf8')) as PartialMeta;
    } catch {
      meta = undefined;
    }
    let have = await sizeOf(partial);
    if (have > 0 && meta?.url !== fetchUrl) {
      log?.info(`discarding ${partial}: it is from another URL`);
      await rm(partial, { force: true });
      have = 0;
    }
    const resumedFrom = have;
    let hash: Hash | undefined;
    let hashed = -1;
    let resumes = 0;
    let failures = 0;
    let total: number | undefined = meta?.total;

    for (;;) {
      if (options.signal?.aborted) throw new LlamaError('ERR_ABORTED', 'the download was stopped');
      const idle = new IdleTimer(idleTimeoutMs);
      const signal = options.signal ? AbortSignal.any([options.signal, idle.signal]) : idle.signal;
      // A model file is never asked for compressed: an expanded answer could be any size (a gzip bomb).
      const headers: Record<string, string> = { 'user-agent': 'tea-llama', ...options.headers, 'accept-encoding': 'identity' };
      if (authorization && !headers.authorization) headers.authorization = authorization;
      if (have > 0) {
        headers.range = `bytes=${have}-`;
        const validator = meta?.etag && !meta.etag.startsWith('W/') ? meta.etag : meta?.lastModified;
        if (validator) headers['if-range'] = validator;
      }
      let fh: FileHandle | undefined;
      try {
        let response: Response;
        try {
          response = await fetch(fetchUrl, { headers, signal, redirect: 'follow' });
        } catch (error) {
          throw new Retryable(`cannot reach ${shown(url)}: ${(error as Error).cause instanceof Error ? ((error as Error).cause as Error).message : (error as Error).message}`);
        }
        if (response.status === 416 && have > 0) {
          // Nothing past what we have: complete if the size matches, otherwise start over.
          await response.body?.cancel().catch(() => undefined);
          const size = Number(/\/(\d+)\s*$/.exec(response.headers.get('content-range') ?? '')?.[1]);
          if (size === have) {
            total = have;
            break;
          }
          log?.warn(`the server has no bytes after ${have} of ${shown(url)}: starting over`);
          await rm(partial, { force: true });
          have = 0;
          continue;
        }
        const encoding = response.headers.get('content-encoding');
        if (response.ok && encoding && encoding.trim().toLowerCase() !== 'identity') {
          // fetch would expand it: cancel before a byte is read.
          await response.body?.cancel().catch(() => undefined);
          if (have === 0) await discard();
          throw new LlamaError('ERR_DOWNLOAD', `${shown(url)} sent the file with Content-Encoding ${JSON.stringify(encoding)} although none was asked for: not expanded, nothing kept`);
        }
        if (!response.ok) {
          await response.body?.cancel().catch(() => undefined);
          const message = `${shown(url)} answered HTTP ${response.status}${response.statusText ? ` ${response.statusText}` : ''}`;
          if (response.status >= 500 || response.status === 429) throw new Retryable(message);
          throw new LlamaError('ERR_DOWNLOAD', response.status === 401 || response.status === 403 ? `${message} (a gated model needs HF_TOKEN)` : message);
        }
        let start = 0;
        if (response.status === 206) {
          const range = /bytes\s+(\d+)-(\d+)\/(\d+|\*)/i.exec(response.headers.get('content-range') ?? '');
          start = range ? Number(range[1]) : -1;
          if (range && range[3] !== '*') total = Number(range[3]);
          if (start !== have) {
            await response.body?.cancel().catch(() => undefined);
            log?.warn(`the server resumed at byte ${start}, not ${have}: starting over`);
            await rm(partial, { force: true });
            have = 0;
            continue;
          }
        } else {
          // 200: the whole file (the server ignores ranges, or the file changed since the partial download).
          if (have > 0) log?.warn(`the server sent the whole file instead of resuming at ${formatBytes(have)}: starting over`);
          have = 0;
          const length = response.headers.get('content-length');
          total = length !== null && /^\d+$/.test(length) ? Number(length) : undefined;
        }
        if (total !== undefined && total > maxBytes) {
          await response.body?.cancel().catch(() => undefined);
          await discard();
          throw new LlamaError('ERR_DOWNLOAD', `${shown(url)} is ${formatBytes(total)}, more than the ${formatBytes(maxBytes)} allowed (--max-size): not downloaded`);
        }
        // Where the body must end: the size the server announced, else the limit.
        const end = total ?? maxBytes;
        meta = { url: fetchUrl, etag: response.headers.get('etag') ?? undefined, lastModified: response.headers.get('last-modified') ?? undefined, total };
        await writeFile(metaPath, JSON.stringify(meta));
        if (hashed !== have) {
          hash = await hashPrefix(partial, have);
          hashed = have;
        }
        fh = await open(partial, have === 0 ? 'w' : 'a');
        options.onProgress?.({ done: have, total });
        if (!response.body) throw new Retryable(`${shown(url)} sent no body`);
        try {
          for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
            idle.touch();
            if (have + chunk.length > end) throw new Overflow(have + chunk.length);
            await fh.write(chunk);
            hash!.update(chunk);
            have += chunk.length;
            hashed = have;
            options.onProgress?.({ done: have, total });
          }
        } catch (error) {
          if (error instanceof Overflow) {
            await response.body?.cancel().catch(() => undefined);
            await fh.close();
            fh = undefined;
            await discard();
            throw new LlamaError(
              'ERR_DOWNLOAD',
              total !== undefined
                ? `${shown(url)} sent more than the ${total} bytes it announced: the download was deleted`
                : `${shown(url)} sent more than the ${formatBytes(maxBytes)} allowed (--max-size) without announcing a size: the download was deleted`,
            );
          }
          if (options.signal?.aborted) throw new LlamaError('ERR_ABORTED', 'the download was stopped');
          const why = idle.fired ? `nothing received for ${idleTimeoutMs / 1000} s` : 'the connection was lost';
          throw new Retryable(`${why} after ${formatBytes(have)}${total ? ` of ${formatBytes(total)}` : ''}`);
        }
        if (total !== undefined && have < total) throw new Retryable(`the connection closed after ${formatBytes(have)} of ${formatBytes(total)}`);
        await fh.sync();
        break;
      } catch (error) {
        if (!(error instanceof Retryable)) throw error;
        if (options.signal?.aborted) throw new LlamaError('ERR_ABORTED', 'the download was stopped');
        failures++;
        if (failures > retries) {
          // Only what a resume needs stays: the bytes and their validator; nothing when no byte arrived.
          if (have === 0) await discard();
          const resume = have > 0 ? ` (${formatBytes(have)} kept in ${partial}: run the command again to resume)` : '';
          throw new LlamaError('ERR_DOWNLOAD', `${error.message}${resume}`);
        }
        resumes++;
        const delay = (options.retryDelayMs ?? 500) * 2 ** (failures - 1);
        log?.warn(`${error.message}; resuming in ${(delay / 1000).toFixed(1)} s (attempt ${failures} of ${retries})`);
        await new Promise((done) => setTimeout(done, delay));
      } finally {
        idle.clear();
        await fh?.close();
      }
    }

    if (hashed !== have || !hash) hash = await hashPrefix(partial, have);
    const actual = hash.digest('hex');
    if (expected && actual !== expected) {
      await rm(partial, { force: true });
      await rm(metaPath, { force: true });
      throw new LlamaError('ERR_CHECKSUM', `checksum mismatch for ${basename(dest)}: expected sha256 ${expected}, got ${actual}; the download was deleted`);
    }
    if (options.checkGguf ?? dest.toLowerCase().endsWith('.gguf')) {
      try {
        await readGguf(partial);
      } catch (error) {
        await rm(partial, { force: true });
        await rm(metaPath, { force: true });
        throw new LlamaError('ERR_DOWNLOAD', `${shown(url)} is not a valid GGUF model (${(error as Error).message.replace(partial, 'the download')}); the download was deleted`, {
          cause: error,
        });
      }
    }
    await rename(partial, dest);
    await rm(metaPath, { force: true });
    return { path: dest, bytes: have, sha256: actual, resumedFrom, resumes };
  } catch (error) {
    // Stopped or failed before a byte arrived: nothing to resume, so nothing stays.
    if ((await sizeOf(partial)) === 0) await discard();
    throw error;
  } finally {
    await unlock();
  }
}

/** The folder `pull` downloads into by default: where model resolution looks (`~/.cache/tea/models`). */
export function defaultModelsDir(): string {
  return join(homedir(), '.cache', 'tea', 'models');
}

export async function pullCommand(args: string[]): Promise<number> {
  const { values: v, positionals } = parse('pull', args, OPTIONS);
  if (v.help) {
    await writeOut(PULL_HELP + '\n');
    return EXIT.ok;
  }
  const maxBytes = v['max-size'] === undefined ? DEFAULT_MAX_DOWNLOAD_BYTES : parseSize(v['max-size']);
  if (maxBytes === undefined) throw new UsageError(`--max-size takes a size such as 512M, 20G or 1T, not ${JSON.stringify(v['max-size'])}`, 'pull');
  if (v.clean && positionals.length === 0) {
    const dir = resolve(v.dir ?? defaultModelsDir());
    const { removed, inUse } = await cleanDownloads(dir, { partials: true });
    if (!v.quiet) {
      process.stderr.write(`${removed.length > 0 ? `removed ${removed.join(', ')}` : 'no stale downloads'} in ${dir}\n`);
      if (inUse.length > 0) process.stderr.write(`left alone (a pull is running): ${inUse.join(', ')}\n`);
    }
    return EXIT.ok;
  }
  if (positionals.length !== 1) throw new UsageError(positionals.length === 0 ? 'give the URL to download' : 'pull takes one URL', 'pull');
  const sha256 = v.sha256?.trim().toLowerCase();
  if (sha256 !== undefined && !/^[0-9a-f]{64}$/.test(sha256)) throw new UsageError('--sha256 must be 64 hexadecimal digits', 'pull');
  const retries = intOption('pull', 'retries', v.retries, 0, 100) ?? 3;
  const timeout = numberOption('pull', 'timeout', v.timeout, 0.1, 3600) ?? 30;
  let url: string;
  try {
    url = expandModelUrl(positionals[0]);
  } catch (error) {
    // A URL the command cannot use is a wrong command line (exit code 2), not a failed download.
    throw new UsageError((error as Error).message, 'pull');
  }
  const name = v.name ?? fileNameFromUrl(url);
  if (!name || !isSafeName(name)) throw new UsageError(v.name !== undefined ? `--name must be a file name, not ${JSON.stringify(v.name)}` : `cannot tell a file name from ${shown(url)}: give --name`, 'pull');
  const dir = resolve(v.dir ?? defaultModelsDir());
  const dest = join(dir, name);
  const logger = cliLogger({ verbose: Boolean(v.verbose), quiet: Boolean(v.quiet) });
  const say = (line: string) => {
    if (!v.quiet) process.stderr.write(`${line}\n`);
  };

  if (!v.force && (await sizeOf(dest)) > 0) {
    if (sha256) {
      const actual = (await hashPrefix(dest, await sizeOf(dest))).digest('hex');
      if (actual !== sha256) throw new LlamaError('ERR_CHECKSUM', `${dest} is already there but its sha256 is ${actual}, not ${sha256}: use --force to download it again`);
    }
    say(`${name} is already in ${dir}${sha256 ? ' (checksum verified)' : ''}; --force downloads it again`);
    await writeOut(dest + '\n');
    return EXIT.ok;
  }
  await mkdir(dir, { recursive: true });
  // Leftovers of earlier pulls that nothing can resume (or, with --clean, every download no pull is running).
  const cleaned = await cleanDownloads(dir, { partials: Boolean(v.clean) });
  if (cleaned.removed.length > 0) logger.info(`removed stale downloads: ${cleaned.removed.join(', ')}`);

  const headers: Record<string, string> = {};
  const token = process.env.HF_TOKEN?.trim();
  if (token && new URL(url).host === new URL(hfEndpoint()).host) headers.authorization = `Bearer ${token}`;

  const controller = new AbortController();
  const onSigint = () => controller.abort();
  process.once('SIGINT', onSigint);
  const line = new ProgressLine({ enabled: progressEnabled(v), tty: Boolean(process.stderr.isTTY) });
  const meter = new SpeedMeter();
  const started = Date.now();
  let first: number | undefined;
  let last: { done: number; total: number | undefined } = { done: 0, total: undefined };
  say(`pulling ${shown(url)}\n     to ${dest}`);
  try {
    const result = await downloadFile({
      url,
      dest,
      sha256,
      retries,
      idleTimeoutMs: timeout * 1000,
      maxBytes,
      headers,
      logger,
      signal: controller.signal,
      onProgress: (p) => {
        if (first === undefined) {
          first = p.done;
          if (p.done > 0) say(`resuming at ${formatBytes(p.done)}${p.total ? ` of ${formatBytes(p.total)}` : ''}`);
        }
        last = p;
        meter.add(p.done);
        line.draw(renderTransfer(name, p.done, p.total, meter.bytesPerSecond));
      },
    });
    // The file's time is when it was pulled: the model search takes the most recently pulled model.
    const now = new Date();
    await utimes(result.path, now, now);
    const seconds = (Date.now() - started) / 1000;
    const fetched = result.bytes - result.resumedFrom;
    line.done(renderTransfer(name, result.bytes, result.bytes, seconds > 0 ? fetched / seconds : undefined));
    say(
      `downloaded ${name}: ${formatBytes(result.bytes)} in ${formatDuration(seconds)}` +
        `${result.resumedFrom > 0 || result.resumes > 0 ? ' (resumed)' : ''}, sha256 ${result.sha256}${sha256 ? ' (verified)' : ''}`,
    );
    await writeOut(result.path + '\n');
    return EXIT.ok;
  } catch (error) {
    line.clear();
    if (controller.signal.aborted) {
      say(`stopped at ${formatBytes(last.done)}: run the command again to resume`);
      return EXIT.interrupted;
    }
    throw error;
  } finally {
    process.off('SIGINT', onSigint);
  }
}
