import * as tokenizers from '@huggingface/tokenizers';
import { END_OF_WORD, type BpeVocabulary } from './bpe-vocab.js';

/** What this project uses of @huggingface/tokenizers' BPE model: the split of words into tokens. */
export interface BpeModel {
  /** Each word (in byte-level symbols) split into vocabulary tokens, the last one ending in `</w>`. */
  encode(words: string[]): string[];
}

interface BpeModelConfig {
  type: 'BPE';
  vocab: Record<string, number>;
  merges: [string, string][];
  end_of_word_suffix: string;
  unk_token: null;
  ignore_merges: boolean;
}

/**
 * The package's type declarations re-export BPE through extensionless paths that NodeNext resolution
 * cannot follow, so its shape is declared above and the class taken from the module at run time.
 */
const { BPE } = tokenizers as unknown as { BPE?: new (config: BpeModelConfig) => BpeModel };

/** The library's BPE model on a CLIP vocabulary; it caches the split of every word it has seen. */
export function createBpeModel(vocabulary: BpeVocabulary): BpeModel {
  if (typeof BPE !== 'function') throw new Error('@huggingface/tokenizers exports no BPE model; check the installed version');
  return new BPE({
    type: 'BPE',
    vocab: Object.fromEntries(vocabulary.ids),
    merges: vocabulary.merges.map(([left, right]) => [left, right]),
    end_of_word_suffix: END_OF_WORD,
    unk_token: null,
    ignore_merges: false,
  });
}
