import { canonicalizeText } from '../text/canonicalize.js';
import { loadHfTokenizer } from '../text/hf-tokenizer.js';
import { openClipSaysSiglip, type ModelFamily } from './family.js';

/**
 * Google's SigLIP 2 at fixed resolution (Gemma's 256k BPE with byte fallback): the same canonicalize rule
 * as SigLIP (open_clip's SigLIP 2 configs and big_vision's evaluator, the published numbers' rule;
 * transformers' Siglip2Tokenizer only lower-cases), `<eos>` appended, no BOS, padded to 64 with `<pad>` (0).
 */
export const siglip2Family: ModelFamily = {
  name: 'siglip2',
  title: 'SigLIP 2 (Gemma BPE vocabulary with byte fallback)',
  matches: (evidence) =>
    openClipSaysSiglip(evidence) === 'siglip2' ||
    ((evidence.modelType === 'siglip' || evidence.modelType === 'siglip2') && evidence.tokenizerClass !== undefined && evidence.tokenizerClass.startsWith('GemmaTokenizer')),
  // The family's tokens, as open_clip's SigLipTokenizer sets them for Gemma vocabularies.
  loadTokenizer: (tokenizerPath) => loadHfTokenizer(tokenizerPath, { clean: canonicalizeText, eosToken: '<eos>', padToken: '<pad>' }),
  textPadding: 'context',
  probability: 'sigmoid',
};
