import { canonicalizeText } from '../text/canonicalize.js';
import { loadHfTokenizer } from '../text/hf-tokenizer.js';
import type { ModelFamily } from './family.js';

/**
 * Google's SigLIP 2 at fixed resolution (Gemma's 256k BPE with byte fallback): the same canonicalize rule
 * as SigLIP (open_clip's SigLIP 2 configs and big_vision's evaluator, the published numbers' rule;
 * transformers' Siglip2Tokenizer only lower-cases), `<eos>` appended, no BOS, padded to 64 with `<pad>` (0).
 */
export const siglip2Family: ModelFamily = {
  name: 'siglip2',
  title: 'SigLIP 2 (Gemma BPE vocabulary with byte fallback)',
  textRule: "open_clip's canonicalize (as SigLIP); <eos> appended, no BOS, padded to 64 with <pad>",
  matches: ({ modelType, tokenizerClass }) =>
    (modelType === 'siglip' || modelType === 'siglip2') && tokenizerClass !== undefined && tokenizerClass.startsWith('GemmaTokenizer'),
  loadTokenizer: (tokenizerPath, config) =>
    loadHfTokenizer(tokenizerPath, { clean: canonicalizeText, eosToken: config.eosToken ?? '<eos>', padToken: config.padToken ?? '<pad>' }),
  textPadding: 'context',
  probability: 'sigmoid',
};
