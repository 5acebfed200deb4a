import { createHash } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { hashFile, writeCacheEntry, writeFileAtomic } from '../core/cache.js';
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

/**
 * sha256 of a file, remembered under the cache root so that a 250 MB text model is not re-read on every
 * run. The memo holds the file's whole identity: device, inode, size, mtime and ctime (nanoseconds). A
 * rewrite that restores size and mtime (tar --mtime, cp -p, a snapshot) still changes the ctime, which no
 * tool can set back, so any change re-hashes the file.
 */
export async function fileDigest(path: string, cacheRoot: string, logger: Logger = silentLogger): Promise<string> {
  const info = await stat(path, { bigint: true });
  const memoPath = join(fileDigestFolder(cacheRoot), `${createHash('sha256').update(path).digest('hex')}.json`);
  const identity = { dev: `${info.dev}`, ino: `${info.ino}`, size: `${info.size}`, mtimeNs: `${info.mtimeNs}`, ctimeNs: `${info.ctimeNs}` };
  try {
    const memo = JSON.parse(await readFile(memoPath, 'utf8')) as Partial<Record<keyof typeof identity | 'sha256', unknown>>;
    const same = (Object.keys(identity) as (keyof typeof identity)[]).every((name) => memo[name] === identity[name]);
    if (same && typeof memo.sha256 === 'string' && /^[0-9a-f]{64}$/.test(memo.sha256)) return memo.sha256;
  } catch {
    // No memo yet, or an unreadable one: hash the file.
  }
  const sha256 = await hashFile(path);
  await writeCacheEntry('file-digest memo', memoPath, () => writeFileAtomic(memoPath, JSON.stringify({ ...identity, sha256 })), logger);
  return sha256;
}
