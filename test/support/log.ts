import { createLogger, type Logger } from '../../src/core/log.js';

/** A logger whose output is kept in `lines`, for tests that check what a run warned. */
export function collectingLogger(): { logger: Logger; lines: string[] } {
  const lines: string[] = [];
  const stream = { write: (text: string) => (lines.push(text), true) } as unknown as NodeJS.WritableStream;
  return { logger: createLogger({ stream }), lines };
}
