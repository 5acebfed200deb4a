import type { ProbabilityHead } from '../../families/family.js';
import { probabilityHead } from '../../families/registry.js';
import { describeError, inputError, usageError } from '../../core/errors.js';
import { createTopK, labelProbabilities, roundLogit, scoreImages } from './scores.js';
import { runZeroShot } from './loop.js';
import type { ModelChoice } from './evaluate.js';
import type { ImageInput } from '../../datasets/image-files.js';
import { validateLabels } from '../../text/labels.js';
import type { Logger } from '../../core/log.js';
import { resolveModelBundle, type ModelBundle } from '../../model/bundle.js';
import type { Device } from '../../model/session.js';
import type { DecodeOptions } from '../../preprocess/decode.js';
import { ImageJobError, ImagePool } from '../../preprocess/image-pool.js';
import { DEFAULT_IMAGE_MEMORY_BYTES, MemoryBudget } from '../../preprocess/memory-budget.js';
import type { ImageClassification, LabelScore } from './classification.js';
import { validateTemplates } from '../../text/templates.js';
import { bytesContentKey, fileContentKey } from './image-content.js';
import type { ImageContentKey, ImageEmbeddingCache } from '../../model/image-embedding-cache.js';
import type { PreprocessConfig } from '../../preprocess/config.js';
import { openImageQueryModel, openZeroShotModel, type ZeroShotModel } from './model-setup.js';

export interface ClassifyOptions {
  images: readonly ImageInput[];
  labels: readonly string[];
  /** Prompt templates, each with "{}"; several are ensembled as in evaluation. */
  templates: readonly string[];
  model: ModelChoice;
  cacheRoot: string;
  device: Device;
  deviceId?: number;
  threads?: number;
  batchSize: number;
  /** Labels per image in the result, best first; capped at the number of labels. */
  top: number;
  /** False for --no-cache: always run the text encoder, never write the cache. */
  textCache: boolean;
  /** False for --no-cache: encode every image, never write the cache. */
  imageCache: boolean;
  decode?: Omit<DecodeOptions, 'reserve'>;
  /**
   * Bytes the images being prepared may hold at once (files read and decoded pixels, over the batch
   * and the next one), default DEFAULT_IMAGE_MEMORY_BYTES: large photos are then prepared a few at a time.
   */
  imageMemoryBytes?: number;
  /** Worker threads that decode and preprocess the images (default defaultImageWorkers()). */
  imageWorkers?: number;
  offline?: boolean;
  logger: Logger;
  /** No progress output at all (downloads, text encoder, images). */
  quiet: boolean;
  /** The model family by name (clip, siglip, siglip2); undefined: each bundle's is detected from its files. */
  family?: string;
  /** Show the image loop's progress (callers turn it off when results stream to the same terminal). */
  imageProgress?: boolean;
  /**
   * Whether the probabilities are the family's own (default true); false when only the similarities
   * are used (search), so that a sigmoid family's full graph is not read for its learned head.
   */
  familyProbabilities?: boolean;
  /** What the image loop's progress line is headed with (default "classify"; search says "search"). */
  progressLabel?: string;
  /** Called with each image's result in input order, as soon as its batch is done. */
  onResult?: (result: ImageClassification, index: number) => void;
}

export interface ClassificationRun {
  /** One per input image, in input order. */
  results: ImageClassification[];
  classified: number;
  failed: number;
  /** Seconds of the image loop (decoding, preprocessing, encoding, scoring). */
  seconds: number;
  imagesPerSecond: number;
  bundle: ModelBundle;
  /** True when the label embeddings came from the cache. */
  textEmbeddingsCached: boolean;
  /** Images whose embeddings came from the cache. */
  imagesCached: number;
  /** The most bytes images being prepared held at once (see imageMemoryBytes). */
  peakImageBytes: number;
}

function checkOptions(options: ClassifyOptions): void {
  validateLabels(options.labels, 'labels');
  validateTemplates(options.templates, 'templates');
  if (!Number.isInteger(options.top) || options.top < 1) throw usageError('expected a positive whole number', { input: { name: 'top', value: String(options.top) } });
  checkRunOptions(options);
}

function checkRunOptions(options: Pick<ClassifyOptions, 'imageMemoryBytes' | 'batchSize'>): void {
  if (options.imageMemoryBytes !== undefined && (!Number.isSafeInteger(options.imageMemoryBytes) || options.imageMemoryBytes < 1)) {
    throw usageError(`image memory ${options.imageMemoryBytes}: expected a positive whole number of bytes`);
  }
  if (!Number.isInteger(options.batchSize) || options.batchSize < 1) {
    throw usageError('expected a positive whole number', { input: { name: 'batchSize', value: String(options.batchSize) } });
  }
}

/**
 * Top-k of each image in a batch, with the family's probabilities over all labels' logits (CLIP's
 * logits_per_image.softmax, SigLIP's per-label sigmoid), not just the k shown.
 */
function scoreBatch(embeddings: Float32Array, count: number, weights: Float32Array, dim: number, labels: readonly string[], k: number, head: ProbabilityHead): LabelScore[][] {
  const classCount = labels.length;
  const best = createTopK(count, k);
  const logits = new Float32Array(count * classCount);
  scoreImages(embeddings, count, weights, dim, best, 0, logits);
  return Array.from({ length: count }, (_, n) => {
    const probabilities = labelProbabilities(head, logits.subarray(n * classCount, (n + 1) * classCount));
    return Array.from({ length: k }, (_, slot) => {
      const label = best.classes[n * k + slot]!;
      return { label: labels[label]!, probability: probabilities[label]!, logit: roundLogit(best.logits[n * k + slot]!) };
    });
  });
}

/** What the image's one-line errors call it. */
function decodeLabel(input: ReadableImage): string {
  return 'bytes' in input ? 'standard input' : input.file;
}

/** An image input that names something to read (not one known to be unusable). */
type ReadableImage = Exclude<ImageInput, { error: string }>;

/** What reading an image needs besides the image: one run's cache, decoding and worker pool. */
interface ImageReading {
  imageCache: ImageEmbeddingCache | undefined;
  cacheRoot: string;
  decode: ClassifyOptions['decode'];
  preprocess: PreprocessConfig;
  pool: ImagePool;
  memory: MemoryBudget;
}

/**
 * An image's cached embedding (when it has `dim` floats; undefined: any), or else its preprocessed
 * pixels written into `out` at `offset`, with the cache key to store its embedding under when its bytes
 * were hashed as they were decoded. An image that cannot be read throws an ImageJobError naming it.
 */
async function readImage(input: ReadableImage, reading: ImageReading, dim: number | undefined, out: Float32Array, offset: number): Promise<{ embedding: Float32Array } | { content?: ImageContentKey }> {
  const { imageCache, memory, pool } = reading;
  // Leases are taken in image order (before any await), so the earliest image is never kept waiting.
  const lease = memory.lease();
  try {
    const content = !imageCache ? undefined : 'bytes' in input ? bytesContentKey(input.bytes) : await fileContentKey(input.path, reading.cacheRoot, reading.decode?.maxFileBytes);
    const embedding = content ? await imageCache!.read(content) : undefined;
    if (embedding && (dim === undefined || embedding.length === dim)) return { embedding };
    const { pixels, sha256 } = await pool.prepare({
      source: 'bytes' in input ? { bytes: input.bytes } : { path: input.path },
      label: decodeLabel(input),
      config: reading.preprocess,
      decode: reading.decode,
      // Hashed again as it is decoded: an embedding is cached only under the bytes it came from.
      digest: content !== undefined,
      memory: { budget: memory.shared, lease },
    });
    out.set(pixels, offset);
    pool.recycle(pixels);
    return content && 'bytesSha256' in content && sha256 === content.bytesSha256 ? { content } : {};
  } finally {
    lease.release();
  }
}

/**
 * Zero-shot classification of image files against free-form labels: the label embeddings as the
 * evaluation builds them (same templates, ensembling and cache), the images decoded and preprocessed
 * by the evaluation's reference-exact code and encoded in batches. An image that cannot be read gets
 * an error result naming it; the others are still classified.
 */
export async function classifyImages(options: ClassifyOptions): Promise<ClassificationRun> {
  checkOptions(options);
  const bundle = await resolveModelBundle({ ...options.model, cacheRoot: options.cacheRoot, offline: options.offline, quiet: options.quiet, logger: options.logger });
  return classifyWith(options, bundle, options.labels, () =>
    openZeroShotModel({
      bundle,
      classNames: options.labels,
      templates: options.templates,
      session: sessionOptions(options),
      textCacheRoot: options.textCache ? options.cacheRoot : undefined,
      imageCacheRoot: options.imageCache ? options.cacheRoot : undefined,
      imageDecode: options.decode,
      family: options.family,
      logger: options.logger,
      quiet: options.quiet,
    }),
  );
}

export interface ImageQueryOptions extends Omit<ClassifyOptions, 'labels' | 'templates' | 'textCache' | 'top'> {
  /** The image the others are scored against; the results' one label is its `file`. */
  query: ReadableImage;
}

/**
 * Scores images by the cosine similarity of their embeddings to a query image's (search by image), each
 * image read, decoded and cached as classifyImages reads it, the query too. Only the vision model is
 * resolved and loaded. A query that cannot be read is an error naming it; the other images' failures
 * are results, as in classifyImages.
 */
export async function classifyByImage(options: ImageQueryOptions): Promise<ClassificationRun> {
  checkRunOptions(options);
  const { query, logger } = options;
  const bundle = await resolveModelBundle({ ...options.model, cacheRoot: options.cacheRoot, offline: options.offline, quiet: options.quiet, logger, needText: false });
  return classifyWith({ ...options, top: 1 }, bundle, [query.file], (reading) =>
    openImageQueryModel({
      bundle,
      label: query.file,
      session: sessionOptions(options),
      imageCacheRoot: options.imageCache ? options.cacheRoot : undefined,
      imageDecode: options.decode,
      logger,
      quiet: options.quiet,
      embedQuery: async (imageCache, openEncoder) => {
        const pixels = new Float32Array(3 * bundle.preprocess.imageSize ** 2);
        let read: Awaited<ReturnType<typeof readImage>>;
        try {
          read = await readImage(query, { ...reading, imageCache }, undefined, pixels, 0);
        } catch (error) {
          if (!(error instanceof ImageJobError)) throw error;
          throw inputError(`query image ${describeError(error)}`, error);
        }
        if ('embedding' in read) {
          logger.debug('query image embedding: cached');
          return read.embedding;
        }
        const embedding = await (await openEncoder()).encode(pixels, 1);
        logger.debug('query image embedding: encoded');
        if (read.content) await imageCache!.write(read.content, embedding);
        return embedding;
      },
    }),
  );
}

function sessionOptions(options: Pick<ClassifyOptions, 'device' | 'deviceId' | 'threads' | 'logger'>) {
  return { device: options.device, deviceId: options.deviceId, threads: options.threads, logger: options.logger };
}

/**
 * Classifies `options.images` against the classes of the model `openModel` opens (given what it needs
 * to read an image the run's way), `labels` naming them; the model's encoder is released at the end.
 */
async function classifyWith(
  options: Omit<ClassifyOptions, 'labels' | 'templates' | 'textCache'>,
  bundle: ModelBundle,
  labels: readonly string[],
  openModel: (reading: Omit<ImageReading, 'imageCache'>) => Promise<ZeroShotModel>,
): Promise<ClassificationRun> {
  const { images } = options;
  const memory = new MemoryBudget(options.imageMemoryBytes ?? DEFAULT_IMAGE_MEMORY_BYTES);
  const pool = new ImagePool(options.imageWorkers !== undefined ? { workers: options.imageWorkers } : {});
  const common = { cacheRoot: options.cacheRoot, decode: options.decode, preprocess: bundle.preprocess, pool, memory };
  let model: ZeroShotModel | undefined;
  try {
    model = await openModel(common);
    const { classifier, encoder, imageCache } = model;
    const head: ProbabilityHead =
      classifier.family === undefined || options.familyProbabilities === false ? { kind: 'softmax' } : await probabilityHead(bundle, classifier.family, options.logger);
    const reading: ImageReading = { ...common, imageCache };
    // Hits before the loop (the query image's) are not the images' own.
    const hitsBefore = imageCache?.hits ?? 0;
    const k = Math.min(options.top, labels.length);
    const errors: (string | undefined)[] = new Array(images.length);
    const results: ImageClassification[] = new Array(images.length);
    /** The cache key of each image encoded whose bytes were hashed as they were decoded. */
    const contents: (ImageContentKey | undefined)[] = new Array(images.length);
    const run = await runZeroShot({
      encoder,
      weights: classifier.weights,
      count: images.length,
      batchSize: options.batchSize,
      k,
      quiet: options.quiet || !(options.imageProgress ?? true),
      progressLabel: options.progressLabel ?? 'classify',
      // A failed image gets a blank embedding instead of being encoded; it is never reported.
      fill: async (i, out, offset) => {
        const input = images[i]!;
        if ('error' in input) {
          errors[i] = input.error;
          return new Float32Array(classifier.dim);
        }
        try {
          const read = await readImage(input, reading, classifier.dim, out, offset);
          if ('embedding' in read) return read.embedding;
          contents[i] = read.content;
        } catch (error) {
          if (!(error instanceof ImageJobError)) throw error;
          errors[i] = describeError(error);
          return new Float32Array(classifier.dim);
        }
      },
      ...(imageCache
        ? {
            store: async (i: number, embedding: Float32Array) => {
              const content = contents[i];
              if (content) await imageCache.write(content, embedding);
            },
          }
        : {}),
      onEmbeddings: (first, count, embeddings) => {
        const scores = scoreBatch(embeddings, count, classifier.weights, classifier.dim, labels, k, head);
        for (let n = 0; n < count; n += 1) {
          const index = first + n;
          const { file } = images[index]!;
          const error = errors[index];
          results[index] = error === undefined ? { file, top: scores[n]! } : { file, error };
          options.onResult?.(results[index]!, index);
        }
      },
    });
    const failed = errors.filter((error) => error !== undefined).length;
    return {
      results,
      classified: images.length - failed,
      failed,
      seconds: run.seconds,
      imagesPerSecond: run.imagesPerSecond,
      bundle,
      textEmbeddingsCached: classifier.cached,
      imagesCached: (imageCache?.hits ?? 0) - hitsBefore,
      peakImageBytes: memory.peak,
    };
  } finally {
    await pool.close();
    await model?.encoder.release();
  }
}
