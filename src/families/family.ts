import type { TextPadding } from '../model/encoders.js';
import type { PromptTokenizer, TokenizerConfig } from '../text/tokenizer.js';

/**
 * A model family: what differs between OpenAI's CLIP, SigLIP, SigLIP 2 and the rest once the bundle's
 * files are found: the text rules (cleaning, special tokens, padding), and how a score becomes a
 * probability. Preprocessing is not here: every family's comes from its bundle's own config. Adding a
 * family is one file like clip.ts or siglip.ts, plus its line in registry.ts.
 */
export interface ModelFamily {
  /** The name `model.family` and the family choice use: "clip", "siglip", "siglip2". */
  readonly name: string;
  /** What the family covers, for help and errors. */
  readonly title: string;
  /** True when the bundle's own files say it is of this family. */
  matches(evidence: FamilyEvidence): boolean;
  /** The tokenizer that makes the text encoder's rows, under the family's text rule. */
  loadTokenizer(tokenizerPath: string, config: TokenizerConfig): Promise<PromptTokenizer>;
  /** How the text encoder's rows are padded (see TextPadding). */
  readonly textPadding: TextPadding;
  /**
   * How classify turns the similarities into probabilities: `softmax` over the labels of
   * scale · cosine (CLIP's 100), or `sigmoid` per label of scale · cosine + bias (SigLIP's learned values).
   */
  readonly probability: 'softmax' | 'sigmoid';
}

/** What a bundle's small files say about its family. */
export interface FamilyEvidence {
  /** config.json `model_type` ("clip", "siglip", ...). */
  modelType?: string;
  /** tokenizer_config.json `tokenizer_class` ("CLIPTokenizer", "SiglipTokenizer", "GemmaTokenizer", ...). */
  tokenizerClass?: string;
  /** An open_clip model config's text cleaning (`text_cfg.tokenizer_kwargs.clean`: "canonicalize" for SigLIP). */
  openClipClean?: string;
  /** An open_clip model config's Hugging Face tokenizer (`text_cfg.hf_tokenizer_name`). */
  openClipTokenizer?: string;
}

/** An open_clip config (immich's SigLIP exports) that says SigLIP: its canonicalize rule; SigLIP 2 by its Gemma tokenizer's name. */
export function openClipSaysSiglip(evidence: FamilyEvidence): 'siglip' | 'siglip2' | undefined {
  if (evidence.openClipClean !== 'canonicalize') return undefined;
  return /siglip2|gemma/i.test(evidence.openClipTokenizer ?? '') ? 'siglip2' : 'siglip';
}

/**
 * The row the family's text encoder receives for one prompt: the tokenizer's ids, and for families whose
 * text tower sees every position, the padding up to the context length.
 */
export function encoderInputRow(family: ModelFamily, tokenizer: PromptTokenizer, text: string, contextLength: number): number[] {
  const ids = tokenizer.encodeForModel(text, contextLength);
  if (family.textPadding === 'longest') return ids;
  return [...ids, ...new Array<number>(contextLength - ids.length).fill(tokenizer.padId)];
}

/**
 * How classify turns one image's similarities into probabilities: CLIP's softmax over the labels of
 * 100 · cosine, or a sigmoid family's per-label sigmoid(scale · cosine + bias) with its learned values.
 */
export type ProbabilityHead = { kind: 'softmax' } | { kind: 'sigmoid'; scale: number; bias: number; source: string };
