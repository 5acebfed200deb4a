import { appendFile } from 'node:fs/promises';
import { isAbsolute, relative, sep } from 'node:path';
import { readStreamBounded } from '../core/bounded-read.js';
import { writeOutputFile } from '../core/cache.js';
import { describeError, fileSystemError, isFileSystemError, usageError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { DEFAULT_MAX_IMAGE_BYTES } from '../preprocess/decode.js';
import { unwritableOutputReason } from './options.js';

/** Writes an output file a flag named; a filesystem failure is exit 3 with the flag and path. */
export async function writeOutput(flag: string, path: string, data: string): Promise<void> {
  try {
    await writeOutputFile(path, data);
  } catch (error) {
    if (isFileSystemError(error)) throw fileSystemError(error, `${flag} output`, path);
    throw error;
  }
}

/**
 * $GITHUB_STEP_SUMMARY is a courtesy to the CI page, not the gate: when it cannot be written the
 * run warns (up front when it can tell) and keeps the exit code of its checks.
 */
export async function stepSummaryPath(logger: Logger): Promise<string | undefined> {
  const path = process.env.GITHUB_STEP_SUMMARY;
  if (!path) return undefined;
  const reason = await unwritableOutputReason(path, 'append');
  if (reason === undefined) return path;
  logger.warn(`$GITHUB_STEP_SUMMARY ${path}: ${reason}; no step summary will be written`);
  return undefined;
}

export async function appendStepSummary(path: string, text: string, logger: Logger): Promise<void> {
  try {
    await appendFile(path, text);
  } catch (error) {
    if (!isFileSystemError(error)) throw error;
    logger.warn(`${describeError(fileSystemError(error, '$GITHUB_STEP_SUMMARY', path))}; the step summary was not written`);
  }
}

/** All of standard input, cut off (an error) past the image file limit: /dev/zero must not fill memory. */
export async function readStdin(): Promise<Buffer> {
  return readStreamBounded(process.stdin, DEFAULT_MAX_IMAGE_BYTES, 'standard input');
}

export async function readStdinLines(): Promise<string[]> {
  const lines = (await readStdin()).toString('utf8').split(/\r?\n/);
  if (lines.at(-1) === '') lines.pop();
  return lines;
}

export async function readStdinBytes(): Promise<Uint8Array> {
  if (process.stdin.isTTY) throw usageError('"-": standard input is a terminal; pipe an image into it, e.g. clip-eval classify - < photo.jpg');
  return readStdin();
}

/**
 * A path as a report meant to be shared shows it (--relative-paths): below the cache folder as
 * <cache>/…, else relative to the working folder, so that no home folder or machine layout leaks.
 */
export function shareablePath(path: string, cacheRoot: string): string {
  const inCache = relative(cacheRoot, path);
  if (inCache !== '' && !inCache.startsWith('..') && !isAbsolute(inCache)) return `<cache>/${inCache.split(sep).join('/')}`;
  return relative(process.cwd(), path).split(sep).join('/') || '.';
}

/** Model files with their paths as shareablePath writes them. */
export function shareableFiles<F extends { path: string }>(files: readonly F[], cacheRoot: string): F[] {
  return files.map((file) => ({ ...file, path: shareablePath(file.path, cacheRoot) }));
}
