import { createHash } from 'node:crypto';
import { ENTRY_USE_RESOLUTION_MS, markUsed } from './cache.js';
import { readRegularFile } from './bounded-read.js';
import { ClipEvalError, describeError, fileSystemError, isFileSystemError } from './errors.js';
import type { Logger } from './log.js';

/**
 * The file format of the embedding caches (text and image): magic, header length (uint32 LE), a JSON
 * header holding the format version, the entry's key, its shape and the payload's sha256, then the
 * float32 LE payload. An entry is used only when all of that checks out.
 */
export interface EmbeddingEntryKind {
  magic: Buffer;
  format: number;
  /** For messages: "text-embedding cache entry". */
  what: string;
  /** What the run does when an entry cannot be read: "computing the embeddings instead". */
  fallback: string;
}

/** The entry's dimensions by name ({ classes, dim } or { dim }); the payload holds their product of floats. */
export type EntryShape = Record<string, number>;

export function encodeEmbeddingEntry(kind: EmbeddingEntryKind, key: string, shape: EntryShape, floats: Float32Array): Buffer {
  const payload = Buffer.from(floats.buffer, floats.byteOffset, floats.byteLength);
  const header = { format: kind.format, key, ...shape, payloadSha256: createHash('sha256').update(payload).digest('hex') };
  const headerBytes = Buffer.from(JSON.stringify(header), 'utf8');
  const length = Buffer.alloc(4);
  length.writeUInt32LE(headerBytes.length);
  return Buffer.concat([kind.magic, length, headerBytes, payload]);
}

/** The largest entry read back: a million captions' 512-float embeddings, with room to spare. */
const MAX_ENTRY_BYTES = 2 ** 31;

/**
 * Reads an entry with the dimensions `shapeNames`: undefined when it is missing, or unreadable or
 * damaged (reported, then rebuilt by the caller), or written for another key or format. A hit is
 * recorded as the entry's last use.
 */
export async function readEmbeddingEntry(
  path: string,
  kind: EmbeddingEntryKind,
  key: string,
  shapeNames: readonly string[],
  logger: Logger,
): Promise<{ shape: EntryShape; floats: Float32Array } | undefined> {
  let bytes: Buffer;
  try {
    bytes = await readRegularFile(path, { maxBytes: MAX_ENTRY_BYTES, label: `${kind.what} ${path}`, notRegularHint: 'remove it or choose another path' });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    // Not a regular file or too large: not an entry this cache wrote, so it is rebuilt.
    if (error instanceof ClipEvalError) {
      logger.warn(`${error.message}; ${kind.fallback}`);
      return undefined;
    }
    if (!isFileSystemError(error)) throw error;
    logger.warn(`${describeError(fileSystemError(error, kind.what, path))}; ${kind.fallback}`);
    return undefined;
  }
  const damaged = (why: string) => {
    logger.warn(`${kind.what} ${path} is damaged (${why}); rebuilding it`);
    return undefined;
  };
  const { magic } = kind;
  if (bytes.length < magic.length + 4 || !bytes.subarray(0, magic.length).equals(magic)) return damaged('bad header');
  const headerLength = bytes.readUInt32LE(magic.length);
  const headerStart = magic.length + 4;
  if (headerStart + headerLength > bytes.length) return damaged('truncated header');
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(bytes.subarray(headerStart, headerStart + headerLength).toString('utf8')) as Record<string, unknown>;
  } catch {
    return damaged('unreadable header');
  }
  if (header.format !== kind.format || header.key !== key) return damaged('written for another key or format');
  const payload = bytes.subarray(headerStart + headerLength);
  const shape: EntryShape = {};
  for (const name of shapeNames) {
    const size = header[name];
    if (typeof size !== 'number' || !Number.isInteger(size) || size < 0) return damaged('truncated payload');
    shape[name] = size;
  }
  if (payload.length !== Object.values(shape).reduce((product, size) => product * size, 1) * 4) return damaged('truncated payload');
  if (createHash('sha256').update(payload).digest('hex') !== header.payloadSha256) return damaged('checksum mismatch');
  const floats = new Float32Array(payload.length / 4);
  Buffer.from(floats.buffer).set(payload);
  markUsed(path, ENTRY_USE_RESOLUTION_MS);
  return { shape, floats };
}
