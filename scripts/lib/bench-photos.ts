import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import { SeededRandom } from './seeded-random.js';

/**
 * The classify case's photos: JPEGs of 1000×750 at quality 90 (4:2:0, as cameras and the web save
 * them), deterministic for a seed. Smooth colour fields with fine grain, so that the entropy decoder
 * has a photo's work to do, not a flat image's.
 */
export const PHOTO_WIDTH = 1000;
export const PHOTO_HEIGHT = 750;

export interface BenchPhotos {
  root: string;
  files: string[];
  /** Bytes of JPEG on disk. */
  bytes: number;
}

/** Grain shared by the photos, each reading it from its own offset: one seeded draw instead of one per photo. */
const GRAIN_SHIFTS = 4096;

function grain(random: SeededRandom, samples: number): Int8Array {
  const values = new Int8Array(samples + GRAIN_SHIFTS);
  for (let i = 0; i < values.length; i += 1) values[i] = Math.round(random.normal() * 10);
  return values;
}

async function photo(random: SeededRandom, width: number, height: number, noise: Int8Array): Promise<Buffer> {
  const coarseWidth = 16;
  const coarseHeight = 12;
  const coarse = Buffer.alloc(coarseWidth * coarseHeight * 3);
  for (let i = 0; i < coarse.length; i += 1) coarse[i] = Math.floor(random.next() * 256);
  const field = await sharp(coarse, { raw: { width: coarseWidth, height: coarseHeight, channels: 3 } })
    .resize(width, height, { fit: 'fill', kernel: 'cubic' })
    .raw()
    .toBuffer();
  const shift = Math.floor(random.next() * GRAIN_SHIFTS);
  for (let i = 0; i < field.length; i += 1) field[i] = Math.min(255, Math.max(0, field[i]! + noise[shift + i]!));
  return sharp(field, { raw: { width, height, channels: 3 } }).jpeg({ quality: 90 }).toBuffer();
}

/** Writes `count` photos as DIR/photos/00000.jpg …; the same seed gives the same bytes. */
export async function writeBenchPhotos(directory: string, count: number, seed: number, width = PHOTO_WIDTH, height = PHOTO_HEIGHT): Promise<BenchPhotos> {
  const root = join(directory, 'photos');
  await mkdir(root, { recursive: true });
  const random = new SeededRandom(seed);
  const noise = grain(random, width * height * 3);
  const files: string[] = [];
  let bytes = 0;
  for (let i = 0; i < count; i += 1) {
    const jpeg = await photo(random, width, height, noise);
    const file = join(root, `${String(i).padStart(5, '0')}.jpg`);
    await writeFile(file, jpeg);
    files.push(file);
    bytes += jpeg.length;
  }
  return { root, files, bytes };
}
