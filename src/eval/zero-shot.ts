import type { ImageEncoder } from '../model/encoders.js';
import { createProgress } from '../progress.js';
import { createTopK, scoreImages, type TopK } from './scores.js';

/** Fills the preprocessed pixels of image `index` (of the evaluated list) at `offset` in `out`. */
export type FillImage = (index: number, out: Float32Array, offset: number) => void | Promise<void>;

export interface ZeroShotRunOptions {
  encoder: ImageEncoder;
  weights: Float32Array;
  count: number;
  fill: FillImage;
  batchSize: number;
  /** Known labels, for the running top-1 shown in the progress line. */
  labels?: ArrayLike<number>;
  k?: number;
  quiet?: boolean;
  progressLabel?: string;
  /** Sees each batch's L2-normalised image embeddings (rows of embeddingDim) before scoring. */
  onEmbeddings?: (first: number, count: number, embeddings: Float32Array) => void;
}

export interface ZeroShotRun {
  predictions: TopK;
  seconds: number;
  imagesPerSecond: number;
}

/**
 * Encodes the images in batches and scores them against the classifier. Batch k+1 is prepared while
 * the session runs batch k (ONNX Runtime runs off the JavaScript thread), so two pixel buffers
 * alternate and are reused for the whole run.
 */
export async function runZeroShot(options: ZeroShotRunOptions): Promise<ZeroShotRun> {
  const { encoder, weights, count } = options;
  const dim = encoder.embeddingDim;
  const classCount = weights.length / dim;
  const k = Math.min(options.k ?? 5, classCount);
  const batchSize = Math.max(1, encoder.fixedBatch ?? options.batchSize);
  const imageFloats = 3 * encoder.imageSize * encoder.imageSize;
  const buffers = [new Float32Array(batchSize * imageFloats), new Float32Array(batchSize * imageFloats)];
  const predictions = createTopK(count, k);
  const progress = createProgress({ label: options.progressLabel ?? 'images', total: count, unit: 'images', quiet: options.quiet });
  const start = performance.now();
  let correct = 0;

  const prepare = async (first: number, buffer: Float32Array): Promise<number> => {
    const n = Math.min(batchSize, count - first);
    // Asynchronous fills (image decoding) run side by side; synchronous ones simply run in turn.
    await Promise.all(Array.from({ length: n }, (_, i) => options.fill(first + i, buffer, i * imageFloats)));
    return n;
  };
  const finish = (first: number, n: number, embeddings: Float32Array) => {
    options.onEmbeddings?.(first, n, embeddings);
    scoreImages(embeddings, n, weights, dim, predictions, first);
    if (options.labels) {
      for (let i = first; i < first + n; i += 1) if (predictions.classes[i * k] === options.labels[i]) correct += 1;
    }
    const done = first + n;
    progress.update(done, options.labels ? `top-1 ${((100 * correct) / done).toFixed(1)}%` : '');
  };

  try {
    let first = 0;
    let n = await prepare(0, buffers[0]!);
    let batch = 0;
    while (n > 0) {
      const buffer = buffers[batch % 2]!;
      const running = encoder.encode(buffer.subarray(0, n * imageFloats), n);
      const nextFirst = first + n;
      const [embeddings, nextN] = await Promise.all([
        running,
        nextFirst < count ? prepare(nextFirst, buffers[(batch + 1) % 2]!) : Promise.resolve(0),
      ]);
      finish(first, n, embeddings);
      first = nextFirst;
      n = nextN;
      batch += 1;
    }
  } finally {
    progress.stop();
  }
  const seconds = (performance.now() - start) / 1000;
  return { predictions, seconds, imagesPerSecond: count / seconds };
}
