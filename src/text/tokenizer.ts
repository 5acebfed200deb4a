import { promisify } from 'node:util';
import { gunzip } from 'node:zlib';
import { readRegularFile } from '../core/bounded-read.js';
import { ClipEvalError, inputError, usageError } from '../core/errors.js';
import {
  checkByteLevelVocabulary,
  END_OF_TEXT,
  START_OF_TEXT,
  vocabularyFromOpenAiMerges,
  type BpeVocabulary,
} from './bpe-vocab.js';
import { toByteSymbols } from './byte-level.js';
import { createBpeModel, type BpeModel } from './hf-bpe.js';
import { cleanText, PYTHON_WHITESPACE_CLASS } from './text-cleaning.js';
import { vocabularyFromTokenizerJson } from './tokenizer-json.js';

/** What every family's tokenizer gives the text encoder: a prompt's ids, special tokens included. */
export interface PromptTokenizer {
  /** The file it was loaded from. */
  readonly source: string;
  /** The id that fills a row up to the length the text encoder takes. */
  readonly padId: number;
  readonly vocabSize: number;
  /** The prompt's ids as the text encoder receives them, cut to contextLength; not padded. */
  encodeForModel(text: string, contextLength?: number): number[];
}

/**
 * CLIP's tokenizer, exact to OpenAI's simple_tokenizer.py: its text cleaning (text-cleaning.ts), its
 * word regex, then byte-level BPE with `</w>` by @huggingface/tokenizers' BPE model, on the vocabulary
 * of either a Hugging Face tokenizer.json or OpenAI's bpe_simple_vocab_16e6.txt.gz.
 */
export interface ClipTokenizer extends PromptTokenizer {
  readonly sotId: number;
  readonly eotId: number;
  /**
   * The id that fills a prompt up to the context length: tokenizer_config.json's pad_token when the
   * loader is given it (Hugging Face's CLIP configs name "<|endoftext|>", 49407), else 0 as OpenAI pads.
   * With CLIP's causal mask and features taken at the first EOT, both give the same text features.
   */
  readonly padId: number;
  readonly vocabSize: number;
  /** Token ids without SOT/EOT, not truncated. */
  encode(text: string): number[];
  /** SOT, the tokens, EOT, cut to contextLength (77 by default) with EOT kept last; not padded. */
  encodeForModel(text: string, contextLength?: number): number[];
}

export interface TokenizerLoadOptions {
  /** tokenizer_config.json's pad_token; padId is then its id instead of OpenAI's 0. */
  padToken?: string;
}

export const DEFAULT_CONTEXT_LENGTH = 77;
const OPENAI_PAD_ID = 0;

/**
 * OpenAI's word pattern, compiled by Python's `regex` module with IGNORECASE, as JavaScript must spell
 * it to match the same: `\s` is Python's (see PYTHON_WHITESPACE_CLASS); the text is lowercase by now,
 * so case-insensitivity only adds "ſ" (which folds to "s") and takes U+0345 (which folds to the letter
 * "ι") out of the punctuation class, so that it matches nothing and is dropped, as in Python.
 */
const WORD = new RegExp(
  `<\\|[sſ]tartoftext\\|>|<\\|endoftext\\|>|'[sſ]|'t|'re|'ve|'m|'ll|'d|\\p{L}+|\\p{N}|[^${PYTHON_WHITESPACE_CLASS}\\p{L}\\p{N}\\u0345]+`,
  'gu',
);

class BpeClipTokenizer implements ClipTokenizer {
  readonly sotId: number;
  readonly eotId: number;
  readonly padId: number;
  readonly vocabSize: number;
  private readonly ids: ReadonlyMap<string, number>;
  private readonly model: BpeModel;

  constructor(
    readonly source: string,
    vocabulary: BpeVocabulary,
    options: TokenizerLoadOptions,
  ) {
    this.ids = vocabulary.ids;
    this.sotId = this.specialId(START_OF_TEXT);
    this.eotId = this.specialId(END_OF_TEXT);
    this.padId = options.padToken === undefined ? OPENAI_PAD_ID : this.padTokenId(options.padToken);
    this.vocabSize = vocabulary.size;
    this.model = createBpeModel(vocabulary);
  }

  private specialId(token: string): number {
    const id = this.ids.get(token);
    if (id === undefined) throw inputError(`${this.source} is not a CLIP tokenizer: it has no ${token} token`);
    return id;
  }

  private padTokenId(token: string): number {
    const id = this.ids.get(token);
    if (id === undefined) throw inputError(`pad token ${JSON.stringify(token)} (tokenizer_config.json) is not in the vocabulary of ${this.source}`);
    return id;
  }

  encode(text: string): number[] {
    const ids: number[] = [];
    for (const [word] of cleanText(text).matchAll(WORD)) {
      // OpenAI's BPE cache maps the special tokens to themselves, so written in the text they are kept whole.
      if (word === START_OF_TEXT || word === END_OF_TEXT) {
        ids.push(this.ids.get(word)!);
        continue;
      }
      for (const token of this.model.encode([toByteSymbols(word)])) {
        const id = this.ids.get(token);
        // Unreachable for a vocabulary that passed checkByteLevelVocabulary.
        if (id === undefined) throw new Error(`BPE produced ${JSON.stringify(token)}, which ${this.source} has no id for`);
        ids.push(id);
      }
    }
    return ids;
  }

  encodeForModel(text: string, contextLength = DEFAULT_CONTEXT_LENGTH): number[] {
    if (!Number.isInteger(contextLength) || contextLength < 2) {
      throw usageError(`context length must be an integer of at least 2 (room for SOT and EOT), got ${contextLength}`);
    }
    const ids = [this.sotId, ...this.encode(text), this.eotId];
    if (ids.length <= contextLength) return ids;
    const truncated = ids.slice(0, contextLength);
    truncated[contextLength - 1] = this.eotId;
    return truncated;
  }
}

/** tokenizer.json is a few megabytes (CLIP's: 3.5 MB), the gzipped BPE merges 1.4 MB. */
const MAX_TOKENIZER_FILE_BYTES = 64 * 2 ** 20;

export async function readTokenizerFile(path: string): Promise<Buffer> {
  try {
    return await readRegularFile(path, {
      maxBytes: MAX_TOKENIZER_FILE_BYTES,
      label: `tokenizer file ${path}`,
      notRegularHint: 'give a tokenizer.json or bpe_simple_vocab_16e6.txt.gz',
    });
  } catch (error) {
    if (error instanceof ClipEvalError) throw error;
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw inputError(`tokenizer file not found: ${path} (give a tokenizer.json or bpe_simple_vocab_16e6.txt.gz)`, error);
    throw inputError(`cannot read tokenizer file ${path}: ${(error as Error).message}`, error);
  }
}

const isGzip = (bytes: Buffer): boolean => bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b;
const utf8 = new TextDecoder('utf-8', { fatal: true });

export interface VocabularyText {
  text: string;
  gzipped: boolean;
}

export async function decodeText(bytes: Buffer, path: string): Promise<VocabularyText> {
  const gzipped = isGzip(bytes);
  let raw: Uint8Array = bytes;
  if (gzipped) {
    try {
      raw = await promisify(gunzip)(bytes);
    } catch (error) {
      throw inputError(`${path} is damaged gzip data (${(error as Error).message}); download it again`, error);
    }
  } else if (path.endsWith('.gz')) {
    throw inputError(`${path} is not gzip data; expected OpenAI's bpe_simple_vocab_16e6.txt.gz`);
  }
  try {
    return { text: utf8.decode(raw), gzipped };
  } catch (error) {
    throw inputError(`${path} is not UTF-8 text; expected a tokenizer.json or bpe_simple_vocab_16e6.txt.gz`, error);
  }
}

/** OpenAI ships its merges gzipped; unpacked, they are told from JSON by their "#version" header line. */
function isOpenAiMerges({ text, gzipped }: VocabularyText): boolean {
  if (gzipped) return true;
  const firstLine = text.slice(0, Math.max(0, text.indexOf('\n')));
  return firstLine.includes('#version') && !firstLine.trimStart().startsWith('{');
}

/** Loads a tokenizer.json or OpenAI's bpe_simple_vocab_16e6.txt(.gz), told apart by content. */
export async function loadClipTokenizer(path: string, options: TokenizerLoadOptions = {}): Promise<ClipTokenizer> {
  const content = await decodeText(await readTokenizerFile(path), path);
  const vocabulary = isOpenAiMerges(content)
    ? vocabularyFromOpenAiMerges(content.text, path)
    : vocabularyFromTokenizerJson(content.text, path);
  checkByteLevelVocabulary(vocabulary, path);
  return new BpeClipTokenizer(path, vocabulary, options);
}

/** What clip-eval reads of a tokenizer_config.json. */
export interface TokenizerConfig {
  padToken?: string;
  /** e.g. "CLIPTokenizer", "SiglipTokenizer", "GemmaTokenizer". */
  tokenizerClass?: string;
}

/** A special token written either as a string or as an added token {"content": …}. */
function specialToken(config: Record<string, unknown>, field: string, path: string): string | undefined {
  const value = config[field];
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'string') return value;
  const content = typeof value === 'object' ? (value as Record<string, unknown>).content : undefined;
  if (typeof content === 'string') return content;
  throw inputError(`tokenizer config ${path}: ${field} is ${JSON.stringify(value)}, neither a string nor {"content": string}`);
}

export async function readTokenizerConfig(tokenizerConfigPath: string): Promise<TokenizerConfig> {
  let text: string;
  try {
    text = (await readRegularFile(tokenizerConfigPath, { maxBytes: MAX_TOKENIZER_FILE_BYTES, label: `tokenizer config ${tokenizerConfigPath}` })).toString('utf8');
  } catch (error) {
    if (error instanceof ClipEvalError) throw error;
    throw inputError(`cannot read tokenizer config ${tokenizerConfigPath}: ${(error as Error).message}`, error);
  }
  let config: unknown;
  try {
    config = JSON.parse(text);
  } catch (error) {
    throw inputError(`tokenizer config ${tokenizerConfigPath} is not valid JSON (${(error as Error).message})`, error);
  }
  if (typeof config !== 'object' || config === null || Array.isArray(config)) {
    throw inputError(`tokenizer config ${tokenizerConfigPath} is not a JSON object`);
  }
  const fields = config as Record<string, unknown>;
  const tokenizerClass = fields.tokenizer_class;
  return {
    padToken: specialToken(fields, 'pad_token', tokenizerConfigPath),
    ...(typeof tokenizerClass === 'string' ? { tokenizerClass } : {}),
  };
}

/** tokenizer_config.json's pad_token; undefined when it names none. */
export async function readPadTokenFromConfig(tokenizerConfigPath: string): Promise<string | undefined> {
  return (await readTokenizerConfig(tokenizerConfigPath)).padToken;
}

/** Token ids as one line of JSON, e.g. [49406,320,1125,49407]: what `clip-eval tokenize` prints per text. */
export function formatTokenIds(ids: readonly number[]): string {
  return JSON.stringify(ids);
}
