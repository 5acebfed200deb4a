import { constants, type Stats } from 'node:fs';
import { lstat, open, rename, rm, stat, type FileHandle } from 'node:fs/promises';
import { basename } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { hashFile } from '../core/file-hash.js';
import { ClipEvalError, describeError, inputError, usageError, type Hint } from '../core/errors.js';
import { durationText } from '../core/format.js';
import { withFileLock } from './file-lock.js';
import { ConnectionClosedError, HttpError, httpRequest, type HttpResponse, type MinimumRate } from './http.js';
import { silentLogger, type Logger } from '../core/log.js';
import { refuseUnlessOwnFile } from '../core/plain-file.js';
import { createProgress, type Progress } from '../core/progress.js';

/**
 * The one downloader: HTTP(S) GET with redirects into `destination.part`, resumed with a Range request
 * by a later attempt or a later run, verified (size, md5, sha256), then renamed into place. Only a
 * verified file ever appears at `destination`, so its presence means it is good. A lock file beside
 * it lets one process download while others with the same cache wait for it. A link or anything but a
 * plain file found at the .part or final path is refused, never written through or replaced.
 *
 * A body whose end only the connection's close marks (no Content-Length, no chunked encoding) looks the
 * same whole or cut, so the file's end is then confirmed with a Range request from its size: a 416
 * naming that size says it is whole, a 206 brings the rest. Without a size, a range answer or a checksum
 * to check it by, such a download is refused rather than kept.
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
  /**
   * The minimum rate: an attempt that receives fewer than `minBytesPerWindow` bytes in a window of
   * `rateWindowMs` (windows follow each other from the start of the body) is cut off as too slow, and
   * retried like a lost connection; defaults 32,768 bytes per 30,000 ms (about 1 KiB/s).
   */
  minBytesPerWindow?: number;
  rateWindowMs?: number;
  /**
   * The deadline once the size is known, for all attempts together: `deadlineGraceMs` plus the bytes
   * still to come at `minAverageBytesPerSecond`; defaults 60,000 ms and 65,536 bytes/s (64 KiB/s), so
   * that a trickle which passes the minimum rate still ends, within the 60 minutes others wait for it
   * for files up to about 230 MB.
   */
  minAverageBytesPerSecond?: number;
  deadlineGraceMs?: number;
  /** How long to wait for another process downloading the same file; default 60 minutes. */
  lockWaitMs?: number;
  /** Wait before the first retry, doubled for each next one; default 1,000. */
  retryDelayMs?: number;
  /** Appended to network and HTTP errors: what the user can do instead (text, or a fix the caller words). */
  hint?: string | Hint;
  /** Appended instead when the server refuses access (HTTP 401 or 403), e.g. how to give a token. */
  accessHint?: string;
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
const DEFAULT_MIN_RATE: MinimumRate = { bytes: 32_768, windowMs: 30_000 };
const DEFAULT_MIN_AVERAGE_BYTES_PER_SECOND = 65_536;
const DEFAULT_DEADLINE_GRACE_MS = 60_000;
const TRANSIENT_STATUSES = new Set([408, 425, 429, 500, 502, 503, 504]);
const PART_FILE = 'a partial download of this tool';
const DOWNLOADED_FILE = 'a file this tool downloaded';

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
  minRate: MinimumRate;
  minAverageBytesPerSecond: number;
  deadlineGraceMs: number;
  lockWaitMs?: number;
  hint?: string | Hint;
  accessHint?: string;
  quiet: boolean;
  logger: Logger;
}

/** Where a download's bytes go until they are verified. */
export function partialDownloadPath(destination: string): string {
  return `${destination}.part`;
}

/** The lock a download of `destination` holds. */
export function downloadLockPath(destination: string): string {
  return `${destination}.lock`;
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
    downloadLockPath(destination),
    async () => {
      // Another process may have finished it while this one waited for the lock.
      const finished = await completeSize(settings);
      if (finished !== undefined) return { path: destination, bytes: finished, fromCache: true, resumed: false };
      return transfer(settings);
    },
    { logger, label: settings.label, maxWaitMs: settings.lockWaitMs },
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
  const minRate = { bytes: options.minBytesPerWindow ?? DEFAULT_MIN_RATE.bytes, windowMs: options.rateWindowMs ?? DEFAULT_MIN_RATE.windowMs };
  if (!(Number.isSafeInteger(minRate.bytes) && minRate.bytes >= 0)) throw usageError(`minimum bytes per window must be a whole number >= 0, got ${minRate.bytes}`);
  if (!(minRate.windowMs > 0 && Number.isFinite(minRate.windowMs))) throw usageError(`rate window must be a positive number of milliseconds, got ${minRate.windowMs}`);
  const minAverageBytesPerSecond = options.minAverageBytesPerSecond ?? DEFAULT_MIN_AVERAGE_BYTES_PER_SECOND;
  if (!(minAverageBytesPerSecond > 0 && Number.isFinite(minAverageBytesPerSecond))) {
    throw usageError(`minimum average rate must be a positive number of bytes per second, got ${minAverageBytesPerSecond}`);
  }
  const deadlineGraceMs = options.deadlineGraceMs ?? DEFAULT_DEADLINE_GRACE_MS;
  if (!(deadlineGraceMs >= 0 && Number.isFinite(deadlineGraceMs))) throw usageError(`deadline grace must be >= 0 ms, got ${deadlineGraceMs}`);
  if (options.lockWaitMs !== undefined && !(options.lockWaitMs >= 0 && Number.isFinite(options.lockWaitMs))) {
    throw usageError(`lock wait must be >= 0 ms, got ${options.lockWaitMs}`);
  }
  return {
    url,
    destination: options.destination,
    part: partialDownloadPath(options.destination),
    label: options.label ?? basename(options.destination),
    expectedSize: options.expectedSize,
    md5: checkHex(options.md5, 'md5', 32),
    sha256: checkHex(options.sha256, 'sha256', 64),
    headers: options.headers ?? {},
    retries,
    timeoutMs,
    retryDelayMs,
    minRate,
    minAverageBytesPerSecond,
    deadlineGraceMs,
    lockWaitMs: options.lockWaitMs,
    hint: options.hint,
    accessHint: options.accessHint,
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

/**
 * The size of the finished file, or undefined when there is none (or one of the wrong size, which the
 * download replaces). A link the user made to a complete file elsewhere is used as it is; any other link,
 * folder or special file is refused rather than replaced.
 */
async function completeSize(settings: Settings): Promise<number | undefined> {
  const { destination, expectedSize } = settings;
  const entry = await lstatIfPresent(destination);
  if (entry === undefined) return undefined;
  const target = entry.isSymbolicLink() ? await statIfPresent(destination) : entry;
  if (target?.isFile() && (expectedSize === undefined || target.size === expectedSize)) return target.size;
  refuseUnlessOwnFile(destination, entry, DOWNLOADED_FILE);
  settings.logger.warn(`${destination} has ${entry.size} bytes instead of ${expectedSize}; downloading it again`);
  return undefined;
}

async function lstatIfPresent(path: string): Promise<Stats | undefined> {
  return lstat(path).catch(absentAsUndefined);
}

/** What a path leads to; undefined also for a dangling link or a link loop. */
async function statIfPresent(path: string): Promise<Stats | undefined> {
  return stat(path).catch((error: NodeJS.ErrnoException) => (error.code === 'ELOOP' ? undefined : absentAsUndefined(error)));
}

function absentAsUndefined(error: NodeJS.ErrnoException): undefined {
  if (error.code === 'ENOENT') return undefined;
  throw error;
}

/** The .part file's size, 0 when there is none; refuses a link or anything else planted there. */
async function partSize(part: string): Promise<number> {
  const entry = await lstatIfPresent(part);
  if (entry === undefined) return 0;
  refuseUnlessOwnFile(part, entry, PART_FILE, { writtenInPlace: true });
  return entry.size;
}

/**
 * Opens the .part file to append to it, or as a new file: never through a link (O_NOFOLLOW, and a new
 * file is created exclusively), and never a file that has another name too.
 */
async function openPart(part: string, append: boolean): Promise<FileHandle> {
  const { O_WRONLY, O_APPEND, O_CREAT, O_EXCL, O_NOFOLLOW } = constants;
  if (!append) await rm(part, { force: true });
  let handle: FileHandle;
  try {
    handle = await open(part, O_WRONLY | O_NOFOLLOW | (append ? O_APPEND : O_CREAT | O_EXCL));
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ELOOP' || code === 'EEXIST') {
      // Planted since it was checked: judge what is there now.
      await partSize(part);
    }
    throw error;
  }
  try {
    refuseUnlessOwnFile(part, await handle.stat(), PART_FILE, { writtenInPlace: true });
  } catch (error) {
    await handle.close();
    throw error;
  }
  return handle;
}

/** Fetches into the .part file, verifies it and moves it into place; runs under the lock. */
async function transfer(settings: Settings): Promise<DownloadResult> {
  const { part, destination, logger } = settings;
  const progress = lazyProgress(settings);
  let restartedAfterMismatch = false;
  try {
    for (;;) {
      let resumed: boolean;
      const partBytes = await partSize(part);
      if (settings.expectedSize !== undefined && partBytes === settings.expectedSize) {
        resumed = true;
      } else {
        if (settings.expectedSize !== undefined && partBytes > settings.expectedSize) await rm(part, { force: true });
        resumed = await fetchWithRetries(settings, progress);
      }
      const problem = await verify(settings);
      if (problem === undefined) {
        await syncFile(part);
        // rename would replace a link or folder planted meanwhile; only a plain file may be replaced.
        const existing = await lstatIfPresent(destination);
        if (existing !== undefined) refuseUnlessOwnFile(destination, existing, DOWNLOADED_FILE);
        await rename(part, destination);
        return { path: destination, bytes: (await statIfPresent(destination))?.size ?? 0, fromCache: false, resumed };
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
      progress ??= createProgress({ label: settings.label, total, unit: 'bytes', quiet: settings.quiet });
      progress.update(done);
    },
    stop() {
      progress?.stop();
    },
  };
}

async function fetchWithRetries(settings: Settings, progress: LazyProgress): Promise<boolean> {
  const deadline = new Deadline(settings);
  // The last attempt, while its end is not known to be the file's.
  let unconfirmed: AttemptOutcome | undefined;
  for (let attempt = 0; ; ) {
    try {
      deadline.check(await partSize(settings.part));
      const outcome = await fetchAttempt(settings, progress, deadline, unconfirmed !== undefined);
      if (outcome.whole) return outcome.continued || (unconfirmed?.continued ?? false);
      // Not a failure: the next request asks for what may follow.
      unconfirmed = outcome;
    } catch (error) {
      const failure = error instanceof HttpError ? error : new HttpError(describeError(error), false);
      if (!failure.transient || attempt >= settings.retries) {
        // A refused .part file or a full disk says what it is; only network failures get the URL and hint.
        if (error instanceof ClipEvalError) throw error;
        const attempts = attempt + 1 > 1 ? ` (${attempt + 1} attempts)` : '';
        const refused = failure.status === 401 || failure.status === 403;
        const hint = refused && settings.accessHint !== undefined ? settings.accessHint : settings.hint;
        const text = typeof hint === 'string' ? `; ${hint}` : '';
        throw inputError(`could not download ${settings.url.href}: ${failure.message}${attempts}${text}`, error, typeof hint === 'object' ? { hint } : {});
      }
      const delay = settings.retryDelayMs * 2 ** attempt;
      settings.logger.info(`${settings.label}: ${failure.message}; retrying in ${(delay / 1000).toFixed(1)} s`);
      attempt += 1;
      await sleep(delay);
    }
  }
}

/**
 * The end of a download whose size is known, over all its attempts: the grace time plus the bytes still
 * to come at the minimum average rate. The minimum rate alone lets a steady trickle go on for days.
 */
class Deadline {
  private readonly startedMs = performance.now();
  private endMs?: number;
  private rule = '';
  private total = 0;

  constructor(private readonly settings: Settings) {}

  /** Sets the deadline the first time the size is known: `total` bytes, of which `have` are already here. */
  expect(total: number, have: number): void {
    if (this.endMs !== undefined) return;
    const { deadlineGraceMs, minAverageBytesPerSecond } = this.settings;
    const remaining = Math.max(0, total - have);
    this.endMs = performance.now() + deadlineGraceMs + (1000 * remaining) / minAverageBytesPerSecond;
    this.total = total;
    this.rule =
      `past the deadline of ${durationText(this.endMs - this.startedMs)} ` +
      `(${durationText(deadlineGraceMs)}, plus ${remaining} bytes at the minimum average rate of ${minAverageBytesPerSecond} bytes/s)`;
  }

  /** Throws (not to be retried) once the deadline has passed, with `done` bytes of the file here. */
  check(done: number): void {
    const now = performance.now();
    if (this.endMs === undefined || now <= this.endMs) return;
    throw new HttpError(`too slow: ${done} of ${this.total} bytes in ${durationText(now - this.startedMs)}, ${this.rule}`, false);
  }
}

interface AttemptOutcome {
  /** The file continues bytes kept from an earlier run or a cut attempt (what the result calls resumed). */
  continued: boolean;
  /** The .part file is known to hold the whole file; false after a body that only the connection's close ended. */
  whole: boolean;
}

/**
 * One GET, resuming from the .part file's size. `confirming` follows an attempt whose end was not known
 * to be the file's: the request then asks for the bytes after it even when there are none.
 */
async function fetchAttempt(settings: Settings, progress: LazyProgress, deadline: Deadline, confirming: boolean): Promise<AttemptOutcome> {
  const { part, logger } = settings;
  const offset = await partSize(part);
  const headers: Record<string, string> = { ...settings.headers };
  const ranged = offset > 0 || confirming;
  if (ranged) headers.Range = `bytes=${offset}-`;
  const response = await httpRequest(settings.url, { headers, timeoutMs: settings.timeoutMs, minRate: settings.minRate });
  const { status } = response;
  let start: number;
  let total: number | undefined;
  if (status === 206) {
    const contentRange = response.header('content-range');
    const range = /^bytes (\d+)-\d+\/(\d+|\*)$/.exec(contentRange ?? '');
    if (!range || Number(range[1]) !== offset) {
      await response.discard();
      await rm(part, { force: true });
      throw new HttpError(`the server answered the resume request with another range (${contentRange})`, true);
    }
    start = offset;
    total = range[2] === '*' ? undefined : Number(range[2]);
    logger.info(`${settings.label}: resuming at ${offset} bytes`);
  } else if (status === 200) {
    const length = response.header('content-length');
    total = length !== undefined && /^\d+$/.test(length) ? Number(length) : undefined;
    if (confirming && (total === offset || (total === undefined && response.closeDelimited))) {
      await response.discard();
      if (total === offset) return { continued: false, whole: true };
      return unconfirmable(settings, offset);
    }
    if (offset > 0) logger.info(`${settings.label}: the server does not resume downloads; starting again`);
    start = 0;
  } else {
    await response.discard();
    if (status === 416 && ranged) {
      // "bytes */SIZE": the file has SIZE bytes; the .part file already holds them all when that is its size.
      const size = /^bytes \*\/(\d+)$/.exec(response.header('content-range') ?? '')?.[1];
      if (size !== undefined && Number(size) === offset) return { continued: !confirming, whole: true };
      await rm(part, { force: true });
      throw new HttpError('the server refused the resume request (HTTP 416); starting again', true);
    }
    throw new HttpError(`HTTP ${response.statusLine}`, TRANSIENT_STATUSES.has(status), status);
  }
  if (total !== undefined && settings.expectedSize !== undefined && total !== settings.expectedSize) {
    await response.discard();
    throw new HttpError(`the server offers ${total} bytes, expected ${settings.expectedSize}`, false);
  }
  const size = total ?? settings.expectedSize;
  if (size !== undefined) deadline.expect(size, start);
  const done = await receive(response, settings, progress, deadline, start, size);
  // More than the expected size is for verify to report, not a cut.
  if (size !== undefined && done < size) throw closedAfter(done, size);
  const lengthKnown = size !== undefined || !response.closeDelimited;
  // A confirming request answered by an empty close-delimited range has nothing more to tell.
  if (!lengthKnown && confirming && done === start) return unconfirmable(settings, offset);
  return { continued: start > 0, whole: lengthKnown };
}

/** Appends the body to the .part file from `start`; returns the file's size then. */
async function receive(response: HttpResponse, settings: Settings, progress: LazyProgress, deadline: Deadline, start: number, size: number | undefined): Promise<number> {
  let done = start;
  let file: FileHandle;
  try {
    file = await openPart(settings.part, start > 0);
  } catch (error) {
    await response.discard();
    throw error;
  }
  try {
    for await (const chunk of response.chunks()) {
      await file.write(chunk);
      done += chunk.length;
      progress.update(done, size);
      deadline.check(done);
    }
  } catch (error) {
    if (error instanceof ConnectionClosedError) throw closedAfter(done, size);
    throw error;
  } finally {
    await file.close();
  }
  return done;
}

function closedAfter(done: number, size: number | undefined): HttpError {
  return new HttpError(size === undefined ? `the connection closed after ${done} bytes, before the end of the file` : `the connection closed after ${done} of ${size} bytes`, true);
}

/**
 * The server sends the file without its length and ignores range requests: a checksum can still tell
 * whether the .part file is whole; without one it is discarded.
 */
async function unconfirmable(settings: Settings, offset: number): Promise<AttemptOutcome> {
  if (settings.md5 !== undefined || settings.sha256 !== undefined) return { continued: false, whole: true };
  await rm(settings.part, { force: true });
  throw new HttpError(
    `the server sent ${offset} bytes without saying how many there are and ignores range requests, so a cut could not be told from the end; nothing was kept`,
    false,
  );
}

/** Why the .part file is not the file asked for, or undefined when it is. */
async function verify(settings: Settings): Promise<string | undefined> {
  const { part, url, expectedSize } = settings;
  const size = await partSize(part);
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
  const handle = await open(path, constants.O_RDWR | constants.O_NOFOLLOW);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
