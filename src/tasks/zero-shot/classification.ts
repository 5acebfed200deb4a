/** What classify finds for one image: its top labels, or why it could not be classified. */
export interface LabelScore {
  label: string;
  /** Softmax over 100·cosine against every label, not only the ones shown. */
  probability: number;
  /** 100·cosine of the image and label embeddings. */
  logit: number;
}

export type ImageClassification = { file: string; top: LabelScore[] } | { file: string; error: string };

export function isFailure(result: ImageClassification): result is { file: string; error: string } {
  return 'error' in result;
}
