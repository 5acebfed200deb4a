import type { ModelFile, ToolInfo } from '../provenance.js';
import type { Metrics } from './metrics.js';

/** Whether a run's image embeddings came from the cache: all, some, or none of them. */
export type ImageEmbeddingState = 'cached' | 'partly cached' | 'computed';

/** What one model (or variant) scored on one data set: the unit of every report. */
export interface ModelResult {
  model: {
    id: string;
    layout: string;
    /** The model family ("clip", "siglip", "siglip2"); absent in reports from before families. */
    family?: string;
    variant: string;
    embeddingDim: number;
    files: ModelFile[];
    /** How the image encoder was mapped: inputs, outputs, normalisation. */
    imageEncoder: string;
  };
  device: string;
  metrics: Metrics;
  timing: {
    wallSeconds: number;
    imageSeconds: number;
    imagesPerSecond: number;
    textSeconds: number;
    textEmbeddings: 'cached' | 'computed';
    /** Absent in reports from before the image-embedding cache. */
    imageEmbeddings?: ImageEmbeddingState;
    promptsPerSecond?: number;
  };
}

export interface DatasetInfo {
  /** The spec as given ("cifar100", "wds/imagenet1k", a folder). */
  name: string;
  split: string;
  /** The number of classes (absent in reports from before it was added). */
  classes?: number;
  /** Images evaluated. */
  images: number;
  /** Images in the data set, when known (its size, or every sample streamed). */
  totalImages?: number;
  /** Images chosen but skipped because they could not be read or decoded (absent in older reports). */
  skipped?: number;
  /** A digest of the data: of its files when the data set knows them, else of what the run streamed. */
  sha256: string;
  /** The sha256 of each data file read, by file name (absent in reports from before it was added). */
  files?: Record<string, string>;
  subset: { limit?: number; perClass?: number };
}

/** Two results compared on the same images (exact McNemar test on the discordant images). */
export interface PairedComparison {
  /** Indices into `results`, a < b. */
  a: number;
  b: number;
  metric: 'top1';
  /** accuracy of b − accuracy of a, as a fraction. */
  delta: number;
  /** Images right under a only, and under b only. */
  onlyA: number;
  onlyB: number;
  pValue: number;
}

/**
 * A result compared with the baseline run's result on the same images, from that run's per-image
 * predictions (exact McNemar test on the images only one of them got right).
 */
export interface BaselineComparison {
  /** Index into `results`, and into the baseline's results. */
  result: number;
  baseline: number;
  metric: 'top1';
  /** accuracy of the result − accuracy of the baseline, as a fraction. */
  delta: number;
  /** Images right under the baseline only, and under the result only. */
  onlyBaseline: number;
  onlyResult: number;
  pValue: number;
}

/** The document written by --json: everything needed to reproduce and compare a run. */
export interface EvaluationReport {
  schema: 'clip-eval/evaluation@1';
  tool: ToolInfo;
  createdAt: string;
  dataset: DatasetInfo;
  templates: { name: string; templates: readonly string[] };
  options: { batchSize: number; threads?: number; device: string; deviceId?: number };
  results: ModelResult[];
  /** Every pair of results compared on the same images, when a run evaluates two or more. */
  comparisons?: PairedComparison[];
  /** Every result compared with its baseline result image by image, when the baseline's predictions were given. */
  baselineComparisons?: BaselineComparison[];
}
