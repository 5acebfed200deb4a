import { PLAIN_WORDING, word, type Statement, type Wording } from './errors.js';
import { showUnprintable } from './unprintable.js';

/**
 * Diagnostics go to stderr so that stdout stays clean for results (tables, JSON Lines, token ids).
 */
export interface Logger {
  readonly quiet: boolean;
  readonly verbose: boolean;
  info(message: string): void;
  /** A warning: text, or a statement about a user input that the logger's wording puts into words. */
  warn(message: string | Statement): void;
  debug(message: string): void;
}

export interface LoggerOptions {
  quiet?: boolean;
  verbose?: boolean;
  stream?: NodeJS.WritableStream;
  /** How warnings name user inputs (default: plainly; the CLI names its flags). */
  wording?: Wording;
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const stream = options.stream ?? process.stderr;
  const quiet = options.quiet ?? false;
  const verbose = !quiet && (options.verbose ?? false);
  const wording = options.wording ?? PLAIN_WORDING;
  return {
    quiet,
    verbose,
    info(message) {
      if (!quiet) stream.write(`${message}\n`);
    },
    warn(message) {
      stream.write(`clip-eval: warning: ${showUnprintable(typeof message === 'string' ? message : word(message, wording))}\n`);
    },
    debug(message) {
      if (verbose) stream.write(`${message}\n`);
    },
  };
}

/** A logger that prints nothing: the default for library callers. */
export const silentLogger: Logger = createLogger({ quiet: true, stream: { write: () => true } as unknown as NodeJS.WritableStream });
