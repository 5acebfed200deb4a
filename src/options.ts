import { access, constants, stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { usageError } from './errors.js';

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

export function md5Hex(flag: string): (value: string) => string {
  return (value) => {
    if (!/^[0-9a-fA-F]{32}$/.test(value)) throw usageError(`${flag} ${value}: expected an MD5 checksum of 32 hex digits`);
    return value.toLowerCase();
  };
}

/**
 * Checks before a long run that an output file can be written where asked, so that a typo in
 * --json does not cost a ten-minute evaluation.
 */
export async function assertWritableOutput(flag: string, path: string): Promise<void> {
  const directory = dirname(resolve(path));
  try {
    const info = await stat(directory);
    if (!info.isDirectory()) throw new Error('not a directory');
    await access(directory, constants.W_OK);
  } catch {
    throw usageError(`${flag} ${path}: the folder ${directory} does not exist or is not writable; create it or choose another path`);
  }
  try {
    if ((await stat(path)).isDirectory()) throw usageError(`${flag} ${path}: is a folder; give a file name`);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
}
