import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { dot, rankCaptions, TILE_CAPTIONS, TILE_IMAGES, type RankInput, type Tile } from './similarity.js';

/**
 * Text-image retrieval recall with CLIP_benchmark's definitions: imageRetrievalRecall@k (text→image:
 * captions whose own image is among the k most similar images) and textRetrievalRecall@k (image→text:
 * images with at least one of their captions among the k most similar captions). Similarity is the dot
 * product of L2-normalised embeddings; ties go to the lower index. Scores are counted and ranked tile by
 * tile as they are computed (similarity.ts), on worker threads for a large set, so memory holds the
 * embeddings and per-caption results, never a captions × images matrix.
 */
import { wilsonInterval, type Interval } from '../statistics.js';

export const DEFAULT_RECALL_K: readonly number[] = [1, 5, 10];
/** Multiply-adds below which a worker thread costs more than it saves (a few hundred ms of work). */
const MIN_WORK_PER_WORKER = 2 ** 28;

export interface RetrievalInput {
  /** images × dim, row-major, L2-normalised. */
  images: Float32Array;
  /** captions × dim, row-major, L2-normalised. */
  captions: Float32Array;
  dim: number;
  /** Caption index → its image's index. */
  captionImage: Int32Array;
  ks: readonly number[];
  /** Keep, per caption, the indices of its `top` most similar images (for per-caption outputs). */
  top?: number;
  /**
   * Threads ranking captions (1: this thread only); default one per core, fewer for a small set.
   * The results never depend on it.
   */
  workers?: number;
  /** Captions and images per tile (default similarity.ts's); the results never depend on it. */
  tile?: Tile;
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
  /** Similarity scores held at once: a tile of captions × images per thread (in registers, as they are counted). */
  blockFloats: number;
  /** Threads that ranked the captions. */
  workers: number;
}

/** One thread per core, but no more than the work pays for. */
function defaultWorkers(work: number): number {
  return Math.max(1, Math.min(availableParallelism(), Math.floor(work / MIN_WORK_PER_WORKER)));
}

export async function computeRetrieval(input: RetrievalInput): Promise<RetrievalScores> {
  const { images, captions, dim, captionImage, ks } = input;
  if (!Number.isInteger(dim) || dim <= 0) throw new RangeError(`retrieval: embedding size must be positive, got ${dim}`);
  const imageCount = images.length / dim;
  const captionCount = captions.length / dim;
  if (!Number.isInteger(imageCount) || !Number.isInteger(captionCount)) throw new RangeError('retrieval: embeddings are not whole rows of the embedding size');
  if (captionImage.length !== captionCount) throw new RangeError(`retrieval: ${captionCount} captions but ${captionImage.length} caption images`);
  for (const k of ks) if (!Number.isInteger(k) || k < 1) throw new RangeError(`retrieval: recall k must be a positive integer, got ${k}`);
  for (const image of captionImage) if (image < 0 || image >= imageCount) throw new RangeError(`retrieval: caption image ${image} outside 0-${imageCount - 1}`);
  const top = Math.min(input.top ?? 0, imageCount);
  const workers = input.workers ?? defaultWorkers(captionCount * imageCount * dim);
  if (!Number.isInteger(workers) || workers < 1) throw new RangeError(`retrieval: workers must be a positive integer, got ${workers}`);

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
  const tile = input.tile ?? { captions: TILE_CAPTIONS, images: TILE_IMAGES };
  if (![tile.captions, tile.images].every((n) => Number.isInteger(n) && n >= 1)) throw new RangeError(`retrieval: tile sizes must be positive integers, got ${tile.captions} × ${tile.images}`);
  const rank = { images, captions, dim, captionImage, ownScore, bestScore, bestCaption, first: 0, end: captionCount, top, tile };
  const threads = Math.min(workers, Math.max(1, Math.ceil(captionCount / tile.captions)));
  const { imageBeaten, captionBeaten, topImages } = threads === 1 ? rankHere(rank) : await rankOnWorkers(rank, threads);

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
    blockFloats: threads * tile.captions * Math.min(tile.images, imageCount),
    workers: threads,
  };
}

function hits(values: Int32Array, hit: (value: number) => boolean): number {
  let count = 0;
  for (const value of values) if (hit(value)) count += 1;
  return count;
}

interface Ranked {
  imageBeaten: Int32Array;
  captionBeaten: Int32Array;
  topImages?: Int32Array;
}

function rankHere(input: RankInput): Ranked {
  const captionCount = input.captionImage.length;
  const output = {
    imageBeaten: new Int32Array(captionCount),
    captionBeaten: new Int32Array(input.bestScore.length),
    ...(input.top > 0 ? { topImages: new Int32Array(captionCount * input.top) } : {}),
  };
  rankCaptions(input, output);
  return output;
}

const WORKER_URL = new URL('./similarity-worker.js', import.meta.url);

/** A typed array's contents in shared memory, so that every worker reads the one copy. */
function shared<T extends Float32Array | Float64Array | Int32Array>(array: T, make: (buffer: SharedArrayBuffer) => T): T {
  const copy = make(new SharedArrayBuffer(array.byteLength));
  copy.set(array as never);
  return copy;
}

/**
 * The captions split into `threads` contiguous ranges of whole tiles, each ranked on a worker over
 * shared memory: per-caption results land in their own range, each worker's per-image counts in its
 * own row, summed here (counts, so the sum is exact whatever the split).
 */
async function rankOnWorkers(input: RankInput, threads: number): Promise<Ranked> {
  const captionCount = input.captionImage.length;
  const imageCount = input.bestScore.length;
  const sharedInput: RankInput = {
    ...input,
    images: shared(input.images, (b) => new Float32Array(b)),
    captions: shared(input.captions, (b) => new Float32Array(b)),
    captionImage: shared(input.captionImage, (b) => new Int32Array(b)),
    ownScore: shared(input.ownScore, (b) => new Float64Array(b)),
    bestScore: shared(input.bestScore, (b) => new Float64Array(b)),
    bestCaption: shared(input.bestCaption, (b) => new Int32Array(b)),
  };
  const imageBeaten = new Int32Array(new SharedArrayBuffer(captionCount * 4));
  const perWorker = new Int32Array(new SharedArrayBuffer(threads * imageCount * 4));
  const topImages = input.top > 0 ? new Int32Array(new SharedArrayBuffer(captionCount * input.top * 4)) : undefined;
  const tileCaptions = input.tile!.captions;
  const tiles = Math.ceil(captionCount / tileCaptions);
  const workers: Worker[] = [];
  const jobs = Array.from({ length: threads }, (_, w) => {
    const first = Math.min(captionCount, Math.floor((tiles * w) / threads) * tileCaptions);
    const end = Math.min(captionCount, Math.floor((tiles * (w + 1)) / threads) * tileCaptions);
    const output = { imageBeaten, captionBeaten: perWorker.subarray(w * imageCount, (w + 1) * imageCount), ...(topImages ? { topImages } : {}) };
    const worker = new Worker(WORKER_URL, { workerData: { input: { ...sharedInput, first, end }, output } });
    workers.push(worker);
    return workerDone(worker);
  });
  try {
    await Promise.all(jobs);
  } finally {
    // Once one has failed the others' work is moot: stop them rather than wait.
    await Promise.all(workers.map((worker) => worker.terminate()));
  }
  const captionBeaten = new Int32Array(imageCount);
  for (let w = 0; w < threads; w += 1) {
    for (let i = 0; i < imageCount; i += 1) captionBeaten[i]! += perWorker[w * imageCount + i]!;
  }
  return { imageBeaten: Int32Array.from(imageBeaten), captionBeaten, ...(topImages ? { topImages: Int32Array.from(topImages) } : {}) };
}

function workerDone(worker: Worker): Promise<void> {
  return new Promise((resolve, reject) => {
    let done = false;
    worker.once('message', () => {
      done = true;
      resolve();
    });
    worker.once('error', (error) => {
      done = true;
      reject(error);
    });
    worker.once('exit', (code) => {
      if (!done) reject(new Error(`retrieval similarity worker exited with code ${code} before it finished`));
    });
  });
}
