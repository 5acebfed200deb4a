import { loadClipTokenizer } from '../text/tokenizer.js';
import { openClipSaysSiglip, type ModelFamily } from './family.js';

/** OpenAI's CLIP and the models trained as it (OpenCLIP, EVA, MetaCLIP, MobileCLIP, DFN): CLIP's BPE and causal text tower. */
export const clipFamily: ModelFamily = {
  name: 'clip',
  title: 'CLIP (OpenAI, OpenCLIP, EVA, MetaCLIP, MobileCLIP, DFN)',
  // CLIP's tokenizer says CLIP whatever the model_type (MobileCLIP's and others' exports name their own).
  matches: (evidence) =>
    evidence.tokenizerClass !== undefined
      ? evidence.tokenizerClass.startsWith('CLIPTokenizer')
      : (evidence.modelType === undefined || evidence.modelType === 'clip') && openClipSaysSiglip(evidence) === undefined,
  loadTokenizer: (tokenizerPath, config) => loadClipTokenizer(tokenizerPath, { padToken: config.padToken }),
  // The causal mask keeps every position after EOT out of the embedding.
  textPadding: 'longest',
  probability: 'softmax',
};
