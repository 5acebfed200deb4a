import { inputError } from '../core/errors.js';
import { loadSharp } from '../preprocess/decode.js';
import type { Dataset, Sample } from './dataset.js';
import { datasetSourceFor } from './registry.js';

/**
 * One data set sample named on a command line, `<dataset-spec>:<index-or-id>` (`cifar100:3637`,
 * `wds/imagenet1k:s0000042`), turned into an image input: a file's path or the image's bytes.
 */
export interface SampleReference {
  spec: string;
  /** A position in data set order (all digits) or a sample id. */
  key: string;
}

/** The reference an argument makes, or undefined when it names no known kind of data set. */
export function parseSampleReference(arg: string): SampleReference | undefined {
  const at = arg.lastIndexOf(':');
  if (at <= 0 || at === arg.length - 1) return undefined;
  const spec = arg.slice(0, at);
  return datasetSourceFor(spec) ? { spec, key: arg.slice(at + 1) } : undefined;
}

export interface FoundSample {
  label: number;
  image: { path: string } | { bytes: Uint8Array };
}

/** Planar pixels as a PNG: lossless, so decoding it gives back exactly these pixels. */
async function planarAsPng(pixels: Uint8Array, width: number, height: number): Promise<Uint8Array> {
  const plane = width * height;
  const rgb = Buffer.alloc(3 * plane);
  for (let p = 0; p < plane; p++) for (let c = 0; c < 3; c++) rgb[p * 3 + c] = pixels[c * plane + p]!;
  const sharp = await loadSharp();
  return sharp(rgb, { raw: { width, height, channels: 3 } }).png().toBuffer();
}

/** Streams the data set to the sample a key names: by position when all digits, else by id. */
export async function findSample(dataset: Dataset, key: string): Promise<FoundSample> {
  const position = /^\d+$/.test(key) ? Number(key) : undefined;
  let index = 0;
  let found: Sample | undefined;
  for await (const sample of dataset.samples()) {
    if (position !== undefined ? index === position : sample.id === key) {
      found = sample;
      break;
    }
    index += 1;
  }
  if (!found) {
    throw inputError(position !== undefined ? `${dataset.name}: has no sample ${key} (it has ${index}, numbered from 0)` : `${dataset.name}: has no sample with id ${key}`);
  }
  const { image } = found;
  if (image.kind === 'file') return { label: found.label, image: { path: image.path } };
  if (image.kind === 'encoded') return { label: found.label, image: { bytes: image.bytes } };
  return { label: found.label, image: { bytes: await planarAsPng(image.pixels, image.width, image.height) } };
}
