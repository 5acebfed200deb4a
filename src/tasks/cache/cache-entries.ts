import type { Stats } from 'node:fs';
import { lstat, readdir, realpath, rmdir, stat, unlink } from 'node:fs/promises';
import { dirname, join, relative, sep } from 'node:path';
import { folderWithin, removeStaleTemporaries } from '../../core/cache.js';
import { inputError } from '../../core/errors.js';
import { downloadLockPath, partialDownloadPath } from '../../net/download.js';
import { liveLockHolder, withFileLockUnlessHeld } from '../../net/file-lock.js';
import { hubCacheRoot } from '../../net/hub.js';
import { CIFAR_CACHE_FOLDER, cifarCacheArchive, cifarCacheLock, cifarCacheRoot } from '../../datasets/cifar/cifar.js';
import { webdatasetUrlCacheRoot } from '../../datasets/wds/source.js';
import { imageEmbeddingFolder } from '../../model/image-embedding-cache.js';
import { fileDigestFolder, textEmbeddingFolder } from '../../text/embedding-cache.js';

/**
 * What the cache holds, by the layout each writer uses, and its pruning. Only what matches a writer's
 * layout is an entry; nothing else under the cache root is listed or removed, and no symbolic link is
 * followed: every look is an lstat, and every folder is reached from the root through real folders
 * (core/cache.ts folderWithin). An entry's last use is its newest modification time: readers mark
 * hits (core/cache.ts markUsed), writers write.
 */
export type CacheEntryKind = 'dataset' | 'model' | 'textEmbedding' | 'imageEmbedding' | 'fileDigest';

export const CACHE_ENTRY_KINDS: readonly CacheEntryKind[] = ['dataset', 'model', 'textEmbedding', 'imageEmbedding', 'fileDigest'];

/**
 * Kinds a run recomputes when an entry is missing (embeddings, file-digest memos): small files written
 * atomically and never held open, so a prune removes them without the in-use grace. They come by the
 * thousand.
 */
export const RECOMPUTED_KINDS: ReadonlySet<CacheEntryKind> = new Set(['textEmbedding', 'imageEmbedding', 'fileDigest']);

export interface CacheEntry {
  kind: CacheEntryKind;
  /** Relative to the cache root, with '/' between folders. */
  path: string;
  bytes: number;
  /** Milliseconds since the epoch. */
  lastUseMs: number;
}

/** A path where an entry would be that is not one (a symbolic link, a file where a folder belongs). */
export interface CacheSkip {
  path: string;
  reason: string;
}

export interface CacheInventory {
  /** The cache root, its links resolved. */
  root: string;
  entries: CacheEntry[];
  skipped: CacheSkip[];
}

/**
 * How an entry is removed. Downloads (hub files, webdataset files by URL) are removed file by file,
 * each under the lock its downloader takes; a CIFAR copy under the lock its extraction takes; an
 * embedding entry at once, since writers replace entries atomically and readers rebuild a missing one.
 */
type Removal = { style: 'downloads'; folders: string[]; files: string[] } | { style: 'cifar'; directory: string; members: string[] } | { style: 'file'; file: string };

interface Found extends CacheEntry {
  removal: Removal;
}

/** Folders whose own temporaries (writeFileAtomic's) a prune sweeps; the downloads' entry folders are added. */
function temporaryFolders(root: string): string[] {
  return [textEmbeddingFolder(root), fileDigestFolder(root)];
}

const EMBEDDING_NAME = /^[0-9a-f]{64}\.bin$/;
const DIGEST_MEMO_NAME = /^[0-9a-f]{64}\.json$/;
const HUB_REPO_FOLDER = /^[\w.-]+--[\w.-]+$/;
const WDS_URL_FOLDER = /^[0-9a-f]{16}$/;
const SHARD_FOLDER = /^[0-9a-f]{2}$/;
/** A lock file (and a stale lock's break file) as src/net/file-lock.ts names them. */
const LOCK_FILE = /\.lock(\.break)?$/;

export async function listCache(cacheRoot: string): Promise<CacheInventory> {
  return toInventory(await survey(cacheRoot));
}

function toInventory(survey: Survey): CacheInventory {
  return { root: survey.root, entries: survey.found.map(({ removal: _removal, ...entry }) => entry), skipped: survey.skipped };
}

interface Survey {
  root: string;
  found: Found[];
  skipped: CacheSkip[];
  temporaryFolders: string[];
}

async function survey(cacheRoot: string): Promise<Survey> {
  const root = await existingRoot(cacheRoot);
  const result: Survey = { root: root ?? cacheRoot, found: [], skipped: [], temporaryFolders: [] };
  if (root === undefined) return result;
  const name = (path: string) => relative(root, path).split(sep).join('/');
  // A link high up (`datasets`) blocks several containers: it is named once.
  const skippedPaths = new Set<string>();
  const skip = (path: string, reason: string) => {
    if (skippedPaths.has(name(path))) return;
    skippedPaths.add(name(path));
    result.skipped.push({ path: name(path), reason });
  };
  const listFolder = (folder: string) => listFolderWithin(root, folder, skip);

  /** The folders in `folder` whose names match; links and files there are skipped, named. */
  const subfolders = async (folder: string, pattern: RegExp): Promise<string[]> => {
    const names = await listFolder(folder);
    const folders: string[] = [];
    for (const child of names.filter((each) => pattern.test(each))) {
      const path = join(folder, child);
      const info = await lstatOrUndefined(path);
      if (info?.isDirectory()) folders.push(path);
      else if (info) skip(path, describeNonFolder(info));
    }
    return folders;
  };

  const addDownloads = async (kind: CacheEntryKind, folder: string) => {
    const tree = await walkTree(folder);
    result.found.push({ kind, path: name(folder), bytes: tree.bytes, lastUseMs: tree.lastUseMs, removal: { style: 'downloads', folders: tree.folders, files: tree.files } });
    result.temporaryFolders.push(...tree.folders);
  };
  for (const [kind, container] of [['model', hubCacheRoot(root, 'model')], ['dataset', hubCacheRoot(root, 'dataset')]] as const) {
    for (const repo of await subfolders(container, HUB_REPO_FOLDER)) {
      for (const revision of await subfolders(repo, /^[^.]/)) await addDownloads(kind, revision);
    }
  }
  for (const folder of await subfolders(webdatasetUrlCacheRoot(root), WDS_URL_FOLDER)) await addDownloads('dataset', folder);

  const cifarRoot = cifarCacheRoot(root);
  const bases = new Set<string>();
  for (const child of await listFolder(cifarRoot)) {
    const base = child.replace(/\.tar\.gz(\.part)?$/, '');
    if (CIFAR_CACHE_FOLDER.test(base)) bases.add(base);
  }
  for (const base of [...bases].sort()) {
    const directory = join(cifarRoot, base);
    const archive = cifarCacheArchive(directory);
    const members: string[] = [];
    let bytes = 0;
    let lastUseMs = 0;
    let usable = true;
    for (const [path, folder] of [[directory, true], [archive, false], [partialDownloadPath(archive), false]] as const) {
      const info = await lstatOrUndefined(path);
      if (info === undefined) continue;
      if (folder ? !info.isDirectory() : !info.isFile()) {
        skip(path, folder ? describeNonFolder(info) : describeNonFile(info));
        usable = false;
        continue;
      }
      const tree = folder ? await walkTree(path) : { bytes: info.size, lastUseMs: info.mtimeMs };
      members.push(path);
      bytes += tree.bytes;
      lastUseMs = Math.max(lastUseMs, tree.lastUseMs);
    }
    if (usable && members.length > 0) result.found.push({ kind: 'dataset', path: name(directory), bytes, lastUseMs, removal: { style: 'cifar', directory, members } });
  }

  const addFile = async (kind: CacheEntryKind, path: string) => {
    const info = await lstatOrUndefined(path);
    if (info?.isFile()) result.found.push({ kind, path: name(path), bytes: info.size, lastUseMs: info.mtimeMs, removal: { style: 'file', file: path } });
    else if (info) skip(path, describeNonFile(info));
  };
  const textFolder = textEmbeddingFolder(root);
  for (const child of (await listFolder(textFolder)).filter((each) => EMBEDDING_NAME.test(each))) await addFile('textEmbedding', join(textFolder, child));
  for (const shard of await subfolders(imageEmbeddingFolder(root), SHARD_FOLDER)) {
    const prefix = shard.slice(-2);
    for (const child of (await listFolder(shard)).filter((each) => EMBEDDING_NAME.test(each) && each.startsWith(prefix))) await addFile('imageEmbedding', join(shard, child));
    result.temporaryFolders.push(shard);
  }
  const digestFolder = fileDigestFolder(root);
  for (const child of (await listFolder(digestFolder)).filter((each) => DIGEST_MEMO_NAME.test(each))) await addFile('fileDigest', join(digestFolder, child));
  result.temporaryFolders.push(...temporaryFolders(root));
  return result;
}

/** The cache root with its links resolved (the user chose it), or undefined when there is none yet. */
async function existingRoot(cacheRoot: string): Promise<string | undefined> {
  let info: Stats;
  try {
    info = await stat(cacheRoot);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  if (!info.isDirectory()) throw inputError(`${cacheRoot}: the cache folder is not a folder; choose another cache folder`);
  return realpath(cacheRoot);
}

/**
 * The names in a folder reached from the root through real folders only (folderWithin): a link or file
 * on the way is skipped, a missing folder is empty.
 */
async function listFolderWithin(root: string, folder: string, skip: (path: string, reason: string) => void): Promise<string[]> {
  const found = await folderWithin(root, folder);
  if (found.state === 'missing') return [];
  if (found.state === 'blocked') {
    skip(found.path, describeNonFolder(found.info));
    return [];
  }
  return (await readdir(folder)).sort();
}

async function lstatOrUndefined(path: string): Promise<Stats | undefined> {
  try {
    return await lstat(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

function describeNonFolder(info: Stats): string {
  return info.isSymbolicLink() ? 'a symbolic link, not followed' : 'not a folder';
}

function describeNonFile(info: Stats): string {
  return info.isSymbolicLink() ? 'a symbolic link, not followed' : 'not a regular file';
}

interface Tree {
  bytes: number;
  lastUseMs: number;
  /** Every folder in it, the deepest first, ending with the tree's own. */
  folders: string[];
  /** Everything else: files, and links (which are removed, never followed). */
  files: string[];
}

/**
 * The bytes of the regular files in a folder, by lstat, and its last use: the newest of the folder's own
 * time (which readers mark) and its files' (which downloads write). Lock files do not count: a held one
 * is judged by its holder, not as a use.
 */
async function walkTree(folder: string): Promise<Tree> {
  const tree: Tree = { bytes: 0, lastUseMs: (await lstat(folder)).mtimeMs, folders: [], files: [] };
  const visit = async (path: string): Promise<void> => {
    for (const child of await readdir(path)) {
      const childPath = join(path, child);
      const info = await lstatOrUndefined(childPath);
      if (info === undefined) continue;
      if (info.isDirectory()) await visit(childPath);
      else {
        if (info.isFile()) tree.bytes += info.size;
        if (!LOCK_FILE.test(child)) tree.lastUseMs = Math.max(tree.lastUseMs, info.mtimeMs);
        tree.files.push(childPath);
      }
    }
    tree.folders.push(path);
  };
  await visit(folder);
  return tree;
}

export interface PruneOptions {
  /** Remove entries last used longer ago than this. */
  olderThanMs?: number;
  /** Then remove the least recently used entries until the cache holds at most this. */
  maxBytes?: number;
  /** Only say what would be removed. */
  dryRun?: boolean;
  now?: number;
}

export interface KeptEntry extends CacheEntry {
  reason: string;
}

export interface PruneResult extends CacheInventory {
  removed: CacheEntry[];
  /** Entries chosen for removal that were kept (in use), with why. */
  kept: KeptEntry[];
  freedBytes: number;
  /** Stale temporaries of interrupted writers, removed too. */
  temporaries: { path: string; bytes: number }[];
  remaining: { entries: number; bytes: number };
}

/**
 * A data set or model used this recently may be read by a run right now (a hub file is opened after it
 * was found in the cache): it is kept even when old entries are chosen.
 */
export const IN_USE_GRACE_MS = 10 * 60_000;

/**
 * Removes entries last used before `olderThanMs` ago, then the least recently used ones until the cache
 * holds at most `maxBytes`. Safe while other runs use the cache: what a download or extraction holds
 * the lock of is kept (and said), as is a data set or model used in the last IN_USE_GRACE_MS.
 */
export async function pruneCache(cacheRoot: string, options: PruneOptions): Promise<PruneResult> {
  const now = options.now ?? Date.now();
  const found = await survey(cacheRoot);
  const result: PruneResult = { ...toInventory(found), removed: [], kept: [], freedBytes: 0, temporaries: [], remaining: { entries: 0, bytes: 0 } };
  let remaining = found.found.reduce((sum, entry) => sum + entry.bytes, 0);
  const leastRecentFirst = [...found.found].sort((a, b) => a.lastUseMs - b.lastUseMs || a.path.localeCompare(b.path));
  const survivors: CacheEntry[] = [];
  for (const { removal, ...entry } of leastRecentFirst) {
    const old = options.olderThanMs !== undefined && now - entry.lastUseMs > options.olderThanMs;
    const over = options.maxBytes !== undefined && remaining > options.maxBytes;
    if (!old && !over) {
      survivors.push(entry);
      continue;
    }
    if (!RECOMPUTED_KINDS.has(entry.kind) && now - entry.lastUseMs < IN_USE_GRACE_MS) {
      // The entry's own line says when it was last used: the reason gives only the rule.
      result.kept.push({ ...entry, reason: `used in the last ${IN_USE_GRACE_MS / 60_000} min; a run may be reading it` });
      survivors.push(entry);
      continue;
    }
    const outcome = await remove(found.root, removal, options.dryRun ?? false);
    result.freedBytes += outcome.freedBytes;
    remaining -= outcome.freedBytes;
    if (outcome.heldBy === undefined) {
      result.removed.push(entry);
    } else {
      const reason = `${name(found.root, outcome.heldBy.lock)} is held by ${outcome.heldBy.holder}`;
      result.kept.push({ ...entry, reason: outcome.freedBytes > 0 ? `partly removed: ${reason}` : reason });
      survivors.push({ ...entry, bytes: entry.bytes - outcome.freedBytes });
    }
  }
  for (const folder of found.temporaryFolders) result.temporaries.push(...(await removeStaleTemporaries(found.root, folder, now, options.dryRun)));
  result.remaining = { entries: survivors.length, bytes: survivors.reduce((sum, entry) => sum + entry.bytes, 0) };
  return result;
}

function name(root: string, path: string): string {
  return relative(root, path).split(sep).join('/');
}

interface Outcome {
  freedBytes: number;
  /** The lock that kept (some of) it, and its holder. */
  heldBy?: { lock: string; holder: string };
}

/** Removes an entry found below `root`; every removal first checks that no link was put on its way since (folderWithin). */
async function remove(root: string, removal: Removal, dryRun: boolean): Promise<Outcome> {
  if (removal.style === 'file') return { freedBytes: await removeFile(root, removal.file, dryRun) };
  if (removal.style === 'cifar') {
    const lock = cifarCacheLock(removal.directory);
    if (dryRun) return heldOr(lock, await liveLockHolder(lock), () => sizeOf(removal.members));
    const done = await withFileLockUnlessHeld(lock, async () => {
      let freed = 0;
      for (const member of removal.members) {
        const info = await lstatOrUndefined(member);
        if (info?.isDirectory()) freed += await removeTree(root, member);
        else if (info?.isFile()) freed += await removeFile(root, member, false);
      }
      return freed;
    });
    return done.ran ? { freedBytes: done.value } : { freedBytes: 0, heldBy: { lock, holder: done.holder } };
  }
  // A download in progress anywhere in the folder keeps all of it: its files belong together.
  for (const file of removal.files.filter((each) => LOCK_FILE.test(each))) {
    const holder = await liveLockHolder(file);
    if (holder !== undefined) return { freedBytes: 0, heldBy: { lock: file, holder } };
  }
  if (dryRun) return { freedBytes: await sizeOf(removal.files) };
  let freedBytes = 0;
  let heldBy: Outcome['heldBy'];
  for (const file of removal.files) {
    // A stale lock is broken and taken, then released: that removes it.
    const lock = file.endsWith('.lock') ? file : downloadLockPath(file.endsWith('.part') ? file.slice(0, -'.part'.length) : file);
    const done = await withFileLockUnlessHeld(lock, () => (file === lock ? Promise.resolve(0) : removeFile(root, file, false)));
    if (done.ran) freedBytes += done.value;
    else heldBy ??= { lock, holder: done.holder };
  }
  // Folders still holding something (a file whose download began meanwhile) stay; so does a repo folder with other revisions.
  for (const folder of [...removal.folders, dirname(removal.folders.at(-1)!)]) await removeEmptyFolder(root, folder).catch(() => undefined);
  return { freedBytes, heldBy };
}

async function heldOr(lock: string, holder: string | undefined, size: () => Promise<number>): Promise<Outcome> {
  return holder === undefined ? { freedBytes: await size() } : { freedBytes: 0, heldBy: { lock, holder } };
}

/** Whether `path`'s folder is still reached from `root` through real folders only. */
async function parentWithin(root: string, path: string): Promise<boolean> {
  return (await folderWithin(root, dirname(path))).state === 'folder';
}

/** Removes a regular file or a link (never what it points to); returns the bytes freed. */
async function removeFile(root: string, path: string, dryRun: boolean): Promise<number> {
  if (!(await parentWithin(root, path))) return 0;
  const info = await lstatOrUndefined(path);
  if (info === undefined || info.isDirectory()) return 0;
  if (!dryRun) await unlink(path).catch((error: NodeJS.ErrnoException) => {
    if (error.code !== 'ENOENT') throw error;
  });
  return info.isFile() ? info.size : 0;
}

/** Removes a folder and everything in it; links in it are removed, never followed. */
async function removeTree(root: string, folder: string): Promise<number> {
  const tree = await walkTree(folder);
  let freed = 0;
  for (const file of tree.files) freed += await removeFile(root, file, false);
  for (const each of tree.folders) await removeEmptyFolder(root, each);
  return freed;
}

async function removeEmptyFolder(root: string, folder: string): Promise<void> {
  if (await parentWithin(root, folder)) await rmdir(folder);
}

async function sizeOf(paths: readonly string[]): Promise<number> {
  let bytes = 0;
  for (const path of paths) {
    const info = await lstatOrUndefined(path);
    if (info?.isDirectory()) bytes += (await walkTree(path)).bytes;
    else if (info?.isFile()) bytes += info.size;
  }
  return bytes;
}
