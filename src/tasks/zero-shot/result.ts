import type { Metrics } from './metrics.js';

/** What one model (or variant) scored on one data set: the unit of every report. */
export interface ModelResult {
  model: {
    id: string;
    layout: string;
    variant: string;
    embeddingDim: number;
    files: { role: 'vision' | 'text' | 'tokenizer'; path: string; sha256: string }[];
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
    promptsPerSecond?: number;
  };
}

export interface DatasetInfo {
  name: string;
  split: 'test';
  images: number;
  totalImages: number;
  /** One digest of all the data files the run read (see CifarTestSet.source). */
  sha256: string;
  /** The sha256 of each data file read, by file name (absent in reports from before it was added). */
  files?: Record<string, string>;
  subset: { limit?: number; perClass?: number };
}

/** The document written by --json: everything needed to reproduce and compare a run. */
export interface EvaluationReport {
  schema: 'clip-eval/evaluation@1';
  tool: { name: 'clip-eval'; version: string; node: string; onnxruntime: string };
  createdAt: string;
  dataset: DatasetInfo;
  templates: { name: string; templates: readonly string[] };
  options: { batchSize: number; threads?: number; device: string; deviceId?: number };
  results: ModelResult[];
}
