import { createHash } from 'node:crypto';
import { inputError } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import type { Dataset, Sample } from '../../datasets/dataset.js';
import type { ModelBundle } from '../../model/bundle.js';
import { assertEmbeddingDimsMatch, createImageEncoder } from '../../model/encoders.js';
import { boundedThreads, type Device } from '../../model/session.js';
import type { DecodeOptions } from '../../preprocess/decode.js';
import { ImagePool } from '../../preprocess/image-pool.js';
import { DEFAULT_IMAGE_MEMORY_BYTES, MemoryBudget } from '../../preprocess/memory-budget.js';
import { runZeroShotStream } from '../zero-shot/loop.js';
import { bundleClassifier } from '../zero-shot/model-setup.js';
import { SampleBatches } from '../zero-shot/sample-batches.js';
import { computeRetrieval, type RetrievalScores } from './metrics.js';

/** The one placeholder-only template: each caption is encoded as it is written. */
const CAPTION_AS_IS = ['{}'];

export interface RetrievalOptions {
  /** A data set whose samples carry captions. */
  dataset: Dataset;
  bundle: ModelBundle;
  cacheRoot: string;
  device: Device;
  deviceId?: number;
  threads?: number;
  batchSize: number;
  /** The model family by name (clip, siglip, siglip2); undefined: each bundle's is detected from its files. */
  family?: string;
  /** False for --no-cache: always run the text encoder, never write the cache. */
  textCache: boolean;
  ks: readonly number[];
  /** Best images kept per caption (for per-caption outputs); 0 keeps none. */
  top: number;
  decode?: Omit<DecodeOptions, 'reserve'>;
  imageMemoryBytes?: number;
  imageWorkers?: number;
  logger: Logger;
  quiet: boolean;
  /**
   * Told what streamed (the image and caption counts and the data digest) before any caption is
   * encoded; it may throw to stop the run (a baseline from another copy of the data).
   */
  afterStreaming?: (data: RetrievalData) => void | Promise<void>;
}

export interface RetrievalData {
  images: number;
  captions: number;
  /** sha256 of what streamed: each image's id and bytes and its captions. */
  sha256: string;
}

/** Versioned, so that a change to what is digested can never match an old baseline. */
const DIGEST_VERSION = 'clip-eval retrieval digest 1\n';

export interface RetrievalRun {
  scores: RetrievalScores;
  /** Sample ids of the images, in data set order. */
  imageIds: string[];
  captions: string[];
  /** Caption index → its image's index. */
  captionImage: Int32Array;
  embeddingDim: number;
  /** The model family whose text rules encoded the captions. */
  family: string;
  sha256: string;
  timing: {
    wallSeconds: number;
    imageSeconds: number;
    imagesPerSecond: number;
    textSeconds: number;
    textEmbeddings: 'cached' | 'computed';
    similaritySeconds: number;
  };
}

/**
 * Text-image retrieval on one model: the images stream through the image encoder (as zero-shot's do,
 * decoded on the worker pool) while their captions are collected; then every caption is encoded on its
 * own (through the text side and its cache) and the two sets are ranked against each other.
 */
export async function runRetrieval(options: RetrievalOptions): Promise<RetrievalRun> {
  const start = performance.now();
  const { dataset, bundle, logger } = options;
  const session = { device: options.device, deviceId: options.deviceId, threads: boundedThreads(options.threads, logger), logger };
  const captions: string[] = [];
  const captionImageList: number[] = [];
  let images = 0;
  // SampleBatches checks labels against class names; retrieval has none, so every image is "class 0".
  const imagesOnly: Dataset = {
    ...dataset,
    classNames: ['image'],
    samples: () => withCaptions(dataset, (sample) => {
      for (const caption of sample.captions!) {
        captions.push(caption);
        captionImageList.push(images);
      }
      images += 1;
    }),
  };
  const pool = new ImagePool(options.imageWorkers !== undefined ? { workers: options.imageWorkers } : {});
  const embeddings: Float32Array[] = [];
  let imageRun;
  let stream: SampleBatches;
  const encoder = await createImageEncoder(bundle, session);
  try {
    logger.debug(`image encoder: ${encoder.describe()}`);
    stream = new SampleBatches({
      dataset: imagesOnly,
      preprocess: bundle.preprocess,
      subset: {},
      memory: new MemoryBudget(options.imageMemoryBytes ?? DEFAULT_IMAGE_MEMORY_BYTES),
      decode: options.decode,
      pool,
      skipUnreadable: false,
      keepIds: true,
      digest: true,
    });
    try {
      imageRun = await runZeroShotStream({
        encoder,
        // No classes: the images are only encoded, their embeddings kept below.
        weights: new Float32Array(0),
        source: stream,
        expected: dataset.size,
        batchSize: options.batchSize,
        quiet: options.quiet,
        progressLabel: `${dataset.name} ${bundle.variant}`,
        onEmbeddings: (_first, count, batch) => embeddings.push(batch.slice(0, count * encoder.embeddingDim)),
      });
    } finally {
      await stream.close();
    }
  } finally {
    await encoder.release();
    await pool.close();
  }
  if (images === 0) throw inputError(`${dataset.name}: no images with captions`);
  const digest = createHash('sha256').update(DIGEST_VERSION).update(`${stream.digest()!}\n`);
  captions.forEach((caption, c) => digest.update(`${captionImageList[c]!} ${JSON.stringify(caption)}\n`));
  const sha256 = digest.digest('hex');
  await options.afterStreaming?.({ images, captions: captions.length, sha256 });

  const text = await bundleClassifier(bundle, {
    classNames: captions,
    templates: CAPTION_AS_IS,
    session,
    textCacheRoot: options.textCache ? options.cacheRoot : undefined,
    family: options.family,
    logger,
    quiet: options.quiet,
  });
  assertEmbeddingDimsMatch(bundle, encoder.embeddingDim, text.dim);

  const imageEmbeddings = new Float32Array(images * encoder.embeddingDim);
  let offset = 0;
  for (const batch of embeddings) {
    imageEmbeddings.set(batch, offset);
    offset += batch.length;
  }
  const captionImage = Int32Array.from(captionImageList);
  const similarityStart = performance.now();
  const scores = await computeRetrieval({ images: imageEmbeddings, captions: text.weights, dim: text.dim, captionImage, ks: options.ks, top: options.top });
  const similaritySeconds = (performance.now() - similarityStart) / 1000;
  return {
    scores,
    imageIds: stream.ids,
    captions,
    captionImage,
    embeddingDim: text.dim,
    family: text.family,
    sha256,
    timing: {
      wallSeconds: (performance.now() - start) / 1000,
      imageSeconds: imageRun.seconds,
      imagesPerSecond: imageRun.imagesPerSecond,
      textSeconds: text.seconds,
      textEmbeddings: text.cached ? 'cached' : 'computed',
      similaritySeconds,
    },
  };
}

/** The data set's samples as images of class 0, each told to `onSample` first; a sample without captions is an error. */
async function* withCaptions(dataset: Dataset, onSample: (sample: Sample) => void): AsyncIterable<Sample> {
  for await (const sample of dataset.samples()) {
    if (!sample.captions || sample.captions.length === 0) {
      throw inputError(`${dataset.name}: sample ${sample.id} has no captions; retrieval needs one or more captions per image`);
    }
    onSample(sample);
    yield { ...sample, label: 0 };
  }
}
