import { canonicalizeText } from '../text/canonicalize.js';
import { loadHfTokenizer } from '../text/hf-tokenizer.js';
import { openClipSaysSiglip, type ModelFamily } from './family.js';

/**
 * Google's SigLIP (T5's SentencePiece Unigram vocabulary, English 32k or multilingual 250k): open_clip's
 * canonicalize rule, `</s>` appended, every row padded to 64 with `</s>` (SigLIP's pad token is its EOS),
 * a text tower without a causal mask, and per-label sigmoid(scale · cosine + bias).
 */
export const siglipFamily: ModelFamily = {
  name: 'siglip',
  title: 'SigLIP (SentencePiece Unigram vocabulary)',
  matches: (evidence) =>
    openClipSaysSiglip(evidence) === 'siglip' ||
    (evidence.modelType === 'siglip' && (evidence.tokenizerClass === undefined || evidence.tokenizerClass.startsWith('SiglipTokenizer'))),
  // The family's tokens, whatever a tokenizer_config.json says: a T5 config names <pad> (0), but SigLIP was
  // trained padded with </s> (open_clip's SigLipTokenizer and transformers' SiglipTokenizer both pad with it).
  loadTokenizer: (tokenizerPath) => loadHfTokenizer(tokenizerPath, { clean: canonicalizeText, eosToken: '</s>', padToken: '</s>' }),
  textPadding: 'context',
  probability: 'sigmoid',
};
