import { canonicalizeText } from '../text/canonicalize.js';
import { loadHfTokenizer } from '../text/hf-tokenizer.js';
import type { ModelFamily } from './family.js';

/**
 * Google's SigLIP (T5's SentencePiece Unigram vocabulary, English 32k or multilingual 250k): open_clip's
 * canonicalize rule, `</s>` appended, every row padded to 64 with `</s>` (SigLIP's pad token is its EOS),
 * a text tower without a causal mask, and per-label sigmoid(scale · cosine + bias).
 */
export const siglipFamily: ModelFamily = {
  name: 'siglip',
  title: 'SigLIP (SentencePiece Unigram vocabulary)',
  textRule: "open_clip's canonicalize: ftfy, HTML unescaping, _ to space, ASCII punctuation removed, lower-cased, whitespace collapsed; </s> appended, padded to 64 with </s>",
  matches: ({ modelType, tokenizerClass }) => modelType === 'siglip' && (tokenizerClass === undefined || tokenizerClass.startsWith('SiglipTokenizer')),
  loadTokenizer: (tokenizerPath, config) =>
    loadHfTokenizer(tokenizerPath, { clean: canonicalizeText, eosToken: config.eosToken ?? '</s>', padToken: config.padToken ?? '</s>' }),
  textPadding: 'context',
  probability: 'sigmoid',
};
