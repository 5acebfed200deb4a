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

/**
 * The user inputs a message can be about. Library code names them by these keys and never by a CLI flag;
 * the CLI words each as its flag (src/cli/wording.ts), library callers get the plain name here.
 */
export const INPUT_NAMES = {
  model: 'model',
  visionModel: 'vision model file',
  textModel: 'text model file',
  tokenizer: 'tokenizer file',
  variant: 'variant',
  device: 'device',
  deviceId: 'device id',
  threads: 'threads',
  batchSize: 'batch size',
  top: 'top',
  subset: 'subset (limit, per class)',
  templates: 'templates',
  labels: 'labels',
  dataDir: 'data folder',
  datasetUrl: 'data set URL',
  datasetMd5: 'data set MD5',
  offline: 'offline mode',
  classnames: 'class names',
  split: 'split',
  family: 'model family',
} as const;

export type InputName = keyof typeof INPUT_NAMES;

/** Which user input a message is about, and the value given (when it helps to repeat it). */
export interface InputFact {
  name: InputName;
  value?: string;
}

/** A fix a message suggests, by kind: the library words it plainly, the CLI with the flags that do it. */
export type Hint =
  | { kind: 'useCpu' }
  | { kind: 'runOnline'; download: string }
  | { kind: 'useOffline'; cached: 'model' | 'data set' }
  | { kind: 'modelOrFiles' }
  | { kind: 'giveModelFiles'; tokenizerOnly: boolean }
  | { kind: 'recursive'; subfolders: number }
  | { kind: 'fetchDataset'; dataset: string; url: string }
  | { kind: 'workWithoutNetwork' }
  | { kind: 'giveClassNames' }
  | { kind: 'chooseFamily' }
  | { kind: 'skipUnreadable' };

/** What a message says: what is wrong or noteworthy (detail), about which input, and which fix. */
export interface Statement {
  detail: string;
  input?: InputFact;
  hint?: Hint;
}

/** How inputs and hints are put into words: plainly for library callers, with flags by the CLI. */
export interface Wording {
  input(fact: InputFact): string;
  hint(hint: Hint): string;
}

const PLAIN_HINTS: { [K in Hint['kind']]: (hint: Extract<Hint, { kind: K }>) => string } = {
  useCpu: () => 'use the cpu device',
  runOnline: (hint) => `run once online to download ${hint.download}`,
  useOffline: (hint) => `or work offline with a cached ${hint.cached}${hint.cached === 'model' ? ', or give a model folder on disk' : ''}`,
  modelOrFiles: () => 'give either a model or its files',
  giveModelFiles: (hint) => (hint.tokenizerOnly ? 'or give the tokenizer file' : 'or give the model files one by one (vision model, text model, tokenizer)'),
  recursive: (hint) => `list it recursively to look in its ${hint.subfolders} subfolder${hint.subfolders === 1 ? '' : 's'}`,
  fetchDataset: (hint) => `fetch ${hint.dataset} where ${hint.url} is reachable, or give a data folder`,
  giveClassNames: () => 'give the class names',
  chooseFamily: () => 'choose the family',
  skipUnreadable: () => 'skip and count such images instead',
  workWithoutNetwork: () => 'to work without the network give a data folder (an extracted copy), work offline with a filled cache, or download from a mirror URL',
};

/** Plain words for library callers: input names, not flags. */
export const PLAIN_WORDING: Wording = {
  input: (fact) => (fact.value === undefined ? INPUT_NAMES[fact.name] : `${INPUT_NAMES[fact.name]} ${fact.value}`),
  hint: (hint) => (PLAIN_HINTS[hint.kind] as (hint: Hint) => string)(hint),
};

/** A statement as one sentence: "INPUT: detail; hint". */
export function word(statement: Statement, wording: Wording = PLAIN_WORDING): string {
  const subject = statement.input ? `${wording.input(statement.input)}: ` : '';
  const hint = statement.hint ? `; ${wording.hint(statement.hint)}` : '';
  return `${subject}${statement.detail}${hint}`;
}

/** The facts an error can carry besides its detail. */
export interface ErrorFacts {
  input?: InputFact;
  hint?: Hint;
  cause?: unknown;
}

export class ClipEvalError extends Error implements Statement {
  readonly kind: ErrorKind;
  /** What is wrong, without naming the input. */
  readonly detail: string;
  readonly input?: InputFact;
  readonly hint?: Hint;

  constructor(detail: string, kind: ErrorKind = 'input', facts: ErrorFacts = {}) {
    super(word({ detail, input: facts.input, hint: facts.hint }), facts.cause === undefined ? undefined : { cause: facts.cause });
    this.name = 'ClipEvalError';
    this.kind = kind;
    this.detail = detail;
    if (facts.input) this.input = facts.input;
    if (facts.hint) this.hint = facts.hint;
  }

  get exitCode(): number {
    return EXIT[this.kind];
  }
}

export function usageError(detail: string, facts: Omit<ErrorFacts, 'cause'> = {}): ClipEvalError {
  return new ClipEvalError(detail, 'usage', facts);
}

export function inputError(detail: string, cause?: unknown, facts: Omit<ErrorFacts, 'cause'> = {}): ClipEvalError {
  return new ClipEvalError(detail, 'input', { ...facts, cause });
}

/** What an error is about: a plain label such as a file name, or a user input (worded by whoever shows it). */
export type Subject = string | InputFact;

/** An error about `subject` (an input error unless `kind` says otherwise). */
export function subjectError(subject: Subject, detail: string, options: { kind?: ErrorKind; cause?: unknown } = {}): ClipEvalError {
  const kind = options.kind ?? 'input';
  return typeof subject === 'string'
    ? new ClipEvalError(`${subject}: ${detail}`, kind, { cause: options.cause })
    : new ClipEvalError(detail, kind, { input: subject, cause: options.cause });
}

/**
 * The message of an unknown thrown value (a ClipEvalError in `wording`), on one line, with no control
 * character left to reach a terminal. Our own messages are one line, so a line break in one is part of
 * a name (a file called "a\nb.png") and is shown as reports show it (\x0a); another library's line
 * breaks separate its sentences and become spaces.
 */
export function describeError(error: unknown, wording: Wording = PLAIN_WORDING): string {
  if (error instanceof ClipEvalError) return showUnprintable(word(error, wording));
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
  ENAMETOOLONG: 'the path or a name in it is too long; choose a shorter path',
  EFBIG: 'the file would exceed the file-size limit (ulimit -f) or what the file system holds; raise the limit or choose another path',
  EMLINK: 'too many links or entries in its folder; choose another path',
  EOVERFLOW: 'the file is too large for this operation; choose another path',
  EMFILE: 'too many open files; raise the limit (ulimit -n)',
  ENFILE: 'too many open files on this system',
  EIO: 'input/output error from the device; check the device or choose another path',
  ESTALE: 'stale file handle (a network file system); try again or choose another path',
  ENODEV: 'no such device; choose another path',
  ENOTSUP: 'the file system does not support this operation; choose another path',
  EOPNOTSUPP: 'the file system does not support this operation; choose another path',
  ENOLCK: 'no locks available (a network file system); choose another path',
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
