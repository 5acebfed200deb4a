import { randomBytes } from 'node:crypto';
import { constants, fstatSync, lstatSync, lutimesSync, unlinkSync, type Stats } from 'node:fs';
import { lstat, mkdir, open, readdir, realpath, rename, rm, stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { Worker } from 'node:worker_threads';
import { describeError, fileSystemError, isFileSystemError } from './errors.js';
import type { HashAnswer, HashJob } from './hash-worker.js';
import type { Logger } from './log.js';

/**
 * The cache root: --cache-dir, else CLIP_EVAL_CACHE, else $XDG_CACHE_HOME/clip-eval, else ~/.cache/clip-eval.
 */
export function resolveCacheRoot(cacheDir?: string, env: NodeJS.ProcessEnv = process.env): string {
  if (cacheDir) return resolve(cacheDir);
  if (env.CLIP_EVAL_CACHE) return resolve(env.CLIP_EVAL_CACHE);
  if (env.XDG_CACHE_HOME) return resolve(env.XDG_CACHE_HOME, 'clip-eval');
  return join(homedir(), '.cache', 'clip-eval');
}

/** A name next to `target` that no concurrent writer will pick. */
export function temporarySibling(target: string, suffix = 'tmp'): string {
  return `${target}.${process.pid}-${randomBytes(4).toString('hex')}.${suffix}`;
}

/** The temporary files this process is writing now (writeFileAtomic): they go when a signal or an exit cuts a write short. */
const ownTemporaries = new Set<string>();

function removeOwnTemporaries(): void {
  for (const path of ownTemporaries) {
    try {
      unlinkSync(path);
    } catch {
      // Not created yet, or renamed into place already.
    }
  }
  ownTemporaries.clear();
}

function onTerminatingSignal(signal: NodeJS.Signals): void {
  removeOwnTemporaries();
  stopWatchingForTermination();
  // With no other handler left, raise it again: the process still ends by the signal (exit 130 or 143).
  if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
}

function stopWatchingForTermination(): void {
  process.removeListener('SIGINT', onTerminatingSignal);
  process.removeListener('SIGTERM', onTerminatingSignal);
  process.removeListener('exit', removeOwnTemporaries);
}

/** Handlers are installed only while a write is in flight, so an idle process keeps the signals' default actions. */
function trackTemporary(path: string): void {
  if (ownTemporaries.size === 0) {
    process.on('SIGINT', onTerminatingSignal);
    process.on('SIGTERM', onTerminatingSignal);
    process.on('exit', removeOwnTemporaries);
  }
  ownTemporaries.add(path);
}

function untrackTemporary(path: string): void {
  ownTemporaries.delete(path);
  if (ownTemporaries.size === 0) stopWatchingForTermination();
}

/**
 * Writes a file so that readers only ever see nothing or the whole content: a private temporary file,
 * flushed to disk, then renamed over the target (rename is atomic within one file system). The
 * temporary is removed when the write fails, and when SIGINT, SIGTERM or an exit ends the process
 * during the write; only a kill (SIGKILL, a power cut) leaves one, for removeStaleTemporaries.
 */
export async function writeFileAtomic(target: string, data: Uint8Array | string): Promise<void> {
  await mkdir(dirname(target), { recursive: true });
  const temporary = temporarySibling(target);
  trackTemporary(temporary);
  try {
    const handle = await open(temporary, 'w');
    try {
      await handle.writeFile(data);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temporary, target);
  } catch (error) {
    await rm(temporary, { force: true });
    throw error;
  } finally {
    untrackTemporary(temporary);
  }
}

/** Our own stdout or stderr when `info` is the file, pipe or terminal behind it (as /dev/stdout is). */
export function ownStandardStream(info: Stats): NodeJS.WriteStream | undefined {
  for (const [fd, stream] of [[1, process.stdout], [2, process.stderr]] as const) {
    try {
      const own = fstatSync(fd);
      if (own.dev === info.dev && own.ino === info.ino) return stream;
    } catch {
      // A closed descriptor is no match.
    }
  }
  return undefined;
}

/**
 * Writes a file a user named without replacing anything that is not ours. A regular file, also through
 * a symlink, is replaced atomically at its real path (the link stays and points at the new content);
 * anything else that exists (a device, a pipe, a dangling link) is opened and written through, and
 * our own stdout or stderr (/dev/stdout) gets the data in order with what was printed before.
 */
export async function writeOutputFile(target: string, data: Uint8Array | string): Promise<void> {
  const info = await stat(target).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return undefined;
    throw error;
  });
  if (info === undefined) {
    const link = await lstat(target).catch(() => undefined);
    return link?.isSymbolicLink() ? writeThrough(target, data) : writeFileAtomic(target, data);
  }
  const stream = ownStandardStream(info);
  if (stream) {
    await new Promise<void>((resolveWrite, rejectWrite) => stream.write(data, (error) => (error ? rejectWrite(error) : resolveWrite())));
    return;
  }
  if (info.isFile()) return writeFileAtomic(await realpath(target), data);
  if (info.isFIFO()) {
    // Opening a pipe for writing waits for a reader; a non-blocking open says at once whether there is one.
    await (await open(target, constants.O_WRONLY | constants.O_NONBLOCK)).close();
  }
  return writeThrough(target, data);
}

async function writeThrough(target: string, data: Uint8Array | string): Promise<void> {
  const handle = await open(target, 'w');
  try {
    await handle.writeFile(data);
  } finally {
    await handle.close();
  }
}

interface HashThread {
  worker: Worker;
  pending: Map<number, { resolve: (sha256: string) => void; reject: (error: Error) => void }>;
  next: number;
}
let hashThread: HashThread | undefined;

/**
 * hashFile on a worker thread: a model file of hundreds of megabytes is hashed while the calling
 * thread loads a tokenizer or creates a session. One thread for the process, one file at a time; it
 * holds the process open only while a file is being hashed.
 */
export function hashFileOffThread(path: string): Promise<string> {
  if (!hashThread) {
    const worker = new Worker(new URL('./hash-worker.js', import.meta.url));
    const thread: HashThread = { worker, pending: new Map(), next: 0 };
    const failAll = (error: Error) => {
      if (hashThread === thread) hashThread = undefined;
      for (const job of thread.pending.values()) job.reject(error);
      thread.pending.clear();
    };
    worker.on('message', (answer: HashAnswer) => {
      const job = thread.pending.get(answer.id);
      thread.pending.delete(answer.id);
      if (thread.pending.size === 0) worker.unref();
      if (!job) return;
      if ('sha256' in answer) job.resolve(answer.sha256);
      else job.reject(Object.assign(new Error(answer.error.message), answer.error));
    });
    worker.on('error', failAll);
    worker.on('exit', (code) => failAll(new Error(`the file-hashing thread ended (exit code ${code})`)));
    hashThread = thread;
  }
  const thread = hashThread;
  return new Promise((resolveHash, rejectHash) => {
    const job: HashJob = { id: thread.next++, path: resolve(path) };
    thread.pending.set(job.id, { resolve: resolveHash, reject: rejectHash });
    thread.worker.ref();
    thread.worker.postMessage(job);
  });
}

/** What temporarySibling appends: the writer's pid, 8 hex digits and a suffix. */
const TEMPORARY_NAME = /\.(\d+)-[0-9a-f]{8}\.[a-z]+$/;
/** Younger temporaries are left alone whatever their pid: the pid may be a live writer's on another host sharing the cache. */
const TEMPORARY_GRACE_MS = 10 * 60_000;
/** Older ones are abandoned even when their pid runs here: pids are reused. */
const TEMPORARY_MAX_AGE_MS = 24 * 3600_000;

/** Whether a process with this pid runs on this host (EPERM: it runs, as another user). */
function processRuns(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid < 1) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** What is found on the way from a cache root down to a folder in it. */
export type FolderWithin = { state: 'folder' } | { state: 'missing' } | { state: 'blocked'; path: string; info: Stats };

/**
 * Whether `folder`, below `root`, is reached through real folders only: every component below the root
 * is lstat'ed, since lstat alone refuses a symbolic link only in the last component, and a link on the
 * way (`datasets` -> elsewhere) would take a listing or a removal out of the cache. The root itself may
 * be a link: the user chose it, and callers resolve it once. `blocked` names the first component that
 * is not a folder.
 */
export async function folderWithin(root: string, folder: string): Promise<FolderWithin> {
  const rest = relative(root, folder);
  if (rest.startsWith('..') || isAbsolute(rest)) throw new Error(`${folder} is not below ${root}`);
  let path = root;
  for (const part of rest === '' ? [] : rest.split(sep)) {
    path = join(path, part);
    let info: Stats;
    try {
      info = await lstat(path);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { state: 'missing' };
      throw error;
    }
    if (!info.isDirectory()) return { state: 'blocked', path, info };
  }
  return { state: 'folder' };
}

/**
 * Removes the temporary files that interrupted writers (a kill, a power cut) left in `folder`, a folder
 * below the cache root `root`: those older than a grace period whose writer no longer runs on this
 * host, and any older than a day. A live writer's file is never touched, and nothing is removed through
 * a link on the way from the root (folderWithin, checked again before each removal). Best-effort: a
 * folder that cannot be listed is left as it is. Returns what was removed (with `dryRun`, what would be).
 */
export async function removeStaleTemporaries(root: string, folder: string, now = Date.now(), dryRun = false): Promise<{ path: string; bytes: number }[]> {
  const removed: { path: string; bytes: number }[] = [];
  const confined = async () => (await folderWithin(root, folder).catch(() => undefined))?.state === 'folder';
  let names: string[];
  try {
    if (!(await confined())) return removed;
    names = await readdir(folder);
  } catch {
    return removed;
  }
  for (const name of names) {
    const pid = TEMPORARY_NAME.exec(name)?.[1];
    if (pid === undefined) continue;
    const path = join(folder, name);
    try {
      const info = await lstat(path);
      const age = now - info.mtimeMs;
      if (!info.isFile() || age < TEMPORARY_GRACE_MS || (age < TEMPORARY_MAX_AGE_MS && processRuns(Number(pid)))) continue;
      if (!dryRun) {
        if (!(await confined())) break;
        await rm(path, { force: true });
      }
      removed.push({ path, bytes: info.size });
    } catch {
      // Gone already, or not ours to remove: the next run tries again.
    }
  }
  return removed;
}

/**
 * How finely "last use" is recorded: a hit on an entry file (there are thousands of embedding entries
 * per run) rewrites its time at most once an hour, a hit on an entry's folder at most once a minute.
 */
export const ENTRY_USE_RESOLUTION_MS = 3600_000;
export const FOLDER_USE_RESOLUTION_MS = 60_000;

/**
 * Records a cache hit on `path` (an entry file or an entry's folder) as its modification time, which
 * `clip-eval cache` reads as the entry's last use (access times are unreliable under noatime and
 * relatime): the time is set to now when it is older than `resolutionMs`, so a hit costs an lstat and
 * rarely a write. Best-effort, and never through a link (lutimes). Downloaded data sets and models are
 * marked on their folder, never on their files, so no file identity that other caches key on changes.
 */
export function markUsed(path: string, resolutionMs: number, now = Date.now()): void {
  try {
    const info = lstatSync(path);
    if ((info.isFile() || info.isDirectory()) && now - info.mtimeMs > resolutionMs) lutimesSync(path, now / 1000, now / 1000);
  } catch {
    // A read-only or vanished cache: the last use stays what it was.
  }
}

/** The cache-write failures each logger has warned of, by what was written and error code. */
const warnedWriteFailures = new WeakMap<Logger, Set<string>>();

/**
 * A cache write that may fail without failing the run: a read-only or damaged cache costs time, not the
 * result. The failure is a warning naming the path, given once per logger for each kind of entry and
 * error code: a full disk under 10,000 images is one line, not one per image. Anything but a filesystem
 * error is still thrown.
 */
export async function writeCacheEntry(what: string, path: string, write: () => Promise<void>, logger: Logger): Promise<void> {
  try {
    await write();
  } catch (error) {
    if (!isFileSystemError(error)) throw error;
    const warned = warnedWriteFailures.get(logger) ?? new Set<string>();
    warnedWriteFailures.set(logger, warned);
    const failure = `${what} ${error.code}`;
    if (warned.has(failure)) return;
    warned.add(failure);
    logger.warn(`${describeError(fileSystemError(error, what, path))}; continuing without caching it (not repeated for other ${what} writes failing with ${error.code})`);
  }
}
