/**
 * A small CLIP-format BPE tokenizer for the pattern CLIP fixture: the 256 byte symbols and their `</w>`
 * forms (as in OpenAI's vocabulary), then merges that make every fixture word exactly one token, then
 * <|startoftext|> and <|endoftext|>. The tokenizer.json mirrors the Hub's CLIP tokenizer.json sections.
 */
import { Tokenizer } from '@huggingface/tokenizers';

export const START_OF_TEXT = '<|startoftext|>';
export const END_OF_TEXT = '<|endoftext|>';
export const CONTEXT_LENGTH = 77;
const END_OF_WORD = '</w>';

/** CLIP's pre-tokenizer split: contractions, letter runs, single digits, other non-space runs. */
export const CLIP_SPLIT_PATTERN = "'s|'t|'re|'ve|'m|'ll|'d|[\\p{L}]+|[\\p{N}]|[^\\s\\p{L}\\p{N}]+";

/** The words (pre-tokenizer pieces) of `text` the way CLIP's tokenizer sees them. */
export function clipWords(text: string): string[] {
  const normalized = text.normalize('NFC').replace(/\s+/g, ' ').toLowerCase();
  return normalized.match(new RegExp(CLIP_SPLIT_PATTERN, 'gu')) ?? [];
}

/**
 * GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for themselves, the others get code points
 * from 256 on. Index i of the result is the i-th vocabulary entry (OpenAI's order), `byte` its byte.
 */
export function byteSymbols(): { byte: number; symbol: string }[] {
  const printable: number[] = [];
  const ranges: [number, number][] = [[0x21, 0x7e], [0xa1, 0xac], [0xae, 0xff]];
  for (const [first, last] of ranges) for (let b = first; b <= last; b++) printable.push(b);
  const symbols = printable.map((byte) => ({ byte, symbol: String.fromCodePoint(byte) }));
  let extra = 0;
  for (let byte = 0; byte < 256; byte++) {
    if (!printable.includes(byte)) symbols.push({ byte, symbol: String.fromCodePoint(256 + extra++) });
  }
  return symbols;
}

export interface FixtureVocabulary {
  /** Token strings by id. */
  tokens: string[];
  /** Merges in rank order, as [left, right]. */
  merges: [string, string][];
  /** The single token id of each fixture word. */
  wordIds: Map<string, number>;
  startOfTextId: number;
  endOfTextId: number;
}

/** A word's initial BPE symbols: its UTF-8 bytes as byte symbols, the last one marked as word end. */
function initialSymbols(word: string, symbolOfByte: string[]): string[] {
  const symbols = Array.from(new TextEncoder().encode(word), (byte) => symbolOfByte[byte]);
  symbols[symbols.length - 1] += END_OF_WORD;
  return symbols;
}

/** BPE as the Hugging Face tokenizers apply it: repeatedly merge the lowest-ranked adjacent pair, leftmost first. */
function applyMerges(symbols: string[], ranks: Map<string, number>): string[] {
  const pieces = [...symbols];
  for (;;) {
    let best = -1;
    let bestRank = Infinity;
    for (let i = 0; i + 1 < pieces.length; i++) {
      const rank = ranks.get(`${pieces[i]} ${pieces[i + 1]}`);
      if (rank !== undefined && rank < bestRank) {
        bestRank = rank;
        best = i;
      }
    }
    if (best < 0) return pieces;
    pieces.splice(best, 2, pieces[best] + pieces[best + 1]);
  }
}

/**
 * The vocabulary and merges that turn each of `words` into one token. Merges are only ever appended, and an
 * appended merge outranks every existing one, so it can never change how an already single-token word
 * splits: a word's BPE only reaches the new merge once no older merge applies, i.e. when it is already done.
 */
export function buildFixtureVocabulary(words: string[]): FixtureVocabulary {
  const bytes = byteSymbols();
  const symbolOfByte: string[] = [];
  for (const { byte, symbol } of bytes) symbolOfByte[byte] = symbol;
  const tokens = [...bytes.map(({ symbol }) => symbol), ...bytes.map(({ symbol }) => symbol + END_OF_WORD)];
  const idOf = new Map(tokens.map((token, id) => [token, id]));
  const merges: [string, string][] = [];
  const ranks = new Map<string, number>();

  for (const word of words) {
    if (clipWords(word).join(' ') !== word) throw new Error(`fixture word "${word}" is not a single lowercase CLIP word`);
    let pieces = applyMerges(initialSymbols(word, symbolOfByte), ranks);
    while (pieces.length > 1) {
      const [left, right] = [pieces[0], pieces[1]];
      ranks.set(`${left} ${right}`, merges.length);
      merges.push([left, right]);
      if (!idOf.has(left + right)) {
        idOf.set(left + right, tokens.length);
        tokens.push(left + right);
      }
      pieces = applyMerges(pieces, ranks);
    }
  }

  const wordIds = new Map<string, number>();
  for (const word of words) {
    const pieces = applyMerges(initialSymbols(word, symbolOfByte), ranks);
    if (pieces.length !== 1) throw new Error(`fixture word "${word}" still splits into ${pieces.join(' ')}`);
    wordIds.set(word, idOf.get(pieces[0])!);
  }
  const startOfTextId = tokens.push(START_OF_TEXT) - 1;
  const endOfTextId = tokens.push(END_OF_TEXT) - 1;
  return { tokens, merges, wordIds, startOfTextId, endOfTextId };
}

/** The tokenizer.json of the vocabulary, with the same normalizer, pre-tokenizer, post-processor and decoder as the Hub's CLIP. */
export function fixtureTokenizerJson(vocabulary: FixtureVocabulary): object {
  const special = (id: number, content: string, normalized: boolean) => ({
    id, content, single_word: false, lstrip: false, rstrip: false, normalized, special: true,
  });
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [
      special(vocabulary.startOfTextId, START_OF_TEXT, true),
      special(vocabulary.endOfTextId, END_OF_TEXT, false),
    ],
    normalizer: {
      type: 'Sequence',
      normalizers: [{ type: 'NFC' }, { type: 'Replace', pattern: { Regex: '\\s+' }, content: ' ' }, { type: 'Lowercase' }],
    },
    pre_tokenizer: {
      type: 'Sequence',
      pretokenizers: [
        { type: 'Split', pattern: { Regex: CLIP_SPLIT_PATTERN }, behavior: 'Removed', invert: true },
        { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false },
      ],
    },
    post_processor: {
      type: 'RobertaProcessing',
      sep: [END_OF_TEXT, vocabulary.endOfTextId],
      cls: [START_OF_TEXT, vocabulary.startOfTextId],
      trim_offsets: false,
      add_prefix_space: false,
    },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: END_OF_TEXT,
      continuing_subword_prefix: '',
      end_of_word_suffix: END_OF_WORD,
      fuse_unk: false,
      byte_fallback: false,
      vocab: Object.fromEntries(vocabulary.tokens.map((token, id) => [token, id])),
      merges: vocabulary.merges.map(([left, right]) => `${left} ${right}`),
    },
  };
}

/** tokenizer_config.json as the Hub's CLIP repositories ship it. */
export function fixtureTokenizerConfig(): object {
  return {
    bos_token: START_OF_TEXT,
    eos_token: END_OF_TEXT,
    pad_token: END_OF_TEXT,
    unk_token: END_OF_TEXT,
    model_max_length: CONTEXT_LENGTH,
    do_lower_case: true,
    tokenizer_class: 'CLIPTokenizer',
  };
}

/**
 * Checks with @huggingface/tokenizers (an independent BPE) that every fixture word encodes to its one
 * token between SOT and EOT; returns the words that do not.
 */
export function wordsNotSingleTokens(vocabulary: FixtureVocabulary): string[] {
  const tokenizer = new Tokenizer(fixtureTokenizerJson(vocabulary), fixtureTokenizerConfig());
  const failures: string[] = [];
  for (const [word, id] of vocabulary.wordIds) {
    const { ids } = tokenizer.encode(word);
    const expected = [vocabulary.startOfTextId, id, vocabulary.endOfTextId];
    if (ids.join(',') !== expected.join(',')) failures.push(word);
  }
  return failures;
}
