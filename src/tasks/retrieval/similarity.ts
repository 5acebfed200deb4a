/**
 * The similarity kernel of retrieval: a cache-blocked captions × images product whose scores are
 * counted and ranked as they are made, so no similarity matrix, not even a block of one, is stored.
 *
 * Every score is the float64 sum, in dimension order, of the products of two float32 embeddings (each
 * product exact in float64): the same arithmetic as `dot`, whatever the tiling or the thread, so equal
 * pairs compare exactly equal and ties go to the lower index as the definition says. The speed comes
 * from tiles that stay in cache and from a register block of 4 captions × 2 images: 8 independent
 * sums per step of the dimension, each embedding value loaded once for 2 or 4 of them.
 */

/** Captions per tile: their embeddings (and per-caption top lists) stay in L1/L2 across an image tile. */
export const TILE_CAPTIONS = 32;
/** Images per tile: 128 × 512 float32 = 256 KiB, an L2's worth, reused by every caption of a tile. */
export const TILE_IMAGES = 128;

/** One caption–image similarity, the reference definition every path reproduces exactly. */
export function dot(a: Float32Array, aRow: number, b: Float32Array, bRow: number, dim: number): number {
  let sum = 0;
  const ai = aRow * dim;
  const bi = bRow * dim;
  for (let d = 0; d < dim; d += 1) sum += a[ai + d]! * b[bi + d]!;
  return sum;
}

/** What ranking a range of captions reads: embeddings, and each caption's and image's own best score. */
export interface RankInput {
  /** images × dim, row-major. */
  images: Float32Array;
  /** captions × dim, row-major (all captions; the range is [first, end)). */
  captions: Float32Array;
  dim: number;
  captionImage: Int32Array;
  /** Per caption: its score with its own image. */
  ownScore: Float64Array;
  /** Per image: its best own caption's score and index (-1 for an image without captions). */
  bestScore: Float64Array;
  bestCaption: Int32Array;
  first: number;
  end: number;
  /** Best images kept per caption; 0 keeps none. */
  top: number;
  /** Captions and images per tile (default TILE_CAPTIONS, TILE_IMAGES); the results never depend on it. */
  tile?: Tile;
}

export interface Tile {
  captions: number;
  images: number;
}

/** Where ranking writes: per caption of the range, per image for the range's captions. */
export interface RankOutput {
  /** Per caption (indexed by caption): images that beat its own image. */
  imageBeaten: Int32Array;
  /** Per image: captions of this range that beat its best own caption (added to). */
  captionBeaten: Int32Array;
  /** captions × top image indices, best first (indexed by caption). */
  topImages?: Int32Array;
}

/** Ranks captions [first, end) against every image; see the module comment for the arithmetic. */
export function rankCaptions(input: RankInput, output: RankOutput): void {
  const { images, captions, dim, captionImage, ownScore, bestScore, bestCaption, top } = input;
  const { imageBeaten, captionBeaten, topImages } = output;
  const imageCount = images.length / dim;
  const tileCaptions = input.tile?.captions ?? TILE_CAPTIONS;
  const tileImages = input.tile?.images ?? TILE_IMAGES;
  // Per caption of the tile: the scores of its best images so far and how many are kept.
  const topScores = new Float64Array(tileCaptions * top);
  const kept = new Int32Array(tileCaptions);
  const threshold = new Float64Array(tileCaptions);

  /** Counts one pair both ways and offers it to the caption's top list; images come in ascending order per caption. */
  const consider = (c: number, tileRow: number, i: number, s: number): void => {
    const own = ownScore[c]!;
    if (s > own || (s === own && i < captionImage[c]!)) imageBeaten[c]! += 1;
    const best = bestScore[i]!;
    if (s >= best && bestCaption[i]! >= 0 && (s > best || c < bestCaption[i]!)) captionBeaten[i]! += 1;
    if (topImages && s > threshold[tileRow]!) {
      kept[tileRow] = keepTop(topImages, c * top, topScores, tileRow * top, kept[tileRow]!, top, i, s);
      if (kept[tileRow] === top) threshold[tileRow] = topScores[tileRow * top + top - 1]!;
    }
  };

  for (let c0 = input.first; c0 < input.end; c0 += tileCaptions) {
    const c1 = Math.min(c0 + tileCaptions, input.end);
    kept.fill(0);
    threshold.fill(-Infinity);
    for (let i0 = 0; i0 < imageCount; i0 += tileImages) {
      const i1 = Math.min(i0 + tileImages, imageCount);
      let c = c0;
      for (; c + 4 <= c1; c += 4) {
        const r = c - c0;
        const a0 = c * dim;
        const a1 = a0 + dim;
        const a2 = a1 + dim;
        const a3 = a2 + dim;
        let i = i0;
        for (; i + 2 <= i1; i += 2) {
          const b0 = i * dim;
          const b1 = b0 + dim;
          let s00 = 0, s01 = 0, s10 = 0, s11 = 0, s20 = 0, s21 = 0, s30 = 0, s31 = 0;
          for (let d = 0; d < dim; d += 1) {
            const x0 = images[b0 + d]!;
            const x1 = images[b1 + d]!;
            const y0 = captions[a0 + d]!;
            const y1 = captions[a1 + d]!;
            const y2 = captions[a2 + d]!;
            const y3 = captions[a3 + d]!;
            s00 += y0 * x0;
            s01 += y0 * x1;
            s10 += y1 * x0;
            s11 += y1 * x1;
            s20 += y2 * x0;
            s21 += y2 * x1;
            s30 += y3 * x0;
            s31 += y3 * x1;
          }
          consider(c, r, i, s00);
          consider(c, r, i + 1, s01);
          consider(c + 1, r + 1, i, s10);
          consider(c + 1, r + 1, i + 1, s11);
          consider(c + 2, r + 2, i, s20);
          consider(c + 2, r + 2, i + 1, s21);
          consider(c + 3, r + 3, i, s30);
          consider(c + 3, r + 3, i + 1, s31);
        }
        for (; i < i1; i += 1) {
          for (let q = 0; q < 4; q += 1) consider(c + q, r + q, i, dot(captions, c + q, images, i, dim));
        }
      }
      for (; c < c1; c += 1) {
        for (let i = i0; i < i1; i += 1) consider(c, c - c0, i, dot(captions, c, images, i, dim));
      }
    }
  }
}

/**
 * Inserts image `index` with score `score` into a caption's best-first list of `kept` (of at most `top`)
 * entries; a later index never displaces an equal score, so ties stay with the lower index.
 */
function keepTop(out: Int32Array, offset: number, scores: Float64Array, scoreOffset: number, kept: number, top: number, index: number, score: number): number {
  if (kept === top && score <= scores[scoreOffset + top - 1]!) return kept;
  let at = Math.min(kept, top - 1);
  while (at > 0 && score > scores[scoreOffset + at - 1]!) {
    scores[scoreOffset + at] = scores[scoreOffset + at - 1]!;
    out[offset + at] = out[offset + at - 1]!;
    at -= 1;
  }
  scores[scoreOffset + at] = score;
  out[offset + at] = index;
  return Math.min(kept + 1, top);
}
