import { inputError } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import type { Dataset } from '../../datasets/dataset.js';
import { resolveModelBundle, type ModelBundle, type Variant } from '../../model/bundle.js';
import type { ImageEmbeddingCache } from '../../model/image-embedding-cache.js';
import { boundedThreads, deviceLabel, type Device } from '../../model/session.js';
import type { DecodeOptions } from '../../preprocess/decode.js';
import { ImagePool } from '../../preprocess/image-pool.js';
import { DEFAULT_IMAGE_MEMORY_BYTES, MemoryBudget } from '../../preprocess/memory-budget.js';
import type { TemplateSet } from '../../text/templates.js';
import { modelFiles, toolInfo } from '../provenance.js';
import { pairedComparisons, topOneCorrect } from './comparisons.js';
import { runZeroShotStream } from './loop.js';
import { computeMetrics } from './metrics.js';
import { openZeroShotModel } from './model-setup.js';
import type { DatasetInfo, EvaluationReport, ImageEmbeddingState, ModelResult } from './result.js';
import { SampleBatches } from './sample-batches.js';
import type { TopK } from './scores.js';
import type { SubsetOptions } from './subset.js';

/** Which model to evaluate: a bundle (folder or hub id) or explicit files, and a variant. */
export interface ModelChoice {
  model?: string;
  variant?: Variant;
  visionModel?: string;
  textModel?: string;
  tokenizer?: string;
}

/** What is known of the data before the first image is encoded; the rest comes with the stream. */
export interface DatasetPreview {
  name: string;
  split: string;
  classes: number;
  subset: SubsetOptions;
  /** Known up front only when the data set says it (CIFAR: its files' digest). */
  sha256?: string;
}

export interface DatasetEvaluationOptions {
  dataset: Dataset;
  /** The models, resolved (see resolveModels); each is evaluated on the same images. */
  bundles: readonly ModelBundle[];
  cacheRoot: string;
  device: Device;
  deviceId?: number;
  threads?: number;
  batchSize: number;
  templates: TemplateSet;
  /** The model family by name (clip, siglip, siglip2); undefined: each bundle's is detected from its files. */
  family?: string;
  /** False for --no-cache: always run the text encoder, never write the cache. */
  textCache: boolean;
  /** False for --no-cache: encode every image, never write the cache. */
  imageCache: boolean;
  subset: SubsetOptions;
  /** Skip (and count) images that cannot be read or decoded; by default the first one fails the run. */
  skipUnreadable?: boolean;
  decode?: Omit<DecodeOptions, 'reserve'>;
  /** Bytes the images being decoded may hold at once (default DEFAULT_IMAGE_MEMORY_BYTES). */
  imageMemoryBytes?: number;
  /** Worker threads that decode and preprocess encoded images (default defaultImageWorkers()). */
  imageWorkers?: number;
  logger: Logger;
  quiet: boolean;
  /**
   * Called once the models are resolved, before the first image is encoded: the place to refuse a run
   * whose result could not be used (a baseline from other data), as far as the data is known then.
   */
  beforeEncoding?: (run: { dataset: DatasetPreview; bundles: readonly ModelBundle[] }) => void | Promise<void>;
  /**
   * Called once the data has streamed through the first model, with all that describes it (the images
   * evaluated and, for a data set without an up-front digest, the digest of what streamed), before any
   * other model runs and before the report exists: the place for the checks that need the whole data.
   */
  afterStreaming?: (run: { dataset: DatasetInfo; bundles: readonly ModelBundle[] }) => void | Promise<void>;
}

export interface DatasetEvaluation {
  report: EvaluationReport;
  /** Sample ids of the evaluated images, in evaluation order. */
  ids: readonly string[];
  /** Labels of the evaluated images. */
  labels: Int32Array;
  /** One per entry of report.results. */
  predictions: TopK[];
  /** Per entry of report.results, 1 for each image whose top-1 class is its label. */
  correct: Uint8Array[];
}

/** Resolves (and fetches where needed) every model of a run, before any data is read. */
export async function resolveModels(
  choices: readonly ModelChoice[],
  options: { cacheRoot: string; offline?: boolean; quiet: boolean; logger: Logger },
): Promise<ModelBundle[]> {
  const bundles: ModelBundle[] = [];
  for (const choice of choices) bundles.push(await resolveModelBundle({ ...choice, ...options }));
  return bundles;
}

/** One model's pass over the data: what it scored and what streamed. */
interface ModelPass {
  result: ModelResult;
  predictions: TopK;
  stream: SampleBatches;
  digest?: string;
}

async function evaluateModel(bundle: ModelBundle, options: DatasetEvaluationOptions, pool: ImagePool, first: boolean): Promise<ModelPass> {
  const start = performance.now();
  const { logger, dataset } = options;
  const { classifier, encoder, imageCache } = await openZeroShotModel({
    bundle,
    classNames: dataset.classNames,
    templates: options.templates.templates,
    session: { device: options.device, deviceId: options.deviceId, threads: options.threads, logger },
    textCacheRoot: options.textCache ? options.cacheRoot : undefined,
    imageCacheRoot: options.imageCache ? options.cacheRoot : undefined,
    imageDecode: options.decode,
    family: options.family,
    logger,
    quiet: options.quiet,
  });
  const stream = new SampleBatches({
    dataset,
    preprocess: bundle.preprocess,
    subset: options.subset,
    memory: new MemoryBudget(options.imageMemoryBytes ?? DEFAULT_IMAGE_MEMORY_BYTES),
    decode: options.decode,
    pool,
    skipUnreadable: options.skipUnreadable ?? false,
    keepIds: first,
    digest: dataset.sha256 === undefined,
    // Every model sees the same images: say which were skipped once.
    onSkipped: first ? (message) => logger.warn(`skipped: ${message}`) : undefined,
    ...(imageCache ? { imageCache: { cache: imageCache, dim: classifier.dim, cacheRoot: options.cacheRoot } } : {}),
  });
  try {
    const run = await runZeroShotStream({
      encoder,
      weights: classifier.weights,
      source: stream,
      expected: expectedImages(dataset, options.subset),
      batchSize: options.batchSize,
      labelOf: (i) => stream.labels.values[i]!,
      quiet: options.quiet,
      progressLabel: `${dataset.name} ${bundle.variant}`,
    });
    const metrics = computeMetrics({
      labels: stream.labels.toArray(),
      predictions: run.predictions,
      classNames: dataset.classNames,
      superclassOf: dataset.superclasses?.of,
    });
    // With the caches off (--no-cache) no digest is remembered either.
    const files = await modelFiles(bundle, options.textCache || options.imageCache ? options.cacheRoot : undefined, logger);
    const result: ModelResult = {
      model: { id: bundle.id, layout: bundle.layout, ...(classifier.family !== undefined ? { family: classifier.family } : {}), variant: bundle.variant, embeddingDim: encoder.embeddingDim, files, imageEncoder: encoder.describe() },
      device: deviceLabel(options),
      metrics,
      timing: {
        wallSeconds: (performance.now() - start) / 1000,
        imageSeconds: run.seconds,
        imagesPerSecond: run.imagesPerSecond,
        textSeconds: classifier.seconds,
        textEmbeddings: classifier.cached ? 'cached' : 'computed',
        imageEmbeddings: imageEmbeddingState(imageCache),
        ...(classifier.promptsPerSecond !== undefined ? { promptsPerSecond: classifier.promptsPerSecond } : {}),
      },
    };
    return { result, predictions: run.predictions, stream, digest: stream.digest() };
  } finally {
    await stream.close();
    await encoder.release();
  }
}

/** Whether the images' embeddings came from the cache: all of them, some, or none. */
export function imageEmbeddingState(cache: ImageEmbeddingCache | undefined): ImageEmbeddingState {
  if (!cache || cache.hits === 0) return 'computed';
  return cache.misses === 0 ? 'cached' : 'partly cached';
}

/** The images a run will evaluate, as far as it can tell before streaming (for the progress line). */
function expectedImages(dataset: Dataset, subset: SubsetOptions): number | undefined {
  if (dataset.size === undefined) return subset.limit;
  let expected = dataset.size;
  if (subset.perClass !== undefined) expected = Math.min(expected, subset.perClass * dataset.classNames.length);
  if (subset.limit !== undefined) expected = Math.min(expected, subset.limit);
  return expected;
}

/** The data a pass evaluated, as the report describes it. */
function describeData(dataset: Dataset, pass: ModelPass, subset: SubsetOptions): DatasetInfo {
  const { stream } = pass;
  const totalImages = dataset.size ?? (stream.exhausted ? stream.streamed : undefined);
  return {
    name: dataset.name,
    split: dataset.split,
    classes: dataset.classNames.length,
    images: pass.result.metrics.images,
    ...(totalImages !== undefined ? { totalImages } : {}),
    skipped: stream.skipped,
    sha256: dataset.sha256 ?? pass.digest!,
    ...(dataset.files ? { files: { ...dataset.files } } : {}),
    subset: { ...subset },
  };
}

/**
 * The main job: zero-shot top-1/top-5 of one or more models on any data set. The samples stream
 * through once per model: each model has its own preprocessing (size, crop, normalisation), so its
 * pixels cannot be shared, and one model's sessions in memory at a time keep the peak the same for
 * any number of models. Every later pass must see the data the first one saw.
 */
export async function evaluateDataset(evaluationOptions: DatasetEvaluationOptions): Promise<DatasetEvaluation> {
  const { logger, dataset } = evaluationOptions;
  if (dataset.classNames.length === 0) throw inputError(`${dataset.name}: no class names, so nothing to classify (a data set of captions is for retrieval)`);
  // Once per run, not per model: one warning, and the report says how many threads ran.
  const options = { ...evaluationOptions, threads: boundedThreads(evaluationOptions.threads, logger) };
  const { bundles } = options;
  const preview: DatasetPreview = {
    name: dataset.name,
    split: dataset.split,
    classes: dataset.classNames.length,
    subset: { ...options.subset },
    ...(dataset.sha256 !== undefined ? { sha256: dataset.sha256 } : {}),
  };
  await options.beforeEncoding?.({ dataset: preview, bundles });
  const results: ModelResult[] = [];
  const predictions: TopK[] = [];
  const correct: Uint8Array[] = [];
  let data: DatasetInfo | undefined;
  let firstPass: ModelPass | undefined;
  // Its workers start with the first encoded image (none for CIFAR's planar samples) and serve every model.
  const pool = new ImagePool(options.imageWorkers !== undefined ? { workers: options.imageWorkers } : {});
  try {
    for (const bundle of bundles) {
      const pass = await evaluateModel(bundle, options, pool, firstPass === undefined);
      if (firstPass === undefined) {
        firstPass = pass;
        if (pass.result.metrics.images === 0) throw noImagesError(dataset, pass.stream);
        data = describeData(dataset, pass, options.subset);
        await options.afterStreaming?.({ dataset: data, bundles });
      } else if (!samePass(firstPass, pass)) {
        throw inputError(`data set ${dataset.name}: changed while it was evaluated (${bundle.id} [${bundle.variant}] saw other images or labels than the first model); evaluate again`);
      }
      results.push(pass.result);
      predictions.push(pass.predictions);
      correct.push(topOneCorrect(pass.stream.labels.toArray(), pass.predictions));
    }
  } finally {
    await pool.close();
  }
  const report: EvaluationReport = {
    schema: 'clip-eval/evaluation@1',
    tool: toolInfo(),
    createdAt: new Date().toISOString(),
    dataset: data!,
    templates: { name: options.templates.name, templates: options.templates.templates },
    options: { batchSize: options.batchSize, threads: options.threads, device: options.device, deviceId: options.deviceId },
    results,
    ...(results.length > 1 ? { comparisons: pairedComparisons(correct) } : {}),
  };
  return { report, ids: firstPass!.stream.ids, labels: firstPass!.stream.labels.toArray(), predictions, correct };
}

function noImagesError(dataset: Dataset, stream: SampleBatches): Error {
  if (stream.skipped > 0) return inputError(`data set ${dataset.name}: none of the ${stream.skipped} chosen images could be read`);
  return inputError(`data set ${dataset.name}: has no images (split ${dataset.split})`);
}

function samePass(a: ModelPass, b: ModelPass): boolean {
  if (a.digest !== b.digest || a.stream.skipped !== b.stream.skipped) return false;
  const x = a.stream.labels;
  const y = b.stream.labels;
  if (x.length !== y.length) return false;
  for (let i = 0; i < x.length; i += 1) if (x.values[i] !== y.values[i]) return false;
  return true;
}
