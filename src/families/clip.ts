import { loadClipTokenizer } from '../text/tokenizer.js';
import type { ModelFamily } from './family.js';

/** OpenAI's CLIP and the models trained as it (OpenCLIP, EVA, MetaCLIP, MobileCLIP, DFN): CLIP's BPE and causal text tower. */
export const clipFamily: ModelFamily = {
  name: 'clip',
  title: 'CLIP (OpenAI, OpenCLIP, EVA, MetaCLIP, MobileCLIP, DFN)',
  textRule: "OpenAI's: ftfy, HTML unescaping, whitespace collapsed, lower-cased; SOT … EOT, cut to the context length",
  // CLIP's tokenizer says CLIP whatever the model_type (MobileCLIP's and others' exports name their own).
  matches: ({ modelType, tokenizerClass }) =>
    tokenizerClass !== undefined ? tokenizerClass.startsWith('CLIPTokenizer') : modelType === undefined || modelType === 'clip',
  loadTokenizer: (tokenizerPath, config) => loadClipTokenizer(tokenizerPath, { padToken: config.padToken }),
  // The causal mask keeps every position after EOT out of the embedding.
  textPadding: 'longest',
  probability: 'softmax',
};
