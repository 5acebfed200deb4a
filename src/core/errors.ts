import { showUnprintable } from './unprintable.js';

/**
 * Every failure a user can cause or meet is a ClipEvalError: one line of text and a stable exit code.
 * Anything else reaching the CLI is a bug and exits with EXIT.internal.
 */
export const EXIT = {
  ok: 0,
  checkFailed: 1,
  usage: 2,
  input: 3,
  internal: 4,
} as const;

export type ErrorKind = 'usage' | 'input' | 'checkFailed';

export class ClipEvalError extends Error {
  readonly kind: ErrorKind;

  constructor(message: string, kind: ErrorKind = 'input', options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ClipEvalError';
    this.kind = kind;
  }

  get exitCode(): number {
    return EXIT[this.kind];
  }
}

export function usageError(message: string): ClipEvalError {
  return new ClipEvalError(message, 'usage');
}

export function inputError(message: string, cause?: unknown): ClipEvalError {
  return new ClipEvalError(message, 'input', cause === undefined ? undefined : { cause });
}

/** The message of an unknown thrown value, on one line, with no control character left to reach a terminal. */
export function describeError(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  return showUnprintable(text.replace(/\s*\n\s*/g, ' ').trim());
}

/** What a filesystem error code means to a user, and what to do about it. */
const FILE_SYSTEM_ERRORS: Record<string, string> = {
  EACCES: 'permission denied; fix its permissions or choose another path',
  EPERM: 'operation not permitted; fix its permissions or choose another path',
  EROFS: 'the file system is read-only; choose a writable path',
  ENOSPC: 'no space left on the device; free some space or choose another path',
  EDQUOT: 'disk quota exceeded; free some space or choose another path',
  ENOTDIR: 'a part of the path is a file, not a folder; choose another path',
  EISDIR: 'is a folder where a file was expected; remove it or choose another path',
  ENOENT: 'does not exist',
  EEXIST: 'already exists',
  ELOOP: 'too many levels of symbolic links',
  ENAMETOOLONG: 'the path is too long',
  EMFILE: 'too many open files; raise the limit (ulimit -n)',
  ENFILE: 'too many open files on this system',
  EIO: 'input/output error from the device',
  EBUSY: 'the file is busy',
  ETXTBSY: 'the file is busy',
  EXDEV: 'cannot move across file systems',
  ENOTEMPTY: 'the folder is not empty',
  ENXIO: 'no process reads from it (a pipe or socket without a reader) or the device is absent',
};

/** True for an error from the operating system about a file (it has an errno code we can explain). */
export function isFileSystemError(error: unknown): error is NodeJS.ErrnoException {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  return error instanceof Error && typeof code === 'string' && code in FILE_SYSTEM_ERRORS;
}

/**
 * A filesystem failure as an input/environment error (exit 3): the path, what happened and a hint.
 * `what` says what the path is for ("cache folder", "--json output"); `path` falls back to the error's own.
 */
export function fileSystemError(error: NodeJS.ErrnoException, what?: string, path?: string): ClipEvalError {
  const where = path ?? error.path ?? '';
  const subject = [what, where].filter(Boolean).join(' ');
  const reason = FILE_SYSTEM_ERRORS[error.code ?? ''] ?? describeError(error);
  return inputError(`${subject ? `${subject}: ` : ''}${reason} (${error.code ?? 'error'}${error.syscall ? ` on ${error.syscall}` : ''})`, error);
}
