/**
 * The pattern CLIP's token embedding table: class-name words get seeded N(0, 1) rows, the words of OpenAI's
 * CIFAR templates small seeded rows (so prompt ensembling matters a little), every other token a zero row.
 * A class's pattern is the sum of its name's rows; the synthetic images draw that pattern, the text model sums rows.
 */
import {
  CIFAR100_CLEAN_NAMES,
  CIFAR10_NAMES,
  OPENAI_CIFAR_TEMPLATES,
} from './cifar-names.js';
import { buildFixtureVocabulary, clipWords, type FixtureVocabulary } from './fixture-tokenizer.js';
import { SeededRandom, deriveSeed } from './seeded-random.js';

export const EMBED_DIM = 192;
/** Cells per side of the pattern grid: an embedding is 3 channels × GRID × GRID cells. */
export const GRID = 8;
export const DEFAULT_SEED = 1;
/** Scale of the template words' rows relative to the class words' N(0, 1) rows. */
const TEMPLATE_ROW_SCALE = 0.1;

/** Common words that also get their own token (zero rows), so free-form prompts exercise whole-word tokens. */
const EXTRA_WORDS = [
  'an', 'this', 'is', 'in', 'on', 'with', 'red', 'green', 'blue', 'car', 'cat', 'dog',
  'picture', 'image', 'drawing', 'painting', 'art', 'animal', 'object',
];

function unique(words: string[]): string[] {
  return [...new Set(words)];
}

/** Words of the CIFAR-100 and CIFAR-10 class names, in label order. */
export const CLASS_WORDS: string[] = unique([...CIFAR100_CLEAN_NAMES, ...CIFAR10_NAMES].flatMap(clipWords));

/** Words (including ".") of OpenAI's 18 templates that are not class words. */
export const TEMPLATE_WORDS: string[] = unique(
  OPENAI_CIFAR_TEMPLATES.flatMap((template) => clipWords(template.replace('{}', ' '))),
).filter((word) => !CLASS_WORDS.includes(word));

/** Every word the fixture tokenizer keeps as one token. */
export const FIXTURE_WORDS: string[] = unique([...CLASS_WORDS, ...TEMPLATE_WORDS, ...EXTRA_WORDS]);

let cachedVocabulary: FixtureVocabulary | undefined;

/** The fixture vocabulary (independent of the seed, so built once). */
export function fixtureVocabulary(): FixtureVocabulary {
  cachedVocabulary ??= buildFixtureVocabulary(FIXTURE_WORDS);
  return cachedVocabulary;
}

/** Seeds are uint32: the random generator's state is 32 bits. */
export function checkSeed(seed: number): void {
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) {
    throw new RangeError(`seed ${seed} is not an integer in 0..4294967295`);
  }
}

export interface PatternTable {
  vocabulary: FixtureVocabulary;
  /** Row-major [vocabSize, EMBED_DIM]. */
  tokenEmbeddings: Float32Array;
  vocabSize: number;
}

export function buildPatternTable(seed: number): PatternTable {
  checkSeed(seed);
  const vocabulary = fixtureVocabulary();
  const vocabSize = vocabulary.tokens.length;
  const tokenEmbeddings = new Float32Array(vocabSize * EMBED_DIM);
  const random = new SeededRandom(deriveSeed(seed, 'token-embeddings'));
  const fillRow = (word: string, scale: number) => {
    const row = vocabulary.wordIds.get(word)! * EMBED_DIM;
    for (let i = 0; i < EMBED_DIM; i++) tokenEmbeddings[row + i] = scale * random.normal();
  };
  for (const word of CLASS_WORDS) fillRow(word, 1);
  for (const word of TEMPLATE_WORDS) fillRow(word, TEMPLATE_ROW_SCALE);
  return { vocabulary, tokenEmbeddings, vocabSize };
}

/** The token ids of a class name's words (the fixture tokenizer's encoding, without SOT/EOT). */
export function classNameTokenIds(table: PatternTable, cleanName: string): number[] {
  return clipWords(cleanName).map((word) => {
    const id = table.vocabulary.wordIds.get(word);
    if (id === undefined) throw new Error(`"${word}" (of class "${cleanName}") is not a fixture word`);
    return id;
  });
}

/** p_k: the sum of the table rows of a class name's tokens. */
export function classPattern(table: PatternTable, cleanName: string): Float32Array {
  const pattern = new Float32Array(EMBED_DIM);
  for (const id of classNameTokenIds(table, cleanName)) {
    for (let i = 0; i < EMBED_DIM; i++) pattern[i] += table.tokenEmbeddings[id * EMBED_DIM + i];
  }
  return pattern;
}

/**
 * The table rounded per row to symmetric int8 levels (scale max|row| / 127): what an int8 export would
 * hold, close enough to classify the same.
 */
export function roundTableToInt8Levels(tokenEmbeddings: Float32Array): Float32Array {
  const rounded = new Float32Array(tokenEmbeddings.length);
  for (let row = 0; row < tokenEmbeddings.length; row += EMBED_DIM) {
    let largest = 0;
    for (let i = 0; i < EMBED_DIM; i++) largest = Math.max(largest, Math.abs(tokenEmbeddings[row + i]));
    if (largest === 0) continue;
    const step = largest / 127;
    for (let i = 0; i < EMBED_DIM; i++) rounded[row + i] = Math.round(tokenEmbeddings[row + i] / step) * step;
  }
  return rounded;
}
