import { inputError } from '../core/errors.js';
import { END_OF_WORD, type BpeVocabulary } from './bpe-vocab.js';

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isTokenId(value: unknown): value is number {
  return Number.isSafeInteger(value) && (value as number) >= 0;
}

function parseMerge(merge: unknown, rank: number, source: string): readonly [string, string] {
  // tokenizers writes merges as "left right" (older files) or ["left", "right"] (newer ones).
  const sides = typeof merge === 'string' ? merge.split(' ') : merge;
  if (Array.isArray(sides) && sides.length === 2 && typeof sides[0] === 'string' && typeof sides[1] === 'string' && sides[0] && sides[1]) {
    return [sides[0], sides[1]];
  }
  throw inputError(`${source}: model.merges[${rank}] is ${JSON.stringify(merge)}, not a pair of tokens; the file is damaged`);
}

/**
 * The vocabulary of a Hugging Face tokenizer.json, checked to be CLIP's kind: a BPE model whose words
 * end in `</w>`. Its normalizer and pre-tokenizer are not used: the tokenizer applies OpenAI's own
 * cleaning and splitting, which they only approximate.
 */
export function vocabularyFromTokenizerJson(text: string, source: string): BpeVocabulary {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw inputError(`${source} is not valid JSON (${(error as Error).message}); expected a tokenizer.json or bpe_simple_vocab_16e6.txt.gz`, error);
  }
  if (!isRecord(parsed) || !isRecord(parsed.model)) {
    throw inputError(`${source} is not a Hugging Face tokenizer.json: it has no "model" object`);
  }
  const model = parsed.model;
  if (model.type !== undefined && model.type !== 'BPE') {
    throw inputError(`${source} is a ${String(model.type)} tokenizer, not a BPE one; CLIP needs its BPE tokenizer.json`);
  }
  if (!isRecord(model.vocab) || !Array.isArray(model.merges)) {
    throw inputError(`${source} is not a BPE tokenizer.json: model.vocab or model.merges is missing`);
  }
  if (model.end_of_word_suffix !== END_OF_WORD) {
    throw inputError(`${source} is not a CLIP tokenizer: model.end_of_word_suffix is ${JSON.stringify(model.end_of_word_suffix)}, CLIP's is "${END_OF_WORD}"`);
  }
  const ids = new Map<string, number>();
  for (const [token, id] of Object.entries(model.vocab)) {
    if (!isTokenId(id)) throw inputError(`${source}: model.vocab gives token ${JSON.stringify(token)} the id ${JSON.stringify(id)}, not a non-negative integer`);
    ids.set(token, id);
  }
  const addedTokens = parsed.added_tokens ?? [];
  if (!Array.isArray(addedTokens)) throw inputError(`${source}: added_tokens is not a list`);
  for (const added of addedTokens) {
    if (!isRecord(added) || typeof added.content !== 'string' || !isTokenId(added.id)) {
      throw inputError(`${source}: added_tokens holds ${JSON.stringify(added)}, not {"id", "content"}`);
    }
    ids.set(added.content, added.id);
  }
  const merges = model.merges.map((merge, rank) => parseMerge(merge, rank, source));
  let size = 0;
  for (const id of ids.values()) size = Math.max(size, id + 1);
  return { ids, merges, size };
}
