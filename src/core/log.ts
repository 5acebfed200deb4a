import { showUnprintable } from './unprintable.js';

/**
 * Diagnostics go to stderr so that stdout stays clean for results (tables, JSON Lines, token ids).
 */
export interface Logger {
  readonly quiet: boolean;
  readonly verbose: boolean;
  info(message: string): void;
  warn(message: string): void;
  debug(message: string): void;
}

export interface LoggerOptions {
  quiet?: boolean;
  verbose?: boolean;
  stream?: NodeJS.WritableStream;
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const stream = options.stream ?? process.stderr;
  const quiet = options.quiet ?? false;
  const verbose = !quiet && (options.verbose ?? false);
  return {
    quiet,
    verbose,
    info(message) {
      if (!quiet) stream.write(`${message}\n`);
    },
    warn(message) {
      stream.write(`clip-eval: warning: ${showUnprintable(message)}\n`);
    },
    debug(message) {
      if (verbose) stream.write(`${message}\n`);
    },
  };
}

/** A logger that prints nothing: the default for library callers. */
export const silentLogger: Logger = createLogger({ quiet: true, stream: { write: () => true } as unknown as NodeJS.WritableStream });
