import { inputError } from '../core/errors.js';
import { loadSharp } from '../preprocess/decode.js';
import type { Dataset, Sample } from './dataset.js';
import { datasetSourceFor } from './registry.js';

/**
 * One data set sample named on a command line, `<dataset-spec>:<id-or-index>` (`cifar100:3637`,
 * `wds/imagenet1k:s0000042`, `pets:#0`), turned into an image input: a file's path or the image's bytes.
 */
export interface SampleReference {
  spec: string;
  /** A sample id; all digits, a position in data set order when no sample has that id; `#N` always a position. */
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
  /** The id of the sample found, which a position names only indirectly. */
  id: string;
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

/** A sample kept past the stream's next step: planar pixels are a view of the reader's buffer, so copied. */
function keep(sample: Sample): Sample {
  return sample.image.kind === 'planar' ? { ...sample, image: { ...sample.image, pixels: sample.image.pixels.slice() } } : sample;
}

/**
 * Streams the data set to the sample a key names. An id matches first, so that an all-digit key
 * (img2dataset writes `000010005`) is that sample and not the one at that position; only when no
 * sample has the id is an all-digit key a position, which takes reading the whole data set to know
 * (CIFAR's ids are their positions, so there the match comes at once). `#N` is position N, read up to there.
 */
export async function findSample(dataset: Dataset, key: string): Promise<FoundSample> {
  const marked = /^#\d+$/.test(key);
  const position = marked || /^\d+$/.test(key) ? Number(key.replace('#', '')) : undefined;
  let index = 0;
  let found: Sample | undefined;
  let atPosition: Sample | undefined;
  for await (const sample of dataset.samples()) {
    if (!marked && sample.id === key) {
      found = sample;
      break;
    }
    if (index === position) {
      atPosition = keep(sample);
      if (marked) break;
    }
    index += 1;
  }
  found ??= atPosition;
  if (!found) {
    if (position === undefined) throw inputError(`${dataset.name}: has no sample with id ${key}`);
    throw inputError(`${dataset.name}: has no sample ${key} (it has ${index}, numbered from 0${marked ? '' : ', and none has that id'})`);
  }
  const { image } = found;
  const sample = { id: found.id, label: found.label };
  if (image.kind === 'file') return { ...sample, image: { path: image.path } };
  if (image.kind === 'encoded') return { ...sample, image: { bytes: image.bytes } };
  return { ...sample, image: { bytes: await planarAsPng(image.pixels, image.width, image.height) } };
}
