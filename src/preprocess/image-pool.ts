import { availableParallelism } from 'node:os';
import { Worker, type ResourceLimits } from 'node:worker_threads';
import { ClipEvalError, inputError } from '../core/errors.js';
import type { PreprocessConfig } from './config.js';
import { claimDecoderSlot, decoderGate, MAX_DECODER_WORKERS, releaseDecoderSlot, type DecodeOptions } from './decode.js';
import type { FromWorker, ImageJobSource, PlanarJobMessage, ToWorker } from './image-messages.js';
import type { MemoryLease, SharedBudget } from './memory-budget.js';

/**
 * Worker threads that read, decode and preprocess images while the main thread runs inference
 * (onnxruntime-node runs a session synchronously on the JavaScript thread, so work that needs that
 * thread's turns, such as the resampling, could only run between batches). Each image's chain is
 * the one decodeImage + preprocessDecoded run in-thread, with the same results and the same errors.
 */

export interface ImageJob {
  /** A file to read (bounded, regular files only) or bytes already read. */
  source: ImageJobSource;
  /** What errors call the image. */
  label: string;
  config: PreprocessConfig;
  decode?: Omit<DecodeOptions, 'reserve'>;
  /** Return the sha256 of the image's bytes, with the pixels or with the error. */
  digest?: boolean;
  /**
   * The image's share of a memory budget: the worker reserves from `budget` (its MemoryBudget's
   * shared state) before it holds memory, and the bytes are added to the lease before the job settles.
   */
  memory?: { budget: SharedBudget; lease: MemoryLease };
}

export interface PreparedImage {
  /**
   * Float32 [3, imageSize, imageSize], transferred from the worker (not a copy); hand it back with
   * recycle once copied, so that the next image is written into it.
   */
  pixels: Float32Array;
  sha256?: string;
}

/** An image's own failure (a ClipEvalError), with the digest of its bytes when they were read. */
export class ImageJobError extends ClipEvalError {
  constructor(
    message: string,
    kind: ClipEvalError['kind'],
    readonly sha256?: string,
  ) {
    super(message, kind);
  }
}

export interface ImagePoolOptions {
  /** Worker threads; default defaultImageWorkers(). */
  workers?: number;
  /**
   * Images each worker prepares at once (its decodes wait on libuv's pool while it resamples another);
   * default 8. Every image is sent to a worker as soon as it is asked for, so none waits for a turn of
   * the calling thread while that thread runs inference.
   */
  jobsPerWorker?: number;
  /** Caps on each worker's JavaScript heap (decoded pixels live outside it); default Node's. */
  resourceLimits?: ResourceLimits;
}

/**
 * One worker per core but one: the main thread keeps a core for inference (whose own threads
 * onnxruntime spreads over every core anyway); at least one worker, so that decoding always leaves
 * the inference thread, even on one core.
 */
export function defaultImageWorkers(cores = availableParallelism()): number {
  return Math.max(1, cores - 1);
}

/** Planar images preprocessed on a worker, in one message: a share of a batch of CIFAR records. */
export interface PlanarBatchJob {
  /** count · 3 · width · height bytes: per image its R, G and B planes (copied, so the view may change after). */
  records: Uint8Array;
  width: number;
  height: number;
  count: number;
  config: PreprocessConfig;
}

interface PendingJob {
  id: number;
  /** What a worker's failure calls the job. */
  label: string;
  lease?: MemoryLease;
  resolve: (image: PreparedImage) => void;
  reject: (error: Error) => void;
}

interface PoolWorker {
  worker: Worker;
  running: Map<number, PendingJob>;
}

const WORKER_URL = new URL('./image-worker.js', import.meta.url);

export class ImagePool {
  readonly size: number;
  private readonly perWorker: number;
  private readonly resourceLimits?: ResourceLimits;
  private readonly workers: PoolWorker[] = [];
  private nextId = 0;
  /** Pixel buffers handed back, to be sent out again as the output of the next images. */
  private readonly spare: Float32Array[] = [];
  /** Set once the pool cannot go on: a worker died, or the pool was closed. */
  private broken?: Error;

  constructor(options: ImagePoolOptions = {}) {
    this.size = options.workers ?? defaultImageWorkers();
    this.perWorker = options.jobsPerWorker ?? 8;
    this.resourceLimits = options.resourceLimits;
    if (!Number.isInteger(this.size) || this.size < 1 || this.size > MAX_DECODER_WORKERS) {
      throw new RangeError(`ImagePool: workers must be a whole number from 1 to ${MAX_DECODER_WORKERS}, got ${this.size}`);
    }
    if (!Number.isInteger(this.perWorker) || this.perWorker < 1) throw new RangeError(`ImagePool: jobsPerWorker must be a positive integer, got ${this.perWorker}`);
  }

  /**
   * Reads, decodes and preprocesses one image on a worker. Images start in the order asked for (a
   * memory budget's oldest lease must never wait behind younger ones), so leases are taken in that order. Rejects with an ImageJobError
   * for the image's own failure, with a plain Error when the pool failed (a worker died) or was closed.
   */
  prepare(job: ImageJob): Promise<PreparedImage> {
    if (this.broken) return Promise.reject(this.broken);
    const id = this.nextId++;
    let source = job.source;
    const transfer: ArrayBuffer[] = [];
    if ('bytes' in source) {
      // One copy into a buffer of its own, moved to the worker: cloning a view would copy all it views.
      const bytes = new Uint8Array(source.bytes);
      transfer.push(bytes.buffer);
      source = { bytes };
    }
    const output = this.spareOutput(3 * job.config.imageSize * job.config.imageSize, transfer);
    const message: ToWorker = {
      type: 'job',
      id,
      source,
      label: job.label,
      config: job.config,
      decode: { ...job.decode },
      digest: job.digest ?? false,
      ...(job.memory ? { budget: job.memory.budget } : {}),
      sequence: job.memory?.lease.sequence ?? -1,
      ...(output ? { output } : {}),
    };
    return this.send(message, transfer, job.label, job.memory?.lease);
  }

  /**
   * Preprocesses `count` planar images on a worker into one [count, 3, size, size] array (hand it back
   * with recycle once copied). Batches sent together run on different workers, side by side.
   */
  preparePlanar(job: PlanarBatchJob): Promise<PreparedImage> {
    if (this.broken) return Promise.reject(this.broken);
    const { width, height, count, config } = job;
    if (!Number.isInteger(count) || count < 1 || job.records.length !== count * 3 * width * height) {
      return Promise.reject(new RangeError(`ImagePool: ${count} planar images of ${width}x${height} need ${count * 3 * width * height} bytes, got ${job.records.length}`));
    }
    const records = new Uint8Array(job.records);
    const transfer: ArrayBuffer[] = [records.buffer];
    const output = this.spareOutput(count * 3 * config.imageSize * config.imageSize, transfer);
    const message: PlanarJobMessage = { type: 'planar', id: this.nextId++, records, width, height, count, config, ...(output ? { output } : {}) };
    return this.send(message, transfer, `${count} planar images`);
  }

  /** A recycled pixel buffer of `floats`, added to `transfer`; undefined when none is free. */
  private spareOutput(floats: number, transfer: ArrayBuffer[]): Float32Array | undefined {
    const at = this.spare.findIndex((pixels) => pixels.length === floats);
    if (at < 0) return undefined;
    const output = this.spare.splice(at, 1)[0]!;
    transfer.push(output.buffer as ArrayBuffer);
    return output;
  }

  private send(message: ToWorker, transfer: ArrayBuffer[], label: string, lease?: MemoryLease): Promise<PreparedImage> {
    return new Promise((resolve, reject) => {
      const pending: PendingJob = { id: message.id, label, resolve, reject, ...(lease ? { lease } : {}) };
      const target = this.leastBusy();
      target.running.set(message.id, pending);
      if (target.running.size === 1) target.worker.ref();
      target.worker.postMessage(message, transfer);
    });
  }

  /** Takes back a prepared image's pixels once they are copied (they must not be used after). */
  recycle(pixels: Float32Array): void {
    // As many as images in flight at most: one per image that can be sent at once.
    if (this.spare.length < this.size * this.perWorker) this.spare.push(pixels);
  }

  /** Stops the workers; images not yet prepared are rejected. Safe to call more than once. */
  async close(): Promise<void> {
    this.fail(new Error('image pool closed'));
    await Promise.all(this.workers.map(({ worker }) => worker.terminate()));
  }

  /** The worker with the fewest images, starting one while fewer than `size` run and all are busy. */
  private leastBusy(): PoolWorker {
    let best: PoolWorker | undefined;
    for (const candidate of this.workers) if (!best || candidate.running.size < best.running.size) best = candidate;
    if (best && best.running.size === 0) return best;
    if (this.workers.length < this.size) return this.startWorker();
    return best!;
  }

  private startWorker(): PoolWorker {
    const gate = decoderGate();
    const decoderSlot = claimDecoderSlot(gate);
    if (decoderSlot === undefined) throw new Error(`more than ${MAX_DECODER_WORKERS} image worker threads in one process`);
    const worker = new Worker(WORKER_URL, { workerData: { decoderGate: gate, decoderSlot, concurrency: this.perWorker }, resourceLimits: this.resourceLimits });
    const entry: PoolWorker = { worker, running: new Map() };
    this.workers.push(entry);
    worker.on('message', (message: FromWorker) => this.onMessage(entry, message));
    worker.on('error', (error) => this.fail(workerFailure(error)));
    worker.on('exit', (code) => {
      // Stopped, maybe mid-decode: its steps must not hold up the decoder gate.
      releaseDecoderSlot(gate, decoderSlot);
      this.fail(new Error(`an image worker thread stopped (exit code ${code})`));
    });
    worker.unref();
    return entry;
  }

  private onMessage(entry: PoolWorker, message: FromWorker): void {
    const job = entry.running.get(message.id);
    if (!job) return;
    entry.running.delete(job.id);
    job.lease?.add(message.reserved);
    if (entry.running.size === 0) entry.worker.unref();
    if (message.type === 'done') job.resolve({ pixels: message.pixels, ...(message.sha256 !== undefined ? { sha256: message.sha256 } : {}) });
    else if (message.kind) job.reject(new ImageJobError(message.message, message.kind, message.sha256));
    else job.reject(new Error(`preparing ${job.label}: ${message.message}`));
  }

  /** Ends the pool: every image not yet prepared is rejected with `error`, every worker stopped. */
  private fail(error: Error): void {
    if (this.broken) return;
    this.broken = error;
    for (const { worker, running } of this.workers) {
      for (const job of running.values()) job.reject(error);
      running.clear();
      void worker.terminate();
    }
  }
}

/** A worker thread's death: out of memory is the environment's (exit 3), anything else a bug. */
function workerFailure(error: Error): Error {
  if ((error as NodeJS.ErrnoException).code === 'ERR_WORKER_OUT_OF_MEMORY') {
    return inputError(`an image worker thread ran out of memory (${error.message}); prepare fewer or smaller images at once`, error);
  }
  return new Error(`an image worker thread failed: ${error.message}`, { cause: error });
}
