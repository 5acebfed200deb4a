import type { CifarTestSet } from '../../src/datasets/cifar/cifar.js';
import type { ModelBundle } from '../../src/model/bundle.js';
import { createImageEncoder } from '../../src/model/encoders.js';
import type { SessionOptions } from '../../src/model/session.js';
import type { PreprocessConfig } from '../../src/preprocess/config.js';
import { ImagePool } from '../../src/preprocess/image-pool.js';
import { CIFAR_IMAGE_BYTES, createCifarPreprocessor } from '../../src/preprocess/transform.js';

/** In-process timings of single pipeline stages, each with the project's own components. */

export interface PreprocessTiming {
  images: number;
  passes: number;
  seconds: number;
  imagesPerSecond: number;
}

/**
 * The CIFAR preprocessing path on the calling thread (one core): every image of the set into one
 * reused batch buffer, repeated until at least `minSeconds` have passed so that short sets still time well.
 */
export function timePreprocessing(testSet: CifarTestSet, config: PreprocessConfig, batchSize: number, minSeconds = 1): PreprocessTiming {
  const preprocess = createCifarPreprocessor(config);
  const imageFloats = 3 * config.imageSize * config.imageSize;
  const buffer = new Float32Array(Math.min(batchSize, testSet.count) * imageFloats);
  const slots = buffer.length / imageFloats;
  const start = performance.now();
  let passes = 0;
  let elapsed = 0;
  do {
    for (let i = 0; i < testSet.count; i += 1) preprocess(testSet.images, i, buffer, (i % slots) * imageFloats);
    passes += 1;
    elapsed = (performance.now() - start) / 1000;
  } while (elapsed < minSeconds);
  const images = passes * testSet.count;
  return { images, passes, seconds: elapsed, imagesPerSecond: images / elapsed };
}

export interface ParallelPreprocessTiming extends PreprocessTiming {
  /** Worker threads the images were spread over (one per core). */
  workers: number;
}

/** CIFAR images per planar job: large enough that a message costs little beside its work. */
const PLANAR_CHUNK = 32;

/**
 * The same CIFAR preprocessing on an ImagePool of `workers` threads (default one per core: nothing
 * else runs meanwhile), in chunks of PLANAR_CHUNK images, two chunks queued per worker, each chunk's
 * floats copied into a batch buffer as the evaluation would; repeated until `minSeconds` have passed.
 */
export async function timePreprocessingAllCores(
  testSet: CifarTestSet,
  config: PreprocessConfig,
  workers: number,
  minSeconds = 1,
): Promise<ParallelPreprocessTiming> {
  const pool = new ImagePool({ workers, jobsPerWorker: 2 });
  try {
    const imageFloats = 3 * config.imageSize * config.imageSize;
    const batch = new Float32Array(PLANAR_CHUNK * imageFloats);
    const chunks = Math.ceil(testSet.count / PLANAR_CHUNK);
    const pass = async () => {
      let next = 0;
      const lane = async () => {
        while (next < chunks) {
          const first = next++ * PLANAR_CHUNK;
          const count = Math.min(PLANAR_CHUNK, testSet.count - first);
          const records = testSet.images.subarray(first * CIFAR_IMAGE_BYTES, (first + count) * CIFAR_IMAGE_BYTES);
          const { pixels } = await pool.preparePlanar({ records, width: 32, height: 32, count, config });
          batch.set(pixels);
          pool.recycle(pixels);
        }
      };
      await Promise.all(Array.from({ length: 2 * workers }, lane));
    };
    await pass(); // starts the workers, outside the clock
    const start = performance.now();
    let passes = 0;
    let elapsed = 0;
    do {
      await pass();
      passes += 1;
      elapsed = (performance.now() - start) / 1000;
    } while (elapsed < minSeconds);
    const images = passes * testSet.count;
    return { images, passes, seconds: elapsed, imagesPerSecond: images / elapsed, workers };
  } finally {
    await pool.close();
  }
}

export interface ImageEncodeTiming {
  images: number;
  batchSize: number;
  /** Time in encode() only: preprocessing is done beforehand, outside the clock. */
  seconds: number;
  imagesPerSecond: number;
  /** The first batch alone, which includes onnxruntime's first-run allocations. */
  firstBatchSeconds: number;
  /** Creating the session (loading and optimising the model). */
  sessionSeconds: number;
}

/**
 * Pure image-encoder throughput: batches of preprocessed images through the real encoder, as the
 * evaluation runs them, counting only the encoder's time. No warm-up batch, as the peer has none.
 */
export async function timeImageEncoding(
  bundle: ModelBundle,
  testSet: CifarTestSet,
  sessionOptions: SessionOptions,
  batchSize: number,
): Promise<ImageEncodeTiming> {
  const sessionStart = performance.now();
  const encoder = await createImageEncoder(bundle, sessionOptions);
  const sessionSeconds = (performance.now() - sessionStart) / 1000;
  try {
    const preprocess = createCifarPreprocessor(bundle.preprocess);
    const step = encoder.fixedBatch ?? batchSize;
    const imageFloats = 3 * encoder.imageSize * encoder.imageSize;
    const buffer = new Float32Array(step * imageFloats);
    let seconds = 0;
    let firstBatchSeconds = 0;
    for (let first = 0; first < testSet.count; first += step) {
      const n = Math.min(step, testSet.count - first);
      for (let i = 0; i < n; i += 1) preprocess(testSet.images, first + i, buffer, i * imageFloats);
      const start = performance.now();
      await encoder.encode(buffer.subarray(0, n * imageFloats), n);
      const batchSeconds = (performance.now() - start) / 1000;
      if (first === 0) firstBatchSeconds = batchSeconds;
      seconds += batchSeconds;
    }
    return { images: testSet.count, batchSize: step, seconds, imagesPerSecond: testSet.count / seconds, firstBatchSeconds, sessionSeconds };
  } finally {
    await encoder.release();
  }
}
