import { createReadStream, createWriteStream, type WriteStream } from 'node:fs';
import { join } from 'node:path';
import { Parser, type ReadEntry } from 'tar';
import { ClipEvalError, describeError, inputError } from '../errors.js';

export interface ExtractOptions {
  /** A .tar or .tar.gz file. */
  archive: string;
  /** An existing, empty directory; each wanted member is written there under its own file name. */
  destination: string;
  /** The one top-level folder that every member of the archive must lie in, e.g. 'cifar-100-binary'. */
  folder: string;
  /** File names inside `folder` to write; the archive's other files are read past, not written. */
  members: string[];
}

/** Entry types that carry plain data; links, devices and FIFOs are refused. */
const FILE_TYPES = new Set(['File', 'OldFile', 'ContiguousFile']);

/**
 * Streams the archive once and writes only the wanted members. The whole archive is checked as it
 * goes: a member with an absolute path, a `..` segment, a link or device type, or a path outside
 * `folder/` stops the extraction with an error, as does a wanted member seen twice or missing.
 * Returns the written paths in the order of `members`.
 */
export async function extractMembers(options: ExtractOptions): Promise<string[]> {
  const { archive, destination, folder, members } = options;
  const wanted = new Set(members);
  const writes = new Map<string, Promise<void>>();
  const outputs: WriteStream[] = [];
  const parser = new Parser({
    strict: true,
    onReadEntry(entry: ReadEntry) {
      const name = pathParts(entry.path).at(-1) ?? '';
      const problem = entryProblem(entry, folder) ?? (writes.has(name) ? `member ${entry.path} appears twice` : undefined);
      if (problem !== undefined) {
        entry.resume();
        parser.abort(inputError(`${archive}: ${problem}; refusing to extract it`));
        return;
      }
      if (entry.type === 'Directory' || !wanted.has(name)) {
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
  try {
    await new Promise<void>((resolve, reject) => {
      parser.on('end', resolve);
      parser.on('error', reject);
      input.on('error', reject);
      input.pipe(parser as unknown as NodeJS.WritableStream);
    });
    await Promise.all(writes.values());
  } catch (error) {
    for (const output of outputs) output.destroy();
    if (error instanceof ClipEvalError) throw error;
    throw inputError(`${archive} is not a complete, valid tar archive (${describeError(error)})`, error);
  } finally {
    input.destroy();
  }
  const missing = members.filter((member) => !writes.has(member));
  if (missing.length > 0) {
    throw inputError(`${archive} lacks ${missing.map((member) => `${folder}/${member}`).join(', ')}`);
  }
  return members.map((member) => join(destination, member));
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
