import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { removeStaleTemporaries, writeCacheEntry, writeFileAtomic } from '../core/cache.js';
import { encodeEmbeddingEntry, readEmbeddingEntry, type EmbeddingEntryKind } from '../core/embedding-entry.js';
import type { Logger } from '../core/log.js';
import type { PreprocessConfig } from '../preprocess/config.js';

/**
 * On-disk cache of image embeddings, one small entry per image. An entry's name is a digest of
 * everything that determines the embedding (the vision model file, variant, execution provider,
 * preprocessing, and the image's content), so a changed model or image can never reuse a stale one.
 * Entries fan out into 256 folders by the digest's first byte, so no folder grows past what file
 * systems list quickly. Layout: magic, header length (uint32 LE), JSON header, float32 LE payload.
 */
export const IMAGE_CACHE_FORMAT = 1;
const IMAGE_ENTRY: EmbeddingEntryKind = {
  magic: Buffer.from('CLIPEVAL-IMAGEEMB\n', 'latin1'),
  format: IMAGE_CACHE_FORMAT,
  what: 'image-embedding cache entry',
  fallback: 'encoding the image instead',
};

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
    const embedding = (await readEmbeddingEntry(this.entryPath(digest), IMAGE_ENTRY, digest, ['dim'], this.logger))?.floats;
    if (embedding) this.hits += 1;
    else this.misses += 1;
    return embedding;
  }

  /** Stores an embedding; a filesystem failure is a warning. */
  async write(content: ImageContentKey, embedding: Float32Array): Promise<void> {
    const digest = this.entryDigest(content);
    const path = this.entryPath(digest);
    const entry = encodeEmbeddingEntry(IMAGE_ENTRY, digest, { dim: embedding.length }, embedding);
    await writeCacheEntry(IMAGE_ENTRY.what, path, () => writeFileAtomic(path, entry), this.logger);
  }

  /** Removes what interrupted writers left in the entry folders (256 small listings). */
  async removeStaleTemporaries(): Promise<void> {
    const root = imageEmbeddingFolder(this.cacheRoot);
    for (let byte = 0; byte < 256; byte += 1) await removeStaleTemporaries(this.cacheRoot, join(root, byte.toString(16).padStart(2, '0')));
  }
}
