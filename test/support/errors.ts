import assert from 'node:assert/strict';
import { ClipEvalError } from '../../src/core/errors.js';

/** A validator for assert.throws/assert.rejects: a ClipEvalError whose one-line message matches. */
export function isClipEvalError(pattern: RegExp) {
  return (error: unknown) => {
    assert.ok(error instanceof ClipEvalError, `expected a ClipEvalError, got ${String(error)}`);
    assert.match(error.message, pattern);
    assert.doesNotMatch(error.message, /\n/);
    return true;
  };
}

/** Awaits a promise that must reject with a one-line ClipEvalError matching `pattern`, and returns it. */
export async function rejectsWithOneLine(promise: Promise<unknown>, pattern: RegExp): Promise<ClipEvalError> {
  let caught: unknown;
  await promise.catch((error: unknown) => {
    caught = error;
  });
  isClipEvalError(pattern)(caught);
  return caught as ClipEvalError;
}
