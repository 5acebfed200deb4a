import { inputError } from '../core/errors.js';
import { BYTE_SYMBOLS, BYTE_SYMBOLS_IN_VOCABULARY_ORDER } from './byte-level.js';

export const START_OF_TEXT = '<|startoftext|>';
export const END_OF_TEXT = '<|endoftext|>';
export const END_OF_WORD = '</w>';
/** The merges OpenAI's CLIP uses: lines 1 … 48,894 of its file (49,152 − 256 − 2 of them). */
export const CLIP_MERGE_COUNT = 49152 - 256 - 2;

/** A byte-level BPE vocabulary with end-of-word suffix `</w>`, whichever file it came from. */
export interface BpeVocabulary {
  /** Token → id, the special tokens included. */
  ids: ReadonlyMap<string, number>;
  /** Merge rules, best first. */
  merges: readonly (readonly [string, string])[];
  /** One past the highest id. */
  size: number;
}

/**
 * Checks what encoding relies on, so it can never meet a token without an id: every byte symbol,
 * with and without `</w>`, has an id, and so has every merge's result.
 */
export function checkByteLevelVocabulary(vocabulary: BpeVocabulary, source: string): void {
  for (const symbol of BYTE_SYMBOLS) {
    for (const token of [symbol, symbol + END_OF_WORD]) {
      if (!vocabulary.ids.has(token)) {
        throw inputError(`${source} is not a CLIP byte-level BPE vocabulary: it has no token ${JSON.stringify(token)}`);
      }
    }
  }
  vocabulary.merges.forEach(([left, right], rank) => {
    if (!vocabulary.ids.has(left + right)) {
      throw inputError(`${source}: merge ${rank + 1} ("${left} ${right}") makes a token that is not in the vocabulary; the file is damaged`);
    }
  });
}

/**
 * Builds CLIP's vocabulary from the text of OpenAI's bpe_simple_vocab_16e6.txt (a header line, then one
 * merge "left right" per line) as simple_tokenizer.py does: the 256 byte symbols, the same with `</w>`,
 * one token per merge (the two sides joined), then `<|startoftext|>` and `<|endoftext|>`.
 */
export function vocabularyFromOpenAiMerges(text: string, source: string): BpeVocabulary {
  const what = `${source} is not OpenAI's BPE merges file (bpe_simple_vocab_16e6.txt.gz)`;
  const lines = text.split('\n');
  const mergeLines = lines.length - 1 - (lines.at(-1) === '' ? 1 : 0);
  if (!lines[0]!.includes('#version')) {
    throw inputError(`${what}: its first line should be a "#version" header, found ${JSON.stringify(lines[0]!.slice(0, 60))}`);
  }
  if (mergeLines < CLIP_MERGE_COUNT) {
    throw inputError(`${what}: it has ${mergeLines} merge lines, CLIP needs ${CLIP_MERGE_COUNT}`);
  }
  const tokens = [...BYTE_SYMBOLS_IN_VOCABULARY_ORDER, ...BYTE_SYMBOLS_IN_VOCABULARY_ORDER.map((symbol) => symbol + END_OF_WORD)];
  const known = new Set(tokens);
  const merges: (readonly [string, string])[] = [];
  for (let lineNumber = 2; lineNumber <= CLIP_MERGE_COUNT + 1; lineNumber += 1) {
    const line = lines[lineNumber - 1]!;
    // Python's str.split(): runs of whitespace separate, ends are ignored.
    const sides = line.trim().split(/\s+/);
    if (sides.length !== 2 || !known.has(sides[0]!) || !known.has(sides[1]!)) {
      throw inputError(`${what}: line ${lineNumber} (${JSON.stringify(line.slice(0, 60))}) is not a merge of two known symbols`);
    }
    const merge = [sides[0]!, sides[1]!] as const;
    merges.push(merge);
    tokens.push(merge[0] + merge[1]);
    known.add(merge[0] + merge[1]);
  }
  tokens.push(START_OF_TEXT, END_OF_TEXT);
  // A later duplicate wins, as in Python's dict(zip(vocab, range(len(vocab)))).
  const ids = new Map(tokens.map((token, id) => [token, id] as const));
  return { ids, merges, size: tokens.length };
}
