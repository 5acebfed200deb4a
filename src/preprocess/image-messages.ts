import type { PreprocessConfig } from './config.js';
import type { DecodeOptions } from './decode.js';

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
  /** Ask the main thread before holding memory (the pool's caller has a memory budget). */
  reserve: boolean;
}

/** The answer to a ReserveMessage: the bytes may be held. */
export interface GrantedMessage {
  type: 'granted';
  id: number;
}

export type ToWorker = JobMessage | GrantedMessage;

export interface ReserveMessage {
  type: 'reserve';
  id: number;
  bytes: number;
}

export interface DoneMessage {
  type: 'done';
  id: number;
  /** Float32 [3, S, S], transferred. */
  pixels: Float32Array;
  sha256?: string;
}

export interface FailedMessage {
  type: 'failed';
  id: number;
  message: string;
  /** Set when the failure is a ClipEvalError (the image's fault), with its kind; else a bug. */
  kind?: 'usage' | 'input' | 'checkFailed';
  sha256?: string;
}

export type FromWorker = ReserveMessage | DoneMessage | FailedMessage;
