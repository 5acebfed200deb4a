import type { ImageEncoder } from '../../model/encoders.js';
import { createProgress } from '../../core/progress.js';
import { scoreImages, type TopK } from './scores.js';

/**
 * Fills the preprocessed pixels of image `index` (of the evaluated list) at `offset` in `out`, or
 * returns its cached embedding instead (then its pixels are not used).
 */
export type FillImage = (index: number, out: Float32Array, offset: number) => void | Float32Array | Promise<void | Float32Array>;

/** A batch whose images are being written into a pixel buffer. */
export interface StartedBatch {
  /** Images started, in slots 0 ..< started of the buffer. */
  started: number;
  /**
   * Undefined when every image was filled synchronously; else settles once all are, with the number
   * of images the buffer then holds (a source may drop unreadable images and close the gaps).
   */
  ready?: Promise<number>;
  /**
   * With an image-embedding cache: once ready, each kept image's cached embedding, or undefined for
   * one to encode. The pixels of the images to encode fill the buffer's first slots, in order.
   */
  cached?: readonly (Float32Array | undefined)[];
  /** Told the embeddings encoded for this batch's images not cached (rows in order), to cache them. */
  store?: (embeddings: Float32Array) => Promise<void>;
}

/**
 * Where a run's images come from: `next` starts filling the next batch of at most `capacity`
 * images into `target` (3·size² floats per image), or returns undefined at the end. It is called
 * again only once the previous batch is ready, so a source sees its batches in order.
 */
export interface BatchSource {
  next(capacity: number, target: Float32Array, imageFloats: number): Promise<StartedBatch | undefined> | StartedBatch | undefined;
}

interface RunCommon {
  encoder: ImageEncoder;
  weights: Float32Array;
  batchSize: number;
  /** The true label of evaluated image i, for the running top-1 shown in the progress line. */
  labelOf?: (index: number) => number;
  k?: number;
  quiet?: boolean;
  progressLabel?: string;
  /** Sees each batch's L2-normalised image embeddings (rows of embeddingDim) before scoring. */
  onEmbeddings?: (first: number, count: number, embeddings: Float32Array) => void;
}

export interface ZeroShotRunOptions extends RunCommon {
  count: number;
  fill: FillImage;
  /** Told each encoded image's embedding (not the cached ones), to cache it. */
  store?: (index: number, embedding: Float32Array) => Promise<void>;
}

export interface ZeroShotStreamOptions extends RunCommon {
  source: BatchSource;
  /** Images expected, for the progress line, when known (an estimate: the stream decides). */
  expected?: number;
}

export interface ZeroShotRun {
  predictions: TopK;
  /** Images scored: the rows of predictions. */
  count: number;
  seconds: number;
  imagesPerSecond: number;
}

/** Top-k rows that grow as a stream is scored; `done` trims them to the images scored. */
function growingTopK(k: number, initial: number) {
  let classes = new Int32Array(Math.max(initial, 1) * k);
  let logits = new Float32Array(classes.length);
  return {
    /** Room for `count` images; the TopK to score into. */
    reserve(count: number): TopK {
      if (count * k > classes.length) {
        const size = Math.max(count * k, 2 * classes.length);
        const grownClasses = new Int32Array(size);
        grownClasses.set(classes);
        const grownLogits = new Float32Array(size);
        grownLogits.set(logits);
        classes = grownClasses;
        logits = grownLogits;
      }
      return { k, classes, logits };
    },
    done(count: number): TopK {
      return { k, classes: classes.slice(0, count * k), logits: logits.slice(0, count * k) };
    },
  };
}

/**
 * Encodes images in batches and scores them against the classifier, reusing its pixel buffers for
 * the whole run. onnxruntime-node runs a session on the JavaScript thread (inside a setImmediate), so
 * only asynchronous fills (images read, decoded and preprocessed on worker threads) can overlap with
 * inference: they get a second buffer and start on batch k+1 before batch k runs. Synchronous fills (planar images) could
 * not overlap anyway, and use one buffer. Memory holds two batches of pixels and the top-k rows.
 */
export async function runZeroShotStream(options: ZeroShotStreamOptions): Promise<ZeroShotRun> {
  const { encoder, weights, source } = options;
  const dim = encoder.embeddingDim;
  const classCount = weights.length / dim;
  const k = Math.min(options.k ?? 5, classCount);
  const batchSize = Math.max(1, encoder.fixedBatch ?? options.batchSize);
  const imageFloats = 3 * encoder.imageSize * encoder.imageSize;
  const expected = options.expected;
  let buffer: Float32Array = new Float32Array(Math.min(batchSize, Math.max(expected ?? batchSize, 1)) * imageFloats);
  const capacity = buffer.length / imageFloats;
  let spare: Float32Array | undefined;
  const rows = growingTopK(k, expected ?? capacity);
  const progress = createProgress({ label: options.progressLabel ?? 'images', total: expected, unit: 'images', quiet: options.quiet });
  const start = performance.now();
  let scored = 0;
  let correct = 0;

  /** Starts the next batch; a failure is kept for its await, not reported as unhandled meanwhile. */
  const startBatch = (target: Float32Array): Promise<StartedBatch | undefined> => {
    const started = Promise.resolve().then(() => source.next(capacity, target, imageFloats));
    started.then((batch) => batch?.ready?.catch(() => undefined), () => undefined);
    return started;
  };
  const finish = (n: number, embeddings: Float32Array) => {
    const first = scored;
    options.onEmbeddings?.(first, n, embeddings);
    scoreImages(embeddings, n, weights, dim, rows.reserve(first + n), first);
    const { classes } = rows.reserve(first + n);
    if (options.labelOf) {
      for (let i = first; i < first + n; i += 1) if (classes[i * k] === options.labelOf(i)) correct += 1;
    }
    scored += n;
    progress.update(scored, options.labelOf ? `top-1 ${((100 * correct) / scored).toFixed(1)}%` : '');
  };

  // A batch's cache entries are written while the next batch encodes (each write waits mostly on its
  // fsync); at most one batch's writes are in flight, and all have ended before the run returns.
  let storing: Promise<void> | undefined;
  try {
    let batch = await startBatch(buffer);
    while (batch) {
      const n = batch.ready ? await batch.ready : batch.started;
      const overlap = batch.ready !== undefined;
      const { cached, store } = batch;
      const toEncode = cached ? cached.filter((embedding) => embedding === undefined).length : n;
      const running = toEncode > 0 ? encoder.encode(buffer.subarray(0, toEncode * imageFloats), toEncode) : undefined;
      let next: Promise<StartedBatch | undefined> | undefined;
      if (overlap) {
        spare ??= new Float32Array(buffer.length);
        next = startBatch(spare);
        [buffer, spare] = [spare, buffer];
      }
      if (n > 0) {
        const encoded = running ? await running : new Float32Array(0);
        if (cached && store) {
          await storing;
          storing = store(encoded);
          storing.catch(() => undefined);
        }
        finish(n, cached ? withCached(cached, encoded, dim) : encoded);
      }
      batch = await (next ?? startBatch(buffer));
    }
    await storing;
  } finally {
    await storing?.catch(() => undefined);
    progress.stop();
  }
  const seconds = (performance.now() - start) / 1000;
  return { predictions: rows.done(scored), count: scored, seconds, imagesPerSecond: scored / seconds };
}

/** A batch's embeddings in image order: the cached ones, and the encoded rows where none was cached. */
function withCached(cached: readonly (Float32Array | undefined)[], encoded: Float32Array, dim: number): Float32Array {
  const out = new Float32Array(cached.length * dim);
  let row = 0;
  cached.forEach((embedding, i) => {
    if (embedding) out.set(embedding, i * dim);
    else out.set(encoded.subarray(row * dim, ++row * dim), i * dim);
  });
  return out;
}

/** runZeroShotStream over `count` images that `fill` writes by index (classify's inputs). */
export async function runZeroShot(options: ZeroShotRunOptions): Promise<ZeroShotRun> {
  const { count, fill, store } = options;
  const dim = options.encoder.embeddingDim;
  let first = 0;
  const source: BatchSource = {
    next(capacity, target, imageFloats) {
      const n = Math.min(capacity, count - first);
      if (n <= 0) return undefined;
      const start = first;
      const cached: (Float32Array | undefined)[] = new Array(n).fill(undefined);
      const pending: Promise<void>[] = [];
      for (let i = 0; i < n; i += 1) {
        const filled = fill(start + i, target, i * imageFloats);
        if (filled instanceof Float32Array) cached[i] = filled;
        else if (filled) pending.push(filled.then((embedding) => void (cached[i] = embedding ?? undefined)));
      }
      first += n;
      const batch: StartedBatch = { started: n };
      // The pixels of the images to encode move to the buffer's first slots, in order.
      const compact = () => {
        let encoded = 0;
        cached.forEach((embedding, i) => {
          if (embedding) return;
          if (encoded !== i) target.copyWithin(encoded * imageFloats, i * imageFloats, (i + 1) * imageFloats);
          encoded += 1;
        });
        batch.cached = cached;
        return n;
      };
      if (store) {
        batch.store = async (embeddings) => {
          const encoded = cached.flatMap((embedding, i) => (embedding ? [] : [i]));
          await Promise.all(encoded.map((i, row) => store(start + i, embeddings.slice(row * dim, (row + 1) * dim))));
        };
      }
      if (pending.length > 0) batch.ready = Promise.all(pending).then(compact);
      else batch.started = compact();
      return batch;
    },
  };
  return runZeroShotStream({ ...options, source, expected: count });
}
