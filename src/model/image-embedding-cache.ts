import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { removeStaleTemporaries, writeCacheEntry, writeFileAtomic } from '../core/cache.js';
import { describeError, fileSystemError, isFileSystemError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import type { PreprocessConfig } from '../preprocess/config.js';

/**
 * On-disk cache of image embeddings, one small entry per image. An entry's name is a digest of
 * everything that determines the embedding (the vision model file, variant, execution provider,
 * preprocessing, and the image's content), so a changed model or image can never reuse a stale one.
 * Entries fan out into 256 folders by the digest's first byte, so no folder grows past what file
 * systems list quickly. Layout: magic, header length (uint32 LE), JSON header, float32 LE payload.
 */
const MAGIC = Buffer.from('CLIPEVAL-IMAGEEMB\n', 'latin1');
export const IMAGE_CACHE_FORMAT = 1;

/** What determines an embedding on the model side. */
export interface ImageEmbeddingModelKey {
  visionModelSha256: string;
  variant: string;
  /** The execution provider the session runs on ("cpu", "cuda"): float results differ between them. */
  executionProvider: string;
  preprocess: PreprocessConfig;
  /** How images are decoded: EXIF rotation changes the pixels, and the limits decide which images are refused. */
  decode: { autoOrient: boolean; maxPixels: number | null; maxFileBytes: number | null };
}

/** What determines an embedding on the image side. */
export type ImageContentKey =
  /** An image file or encoded sample: sha256 of its bytes. */
  | { bytesSha256: string }
  /** A sample of a data set whose content digest is known: the digest and the sample id. */
  | { datasetSha256: string; sampleId: string };

interface EntryHeader {
  format: number;
  key: string;
  dim: number;
  payloadSha256: string;
}

export function imageEmbeddingFolder(cacheRoot: string): string {
  return join(cacheRoot, 'image-embeddings');
}

/** Reads and writes one model's image embeddings. Failures to read or write cost time, never the result. */
export class ImageEmbeddingCache {
  private readonly modelDigest: string;
  /** Entries read intact. */
  hits = 0;
  /** Entries looked up and not found, or found damaged. */
  misses = 0;

  constructor(
    private readonly cacheRoot: string,
    model: ImageEmbeddingModelKey,
    private readonly logger: Logger,
  ) {
    this.modelDigest = createHash('sha256').update(JSON.stringify({ format: IMAGE_CACHE_FORMAT, ...model })).digest('hex');
  }

  /** The digest naming the entry of `content` under this model. */
  entryDigest(content: ImageContentKey): string {
    return createHash('sha256').update(JSON.stringify({ model: this.modelDigest, content })).digest('hex');
  }

  entryPath(digest: string): string {
    return join(imageEmbeddingFolder(this.cacheRoot), digest.slice(0, 2), `${digest}.bin`);
  }

  /** The embedding of `content`, or undefined when missing; a damaged entry is reported and treated as missing. */
  async read(content: ImageContentKey): Promise<Float32Array | undefined> {
    const digest = this.entryDigest(content);
    const embedding = await this.readEntry(this.entryPath(digest), digest);
    if (embedding) this.hits += 1;
    else this.misses += 1;
    return embedding;
  }

  /** Stores an embedding; a filesystem failure is a warning. */
  async write(content: ImageContentKey, embedding: Float32Array): Promise<void> {
    const digest = this.entryDigest(content);
    const path = this.entryPath(digest);
    const payload = Buffer.from(embedding.buffer, embedding.byteOffset, embedding.byteLength);
    const header: EntryHeader = {
      format: IMAGE_CACHE_FORMAT,
      key: digest,
      dim: embedding.length,
      payloadSha256: createHash('sha256').update(payload).digest('hex'),
    };
    const headerBytes = Buffer.from(JSON.stringify(header), 'utf8');
    const length = Buffer.alloc(4);
    length.writeUInt32LE(headerBytes.length);
    await writeCacheEntry('image-embedding cache entry', path, () => writeFileAtomic(path, Buffer.concat([MAGIC, length, headerBytes, payload])), this.logger);
  }

  /** Removes what interrupted writers left in the entry folders (256 small listings). */
  async removeStaleTemporaries(): Promise<void> {
    const root = imageEmbeddingFolder(this.cacheRoot);
    for (let byte = 0; byte < 256; byte += 1) await removeStaleTemporaries(join(root, byte.toString(16).padStart(2, '0')));
  }

  private async readEntry(path: string, digest: string): Promise<Float32Array | undefined> {
    let bytes: Buffer;
    try {
      bytes = await readFile(path);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      if (!isFileSystemError(error)) throw error;
      this.logger.warn(`${describeError(fileSystemError(error, 'image-embedding cache entry', path))}; encoding the image instead`);
      return undefined;
    }
    const damaged = (why: string) => {
      this.logger.warn(`image-embedding cache entry ${path} is damaged (${why}); rebuilding it`);
      return undefined;
    };
    if (bytes.length < MAGIC.length + 4 || !bytes.subarray(0, MAGIC.length).equals(MAGIC)) return damaged('bad header');
    const headerLength = bytes.readUInt32LE(MAGIC.length);
    const headerStart = MAGIC.length + 4;
    if (headerStart + headerLength > bytes.length) return damaged('truncated header');
    let header: EntryHeader;
    try {
      header = JSON.parse(bytes.subarray(headerStart, headerStart + headerLength).toString('utf8')) as EntryHeader;
    } catch {
      return damaged('unreadable header');
    }
    if (header.format !== IMAGE_CACHE_FORMAT || header.key !== digest) return damaged('written for another key or format');
    const payload = bytes.subarray(headerStart + headerLength);
    if (!Number.isInteger(header.dim) || payload.length !== header.dim * 4) return damaged('truncated payload');
    if (createHash('sha256').update(payload).digest('hex') !== header.payloadSha256) return damaged('checksum mismatch');
    const embedding = new Float32Array(header.dim);
    Buffer.from(embedding.buffer).set(payload);
    return embedding;
  }
}
