import { createHash } from 'node:crypto';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { assertRegularFile, readRegularFile } from '../core/bounded-read.js';
import { ENTRY_USE_RESOLUTION_MS, hashFileOffThread, markUsed, writeCacheEntry, writeFileAtomic } from '../core/cache.js';
import { hashFile } from '../core/file-hash.js';
import { encodeEmbeddingEntry, readEmbeddingEntry, type EmbeddingEntryKind } from '../core/embedding-entry.js';
import { silentLogger, type Logger } from '../core/log.js';

/**
 * On-disk cache of class-embedding matrices. An entry is keyed by a digest of everything that
 * determines it, so a changed model, tokenizer, template or class name can never reuse a stale one.
 * Entries are in the embedding-entry format of src/core/embedding-entry.ts.
 */
export const TEXT_CACHE_FORMAT = 1;
const TEXT_ENTRY: EmbeddingEntryKind = {
  magic: Buffer.from('CLIPEVAL-TEXTEMB\n', 'latin1'),
  format: TEXT_CACHE_FORMAT,
  what: 'text-embedding cache entry',
  fallback: 'computing the embeddings instead',
};

export interface TextEmbeddingKey {
  textModelSha256: string;
  tokenizerSha256: string;
  contextLength: number;
  /** The pad token by name (null: OpenAI's padding with 0). */
  padToken: string | null;
  /** The model family, whose text rules (cleaning, special tokens, padding) make the token ids. */
  family: string;
  templates: readonly string[];
  classNames: readonly string[];
  /** How prompt embeddings become class embeddings. */
  reduction: 'l2-mean-l2';
}

export function textEmbeddingKeyDigest(key: TextEmbeddingKey): string {
  return createHash('sha256').update(JSON.stringify({ format: TEXT_CACHE_FORMAT, ...key })).digest('hex');
}

export function textEmbeddingFolder(cacheRoot: string): string {
  return join(cacheRoot, 'text-embeddings');
}

export function textEmbeddingCachePath(cacheRoot: string, digest: string): string {
  return join(textEmbeddingFolder(cacheRoot), `${digest}.bin`);
}

export function fileDigestFolder(cacheRoot: string): string {
  return join(cacheRoot, 'file-digests');
}

export interface CachedMatrix {
  classes: number;
  dim: number;
  matrix: Float32Array;
}

/** Reads an entry; a missing one is undefined, a damaged one is reported and treated as missing. */
export async function readTextEmbeddings(path: string, digest: string, logger: Logger): Promise<CachedMatrix | undefined> {
  const entry = await readEmbeddingEntry(path, TEXT_ENTRY, digest, ['classes', 'dim'], logger);
  return entry && { classes: entry.shape.classes!, dim: entry.shape.dim!, matrix: entry.floats };
}

export async function writeTextEmbeddings(path: string, digest: string, entry: CachedMatrix): Promise<void> {
  await writeFileAtomic(path, encodeEmbeddingEntry(TEXT_ENTRY, digest, { classes: entry.classes, dim: entry.dim }, entry.matrix));
}

/** Files from this size on are hashed on a worker thread (model files), smaller ones (images) inline. */
export const OFF_THREAD_HASH_BYTES = 32 * 1024 * 1024;

/** A file's identity as the digest memo records it: any change to the file changes one of these. */
type FileIdentity = Record<'dev' | 'ino' | 'size' | 'mtimeNs' | 'ctimeNs', string>;

/** Digests of this process, by path and identity: a file is hashed at most once per run, even by concurrent callers. */
const digestsInProcess = new Map<string, Promise<string>>();

async function fileIdentity(path: string, cacheRoot: string | undefined): Promise<{ identity: FileIdentity; memoPath: string | undefined; processKey: string }> {
  const info = await stat(path, { bigint: true });
  assertRegularFile(info, path);
  const memoPath = cacheRoot === undefined ? undefined : join(fileDigestFolder(cacheRoot), `${createHash('sha256').update(path).digest('hex')}.json`);
  const identity = { dev: `${info.dev}`, ino: `${info.ino}`, size: `${info.size}`, mtimeNs: `${info.mtimeNs}`, ctimeNs: `${info.ctimeNs}` };
  return { identity, memoPath, processKey: JSON.stringify([path, identity]) };
}

/** A memo is one small JSON object; anything larger is not one. */
const MAX_MEMO_BYTES = 4096;

/** The memo's digest when it describes the file as it is now; a hit is recorded as the memo's last use. */
async function readDigestMemo(memoPath: string | undefined, identity: FileIdentity): Promise<string | undefined> {
  if (memoPath === undefined) return undefined;
  try {
    const memo = JSON.parse((await readRegularFile(memoPath, { maxBytes: MAX_MEMO_BYTES, label: memoPath })).toString('utf8')) as Partial<Record<keyof FileIdentity | 'sha256', unknown>>;
    const same = (Object.keys(identity) as (keyof FileIdentity)[]).every((name) => memo[name] === identity[name]);
    if (same && typeof memo.sha256 === 'string' && /^[0-9a-f]{64}$/.test(memo.sha256)) {
      markUsed(memoPath, ENTRY_USE_RESOLUTION_MS);
      return memo.sha256;
    }
  } catch {
    // No memo yet, or an unreadable one: the file is hashed.
  }
  return undefined;
}

/** Whether fileDigest would answer without reading the file: a memo of it as it is now, here or under the cache root. */
export async function fileDigestKnown(path: string, cacheRoot: string | undefined): Promise<boolean> {
  const { identity, memoPath, processKey } = await fileIdentity(path, cacheRoot);
  return digestsInProcess.has(processKey) || (await readDigestMemo(memoPath, identity)) !== undefined;
}

/**
 * sha256 of a file, remembered under the cache root so that a 250 MB text model is not re-read on every
 * run. The memo holds the file's whole identity: device, inode, size, mtime and ctime (nanoseconds). A
 * rewrite that restores size and mtime (tar --mtime, cp -p, a snapshot) still changes the ctime, which no
 * tool can set back, so any change re-hashes the file. Model-sized files are hashed on a worker thread.
 * Without a cache root (the cache is off) nothing is remembered beyond this process.
 */
export async function fileDigest(path: string, cacheRoot: string | undefined, logger: Logger = silentLogger): Promise<string> {
  const { identity, memoPath, processKey } = await fileIdentity(path, cacheRoot);
  const known = digestsInProcess.get(processKey);
  if (known) return known;
  const large = BigInt(identity.size) >= OFF_THREAD_HASH_BYTES;
  const digest = (async () => {
    const memo = await readDigestMemo(memoPath, identity);
    if (memo) return memo;
    const sha256 = large ? await hashFileOffThread(path) : await hashFile(path);
    if (memoPath !== undefined) await writeCacheEntry('file-digest memo', memoPath, () => writeFileAtomic(memoPath, JSON.stringify({ ...identity, sha256 })), logger);
    return sha256;
  })();
  digestsInProcess.set(processKey, digest);
  // Small files (images, one per entry) are kept only while in flight; a failure is never kept.
  digest.then(
    () => (large ? undefined : digestsInProcess.delete(processKey)),
    () => digestsInProcess.delete(processKey),
  );
  return digest;
}
