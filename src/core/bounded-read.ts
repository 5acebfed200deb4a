import { constants, type BigIntStats, type Stats } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { ClipEvalError, describeError, subjectError, type Subject } from './errors.js';

/**
 * Reads of files and streams a user names, bounded in size: a FIFO, a device such as /dev/zero or a
 * file that keeps growing is refused or cut off with a one-line error instead of blocking or filling
 * memory. `label` names the input in the errors (a file such as "photo.jpg", or a user input).
 */

/** Bytes read at a time. */
const CHUNK_BYTES = 1 << 20;

/** What a non-regular file is, for the error that refuses it. */
function fileKind(info: Stats | BigIntStats): string {
  if (info.isDirectory()) return 'a directory';
  if (info.isFIFO()) return 'a FIFO (named pipe)';
  if (info.isCharacterDevice()) return 'a character device';
  if (info.isBlockDevice()) return 'a block device';
  if (info.isSocket()) return 'a socket';
  return 'not a regular file';
}

function formatBytes(bytes: number): string {
  return bytes >= 1 << 20 ? `${bytes / (1 << 20)} MiB` : `${bytes} bytes`;
}

function tooLarge(label: Subject, maxBytes: number): Error {
  return subjectError(label, `more than the limit of ${formatBytes(maxBytes)} (${maxBytes} bytes); a larger input is refused`);
}

export interface RegularFileRead {
  maxBytes: number;
  /** Names the input in errors: a file ("photo.jpg") or a user input (the labels file @names.txt). */
  label: Subject;
  /** Called with the file's size before it is read (a memory budget may wait there). */
  beforeRead?: (bytes: number) => Promise<void>;
  /** What to do about a file that is not a regular one; default "give a file". */
  notRegularHint?: string;
}

/** Reads from `handle` until its end, refusing more than maxBytes (the file may grow while it is read). */
async function readAll(handle: FileHandle, expected: number, maxBytes: number, label: Subject): Promise<Buffer> {
  let buffer = Buffer.allocUnsafe(Math.min(expected, maxBytes) + 1);
  let length = 0;
  for (;;) {
    if (length === buffer.length) {
      if (length > maxBytes) throw tooLarge(label, maxBytes);
      const grown = Buffer.allocUnsafe(Math.min(buffer.length * 2, maxBytes + 1));
      buffer.copy(grown, 0, 0, length);
      buffer = grown;
    }
    const { bytesRead } = await handle.read(buffer, length, Math.min(buffer.length - length, CHUNK_BYTES), length);
    if (bytesRead === 0) break;
    length += bytesRead;
  }
  if (length > maxBytes) throw tooLarge(label, maxBytes);
  return buffer.subarray(0, length);
}

/**
 * Refuses what is not a regular file (a FIFO would block whoever reads it, a device never end), for
 * files handed on to a reader that is not bounded here: onnxruntime, a hash.
 */
export function assertRegularFile(info: Stats | BigIntStats, label: Subject, hint = 'give a file'): void {
  if (!info.isFile()) throw subjectError(label, `is ${fileKind(info)}, not a regular file; ${hint}`);
}

/**
 * The whole content of a regular file, at most maxBytes. The file is opened non-blocking, so that a
 * FIFO cannot block the open, and anything that is not a regular file is refused before a byte is read.
 * Those refusals are ClipEvalErrors; the system's own errors (ENOENT, EACCES) are thrown as they are,
 * for the caller to explain.
 */
export async function readRegularFile(path: string, read: RegularFileRead): Promise<Buffer> {
  const { maxBytes, label } = read;
  const handle = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    const info = await handle.stat();
    assertRegularFile(info, label, read.notRegularHint);
    if (info.size > maxBytes) throw tooLarge(label, maxBytes);
    await read.beforeRead?.(info.size);
    return await readAll(handle, info.size, maxBytes, label);
  } finally {
    await handle.close();
  }
}

/** All of a stream (standard input), at most maxBytes; reading stops as soon as the limit is passed. */
export async function readStreamBounded(stream: AsyncIterable<unknown>, maxBytes: number, label: Subject): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let length = 0;
  for await (const chunk of stream) {
    const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer);
    length += bytes.length;
    if (length > maxBytes) throw tooLarge(label, maxBytes);
    chunks.push(bytes);
  }
  return Buffer.concat(chunks, length);
}

/** Where the first invalid UTF-8 sequence of `bytes` (known to be invalid) starts. */
function firstInvalidUtf8Offset(bytes: Uint8Array): number {
  const decodes = (length: number, stream: boolean) => {
    try {
      new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(0, length), { stream });
      return true;
    } catch {
      return false;
    }
  };
  // A prefix decodes in streaming mode exactly when it holds no invalid sequence, so bisect for the
  // longest; if it ends inside a character, the bad sequence is that character's.
  let good = 0;
  let bad = bytes.length;
  while (good < bad) {
    const middle = Math.ceil((good + bad) / 2);
    if (decodes(middle, true)) good = middle;
    else bad = middle - 1;
  }
  if (decodes(good, false)) return good;
  let start = good - 1;
  while (start > 0 && (bytes[start]! & 0xc0) === 0x80) start -= 1;
  return start;
}

/**
 * Text that must be UTF-8 (label and template files): invalid bytes are an error naming the byte
 * offset and line, never silently replaced by U+FFFD. A leading byte order mark is dropped.
 */
export function decodeUtf8(bytes: Uint8Array, label: Subject): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    const offset = firstInvalidUtf8Offset(bytes);
    let line = 1;
    for (let i = 0; i < offset; i++) if (bytes[i] === 0x0a) line += 1;
    throw subjectError(label, `not valid UTF-8 (byte ${offset}, line ${line}); save the file as UTF-8`);
  }
}

/** Label and template files are lists a person writes: far below this. */
export const MAX_TEXT_FILE_BYTES = 16 * 2 ** 20;

/**
 * A UTF-8 text file (labels, templates, manifests): regular, at most maxBytes, strictly decoded.
 * `hint` says what the file should be, after a system error.
 */
export async function readTextFile(path: string, label: Subject, hint: string, maxBytes = MAX_TEXT_FILE_BYTES): Promise<string> {
  let bytes: Buffer;
  try {
    bytes = await readRegularFile(path, { maxBytes, label });
  } catch (error) {
    if (error instanceof ClipEvalError) throw error;
    throw subjectError(label, `cannot read the file (${(error as NodeJS.ErrnoException).code ?? describeError(error)}); ${hint}`, { cause: error });
  }
  return decodeUtf8(bytes, label);
}
