import * as ort from 'onnxruntime-node';
import { loadCifarTestSet, type CifarLoadOptions, type CifarName, type CifarTestSet } from '../../datasets/cifar/cifar.js';
import { computeMetrics } from './metrics.js';
import type { TopK } from './scores.js';
import { selectSubset, type SubsetOptions } from './subset.js';
import { runZeroShot } from './loop.js';
import type { Logger } from '../../core/log.js';
import { resolveModelBundle, type ModelBundle, type Variant } from '../../model/bundle.js';
import { boundedThreads, type Device } from '../../model/session.js';
import { createCifarPreprocessor } from '../../preprocess/transform.js';
import type { DatasetInfo, EvaluationReport, ModelResult } from './result.js';
import { fileDigest } from '../../text/embedding-cache.js';
import type { TemplateSet } from '../../text/templates.js';
import { VERSION } from '../../core/version.js';
import { openZeroShotModel } from './model-setup.js';

/** Which model to evaluate: a bundle (folder or hub id) or explicit files, and a variant. */
export interface ModelChoice {
  model?: string;
  variant?: Variant;
  visionModel?: string;
  textModel?: string;
  tokenizer?: string;
}

export interface CifarEvaluationOptions {
  dataset: CifarName;
  data: Omit<CifarLoadOptions, 'logger' | 'quiet' | 'cacheRoot'>;
  models: ModelChoice[];
  cacheRoot: string;
  device: Device;
  deviceId?: number;
  threads?: number;
  batchSize: number;
  templates: TemplateSet;
  /** False for --no-cache: always run the text encoder, never write the cache. */
  textCache: boolean;
  subset: SubsetOptions;
  offline?: boolean;
  logger: Logger;
  quiet: boolean;
  /**
   * Called once the data set is loaded and the models resolved, before the first image is encoded:
   * the place to refuse a run whose result could not be used (a baseline from other data).
   */
  beforeEncoding?: (run: { dataset: DatasetInfo; bundles: readonly ModelBundle[] }) => void | Promise<void>;
}

export interface CifarEvaluation {
  report: EvaluationReport;
  testSet: CifarTestSet;
  /** Data set indices of the evaluated images, in order. */
  indices: Int32Array;
  /** Fine labels of the evaluated images. */
  labels: Uint8Array;
  /** One per entry of report.results. */
  predictions: TopK[];
}

/** Fine class → super-class, read off the records (CIFAR-100 gives both labels on every image). */
function superclassMap(testSet: CifarTestSet): Int32Array | undefined {
  if (!testSet.coarseLabels) return undefined;
  const map = new Int32Array(testSet.classNames.length).fill(-1);
  for (let i = 0; i < testSet.count; i += 1) map[testSet.labels[i]!] = testSet.coarseLabels[i]!;
  return map;
}

async function evaluateModel(
  bundle: ModelBundle,
  testSet: CifarTestSet,
  indices: Int32Array,
  labels: Uint8Array,
  options: CifarEvaluationOptions,
): Promise<{ result: ModelResult; predictions: TopK }> {
  const start = performance.now();
  const { logger } = options;
  const { classifier, encoder } = await openZeroShotModel({
    bundle,
    classNames: testSet.classNames,
    templates: options.templates.templates,
    session: { device: options.device, deviceId: options.deviceId, threads: options.threads, logger },
    textCacheRoot: options.textCache ? options.cacheRoot : undefined,
    logger,
    quiet: options.quiet,
  });
  try {
    const preprocess = createCifarPreprocessor(bundle.preprocess);
    const run = await runZeroShot({
      encoder,
      weights: classifier.weights,
      count: indices.length,
      fill: (i, out, offset) => preprocess(testSet.images, indices[i]!, out, offset),
      batchSize: options.batchSize,
      labels,
      quiet: options.quiet,
      progressLabel: `${testSet.name} ${bundle.variant}`,
    });
    const metrics = computeMetrics({
      labels,
      predictions: run.predictions,
      classNames: testSet.classNames,
      superclassOf: superclassMap(testSet),
    });
    const files = await Promise.all(
      ([['vision', bundle.visionModelPath], ['text', bundle.textModelPath], ['tokenizer', bundle.tokenizerPath]] as const).map(
        async ([role, path]) => ({ role, path, sha256: await fileDigest(path, options.cacheRoot, logger) }),
      ),
    );
    const result: ModelResult = {
      model: { id: bundle.id, layout: bundle.layout, variant: bundle.variant, embeddingDim: encoder.embeddingDim, files, imageEncoder: encoder.describe() },
      device: options.device === 'cpu' ? 'cpu' : `${options.device}:${options.deviceId ?? 0}`,
      metrics,
      timing: {
        wallSeconds: (performance.now() - start) / 1000,
        imageSeconds: run.seconds,
        imagesPerSecond: run.imagesPerSecond,
        textSeconds: classifier.seconds,
        textEmbeddings: classifier.cached ? 'cached' : 'computed',
        ...(classifier.promptsPerSecond !== undefined ? { promptsPerSecond: classifier.promptsPerSecond } : {}),
      },
    };
    return { result, predictions: run.predictions };
  } finally {
    await encoder.release();
  }
}

/** The main job: zero-shot top-1/top-5 of one or more models on a CIFAR test set, from one data load. */
export async function evaluateCifar(evaluationOptions: CifarEvaluationOptions): Promise<CifarEvaluation> {
  const { logger } = evaluationOptions;
  // Once per run, not per model: one warning, and the report says how many threads ran.
  const options = { ...evaluationOptions, threads: boundedThreads(evaluationOptions.threads, logger) };
  const bundles: ModelBundle[] = [];
  for (const choice of options.models) {
    bundles.push(await resolveModelBundle({ ...choice, cacheRoot: options.cacheRoot, offline: options.offline, quiet: options.quiet, logger }));
  }
  const testSet = await loadCifarTestSet(options.dataset, { ...options.data, cacheRoot: options.cacheRoot, offline: options.offline, quiet: options.quiet, logger });
  const indices = selectSubset(testSet.labels, options.subset);
  const labels = Uint8Array.from(indices, (i) => testSet.labels[i]!);
  const dataset: DatasetInfo = {
    name: options.dataset,
    split: 'test',
    images: indices.length,
    totalImages: testSet.count,
    sha256: testSet.source.sha256,
    files: testSet.source.files,
    subset: { ...options.subset },
  };
  await options.beforeEncoding?.({ dataset, bundles });
  const results: ModelResult[] = [];
  const predictions: TopK[] = [];
  for (const bundle of bundles) {
    const evaluation = await evaluateModel(bundle, testSet, indices, labels, options);
    results.push(evaluation.result);
    predictions.push(evaluation.predictions);
  }
  const report: EvaluationReport = {
    schema: 'clip-eval/evaluation@1',
    tool: { name: 'clip-eval', version: VERSION, node: process.version, onnxruntime: ort.env.versions.common },
    createdAt: new Date().toISOString(),
    dataset,
    templates: { name: options.templates.name, templates: options.templates.templates },
    options: { batchSize: options.batchSize, threads: options.threads, device: options.device, deviceId: options.deviceId },
    results,
  };
  return { report, testSet, indices, labels, predictions };
}
