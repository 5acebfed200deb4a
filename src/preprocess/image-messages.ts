import type { PreprocessConfig } from './config.js';
import type { DecodeOptions } from './decode.js';
import type { SharedBudget } from './memory-budget.js';

/** The messages between an ImagePool and its worker threads (image-worker.ts). */

export type ImageJobSource = { path: string } | { bytes: Uint8Array };

export interface JobMessage {
  type: 'job';
  id: number;
  source: ImageJobSource;
  label: string;
  config: PreprocessConfig;
  decode: Omit<DecodeOptions, 'reserve'>;
  /** Return the sha256 of the image's bytes (also when they then fail to decode). */
  digest: boolean;
  /** Reserve memory from this budget, for the lease numbered `sequence`, before holding it. */
  budget?: SharedBudget;
  sequence: number;
  /** A pixel buffer to write into (transferred back, recycled), when one of the right size was free. */
  output?: Float32Array;
}

/** Planar images (CIFAR's records: per image the R, G and B planes) preprocessed one after another. */
export interface PlanarJobMessage {
  type: 'planar';
  id: number;
  /** count · 3 · width · height bytes, transferred. */
  records: Uint8Array;
  width: number;
  height: number;
  count: number;
  config: PreprocessConfig;
  /** A buffer of count · 3 · size² floats to write into (transferred back, recycled), when one was free. */
  output?: Float32Array;
}

export type ToWorker = JobMessage | PlanarJobMessage;

export interface DoneMessage {
  type: 'done';
  id: number;
  /** Float32 [3, S, S] (a planar job: [count, 3, S, S]), transferred. */
  pixels: Float32Array;
  sha256?: string;
  /** Bytes reserved for the job's lease. */
  reserved: number;
}

export interface FailedMessage {
  type: 'failed';
  id: number;
  message: string;
  /** Set when the failure is a ClipEvalError (the image's fault), with its kind; else a bug. */
  kind?: 'usage' | 'input' | 'checkFailed';
  sha256?: string;
  reserved: number;
}

export type FromWorker = DoneMessage | FailedMessage;
