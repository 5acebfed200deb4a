import { constants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { pipeline } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { Parser, type ReadEntry } from 'tar';
import { decodeUtf8 } from '../../core/bounded-read.js';
import { ClipEvalError, describeError, fileSystemError, inputError, isFileSystemError } from '../../core/errors.js';

/**
 * Reads one webdataset shard (a tar file) as a stream of samples. The members of a sample share a key:
 * the member's path up to the first dot of its file name (`train/s0000042.webp` and `train/s0000042.cls`
 * are sample `train/s0000042`), and follow each other in the archive. The shard is read in chunks as
 * samples are asked for, so at most one sample's members are held in memory.
 */

/** A sample's image member, by extension, and the format name it is given. */
const IMAGE_FORMATS: ReadonlyMap<string, string> = new Map([
  ['webp', 'webp'],
  ['png', 'png'],
  ['jpg', 'jpg'],
  ['jpeg', 'jpg'],
]);
const LABEL_EXTENSION = 'cls';
/** A caption data set's sample holds its captions in a .txt member, one per line. */
const CAPTIONS_EXTENSION = 'txt';
/** Far above any photo in a benchmark shard; a larger member is refused before it is read. */
const MAX_IMAGE_MEMBER_BYTES = 64 * 2 ** 20;
/** A .cls member holds one decimal number. */
const MAX_LABEL_MEMBER_BYTES = 1024;
/** Far above a benchmark image's few captions (MSCOCO: five short sentences). */
const MAX_CAPTIONS_MEMBER_BYTES = 1 << 20;
/** Entry types that carry plain data; links, devices and FIFOs are refused. */
const FILE_TYPES = new Set(['File', 'OldFile', 'ContiguousFile']);
/** Raw shard bytes read at a time. */
const CHUNK_BYTES = 1 << 20;
/** Decompressed bytes handed on at a time. */
const GUNZIP_CHUNK_BYTES = 1 << 16;

export interface ShardSample {
  key: string;
  label: number;
  /** The lines of its .txt member, when the shard is read for captions. */
  captions?: string[];
  bytes: Uint8Array;
  format: string;
  /** The image member's path in the shard. */
  member: string;
}

interface Member {
  key: string;
  extension: string;
  path: string;
  bytes: Buffer;
}

interface PendingSample {
  key: string;
  image?: Member;
  label?: Member;
  caption?: Member;
}

/** What a sample carries besides its image: a label (.cls, in 0..classCount-1) or captions (.txt). */
export type ShardContent = { kind: 'labels'; classCount: number } | { kind: 'captions' };

/** Why a member may not be in a shard, or undefined when it may. */
function memberProblem(entry: ReadEntry): string | undefined {
  const path = entry.path;
  if (path.startsWith('/') || /^[A-Za-z]:/.test(path) || path.includes('\\')) return `member ${path} has an absolute or Windows path`;
  if (path.split('/').includes('..')) return `member ${path} climbs out of the archive with '..'`;
  if (entry.type !== 'Directory' && !FILE_TYPES.has(entry.type)) return `member ${path} is a ${entry.type}, not a plain file`;
  return undefined;
}

/** `dir/name.ext.more` → key `dir/name`, extension `ext.more` (lower case). */
function splitMemberPath(path: string): { key: string; extension: string } {
  const parts = path.split('/').filter((part) => part !== '' && part !== '.');
  const base = parts.pop() ?? '';
  const dot = base.indexOf('.');
  const stem = dot === -1 ? base : base.slice(0, dot);
  return { key: [...parts, stem].join('/'), extension: dot === -1 ? '' : base.slice(dot + 1).toLowerCase() };
}

/** What a tar shard may decompress to: tar's own guard against decompression bombs, 1000 times the file. */
const MAX_DECOMPRESSION_RATIO = 1000;
const GZIP_MAGIC = [0x1f, 0x8b];

/**
 * The shard's tar bytes, in chunks as they are asked for: a gzip'd shard is decompressed here, a stream
 * that waits for its reader, rather than inside tar's parser, which decompresses a whole write at once
 * (and after the end marker buffers all of it: a 2 MB shard of zeros then takes gigabytes).
 */
async function* tarChunks(handle: FileHandle, size: number, shard: string, path: string): AsyncGenerator<Buffer> {
  const magic = Buffer.alloc(GZIP_MAGIC.length);
  const { bytesRead } = await handle.read(magic, 0, magic.length, 0);
  const gzipped = bytesRead === magic.length && GZIP_MAGIC.every((byte, index) => magic[index] === byte);
  // Up to the size it had when opened: a file still being written is read as it was then.
  const file = handle.createReadStream({ start: 0, end: Math.max(size - 1, 0), autoClose: false, highWaterMark: CHUNK_BYTES });
  if (!gzipped) {
    yield* file as AsyncIterable<Buffer>;
    return;
  }
  const tar = pipeline(file, createGunzip({ chunkSize: GUNZIP_CHUNK_BYTES }), () => undefined);
  let tarBytes = 0;
  try {
    for await (const chunk of tar as AsyncIterable<Buffer>) {
      tarBytes += chunk.length;
      if (tarBytes > MAX_DECOMPRESSION_RATIO * size) {
        throw inputError(`webdataset shard ${shard} (${path}) decompresses to more than ${MAX_DECOMPRESSION_RATIO} times its ${size} bytes; refusing it as damaged`);
      }
      yield chunk;
    }
  } catch (error) {
    if (error instanceof ClipEvalError) throw error;
    throw inputError(`webdataset shard ${shard} (${path}) is not valid gzip data (${describeError(error)})`, error);
  } finally {
    tar.destroy();
  }
}

/**
 * The members of one shard that a sample can use (images and labels), in archive order; the others are
 * read past. `shard` names the shard in errors. A link, device, absolute path or `..` in a member name,
 * an oversized member, or a damaged or truncated archive stops the stream with an error. The parser is
 * given one chunk at a time, and the next only once the members it completed have been taken, so what
 * is held is about a chunk and the sample being read, whatever the shard's size.
 */
async function* shardMembers(path: string, shard: string, content: ShardContent): AsyncGenerator<Member> {
  const otherExtension = content.kind === 'labels' ? LABEL_EXTENSION : CAPTIONS_EXTENSION;
  const otherLimit = content.kind === 'labels' ? MAX_LABEL_MEMBER_BYTES : MAX_CAPTIONS_MEMBER_BYTES;
  let handle: FileHandle;
  try {
    handle = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (error) {
    throw isFileSystemError(error) ? fileSystemError(error, `webdataset shard ${shard}:`, path) : error;
  }
  try {
    const info = await handle.stat();
    if (!info.isFile()) throw inputError(`webdataset shard ${shard} (${path}) is not a regular file`);
    const ready: Member[] = [];
    let failure: Error | undefined;
    let sawEndMarker = false;
    const parser = new Parser({
      strict: true,
      onReadEntry(entry: ReadEntry) {
        if (failure !== undefined) return entry.resume();
        const problem = memberProblem(entry);
        if (problem !== undefined) {
          failure = inputError(`webdataset shard ${shard}: ${problem}; refusing the shard`);
          return entry.resume();
        }
        const { key, extension } = splitMemberPath(entry.path);
        const limit = IMAGE_FORMATS.has(extension) ? MAX_IMAGE_MEMBER_BYTES : extension === otherExtension ? otherLimit : undefined;
        if (entry.type === 'Directory' || limit === undefined) return entry.resume();
        if (entry.size > limit) {
          failure = inputError(`webdataset shard ${shard}: member ${entry.path} has ${entry.size} bytes, more than the ${limit} allowed`);
          return entry.resume();
        }
        const chunks: Buffer[] = [];
        entry.on('data', (chunk: Buffer) => chunks.push(chunk));
        entry.on('end', () => ready.push({ key, extension, path: entry.path, bytes: Buffer.concat(chunks) }));
      },
    });
    parser.on('error', (error: Error) => {
      failure ??= error;
    });
    // The end-of-archive marker, two zero blocks, which every tar writer puts after the last member: a
    // shard cut at a member boundary parses cleanly, and only its absence tells it from a whole one.
    parser.on('eof', () => (sawEndMarker = true));
    try {
      // Reading stops at the end marker: what follows it is never handed to the parser.
      for await (const chunk of tarChunks(handle, info.size, shard, path)) {
        parser.write(chunk);
        if (failure !== undefined) break;
        while (ready.length > 0) yield ready.shift()!;
        if (sawEndMarker) break;
      }
      if (failure === undefined && !sawEndMarker) {
        // Ending the parser hands over its last members, and reports a member cut short as an error.
        parser.end();
        if (failure === undefined) {
          while (ready.length > 0) yield ready.shift()!;
          if (!sawEndMarker) failure = inputError(`webdataset shard ${shard} (${path}) ends without the tar end-of-archive marker (two zero blocks): it was cut short; fetch or copy it again`);
        }
      }
    } catch (error) {
      if (!isFileSystemError(error)) throw error;
      throw fileSystemError(error, `webdataset shard ${shard}:`, path);
    }
    if (failure !== undefined) {
      if (failure instanceof ClipEvalError) throw failure;
      throw inputError(`webdataset shard ${shard} (${path}) is not a complete, valid tar archive (${describeError(failure)})`, failure);
    }
  } finally {
    await handle.close();
  }
}

function parseLabel(member: Member, shard: string, classCount: number): number {
  const text = member.bytes.toString('latin1').trim();
  if (!/^\d+$/.test(text)) throw inputError(`webdataset shard ${shard}: sample ${member.key} has label ${JSON.stringify(text.slice(0, 20))} in ${member.path}, not a whole number`);
  const label = Number(text);
  if (label >= classCount) {
    throw inputError(`webdataset shard ${shard}: sample ${member.key} has label ${label}, out of range for ${classCount} classes (0 to ${classCount - 1})`);
  }
  return label;
}

/** The non-blank lines of a .txt member, trimmed. */
function parseCaptions(member: Member, shard: string): string[] {
  const captions = decodeUtf8(member.bytes, `webdataset shard ${shard}: member ${member.path}`).split('\n').map((line) => line.trim()).filter((line) => line !== '');
  if (captions.length === 0) throw inputError(`webdataset shard ${shard}: sample ${member.key} has no captions in ${member.path}`);
  return captions;
}

function completeSample(pending: PendingSample, shard: string, content: ShardContent): ShardSample {
  if (pending.image === undefined) throw inputError(`webdataset shard ${shard}: sample ${pending.key} has no image (.webp, .png, .jpg or .jpeg member)`);
  if (content.kind === 'labels' && pending.label === undefined) throw inputError(`webdataset shard ${shard}: sample ${pending.key} has no label (.cls member)`);
  if (content.kind === 'captions' && pending.caption === undefined) throw inputError(`webdataset shard ${shard}: sample ${pending.key} has no captions (.txt member)`);
  return {
    key: pending.key,
    ...(content.kind === 'labels' ? { label: parseLabel(pending.label!, shard, content.classCount) } : { label: 0, captions: parseCaptions(pending.caption!, shard) }),
    bytes: pending.image.bytes,
    format: IMAGE_FORMATS.get(pending.image.extension)!,
    member: pending.image.path,
  };
}

/**
 * The samples of one shard, in archive order, each with an image and a label in 0..classCount-1 (or its
 * captions). A sample whose members are not next to each other, or that has two images or two labels, is an error.
 * `seenKeys` collects the keys of the whole data set, so a key used twice is refused across shards too.
 */
export async function* shardSamples(path: string, shard: string, content: ShardContent, seenKeys: Set<string>): AsyncGenerator<ShardSample> {
  let pending: PendingSample | undefined;
  for await (const member of shardMembers(path, shard, content)) {
    if (pending?.key !== member.key) {
      if (pending !== undefined) yield completeSample(pending, shard, content);
      if (seenKeys.has(member.key)) throw inputError(`webdataset shard ${shard}: sample key ${member.key} appears twice (its members must be next to each other, and keys unique)`);
      seenKeys.add(member.key);
      pending = { key: member.key };
    }
    const slot = member.extension === LABEL_EXTENSION ? 'label' : member.extension === CAPTIONS_EXTENSION ? 'caption' : 'image';
    if (pending[slot] !== undefined) throw inputError(`webdataset shard ${shard}: sample ${member.key} has two ${slot}s (${pending[slot].path} and ${member.path})`);
    pending[slot] = member;
  }
  if (pending !== undefined) yield completeSample(pending, shard, content);
}
