import { createReadStream, createWriteStream, type WriteStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { Parser, type ReadEntry } from 'tar';
import { ClipEvalError, describeError, inputError } from '../core/errors.js';

export interface ExtractMember {
  /** The file name inside `folder`. */
  name: string;
  /** A larger member is refused before anything of it is written. */
  maxBytes: number;
}

export interface ExtractOptions {
  /** A .tar or .tar.gz file. */
  archive: string;
  /** An existing, empty directory; each wanted member is written there under its own file name. */
  destination: string;
  /** The one top-level folder that every member of the archive must lie in, e.g. 'cifar-100-binary'. */
  folder: string;
  /** Files inside `folder` to write; the archive's other files are read past, not written. */
  members: readonly ExtractMember[];
  /** The most tar bytes (after decompression) read before the archive is refused. */
  maxTarBytes: number;
}

/** Entry types that carry plain data; links, devices and FIFOs are refused. */
const FILE_TYPES = new Set(['File', 'OldFile', 'ContiguousFile']);
const GZIP_MAGIC = [0x1f, 0x8b];

/**
 * Streams the archive once and writes only the wanted members. The whole archive is checked as it
 * goes: a member with an absolute path, a `..` segment, a link or device type, or a path outside
 * `folder/` stops the extraction with an error, as does a wanted member seen twice, too large or
 * missing. Reading stops at the end-of-archive marker: whatever follows it is never decompressed.
 * Returns the written paths in the order of `members`.
 */
export async function extractMembers(options: ExtractOptions): Promise<string[]> {
  const { archive, destination, folder, members, maxTarBytes } = options;
  const wanted = new Map(members.map((member) => [member.name, member]));
  const writes = new Map<string, Promise<void>>();
  const outputs: WriteStream[] = [];
  const parser = new Parser({
    strict: true,
    onReadEntry(entry: ReadEntry) {
      const name = pathParts(entry.path).at(-1) ?? '';
      const member = entry.type === 'Directory' ? undefined : wanted.get(name);
      const problem =
        entryProblem(entry, folder) ??
        (writes.has(name) ? `member ${entry.path} appears twice` : undefined) ??
        (member && entry.size > member.maxBytes ? `member ${entry.path} has ${entry.size} bytes, more than the ${member.maxBytes} expected` : undefined);
      if (problem !== undefined) {
        entry.resume();
        parser.abort(inputError(`${archive}: ${problem}; refusing to extract it`));
        return;
      }
      if (member === undefined) {
        entry.resume();
        return;
      }
      const path = join(destination, name);
      const output = createWriteStream(path, { flags: 'wx', flush: true });
      outputs.push(output);
      const written = new Promise<void>((resolve, reject) => {
        output.on('close', resolve);
        output.on('error', (error) => {
          const failure = inputError(`could not write ${path}: ${describeError(error)}`, error);
          reject(failure);
          parser.abort(failure);
        });
      });
      // Awaited after the archive ends; until then a failure reaches the caller through the parser.
      written.catch(() => undefined);
      writes.set(name, written);
      entry.pipe(output);
    },
  });
  const input = createReadStream(archive);
  // Decompressed here rather than inside the parser, so that the parser's backpressure reaches the
  // decompressor: after the end marker the parser buffers everything it is given, and an unthrottled
  // stream of trailing zeros makes that buffering quadratic.
  const gunzip = (await isGzip(archive)) ? createGunzip() : undefined;
  const tarStream: Readable = gunzip ? input.pipe(gunzip) : input;
  let tarBytes = 0;
  try {
    await new Promise<void>((resolve, reject) => {
      parser.on('eof', resolve);
      parser.on('end', resolve);
      parser.on('error', reject);
      input.on('error', reject);
      gunzip?.on('error', reject);
      tarStream.on('data', (chunk: Buffer) => {
        tarBytes += chunk.length;
        if (tarBytes > maxTarBytes) reject(inputError(`${archive} holds more than ${maxTarBytes} bytes of tar data before its end; refusing to extract it`));
      });
      tarStream.pipe(parser as unknown as NodeJS.WritableStream);
    });
    await Promise.all(writes.values());
  } catch (error) {
    for (const output of outputs) output.destroy();
    if (error instanceof ClipEvalError) throw error;
    throw inputError(`${archive} is not a complete, valid tar archive (${describeError(error)})`, error);
  } finally {
    tarStream.unpipe();
    input.destroy();
    gunzip?.destroy();
  }
  const missing = members.filter((member) => !writes.has(member.name));
  if (missing.length > 0) {
    throw inputError(`${archive} lacks ${missing.map((member) => `${folder}/${member.name}`).join(', ')}`);
  }
  return members.map((member) => join(destination, member.name));
}

async function isGzip(archive: string): Promise<boolean> {
  let handle;
  try {
    handle = await open(archive, 'r');
    const { buffer, bytesRead } = await handle.read(Buffer.alloc(GZIP_MAGIC.length), 0, GZIP_MAGIC.length, 0);
    return bytesRead === GZIP_MAGIC.length && GZIP_MAGIC.every((byte, i) => buffer[i] === byte);
  } catch (error) {
    throw inputError(`could not read ${archive}: ${describeError(error)}`, error);
  } finally {
    await handle?.close();
  }
}

function pathParts(path: string): string[] {
  return path.split('/').filter((part) => part !== '' && part !== '.');
}

/** Why this member may not be in the archive, or undefined when it may. */
function entryProblem(entry: ReadEntry, folder: string): string | undefined {
  const path = entry.path;
  if (path.startsWith('/') || /^[A-Za-z]:/.test(path) || path.includes('\\')) return `member ${path} has an absolute or Windows path`;
  const parts = pathParts(path);
  if (parts.includes('..')) return `member ${path} climbs out of the archive with '..'`;
  const isDirectory = entry.type === 'Directory';
  if (!isDirectory && !FILE_TYPES.has(entry.type)) return `member ${path} is a ${entry.type}, not a plain file`;
  // Only the folder itself and plain files directly in it are expected.
  if (parts[0] !== folder || parts.length !== (isDirectory ? 1 : 2)) return `unexpected member ${path} (only files directly in ${folder}/ are expected)`;
  return undefined;
}
