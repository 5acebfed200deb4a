import { createHash } from 'node:crypto';
import { parentPort, workerData } from 'node:worker_threads';
import { ClipEvalError, describeError } from '../core/errors.js';
import { decodeImage, readImageFile, useDecoderGate } from './decode.js';
import type { FromWorker, JobMessage, PlanarJobMessage, ToWorker } from './image-messages.js';
import { reserveShared } from './memory-budget.js';
import { createPlanarPreprocessor, preprocessDecoded, type PlanarPreprocessor } from './transform.js';

/**
 * An ImagePool's worker thread: reads (bounded), decodes and preprocesses images, a few at a time and
 * in the order sent, off the thread that runs inference, and preprocesses batches of planar images.
 * Memory is reserved from the caller's budget in shared memory, so that no image waits for a turn of
 * that thread.
 */
const port = parentPort!;
const { decoderGate, decoderSlot, concurrency } = workerData as { decoderGate: SharedArrayBuffer; decoderSlot: number; concurrency: number };
useDecoderGate(decoderGate, decoderSlot);

const waiting: JobMessage[] = [];
/** The planar preprocessor of the last config seen (a run uses one). */
let planar: { key: string; preprocess: PlanarPreprocessor } | undefined;
let running = 0;

function send(message: FromWorker, transfer?: ArrayBuffer[]): void {
  port.postMessage(message, transfer);
}

async function run(job: JobMessage): Promise<void> {
  const { id, source, label, budget } = job;
  let reserved = 0;
  const reserve = budget
    ? async (bytes: number) => {
        await reserveShared(budget, job.sequence, bytes);
        reserved += bytes;
      }
    : undefined;
  let sha256: string | undefined;
  try {
    let bytes: Uint8Array;
    if ('path' in source) {
      bytes = await readImageFile(source.path, label, { maxFileBytes: job.decode.maxFileBytes, reserve });
    } else {
      await reserve?.(source.bytes.length);
      bytes = source.bytes;
    }
    if (job.digest) sha256 = createHash('sha256').update(bytes).digest('hex');
    const decoded = await decodeImage(bytes, label, { ...job.decode, reserve });
    const floats = 3 * job.config.imageSize * job.config.imageSize;
    const pixels = job.output?.length === floats ? job.output : new Float32Array(floats);
    preprocessDecoded(decoded, job.config, pixels, 0, label);
    send({ type: 'done', id, pixels, sha256, reserved }, [pixels.buffer as ArrayBuffer]);
  } catch (error) {
    if (error instanceof ClipEvalError) send({ type: 'failed', id, message: error.message, kind: error.kind, sha256, reserved });
    else send({ type: 'failed', id, message: describeError(error), sha256, reserved });
  }
}

/** Synchronous: a planar batch holds the thread for its few milliseconds, between decodes' steps. */
function runPlanar(job: PlanarJobMessage): void {
  const { id, records, width, height, count, config } = job;
  try {
    const key = JSON.stringify(config);
    if (planar?.key !== key) planar = { key, preprocess: createPlanarPreprocessor(config) };
    const floats = 3 * config.imageSize * config.imageSize;
    const pixels = job.output?.length === count * floats ? job.output : new Float32Array(count * floats);
    const bytes = 3 * width * height;
    for (let i = 0; i < count; i++) planar.preprocess({ pixels: records.subarray(i * bytes, (i + 1) * bytes), width, height }, pixels, i * floats);
    send({ type: 'done', id, pixels, reserved: 0 }, [pixels.buffer as ArrayBuffer]);
  } catch (error) {
    if (error instanceof ClipEvalError) send({ type: 'failed', id, message: error.message, kind: error.kind, reserved: 0 });
    else send({ type: 'failed', id, message: describeError(error), reserved: 0 });
  }
}

function startWaiting(): void {
  while (running < concurrency && waiting.length > 0) {
    running += 1;
    void run(waiting.shift()!).finally(() => {
      running -= 1;
      startWaiting();
    });
  }
}

port.on('message', (message: ToWorker) => {
  if (message.type === 'planar') {
    runPlanar(message);
    return;
  }
  waiting.push(message);
  startWaiting();
});
