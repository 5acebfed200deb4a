import type { ProbabilityHead } from '../../families/family.js';
/**
 * Zero-shot scores: logits = 100 · image · classᵀ on L2-normalised embeddings (CLIP's logit scale),
 * keeping the k best classes of each image, best first; ties go to the lower class index.
 */
export interface TopK {
  k: number;
  /** count × k class indices. */
  classes: Int32Array;
  /** count × k logits, matching `classes`. */
  logits: Float32Array;
}

export const LOGIT_SCALE = 100;

export function createTopK(count: number, k: number): TopK {
  return { k, classes: new Int32Array(count * k), logits: new Float32Array(count * k) };
}

/**
 * Scores `count` image embeddings (rows of `images`, dim wide) against `weights` (classes × dim)
 * and writes their top-k into `into` from image `firstIndex` on.
 */
export function scoreImages(images: Float32Array, count: number, weights: Float32Array, dim: number, into: TopK, firstIndex: number, allLogits?: Float32Array): void {
  const classCount = weights.length / dim;
  const { k } = into;
  const logits = allLogits ?? new Float32Array(classCount);
  for (let n = 0; n < count; n += 1) {
    const image = n * dim;
    const row = allLogits ? n * classCount : 0;
    for (let c = 0; c < classCount; c += 1) {
      let dot = 0;
      const w = c * dim;
      for (let i = 0; i < dim; i += 1) dot += images[image + i]! * weights[w + i]!;
      logits[row + c] = LOGIT_SCALE * dot;
    }
    const base = (firstIndex + n) * k;
    for (let slot = 0; slot < k; slot += 1) {
      into.classes[base + slot] = -1;
      into.logits[base + slot] = -Infinity;
    }
    for (let c = 0; c < classCount; c += 1) {
      const value = logits[row + c]!;
      if (value <= into.logits[base + k - 1]!) continue;
      let slot = k - 1;
      while (slot > 0 && value > into.logits[base + slot - 1]!) {
        into.classes[base + slot] = into.classes[base + slot - 1]!;
        into.logits[base + slot] = into.logits[base + slot - 1]!;
        slot -= 1;
      }
      into.classes[base + slot] = c;
      into.logits[base + slot] = value;
    }
  }
}

/** Logits are float32 sums; four decimals keep all they mean and read cleanly in JSON outputs. */
export function roundLogit(value: number): number {
  return Math.round(value * 1e4) / 1e4;
}

/**
 * One image's probabilities from its logits (100 · cosine) under the family's head: the softmax over all
 * labels, or per label sigmoid(scale · cosine + bias), as SigLIP's logits_per_image.sigmoid().
 */
export function labelProbabilities(head: ProbabilityHead, logits: Float32Array): Float64Array {
  if (head.kind === 'softmax') return softmax(logits);
  return Float64Array.from(logits, (logit) => 1 / (1 + Math.exp(-(head.scale * (logit / 100) + head.bias))));
}

/** Softmax over one image's logits, as CLIP's example turns 100·cosine into probabilities. */
export function softmax(logits: Float32Array): Float64Array {
  let max = -Infinity;
  for (const value of logits) max = Math.max(max, value);
  const out = new Float64Array(logits.length);
  let sum = 0;
  for (let i = 0; i < logits.length; i += 1) {
    out[i] = Math.exp(logits[i]! - max);
    sum += out[i]!;
  }
  for (let i = 0; i < out.length; i += 1) out[i]! /= sum;
  return out;
}
