/**
 * Text-image retrieval recall with CLIP_benchmark's definitions: imageRetrievalRecall@k (text→image:
 * captions whose own image is among the k most similar images) and textRetrievalRecall@k (image→text:
 * images with at least one of their captions among the k most similar captions). Similarity is the dot
 * product of L2-normalised embeddings; ties go to the lower index. The similarity matrix is computed a
 * block of captions at a time, so memory is blockSize × images scores, never captions × images.
 */
import { wilsonInterval, type Interval } from '../statistics.js';

export const DEFAULT_RECALL_K: readonly number[] = [1, 5, 10];
export const DEFAULT_BLOCK_CAPTIONS = 1024;

export interface RetrievalInput {
  /** images × dim, row-major, L2-normalised. */
  images: Float32Array;
  /** captions × dim, row-major, L2-normalised. */
  captions: Float32Array;
  dim: number;
  /** Caption index → its image's index. */
  captionImage: Int32Array;
  ks: readonly number[];
  /** Captions scored at once (default DEFAULT_BLOCK_CAPTIONS). */
  blockCaptions?: number;
  /** Keep, per caption, the indices of its `top` most similar images (for per-caption outputs). */
  top?: number;
}

export interface RetrievalMetrics {
  images: number;
  captions: number;
  /** Fractions in [0, 1], keyed by k. */
  imageRetrievalRecall: Record<string, number>;
  textRetrievalRecall: Record<string, number>;
  /** 95 % Wilson score intervals of the recalls (on captions, and on images), keyed by k. */
  imageRetrievalRecallInterval: Record<string, Interval>;
  textRetrievalRecallInterval: Record<string, Interval>;
}

export interface RetrievalScores {
  metrics: RetrievalMetrics;
  /** Per caption: the 1-based rank of its own image among all images. */
  imageRanks: Int32Array;
  /** Per image: the 1-based rank of its best own caption among all captions (0 for an image without captions). */
  captionRanks: Int32Array;
  /** Per caption, `top` image indices best first (captions × top), when asked. */
  topImages?: Int32Array;
  top: number;
  /** Floats the largest similarity block held. */
  blockFloats: number;
}

/** One definition of similarity, used for every comparison, so that equal pairs compare exactly equal. */
function dot(a: Float32Array, aRow: number, b: Float32Array, bRow: number, dim: number): number {
  let sum = 0;
  const ai = aRow * dim;
  const bi = bRow * dim;
  for (let d = 0; d < dim; d += 1) sum += a[ai + d]! * b[bi + d]!;
  return sum;
}

export function computeRetrieval(input: RetrievalInput): RetrievalScores {
  const { images, captions, dim, captionImage, ks } = input;
  if (!Number.isInteger(dim) || dim <= 0) throw new RangeError(`retrieval: embedding size must be positive, got ${dim}`);
  const imageCount = images.length / dim;
  const captionCount = captions.length / dim;
  if (!Number.isInteger(imageCount) || !Number.isInteger(captionCount)) throw new RangeError('retrieval: embeddings are not whole rows of the embedding size');
  if (captionImage.length !== captionCount) throw new RangeError(`retrieval: ${captionCount} captions but ${captionImage.length} caption images`);
  for (const k of ks) if (!Number.isInteger(k) || k < 1) throw new RangeError(`retrieval: recall k must be a positive integer, got ${k}`);
  for (const image of captionImage) if (image < 0 || image >= imageCount) throw new RangeError(`retrieval: caption image ${image} outside 0-${imageCount - 1}`);
  const blockCaptions = Math.max(1, Math.min(input.blockCaptions ?? DEFAULT_BLOCK_CAPTIONS, Math.max(captionCount, 1)));
  const top = Math.min(input.top ?? 0, imageCount);

  // Each caption's score with its own image, and each image's best own caption (ties: lower index).
  const ownScore = new Float64Array(captionCount);
  const bestScore = new Float64Array(imageCount).fill(-Infinity);
  const bestCaption = new Int32Array(imageCount).fill(-1);
  for (let c = 0; c < captionCount; c += 1) {
    const image = captionImage[c]!;
    ownScore[c] = dot(captions, c, images, image, dim);
    if (ownScore[c]! > bestScore[image]!) {
      bestScore[image] = ownScore[c]!;
      bestCaption[image] = c;
    }
  }

  // Counted per caption: images that beat its own; per image: captions that beat its best own.
  const imageBeaten = new Int32Array(captionCount);
  const captionBeaten = new Int32Array(imageCount);
  const topImages = top > 0 ? new Int32Array(captionCount * top) : undefined;
  const topScores = new Float64Array(top);
  const block = new Float64Array(blockCaptions * imageCount);
  for (let first = 0; first < captionCount; first += blockCaptions) {
    const rows = Math.min(blockCaptions, captionCount - first);
    for (let r = 0; r < rows; r += 1) {
      for (let i = 0; i < imageCount; i += 1) block[r * imageCount + i] = dot(captions, first + r, images, i, dim);
    }
    for (let r = 0; r < rows; r += 1) {
      const c = first + r;
      const own = ownScore[c]!;
      const ownImage = captionImage[c]!;
      let beaten = 0;
      let kept = 0;
      for (let i = 0; i < imageCount; i += 1) {
        const s = block[r * imageCount + i]!;
        if (s > own || (s === own && i < ownImage)) beaten += 1;
        if (bestCaption[i]! >= 0 && (s > bestScore[i]! || (s === bestScore[i]! && c < bestCaption[i]!))) captionBeaten[i]! += 1;
        if (topImages) kept = keepTop(topImages, c * top, topScores, kept, top, i, s);
      }
      imageBeaten[c] = beaten;
    }
  }

  const imageRanks = imageBeaten.map((beaten) => beaten + 1);
  const captionRanks = captionBeaten.map((beaten, i) => (bestCaption[i]! >= 0 ? beaten + 1 : 0));
  const imageRetrievalRecall: Record<string, number> = {};
  const textRetrievalRecall: Record<string, number> = {};
  const imageRetrievalRecallInterval: Record<string, Interval> = {};
  const textRetrievalRecallInterval: Record<string, Interval> = {};
  for (const k of ks) {
    const captionHits = hits(imageRanks, (rank) => rank <= k);
    const imageHits = hits(captionRanks, (rank) => rank > 0 && rank <= k);
    imageRetrievalRecall[String(k)] = captionCount > 0 ? captionHits / captionCount : 0;
    textRetrievalRecall[String(k)] = imageCount > 0 ? imageHits / imageCount : 0;
    imageRetrievalRecallInterval[String(k)] = wilsonInterval(captionHits, captionCount);
    textRetrievalRecallInterval[String(k)] = wilsonInterval(imageHits, imageCount);
  }
  return {
    metrics: { images: imageCount, captions: captionCount, imageRetrievalRecall, textRetrievalRecall, imageRetrievalRecallInterval, textRetrievalRecallInterval },
    imageRanks,
    captionRanks,
    ...(topImages ? { topImages } : {}),
    top,
    blockFloats: block.length,
  };
}

/**
 * Inserts image `index` with score `score` into a caption's best-first list of `kept` (of at most `top`)
 * entries; a later index never displaces an equal score, so ties stay with the lower index.
 */
function keepTop(out: Int32Array, offset: number, scores: Float64Array, kept: number, top: number, index: number, score: number): number {
  if (kept === top && score <= scores[top - 1]!) return kept;
  let at = Math.min(kept, top - 1);
  while (at > 0 && score > scores[at - 1]!) {
    scores[at] = scores[at - 1]!;
    out[offset + at] = out[offset + at - 1]!;
    at -= 1;
  }
  scores[at] = score;
  out[offset + at] = index;
  return Math.min(kept + 1, top);
}

function hits(values: Int32Array, hit: (value: number) => boolean): number {
  let count = 0;
  for (const value of values) if (hit(value)) count += 1;
  return count;
}
