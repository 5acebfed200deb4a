import { open, rename, rm, stat } from 'node:fs/promises';
import { request as httpRequest, STATUS_CODES, type IncomingMessage, type OutgoingHttpHeaders } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { basename } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { hashFile } from './cache.js';
import { describeError, inputError, usageError } from './errors.js';
import { withFileLock } from './file-lock.js';
import { silentLogger, type Logger } from './log.js';
import { createProgress, type Progress } from './progress.js';

/**
 * The one downloader: HTTP(S) GET with redirects into `destination.part`, resumed with a Range request
 * by a later attempt or a later run, verified (size, md5, sha256), then renamed into place. Only a
 * verified file ever appears at `destination`, so its presence means it is good. A lock file beside
 * it lets one process download while others with the same cache wait for it.
 */
export interface DownloadOptions {
  url: string;
  /** The final path; the .part and .lock files live beside it. */
  destination: string;
  expectedSize?: number;
  md5?: string;
  sha256?: string;
  /** Extra request headers, e.g. Authorization; dropped when a redirect leaves the URL's origin. */
  headers?: Record<string, string>;
  /** Never touch the network: fail when `destination` is missing. */
  offline?: boolean;
  quiet?: boolean;
  /** Names the download in progress lines and messages; default: the destination's file name. */
  label?: string;
  logger?: Logger;
  /** Further attempts after a transient failure (connection lost, time-out, HTTP 5xx/429); default 3. */
  retries?: number;
  /** Give up an attempt after this long without any data; default 30,000. */
  timeoutMs?: number;
  /** Wait before the first retry, doubled for each next one; default 1,000. */
  retryDelayMs?: number;
  /** Appended to network and HTTP errors: what the user can do instead. */
  hint?: string;
}

export interface DownloadResult {
  path: string;
  bytes: number;
  fromCache: boolean;
  /** The file was completed from bytes fetched by an earlier attempt or an earlier run. */
  resumed: boolean;
}

const DEFAULT_RETRIES = 3;
const DEFAULT_TIMEOUT_MS = 30_000;
const DEFAULT_RETRY_DELAY_MS = 1_000;
const MAX_REDIRECTS = 10;
const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);
const TRANSIENT_STATUSES = new Set([408, 425, 429, 500, 502, 503, 504]);
/** Network errors worth another attempt; others (unknown host, refused, unreachable) fail at once. */
const TRANSIENT_CODES = new Set(['ECONNRESET', 'ECONNABORTED', 'EPIPE', 'ETIMEDOUT', 'EAI_AGAIN', 'ERR_STREAM_PREMATURE_CLOSE']);
const CREDENTIAL_HEADERS = new Set(['authorization', 'cookie', 'proxy-authorization']);

interface Settings {
  url: URL;
  destination: string;
  part: string;
  label: string;
  expectedSize?: number;
  md5?: string;
  sha256?: string;
  headers: Record<string, string>;
  retries: number;
  timeoutMs: number;
  retryDelayMs: number;
  hint?: string;
  quiet: boolean;
  logger: Logger;
}

export async function downloadFile(options: DownloadOptions): Promise<DownloadResult> {
  const settings = validateOptions(options);
  const { destination, logger } = settings;
  const cached = await completeSize(settings);
  if (cached !== undefined) return { path: destination, bytes: cached, fromCache: true, resumed: false };
  if (options.offline) {
    throw inputError(`${settings.label}: ${destination} is not in the cache and offline mode forbids downloading ${settings.url.href}`);
  }
  return withFileLock(
    `${destination}.lock`,
    async () => {
      // Another process may have finished it while this one waited for the lock.
      const finished = await completeSize(settings);
      if (finished !== undefined) return { path: destination, bytes: finished, fromCache: true, resumed: false };
      return transfer(settings);
    },
    { logger, label: settings.label },
  );
}

function validateOptions(options: DownloadOptions): Settings {
  let url: URL;
  try {
    url = new URL(options.url);
  } catch {
    throw usageError(`invalid download URL "${options.url}": expected an http:// or https:// URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw usageError(`invalid download URL "${options.url}": only http:// and https:// are supported`);
  }
  if (!options.destination) throw usageError('download destination must be a non-empty path');
  if (options.expectedSize !== undefined && !(Number.isSafeInteger(options.expectedSize) && options.expectedSize >= 0)) {
    throw usageError(`expected size must be a whole number of bytes, got ${options.expectedSize}`);
  }
  const retries = options.retries ?? DEFAULT_RETRIES;
  if (!(Number.isSafeInteger(retries) && retries >= 0)) throw usageError(`retries must be a whole number >= 0, got ${retries}`);
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  if (!(timeoutMs > 0 && Number.isFinite(timeoutMs))) throw usageError(`timeout must be a positive number of milliseconds, got ${timeoutMs}`);
  const retryDelayMs = options.retryDelayMs ?? DEFAULT_RETRY_DELAY_MS;
  if (!(retryDelayMs >= 0 && Number.isFinite(retryDelayMs))) throw usageError(`retry delay must be >= 0 ms, got ${retryDelayMs}`);
  return {
    url,
    destination: options.destination,
    part: `${options.destination}.part`,
    label: options.label ?? basename(options.destination),
    expectedSize: options.expectedSize,
    md5: checkHex(options.md5, 'md5', 32),
    sha256: checkHex(options.sha256, 'sha256', 64),
    headers: options.headers ?? {},
    retries,
    timeoutMs,
    retryDelayMs,
    hint: options.hint,
    quiet: options.quiet ?? false,
    logger: options.logger ?? silentLogger,
  };
}

function checkHex(value: string | undefined, name: string, digits: number): string | undefined {
  if (value === undefined) return undefined;
  if (!new RegExp(`^[0-9a-fA-F]{${digits}}$`).test(value)) {
    throw usageError(`invalid ${name} checksum "${value}": expected ${digits} hexadecimal digits`);
  }
  return value.toLowerCase();
}

/** The size of the finished file, or undefined when there is none (or one of the wrong size). */
async function completeSize(settings: Settings): Promise<number | undefined> {
  const size = await fileSize(settings.destination);
  if (size === undefined) return undefined;
  if (settings.expectedSize !== undefined && size !== settings.expectedSize) {
    settings.logger.warn(`${settings.destination} has ${size} bytes instead of ${settings.expectedSize}; downloading it again`);
    return undefined;
  }
  return size;
}

async function fileSize(path: string): Promise<number | undefined> {
  try {
    return (await stat(path)).size;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

/** Fetches into the .part file, verifies it and moves it into place; runs under the lock. */
async function transfer(settings: Settings): Promise<DownloadResult> {
  const { part, destination, logger } = settings;
  const progress = lazyProgress(settings);
  let restartedAfterMismatch = false;
  try {
    for (;;) {
      let resumed: boolean;
      const partBytes = (await fileSize(part)) ?? 0;
      if (settings.expectedSize !== undefined && partBytes === settings.expectedSize) {
        resumed = true;
      } else {
        if (settings.expectedSize !== undefined && partBytes > settings.expectedSize) await rm(part, { force: true });
        resumed = await fetchWithRetries(settings, progress);
      }
      const problem = await verify(settings);
      if (problem === undefined) {
        await syncFile(part);
        await rename(part, destination);
        return { path: destination, bytes: (await fileSize(destination)) ?? 0, fromCache: false, resumed };
      }
      await rm(part, { force: true });
      // Bytes kept from an earlier run may belong to an older version of the file: one clean retry.
      if (resumed && !restartedAfterMismatch) {
        restartedAfterMismatch = true;
        logger.warn(`${problem}; downloading it again from the start`);
        continue;
      }
      throw inputError(`${problem}; the download was discarded`);
    }
  } finally {
    progress.stop();
  }
}

interface LazyProgress {
  update(done: number, total: number | undefined): void;
  stop(): void;
}

/** The progress display starts with the first response, when the total size is known. */
function lazyProgress(settings: Settings): LazyProgress {
  let progress: Progress | undefined;
  return {
    update(done, total) {
      progress ??= createProgress({ label: settings.label, total: total ?? 0, unit: 'bytes', quiet: settings.quiet });
      progress.update(done);
    },
    stop() {
      progress?.stop();
    },
  };
}

/** An attempt's failure; `transient` ones are retried, resuming from what the .part file holds. */
class AttemptError extends Error {
  constructor(
    message: string,
    readonly transient: boolean,
  ) {
    super(message);
  }
}

async function fetchWithRetries(settings: Settings, progress: LazyProgress): Promise<boolean> {
  for (let attempt = 0; ; attempt += 1) {
    try {
      return await fetchAttempt(settings, progress);
    } catch (error) {
      const failure = error instanceof AttemptError ? error : new AttemptError(describeError(error), false);
      if (!failure.transient || attempt >= settings.retries) {
        const attempts = attempt + 1 > 1 ? ` (${attempt + 1} attempts)` : '';
        const hint = settings.hint ? `; ${settings.hint}` : '';
        throw inputError(`could not download ${settings.url.href}: ${failure.message}${attempts}${hint}`, error);
      }
      const delay = settings.retryDelayMs * 2 ** attempt;
      settings.logger.info(`${settings.label}: ${failure.message}; retrying in ${(delay / 1000).toFixed(1)} s`);
      await sleep(delay);
    }
  }
}

/** One GET, resuming from the .part file's size; returns whether it continued earlier bytes. */
async function fetchAttempt(settings: Settings, progress: LazyProgress): Promise<boolean> {
  const { part, logger } = settings;
  const offset = (await fileSize(part)) ?? 0;
  const headers: Record<string, string> = { 'User-Agent': 'clip-eval', ...settings.headers };
  if (offset > 0) headers.Range = `bytes=${offset}-`;
  const { response, timedOut } = await openResponse(settings.url, headers, settings.timeoutMs);
  const status = response.statusCode ?? 0;
  let start: number;
  let total: number | undefined;
  if (status === 206) {
    const range = /^bytes (\d+)-\d+\/(\d+|\*)$/.exec(response.headers['content-range'] ?? '');
    if (!range || Number(range[1]) !== offset) {
      response.destroy();
      await rm(part, { force: true });
      throw new AttemptError(`the server answered the resume request with another range (${response.headers['content-range']})`, true);
    }
    start = offset;
    total = range[2] === '*' ? undefined : Number(range[2]);
    logger.info(`${settings.label}: resuming at ${offset} bytes`);
  } else if (status === 200) {
    if (offset > 0) logger.info(`${settings.label}: the server does not resume downloads; starting again`);
    start = 0;
    const length = response.headers['content-length'];
    total = length !== undefined && /^\d+$/.test(length) ? Number(length) : undefined;
  } else {
    response.resume();
    if (status === 416) {
      await rm(part, { force: true });
      throw new AttemptError('the server refused the resume request (HTTP 416); starting again', true);
    }
    throw new AttemptError(`HTTP ${status} ${STATUS_CODES[status] ?? ''}`.trim(), TRANSIENT_STATUSES.has(status));
  }
  if (total !== undefined && settings.expectedSize !== undefined && total !== settings.expectedSize) {
    response.destroy();
    throw new AttemptError(`the server offers ${total} bytes, expected ${settings.expectedSize}`, false);
  }

  let done = start;
  const file = await open(part, start === 0 ? 'w' : 'a');
  try {
    for await (const chunk of response as AsyncIterable<Buffer>) {
      await file.write(chunk);
      done += chunk.length;
      progress.update(done, total ?? settings.expectedSize);
    }
  } catch (error) {
    throw networkFailure(error, timedOut(), settings.timeoutMs);
  } finally {
    await file.close();
  }
  if (total !== undefined && done !== total) throw new AttemptError(`the connection closed after ${done} of ${total} bytes`, true);
  return start > 0;
}

interface OpenedResponse {
  response: IncomingMessage;
  /** Whether the idle time-out ended the request (its stream errors look like any lost connection). */
  timedOut(): boolean;
}

/** GET that follows redirects, dropping credentials once a redirect leaves the first origin. */
async function openResponse(first: URL, headers: Record<string, string>, timeoutMs: number): Promise<OpenedResponse> {
  let url = first;
  let sent = headers;
  for (let hops = 0; ; hops += 1) {
    const opened = await get(url, sent, timeoutMs);
    const { statusCode = 0, headers: received } = opened.response;
    if (!REDIRECT_STATUSES.has(statusCode)) return opened;
    opened.response.resume();
    if (!received.location) throw new AttemptError(`HTTP ${statusCode} redirect without a Location header`, false);
    if (hops >= MAX_REDIRECTS) throw new AttemptError(`more than ${MAX_REDIRECTS} redirects`, false);
    const next = new URL(received.location, url);
    if (next.protocol !== 'http:' && next.protocol !== 'https:') {
      throw new AttemptError(`redirected to an unsupported URL scheme (${next.protocol})`, false);
    }
    if (next.origin !== url.origin) {
      sent = Object.fromEntries(Object.entries(sent).filter(([name]) => !CREDENTIAL_HEADERS.has(name.toLowerCase())));
    }
    url = next;
  }
}

function get(url: URL, headers: OutgoingHttpHeaders, timeoutMs: number): Promise<OpenedResponse> {
  return new Promise((resolve, reject) => {
    let timedOut = false;
    const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
    const request = send(url, { method: 'GET', headers });
    // The socket's idle time-out covers both waiting for the response and stalls during the body.
    request.setTimeout(timeoutMs, () => {
      timedOut = true;
      request.destroy();
    });
    request.on('response', (response) => resolve({ response, timedOut: () => timedOut }));
    request.on('error', (error) => reject(networkFailure(error, timedOut, timeoutMs)));
    request.end();
  });
}

function networkFailure(error: unknown, timedOut: boolean, timeoutMs: number): AttemptError {
  if (error instanceof AttemptError) return error;
  if (timedOut) return new AttemptError(`no data for ${timeoutMs / 1000} s (timed out)`, true);
  const code = (error as NodeJS.ErrnoException).code ?? '';
  // Node reports a response cut short as a bare "aborted".
  const message = describeError(error) === 'aborted' ? 'the connection closed before the end of the file' : describeError(error);
  return new AttemptError(message, TRANSIENT_CODES.has(code));
}

/** Why the .part file is not the file asked for, or undefined when it is. */
async function verify(settings: Settings): Promise<string | undefined> {
  const { part, url, expectedSize } = settings;
  const size = (await fileSize(part)) ?? 0;
  if (expectedSize !== undefined && size !== expectedSize) {
    return `${url.href} gave ${size} bytes, expected ${expectedSize}`;
  }
  for (const [algorithm, expected] of [['md5', settings.md5], ['sha256', settings.sha256]] as const) {
    if (expected === undefined) continue;
    const actual = await hashFile(part, algorithm);
    if (actual !== expected) return `${url.href} has ${algorithm} ${actual}, expected ${expected}`;
  }
  return undefined;
}

async function syncFile(path: string): Promise<void> {
  const handle = await open(path, 'r+');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
