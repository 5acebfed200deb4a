import { randomBytes } from 'node:crypto';
import { constants, readFileSync } from 'node:fs';
import { lstat, mkdir, open, rm, utimes } from 'node:fs/promises';
import { hostname } from 'node:os';
import { dirname } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { inputError } from '../core/errors.js';
import { durationText } from '../core/format.js';
import { silentLogger, type Logger } from '../core/log.js';
import { refuseUnlessOwnFile } from '../core/plain-file.js';

/**
 * Cross-process lock files, so that concurrent runs sharing one cache never write the same entry
 * at once (downloads, extractions).
 */
export interface FileLockOptions {
  logger?: Logger;
  /** What the lock protects, for the "waiting" message. */
  label?: string;
  /** How long to wait for another holder before giving up with an error naming it; default 60 minutes. */
  maxWaitMs?: number;
}

const DEFAULT_MAX_WAIT_MS = 60 * 60_000;

/** Poll interval while another process holds the lock. */
const LOCK_POLL_MS = 200;
/** The holder touches its lock this often; a lock untouched for LOCK_STALE_MS has lost its holder. */
const LOCK_HEARTBEAT_MS = 5_000;
const LOCK_STALE_MS = 30_000;
/** A lock file without readable content (its writer died at once) is stale after this long. */
const LOCK_UNREADABLE_STALE_MS = 5_000;
/**
 * A lock dated in the future has no holder touching it (a skewed clock, a copy from another host), so it
 * is stale: waiting for it to age would take as long as it is ahead. Hosts sharing a cache may disagree
 * by a few seconds, which is tolerated so that their live locks are not broken.
 */
const LOCK_FUTURE_TOLERANCE_MS = LOCK_HEARTBEAT_MS;
/** Lock files are a line of JSON; more is not read. */
const LOCK_MAX_BYTES = 4_096;

interface LockOwner {
  pid: number;
  host: string;
  token: string;
}

interface LockState {
  owner?: LockOwner;
  ageMs: number;
}

/**
 * Runs `task` while holding `lockPath`, a file created exclusively (O_EXCL) that names its holder.
 * Waiters poll it. A lock is stale when its holder's process is gone (same host) or when its holder
 * stopped touching it (any host, e.g. a cache on a network drive); stale locks are broken under a
 * second exclusive `.break` file, so that two waiters cannot both break and then both take it. A wait
 * for a live holder ends after `maxWaitMs` with an error that names the holder.
 */
export async function withFileLock<T>(lockPath: string, task: () => Promise<T>, options: FileLockOptions = {}): Promise<T> {
  const logger = options.logger ?? silentLogger;
  const maxWaitMs = options.maxWaitMs ?? DEFAULT_MAX_WAIT_MS;
  const owner: LockOwner = { pid: process.pid, host: hostname(), token: randomBytes(8).toString('hex') };
  const label = options.label ? ` (${options.label})` : '';
  const started = performance.now();
  let announced = false;
  await mkdir(dirname(lockPath), { recursive: true });
  for (;;) {
    const holder = await tryAcquire(lockPath, owner, logger);
    if (holder === undefined) break;
    const waited = performance.now() - started;
    if (waited >= maxWaitMs) {
      throw inputError(
        `${lockPath}: is held by ${holder.name}${label}; gave up after ${durationText(maxWaitMs)} of waiting. ` +
          `If that process is gone or stuck, delete ${lockPath}; otherwise try again once it has finished`,
      );
    }
    if (!announced) {
      announced = true;
      logger.info(`waiting up to ${durationText(maxWaitMs)} for ${holder.name}, which holds ${lockPath}${label}; ${holder.liveness}`);
    }
    await sleep(Math.min(LOCK_POLL_MS, maxWaitMs - waited));
  }
  return holdWhile(lockPath, owner, task);
}

/**
 * Runs `task` under `lockPath` like withFileLock when the lock is free (or stale), without waiting:
 * when a live process holds it, `task` does not run and the holder is returned instead.
 */
export async function withFileLockUnlessHeld<T>(lockPath: string, task: () => Promise<T>): Promise<{ ran: true; value: T } | { ran: false; holder: string }> {
  const owner: LockOwner = { pid: process.pid, host: hostname(), token: randomBytes(8).toString('hex') };
  const holder = await tryAcquire(lockPath, owner, silentLogger);
  if (holder !== undefined) return { ran: false, holder: holder.name };
  return { ran: true, value: await holdWhile(lockPath, owner, task) };
}

/** Who holds `lockPath` now ("process 123 on host"), or undefined when nobody does or its holder is gone. */
export async function liveLockHolder(lockPath: string): Promise<string | undefined> {
  const state = await readLock(lockPath);
  return state === undefined || isStale(state) ? undefined : holderName(state);
}

/** Who holds a lock, and what is known about whether it still runs. */
interface Holder {
  name: string;
  liveness: string;
}

/** Takes the lock (breaking a stale one, and saying why) and returns undefined, or returns who holds it. */
async function tryAcquire(lockPath: string, owner: LockOwner, logger: Logger): Promise<Holder | undefined> {
  while (!(await createExclusive(lockPath, JSON.stringify(owner)))) {
    const state = await readLock(lockPath);
    if (state === undefined) continue;
    const stale = staleness(state);
    if (stale === undefined) return { name: holderName(state), liveness: liveness(state) };
    logger.info(`${lockPath}: ${stale}; taking the lock over`);
    await breakStaleLock(lockPath);
  }
  return undefined;
}

function holderName(state: LockState): string {
  return state.owner ? `process ${state.owner.pid} on ${state.owner.host}` : 'another process';
}

/** What a waiter knows of a live-looking holder: checked on this host, judged by its lock's age elsewhere. */
function liveness(state: LockState): string {
  if (state.owner === undefined) return `the lock names no process: it is taken over once left untouched for ${durationText(LOCK_UNREADABLE_STALE_MS)}`;
  if (state.owner.host === hostname()) return 'that process is running';
  return `that process runs on another host, where this one cannot check it: the lock is taken over once left untouched for ${durationText(LOCK_STALE_MS)}`;
}

/** Runs `task` while touching the lock we hold, then releases it if it is still ours. */
async function holdWhile<T>(lockPath: string, owner: LockOwner, task: () => Promise<T>): Promise<T> {
  const heartbeat = setInterval(() => {
    const now = new Date();
    utimes(lockPath, now, now).catch(() => undefined);
  }, LOCK_HEARTBEAT_MS);
  heartbeat.unref();
  try {
    return await task();
  } finally {
    clearInterval(heartbeat);
    // Only remove the lock if it is still ours (it could have been broken as stale meanwhile).
    const state = await readLock(lockPath).catch(() => undefined);
    if (state?.owner?.token === owner.token) await rm(lockPath, { force: true });
  }
}

async function createExclusive(path: string, content: string): Promise<boolean> {
  try {
    const handle = await open(path, 'wx');
    try {
      await handle.writeFile(content);
    } finally {
      await handle.close();
    }
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw error;
  }
}

/** The lock's holder and age; a link or anything else planted at the path is refused, never followed. */
async function readLock(path: string): Promise<LockState | undefined> {
  const what = 'a lock file of this tool';
  try {
    const info = await lstat(path);
    refuseUnlessOwnFile(path, info, what);
    const handle = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW);
    try {
      const buffer = Buffer.alloc(LOCK_MAX_BYTES);
      const { bytesRead } = await handle.read(buffer, 0, LOCK_MAX_BYTES, 0);
      return { owner: parseOwner(buffer.toString('utf8', 0, bytesRead)), ageMs: Date.now() - info.mtimeMs };
    } finally {
      await handle.close();
    }
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    if (code === 'ELOOP') throw inputError(`${path}: is a symbolic link, not ${what}; remove it`);
    throw error;
  }
}

function parseOwner(content: string): LockOwner | undefined {
  try {
    const value = JSON.parse(content) as Partial<LockOwner>;
    if (typeof value.pid === 'number' && typeof value.host === 'string' && typeof value.token === 'string') {
      return { pid: value.pid, host: value.host, token: value.token };
    }
  } catch {
    // An empty or half-written lock: judged by its age alone.
  }
  return undefined;
}

function isStale(state: LockState): boolean {
  return staleness(state) !== undefined;
}

/** Why a lock has lost its holder, or undefined while it looks held. */
function staleness(state: LockState): string | undefined {
  if (state.owner && state.owner.host === hostname() && !processExists(state.owner.pid)) return `${holderName(state)}, which held it, is gone`;
  if (!isOlder(state, state.owner ? LOCK_STALE_MS : LOCK_UNREADABLE_STALE_MS)) return undefined;
  if (state.ageMs < 0) return 'it is dated in the future, so no holder is touching it';
  return `${holderName(state)}, which held it, has not touched it for ${durationText(state.ageMs)}`;
}

/** Older than `limitMs`, or dated in the future beyond what clock differences explain. */
function isOlder(state: LockState, limitMs: number): boolean {
  return state.ageMs > limitMs || state.ageMs < -LOCK_FUTURE_TOLERANCE_MS;
}

/** Whether a process with this id runs on this host (one of another user counts: it exists; one that has exited does not). */
export function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  return !hasExited(pid);
}

/**
 * A process that has exited but that its parent has not reaped yet (a zombie, as under a container's
 * PID 1 that reaps nothing) still takes signal 0. Linux shows it as state Z or X in /proc; elsewhere
 * this cannot be told and the process counts as running.
 */
function hasExited(pid: number): boolean {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return false;
  }
  // "PID (NAME) STATE ...": the name may hold spaces and parentheses, so the state follows the last ')'.
  return /^[ZX]$/.test(stat.charAt(stat.lastIndexOf(')') + 2));
}

async function breakStaleLock(lockPath: string): Promise<void> {
  const breaker = `${lockPath}.break`;
  if (!(await createExclusive(breaker, String(process.pid)))) {
    const age = await readLock(breaker);
    if (age !== undefined && isOlder(age, LOCK_UNREADABLE_STALE_MS)) await rm(breaker, { force: true });
    else await sleep(LOCK_POLL_MS);
    return;
  }
  try {
    // Judge again under the break lock: a fresh lock taken meanwhile by a live process is not stale.
    const state = await readLock(lockPath);
    if (state !== undefined && isStale(state)) await rm(lockPath, { force: true });
  } finally {
    await rm(breaker, { force: true });
  }
}
