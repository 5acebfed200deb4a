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

/** The message of an unknown thrown value, on one line. */
export function describeError(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  return text.replace(/\s*\n\s*/g, ' ').trim();
}
