import { ClipEvalError, describeError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import type { Dataset, SampleImage } from '../datasets/dataset.js';
import { decodeImage, loadSharp, type DecodeOptions } from '../preprocess/decode.js';

/** The longest side of a thumbnail, in pixels; smaller images (CIFAR's 32 × 32) keep their size. */
export const THUMBNAIL_SIZE = 64;

export interface Thumbnail {
  /** A data: URI (JPEG), so that the page needs no file beside it. */
  src: string;
  width: number;
  height: number;
}

/** Interleaved RGB of a planar image (CIFAR's records are channel-major). */
function interleave(pixels: Uint8Array, width: number, height: number): Buffer {
  const plane = width * height;
  const rgb = Buffer.alloc(3 * plane);
  for (let p = 0; p < plane; p += 1) for (let c = 0; c < 3; c += 1) rgb[p * 3 + c] = pixels[c * plane + p]!;
  return rgb;
}

async function rgbOf(image: SampleImage, label: string, decode: Omit<DecodeOptions, 'reserve'>): Promise<{ data: Buffer; width: number; height: number }> {
  if (image.kind === 'planar') return { data: interleave(image.pixels, image.width, image.height), width: image.width, height: image.height };
  const decoded = await decodeImage(image.kind === 'file' ? image.path : image.bytes, label, decode);
  return { data: Buffer.from(decoded.data.buffer, decoded.data.byteOffset, decoded.data.byteLength), width: decoded.width, height: decoded.height };
}

async function thumbnailOf(rgb: { data: Buffer; width: number; height: number }): Promise<Thumbnail> {
  const { data, info } = await (await loadSharp())(rgb.data, { raw: { width: rgb.width, height: rgb.height, channels: 3 } })
    .resize(THUMBNAIL_SIZE, THUMBNAIL_SIZE, { fit: 'inside', withoutEnlargement: true })
    .jpeg({ quality: 82 })
    .toBuffer({ resolveWithObject: true });
  return { src: `data:image/jpeg;base64,${data.toString('base64')}`, width: info.width, height: info.height };
}

/**
 * Small JPEG thumbnails of the samples with these ids, read again through the data set after a run:
 * only the few images a report shows are kept, never the run's pixels. Streams the samples until every
 * id is found. An image that cannot be read now (changed since the run) is left out with a warning.
 */
export async function readThumbnails(dataset: Dataset, ids: ReadonlySet<string>, options: { logger: Logger; decode?: Omit<DecodeOptions, 'reserve'> }): Promise<Map<string, Thumbnail>> {
  const found = new Map<string, Thumbnail>();
  if (ids.size === 0) return found;
  let remaining = ids.size;
  for await (const sample of dataset.samples()) {
    if (!ids.has(sample.id) || found.has(sample.id)) continue;
    const label = `${dataset.name}: ${sample.id}`;
    try {
      // A planar sample's pixels are a view valid until the next sample: copied before any await.
      found.set(sample.id, await thumbnailOf(await rgbOf(sample.image, label, options.decode ?? {})));
    } catch (error) {
      if (!(error instanceof ClipEvalError)) throw error;
      options.logger.warn(`report: no thumbnail of ${label} (${describeError(error)})`);
    }
    remaining -= 1;
    if (remaining === 0) break;
  }
  return found;
}
