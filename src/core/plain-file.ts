import type { Stats } from 'node:fs';
import { inputError } from './errors.js';

/**
 * The cache writes only into files it made itself: a symbolic link, folder or special file planted where
 * one of them belongs is refused, never written through, followed or replaced. `info` is from lstat;
 * `what` says what the path should hold. A file that is written into in place (appended to) must also
 * have no other hard link, or the write would change that other file.
 */
export function refuseUnlessOwnFile(path: string, info: Stats, what: string, options: { writtenInPlace?: boolean } = {}): void {
  let problem: string | undefined;
  if (info.isSymbolicLink()) problem = 'is a symbolic link';
  else if (info.isDirectory()) problem = 'is a folder';
  else if (!info.isFile()) problem = 'is a special file (device, FIFO or socket)';
  else if (options.writtenInPlace && info.nlink > 1) problem = `has ${info.nlink} hard links`;
  if (problem !== undefined) throw inputError(`${path}: ${problem}, not ${what}; remove it`);
}
