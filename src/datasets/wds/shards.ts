import { constants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { Parser, type ReadEntry } from 'tar';
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
const CHUNK_BYTES = 1 << 20;

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

/**
 * The members of one shard that a sample can use (images and labels), in archive order; the others are
 * read past. `shard` names the shard in errors. A link, device, absolute path or `..` in a member name,
 * an oversized member, or a damaged or truncated archive stops the stream with an error.
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
    let finished = false;
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
    // Reading stops at the end-of-archive marker: what follows it is never handed to the parser.
    parser.on('eof', () => (finished = true));
    parser.on('end', () => (finished = true));
    let position = 0;
    for (;;) {
      if (failure !== undefined) break;
      while (ready.length > 0) yield ready.shift()!;
      if (finished) break;
      if (position >= info.size) {
        // Ending the parser hands over its last members, and reports a truncated archive as an error.
        parser.end();
        finished = true;
        continue;
      }
      const chunk = Buffer.allocUnsafe(Math.min(CHUNK_BYTES, info.size - position));
      const { bytesRead } = await handle.read(chunk, 0, chunk.length, position);
      if (bytesRead === 0) {
        failure = inputError(`webdataset shard ${shard} (${path}) ended early: it was ${info.size} bytes and shrank while being read`);
        break;
      }
      position += bytesRead;
      parser.write(chunk.subarray(0, bytesRead));
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
  const captions = member.bytes.toString('utf8').split('\n').map((line) => line.trim()).filter((line) => line !== '');
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
