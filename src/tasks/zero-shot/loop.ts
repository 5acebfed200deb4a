import type { ImageEncoder } from '../../model/encoders.js';
import { createProgress } from '../../core/progress.js';
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
 * Encodes the images in batches and scores them against the classifier, reusing its pixel buffers for
 * the whole run. onnxruntime-node runs a session on the JavaScript thread (inside a setImmediate), so
 * only asynchronous fills (image decoding on libuv's threads) can overlap with inference: they get a
 * second buffer and start on batch k+1 before batch k runs. Synchronous fills (the CIFAR path) could not
 * overlap anyway, and use one buffer.
 */
export async function runZeroShot(options: ZeroShotRunOptions): Promise<ZeroShotRun> {
  const { encoder, weights, count } = options;
  const dim = encoder.embeddingDim;
  const classCount = weights.length / dim;
  const k = Math.min(options.k ?? 5, classCount);
  const batchSize = Math.max(1, encoder.fixedBatch ?? options.batchSize);
  const imageFloats = 3 * encoder.imageSize * encoder.imageSize;
  let buffer: Float32Array = new Float32Array(Math.min(batchSize, Math.max(count, 1)) * imageFloats);
  let spare: Float32Array | undefined;
  const predictions = createTopK(count, k);
  const progress = createProgress({ label: options.progressLabel ?? 'images', total: count, unit: 'images', quiet: options.quiet });
  const start = performance.now();
  let correct = 0;

  /** Starts filling a batch; `ready` is undefined when every fill finished synchronously. */
  const prepare = (first: number, target: Float32Array): { first: number; n: number; ready?: Promise<unknown> } => {
    const n = Math.min(batchSize, count - first);
    const pending: Promise<void>[] = [];
    for (let i = 0; i < n; i += 1) {
      const filled = options.fill(first + i, target, i * imageFloats);
      if (filled) pending.push(filled);
    }
    if (pending.length === 0) return { first, n };
    const ready = Promise.all(pending);
    // Awaited only after the running batch: until then a failed fill must not count as unhandled.
    ready.catch(() => undefined);
    return { first, n, ready };
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
    let batch = count > 0 ? prepare(0, buffer) : undefined;
    while (batch) {
      await batch.ready;
      const { first, n } = batch;
      const running = encoder.encode(buffer.subarray(0, n * imageFloats), n);
      const nextFirst = first + n;
      let next: typeof batch | undefined;
      if (batch.ready && nextFirst < count) {
        spare ??= new Float32Array(buffer.length);
        next = prepare(nextFirst, spare);
        [buffer, spare] = [spare, buffer];
      }
      finish(first, n, await running);
      if (!next && nextFirst < count) next = prepare(nextFirst, buffer);
      batch = next;
    }
  } finally {
    progress.stop();
  }
  const seconds = (performance.now() - start) / 1000;
  return { predictions, seconds, imagesPerSecond: count / seconds };
}
