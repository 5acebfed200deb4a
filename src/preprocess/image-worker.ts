import { createHash } from 'node:crypto';
import { parentPort, workerData } from 'node:worker_threads';
import { ClipEvalError, describeError } from '../core/errors.js';
import { decodeImage, readImageFile, useDecoderGate } from './decode.js';
import type { FromWorker, JobMessage, ToWorker } from './image-messages.js';
import { preprocessDecoded } from './transform.js';

/**
 * An ImagePool's worker thread: reads (bounded), decodes and preprocesses images, several at a time,
 * off the thread that runs inference. Memory is reserved through the main thread's budget.
 */
const port = parentPort!;
useDecoderGate((workerData as { decoderGate: SharedArrayBuffer }).decoderGate);

const grants = new Map<number, () => void>();

function send(message: FromWorker, transfer?: ArrayBuffer[]): void {
  port.postMessage(message, transfer);
}

function reserveFor(id: number): (bytes: number) => Promise<void> {
  return (bytes) =>
    new Promise((granted) => {
      grants.set(id, granted);
      send({ type: 'reserve', id, bytes });
    });
}

async function run(job: JobMessage): Promise<void> {
  const { id, source, label } = job;
  const reserve = job.reserve ? reserveFor(id) : undefined;
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
    const pixels = new Float32Array(3 * job.config.imageSize * job.config.imageSize);
    preprocessDecoded(decoded, job.config, pixels, 0, label);
    send({ type: 'done', id, pixels, sha256 }, [pixels.buffer]);
  } catch (error) {
    if (error instanceof ClipEvalError) send({ type: 'failed', id, message: error.message, kind: error.kind, sha256 });
    else send({ type: 'failed', id, message: describeError(error), sha256 });
  }
}

port.on('message', (message: ToWorker) => {
  if (message.type === 'granted') {
    const granted = grants.get(message.id);
    grants.delete(message.id);
    granted?.();
  } else {
    void run(message);
  }
});
