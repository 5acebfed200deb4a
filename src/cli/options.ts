import type { Stats } from 'node:fs';
import { access, constants, readlink, realpath, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { ownStandardStream } from '../core/cache.js';
import { describeError, fileSystemError, isFileSystemError, usageError } from '../core/errors.js';

/** Parsers for flag values: each rejects a bad value with a usage error naming the flag. */
export function positiveInteger(flag: string, max?: { value: number; why: string }): (value: string) => number {
  return (value) => {
    if (!/^\d+$/.test(value.trim()) || Number(value) < 1) throw usageError(`${flag} ${value}: expected a positive whole number`);
    if (max && Number(value) > max.value) throw usageError(`${flag} ${value}: at most ${max.value} (${max.why})`);
    return Number(value);
  };
}

export function nonNegativeInteger(flag: string): (value: string) => number {
  return (value) => {
    if (!/^\d+$/.test(value.trim())) throw usageError(`${flag} ${value}: expected a whole number (0 or more)`);
    return Number(value);
  };
}

const DURATION_UNITS_MS: Record<string, number> = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/** A duration such as 30d, 12h, 90m, 45s or 2w (whole numbers), in milliseconds. */
export function durationMs(flag: string): (value: string) => number {
  return (value) => {
    const match = /^(\d+)([smhdw])$/.exec(value.trim());
    const ms = match ? Number(match[1]) * DURATION_UNITS_MS[match[2]!]! : NaN;
    if (!Number.isSafeInteger(ms)) throw usageError(`${flag} ${value}: expected a whole number and a unit: s, m, h, d or w (e.g. 30d, 12h, 90m)`);
    return ms;
  };
}

const SIZE_UNITS: Record<string, number> = { b: 1, kb: 1e3, mb: 1e6, gb: 1e9, tb: 1e12, kib: 2 ** 10, mib: 2 ** 20, gib: 2 ** 30, tib: 2 ** 40 };

/** A size such as 5GB, 500MB, 1GiB, 1.5TB or 0B (kB = 1000 bytes, KiB = 1024), in bytes. */
export function byteSize(flag: string): (value: string) => number {
  return (value) => {
    const match = /^(\d+(?:\.\d+)?)\s*([kmgt]i?b|b)$/i.exec(value.trim());
    const bytes = match ? Math.floor(Number(match[1]) * SIZE_UNITS[match[2]!.toLowerCase()]!) : NaN;
    if (!Number.isSafeInteger(bytes)) throw usageError(`${flag} ${value}: expected a size with a unit: B, kB, MB, GB, TB, KiB, MiB, GiB or TiB (e.g. 5GB, 500MB, 1GiB)`);
    return bytes;
  };
}

export function md5Hex(flag: string): (value: string) => string {
  return (value) => {
    if (!/^[0-9a-fA-F]{32}$/.test(value)) throw usageError(`${flag} ${value}: expected an MD5 checksum of 32 hex digits`);
    return value.toLowerCase();
  };
}

/**
 * Why an output file could not be written where asked, or undefined when it can: checked before a
 * long run, so that a typo does not cost a ten-minute evaluation. A file that exists and is not a
 * regular file (a device, a pipe, /dev/stdout) is written through, so only it must be writable; a
 * regular file is replaced in its real folder, which must be writable, unless it is appended to.
 */
export async function unwritableOutputReason(path: string, mode: 'replace' | 'append' = 'replace'): Promise<string | undefined> {
  let info: Stats | undefined;
  try {
    info = await stat(path);
  } catch (error) {
    if (!isFileSystemError(error)) throw error;
    if (error.code === 'ENOTDIR') return 'a part of the path is a file, not a folder';
    if (error.code !== 'ENOENT') return describeError(fileSystemError(error));
  }
  if (info?.isDirectory()) return 'is a folder; give a file name';
  if (info && (mode === 'append' || ownStandardStream(info) || !info.isFile())) {
    return (await access(path, constants.W_OK).then(() => true, () => false)) ? undefined : 'cannot be opened for writing';
  }
  const directory = dirname(info ? await realpath(path) : resolve(path));
  try {
    const folder = await stat(directory);
    if (!folder.isDirectory()) throw new Error('not a directory');
    await access(directory, constants.W_OK);
  } catch {
    return `the folder ${directory} does not exist or is not writable; create it or choose another path`;
  }
  return undefined;
}

export async function assertWritableOutput(flag: string, path: string): Promise<void> {
  const reason = await unwritableOutputReason(path);
  if (reason !== undefined) throw usageError(`${flag} ${path}: ${reason}`);
}

/** Links followed before an output path is given up on: the system's own limit (Linux's MAXSYMLINKS). */
const MAX_LINKS = 40;

/**
 * Where an output will be written: its real path, and for a link whose target does not exist yet
 * (`s2.json -> s.json`) the real path of where it points, since writing through it creates that file.
 */
async function realOutputPath(path: string, links = 0): Promise<string> {
  const absolute = resolve(path);
  try {
    return await realpath(absolute);
  } catch {
    const target = links < MAX_LINKS ? await readlink(absolute).catch(() => undefined) : undefined;
    if (target !== undefined) return realOutputPath(resolve(dirname(absolute), target), links + 1);
    const directory = await realpath(dirname(absolute)).catch(() => dirname(absolute));
    return join(directory, basename(absolute));
  }
}

/** The identities of an output path: the file it is (device and inode, so hard links match too) and its real path. */
async function outputIdentities(path: string): Promise<string[]> {
  const info = await stat(path).catch(() => undefined);
  const real = `path ${await realOutputPath(path)}`;
  return info ? [`file ${info.dev}:${info.ino}`, real] : [real];
}

/** Two output flags naming one file would overwrite each other: a usage error, before any work. */
export async function assertDistinctOutputs(outputs: readonly (readonly [flag: string, path: string | undefined])[]): Promise<void> {
  const seen = new Map<string, string>();
  for (const [flag, path] of outputs) {
    if (!path) continue;
    const identities = await outputIdentities(path);
    const earlier = identities.map((identity) => seen.get(identity)).find((known) => known !== undefined);
    if (earlier) throw usageError(`${earlier} and ${flag} name the same file (${path}); give each its own`);
    for (const identity of identities) seen.set(identity, flag);
  }
}
