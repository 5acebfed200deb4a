import assert from 'node:assert/strict';
import test from 'node:test';
import { SeededRandom } from '../scripts/lib/seeded-random.js';
import { computeRetrieval } from '../src/tasks/retrieval/metrics.js';

/** Rows of small integers, L2-normalised: duplicated rows give exactly equal similarities (ties). */
function embeddings(random: SeededRandom, rows: number, dim: number, distinct: number): Float32Array {
  const base = Array.from({ length: distinct }, () => {
    const row = Array.from({ length: dim }, () => Math.floor(random.next() * 5) - 2);
    if (!row.some((v) => v !== 0)) row[0] = 1;
    const norm = Math.hypot(...row);
    return row.map((v) => v / norm);
  });
  return Float32Array.from(Array.from({ length: rows }, () => base[Math.floor(random.next() * distinct)]!).flat());
}

/** The full matrix, each row sorted by score then index: ranks by direct definition. */
function bruteForce(images: Float32Array, captions: Float32Array, dim: number, captionImage: Int32Array, ks: number[]) {
  const n = images.length / dim;
  const m = captions.length / dim;
  const sim = (c: number, i: number) => {
    let s = 0;
    for (let d = 0; d < dim; d += 1) s += captions[c * dim + d]! * images[i * dim + d]!;
    return s;
  };
  const matrix = Array.from({ length: m }, (_, c) => Array.from({ length: n }, (_, i) => sim(c, i)));
  const order = (scores: number[]) => scores.map((_, i) => i).sort((a, b) => scores[b]! - scores[a]! || a - b);
  const imageOrder = matrix.map(order);
  const captionOrder = Array.from({ length: n }, (_, i) => order(matrix.map((row) => row[i]!)));
  const imageRanks = imageOrder.map((ranked, c) => ranked.indexOf(captionImage[c]!) + 1);
  const captionRanks = captionOrder.map((ranked, i) => {
    const own = ranked.findIndex((c) => captionImage[c] === i);
    return own < 0 ? 0 : own + 1;
  });
  const recall = (ranks: number[], k: number) => ranks.filter((r) => r > 0 && r <= k).length / ranks.length;
  return {
    imageRanks,
    captionRanks,
    imageOrder,
    imageRetrievalRecall: Object.fromEntries(ks.map((k) => [String(k), recall(imageRanks, k)])),
    textRetrievalRecall: Object.fromEntries(ks.map((k) => [String(k), recall(captionRanks, k)])),
  };
}

test('computeRetrieval matches a brute-force ranking: several captions per image, ties, any tile size, in this thread and on workers', async () => {
  for (const [seed, distinct] of [[1, 3], [2, 6], [3, 40]] as const) {
    const random = new SeededRandom(seed);
    const dim = 4;
    const imageCount = 23;
    const captionImage = Int32Array.from({ length: 61 }, (_, c) => (c < imageCount ? c : Math.floor(random.next() * imageCount)));
    const images = embeddings(random, imageCount, dim, distinct);
    const captions = embeddings(random, captionImage.length, dim, distinct);
    const ks = [1, 2, 5, 10];
    const expected = bruteForce(images, captions, dim, captionImage, ks);
    const runs = [
      { tile: { captions: 1, images: 1 }, workers: 1 },
      { tile: { captions: 7, images: 5 }, workers: 1 },
      { tile: { captions: 7, images: 5 }, workers: 3 },
      { workers: 1 },
      { workers: 2 },
    ];
    for (const run of runs) {
      const got = await computeRetrieval({ images, captions, dim, captionImage, ks, top: 5, ...run });
      const label = `seed ${seed}, ${JSON.stringify(run)}`;
      assert.equal(got.workers, run.workers, label);
      assert.deepEqual(Array.from(got.imageRanks), expected.imageRanks, label);
      assert.deepEqual(Array.from(got.captionRanks), expected.captionRanks);
      assert.deepEqual(got.metrics.imageRetrievalRecall, expected.imageRetrievalRecall);
      assert.deepEqual(got.metrics.textRetrievalRecall, expected.textRetrievalRecall);
      assert.deepEqual(
        Array.from({ length: captionImage.length }, (_, c) => Array.from(got.topImages!.subarray(c * 5, c * 5 + 5))),
        expected.imageOrder.map((ranked) => ranked.slice(0, 5)),
      );
      assert.equal(got.blockFloats, run.workers * (run.tile ? run.tile.captions * run.tile.images : 32 * imageCount));
    }
  }
});

test('computeRetrieval: all-equal embeddings rank by index, so only the first image and caption hit at k = 1', async () => {
  const dim = 2;
  const images = Float32Array.from([1, 0, 1, 0, 1, 0]);
  const captions = Float32Array.from([1, 0, 1, 0, 1, 0, 1, 0]);
  const captionImage = Int32Array.from([2, 0, 1, 1]);
  const got = await computeRetrieval({ images, captions, dim, captionImage, ks: [1, 2] });
  assert.deepEqual(Array.from(got.imageRanks), [3, 1, 2, 2]);
  // Image 0's caption is caption 1 (rank 2), image 1's captions 2 and 3 (best rank 3), image 2's caption 0.
  assert.deepEqual(Array.from(got.captionRanks), [2, 3, 1]);
  assert.deepEqual(got.metrics.imageRetrievalRecall, { 1: 0.25, 2: 0.75 });
  assert.deepEqual(got.metrics.textRetrievalRecall, { 1: 1 / 3, 2: 2 / 3 });
});

test('computeRetrieval refuses captions naming an image that does not exist', async () => {
  await assert.rejects(
    () => computeRetrieval({ images: Float32Array.from([1, 0]), captions: Float32Array.from([1, 0]), dim: 2, captionImage: Int32Array.from([1]), ks: [1] }),
    /caption image 1 outside 0-0/,
  );
});

test('computeRetrieval keeps near-ties apart that float32 scores would merge: a score is the float64 sum of the float32 products', async () => {
  // Caption·image 0 = 0.5 and caption·image 1 = 0.5 + 2⁻³⁰, both exact in float64; in float32 both are 0.5.
  const images = Float32Array.from([0.5, 0, 0.5, 2 ** -10]);
  const captions = Float32Array.from([1, 2 ** -20, 1, 2 ** -20]);
  const captionImage = Int32Array.from([0, 1]);
  assert.equal(Math.fround(0.5 + 2 ** -30), 0.5);
  const expected = bruteForce(images, captions, 2, captionImage, [1]);
  const got = await computeRetrieval({ images, captions, dim: 2, captionImage, ks: [1], top: 2 });
  // Image 1 beats caption 0's own image 0 by 2⁻³⁰ (a float32 tie would go to image 0); image 1's two
  // captions score exactly equal with it, so caption 0 (the lower index) beats its own caption 1.
  assert.deepEqual(Array.from(got.imageRanks), [2, 1]);
  assert.deepEqual(Array.from(got.captionRanks), [1, 2]);
  assert.deepEqual(Array.from(got.topImages!), [1, 0, 1, 0]);
  assert.deepEqual(Array.from(got.imageRanks), expected.imageRanks);
  assert.deepEqual(Array.from(got.captionRanks), expected.captionRanks);
});

test('computeRetrieval on dense random embeddings (odd size, partial tiles) matches the brute force in this thread and on workers', async () => {
  const random = new SeededRandom(9);
  const dim = 67;
  const unit = (rows: number) => {
    const out = new Float32Array(rows * dim);
    for (let r = 0; r < rows; r += 1) {
      const row = Array.from({ length: dim }, () => random.normal());
      const norm = Math.hypot(...row);
      row.forEach((v, d) => (out[r * dim + d] = v / norm));
    }
    return out;
  };
  const imageCount = 157;
  const captionImage = Int32Array.from({ length: 403 }, (_, c) => (c < imageCount ? c : Math.floor(random.next() * imageCount)));
  const images = unit(imageCount);
  // Captions near their image, so that ranks spread over 1..many rather than all being large.
  const noise = unit(captionImage.length);
  const captions = Float32Array.from(noise, (v, j) => v + 0.3 * images[captionImage[Math.floor(j / dim)]! * dim + (j % dim)]!);
  const expected = bruteForce(images, captions, dim, captionImage, [1, 5, 10]);
  for (const workers of [1, 2, 4]) {
    const got = await computeRetrieval({ images, captions, dim, captionImage, ks: [1, 5, 10], top: 10, workers });
    assert.deepEqual(Array.from(got.imageRanks), expected.imageRanks, `workers ${workers}`);
    assert.deepEqual(Array.from(got.captionRanks), expected.captionRanks);
    assert.deepEqual(got.metrics.imageRetrievalRecall, expected.imageRetrievalRecall);
    assert.deepEqual(got.metrics.textRetrievalRecall, expected.textRetrievalRecall);
    assert.deepEqual(
      Array.from({ length: captionImage.length }, (_, c) => Array.from(got.topImages!.subarray(c * 10, c * 10 + 10))),
      expected.imageOrder.map((ranked) => ranked.slice(0, 10)),
    );
  }
  assert.ok(expected.imageRanks.some((rank) => rank > 1) && expected.imageRanks.some((rank) => rank === 1), 'ranks spread, so the comparison can fail');
});
