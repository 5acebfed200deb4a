import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rm, stat, utimes } from 'node:fs/promises';
import { hostname } from 'node:os';
import { dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { silentLogger, type Logger } from './log.js';

/**
 * Cross-process lock files, so that concurrent runs sharing one cache never write the same entry
 * at once (downloads, extractions).
 */
export interface FileLockOptions {
  logger?: Logger;
  /** What the lock protects, for the "waiting" message. */
  label?: string;
}

/** Poll interval while another process holds the lock. */
const LOCK_POLL_MS = 200;
/** The holder touches its lock this often; a lock untouched for LOCK_STALE_MS has lost its holder. */
const LOCK_HEARTBEAT_MS = 5_000;
const LOCK_STALE_MS = 30_000;
/** A lock file without readable content (its writer died at once) is stale after this long. */
const LOCK_UNREADABLE_STALE_MS = 5_000;

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
 * second exclusive `.break` file, so that two waiters cannot both break and then both take it.
 */
export async function withFileLock<T>(lockPath: string, task: () => Promise<T>, options: FileLockOptions = {}): Promise<T> {
  const logger = options.logger ?? silentLogger;
  const owner: LockOwner = { pid: process.pid, host: hostname(), token: randomBytes(8).toString('hex') };
  let announced = false;
  await mkdir(dirname(lockPath), { recursive: true });
  while (!(await createExclusive(lockPath, JSON.stringify(owner)))) {
    const state = await readLock(lockPath);
    if (state === undefined) continue;
    if (isStale(state)) {
      await breakStaleLock(lockPath);
      continue;
    }
    if (!announced) {
      announced = true;
      const holder = state.owner ? `process ${state.owner.pid} on ${state.owner.host}` : 'another process';
      logger.info(`waiting for ${holder}, which holds ${lockPath}${options.label ? ` (${options.label})` : ''}`);
    }
    await sleep(LOCK_POLL_MS);
  }
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
    if ((await readLock(lockPath))?.owner?.token === owner.token) await rm(lockPath, { force: true });
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

async function readLock(path: string): Promise<LockState | undefined> {
  try {
    const [content, info] = await Promise.all([readFile(path, 'utf8'), stat(path)]);
    return { owner: parseOwner(content), ageMs: Date.now() - info.mtimeMs };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
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
  if (!state.owner) return state.ageMs > LOCK_UNREADABLE_STALE_MS;
  if (state.owner.host === hostname() && !processExists(state.owner.pid)) return true;
  return state.ageMs > LOCK_STALE_MS;
}

/** Whether a process with this id runs on this host (one of another user counts: it exists). */
export function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function breakStaleLock(lockPath: string): Promise<void> {
  const breaker = `${lockPath}.break`;
  if (!(await createExclusive(breaker, String(process.pid)))) {
    const age = await readLock(breaker);
    if (age !== undefined && age.ageMs > LOCK_UNREADABLE_STALE_MS) await rm(breaker, { force: true });
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
