import { createHash } from 'node:crypto';
import { stat } from 'node:fs/promises';
import type { ImageContentKey } from '../../model/image-embedding-cache.js';
import { DEFAULT_MAX_IMAGE_BYTES } from '../../preprocess/decode.js';
import { fileDigest } from '../../text/embedding-cache.js';

/** The image-cache key of encoded bytes. */
export function bytesContentKey(bytes: Uint8Array): ImageContentKey {
  return { bytesSha256: createHash('sha256').update(bytes).digest('hex') };
}

/**
 * The image-cache key of an image file: the sha256 of its bytes (memoised by file identity). Only a
 * regular file within the size limit is hashed: a pipe or a device would never end. Undefined when it
 * cannot be hashed; its decode then says why, by name.
 */
export async function fileContentKey(path: string, cacheRoot: string, maxFileBytes = DEFAULT_MAX_IMAGE_BYTES): Promise<ImageContentKey | undefined> {
  try {
    const info = await stat(path);
    if (!info.isFile() || info.size > maxFileBytes) return undefined;
    return { bytesSha256: await fileDigest(path, cacheRoot) };
  } catch {
    return undefined;
  }
}
