import { inputError } from '../../src/core/errors.js';
import type { ModelBundle } from '../../src/model/bundle.js';
import { createImageEncoder } from '../../src/model/encoders.js';
import type { Device, SessionOptions } from '../../src/model/session.js';
import { decodeImage, readImageFile } from '../../src/preprocess/decode.js';
import { preprocessDecoded } from '../../src/preprocess/transform.js';
import { spreadOf, type Spread } from './bench-folder.js';
import type { BenchPhotos } from './bench-photos.js';
import { lastErrorLine, runNodeMeasured } from './bench-process.js';

/**
 * The classify case: JPEG photos of 1000×750 through `clip-eval classify`, and the three stages its
 * image loop runs, each timed alone on the calling thread (one core) so that the split shows where
 * a photo's time goes.
 */
export interface ClassifyStages {
  images: number;
  /** decodeImage of bytes already read (sharp, one image at a time). */
  decodeSeconds: number;
  /** preprocessDecoded: Pillow-exact resize, crop and normalisation. */
  resizeSeconds: number;
  /** The image encoder on batches of the preprocessed photos. */
  inferenceSeconds: number;
}

export async function timeClassifyStages(photos: BenchPhotos, bundle: ModelBundle, sessionOptions: SessionOptions, batchSize: number): Promise<ClassifyStages> {
  const encoder = await createImageEncoder(bundle, sessionOptions);
  try {
    const step = encoder.fixedBatch ?? batchSize;
    const imageFloats = 3 * encoder.imageSize * encoder.imageSize;
    const batch = new Float32Array(step * imageFloats);
    let decodeSeconds = 0;
    let resizeSeconds = 0;
    let inferenceSeconds = 0;
    for (let first = 0; first < photos.files.length; first += step) {
      const files = photos.files.slice(first, first + step);
      for (const [i, file] of files.entries()) {
        const bytes = await readImageFile(file, file);
        const decodeStart = performance.now();
        const decoded = await decodeImage(bytes, file);
        const resizeStart = performance.now();
        preprocessDecoded(decoded, bundle.preprocess, batch, i * imageFloats, file);
        const resizeEnd = performance.now();
        decodeSeconds += (resizeStart - decodeStart) / 1000;
        resizeSeconds += (resizeEnd - resizeStart) / 1000;
      }
      const start = performance.now();
      await encoder.encode(batch.subarray(0, files.length * imageFloats), files.length);
      inferenceSeconds += (performance.now() - start) / 1000;
    }
    return { images: photos.files.length, decodeSeconds, resizeSeconds, inferenceSeconds };
  } finally {
    await encoder.release();
  }
}

export interface ClassifySpec {
  cliPath: string;
  model: string;
  batchSize: number;
  threads: number;
  device: Device;
  deviceId?: number;
  outputDir: string;
}

export interface ClassifyCase {
  images: number;
  command: string;
  /** The image loop's images/s (decode, preprocess, encode, score), as classify's totals line gives it, per run. */
  loopImagesPerSecond: number[];
  spread: Spread;
}

/** classify's totals line: "200 images in 1.57 s (127.7 images/s)". */
const TOTALS = /^(\d+) images?(?:, \d+ failed)? in [\d.]+ s \(([\d.]+) images\/s\)$/m;

/**
 * `clip-eval classify` on the photos, `repeats` times: a fresh process each, no cache (every photo
 * decoded and encoded), one template per label so that the text side stays short.
 */
export async function runClassifyCase(spec: ClassifySpec, photos: BenchPhotos, repeats: number): Promise<ClassifyCase> {
  const args = [
    'classify', photos.root,
    '--model', spec.model,
    '--templates', 'single',
    '--no-cache',
    '--batch-size', String(spec.batchSize),
    '--threads', String(spec.threads),
    '--device', spec.device,
    ...(spec.deviceId !== undefined ? ['--device-id', String(spec.deviceId)] : []),
    '--quiet',
  ];
  const rates: number[] = [];
  let command = '';
  for (let r = 0; r < repeats; r += 1) {
    const run = await runNodeMeasured(spec.cliPath, args, spec.outputDir, { env: { ...process.env, CI: 'true' } });
    command = run.command;
    if (run.code !== 0) throw inputError(`classify case failed: ${lastErrorLine(run)} (command: ${run.command})`);
    const totals = TOTALS.exec(run.stdout);
    if (!totals || Number(totals[1]) !== photos.files.length) throw inputError(`classify case: no totals line for ${photos.files.length} images in its output (command: ${run.command})`);
    rates.push(Number(totals[2]));
  }
  return { images: photos.files.length, command, loopImagesPerSecond: rates, spread: spreadOf(rates) };
}
