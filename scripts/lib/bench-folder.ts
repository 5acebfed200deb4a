import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import type { CifarTestSet } from '../../src/datasets/cifar/cifar.js';
import type { EndToEndRun } from './bench-end-to-end.js';

/**
 * The folder case: photo-sized JPEGs in ImageFolder layout, made from the bench's CIFAR images
 * (deterministic, and classes the pattern CLIP knows), each enlarged to 500×375 and encoded at quality 90.
 */
export const FOLDER_IMAGE_WIDTH = 500;
export const FOLDER_IMAGE_HEIGHT = 375;

export interface BenchFolder {
  root: string;
  images: number;
  /** Bytes of JPEG on disk. */
  bytes: number;
}

/** Image i is CIFAR image i mod count, under its class's folder (raw label names, as CIFAR's files spell them). */
export async function writeBenchFolder(directory: string, testSet: CifarTestSet, images: number): Promise<BenchFolder> {
  const root = join(directory, 'folder');
  let bytes = 0;
  const side = 32;
  for (let i = 0; i < images; i += 1) {
    const record = i % testSet.count;
    const planar = testSet.images.subarray(record * 3 * side * side, (record + 1) * 3 * side * side);
    const interleaved = Buffer.alloc(3 * side * side);
    for (let p = 0; p < side * side; p += 1) for (let c = 0; c < 3; c += 1) interleaved[p * 3 + c] = planar[c * side * side + p]!;
    const jpeg = await sharp(interleaved, { raw: { width: side, height: side, channels: 3 } })
      .resize(FOLDER_IMAGE_WIDTH, FOLDER_IMAGE_HEIGHT, { fit: 'fill', kernel: 'cubic' })
      .jpeg({ quality: 90 })
      .toBuffer();
    const folder = join(root, testSet.rawClassNames[testSet.labels[record]!]!);
    await mkdir(folder, { recursive: true });
    await writeFile(join(folder, `${String(i).padStart(5, '0')}.jpg`), jpeg);
    bytes += jpeg.length;
  }
  return { root, images, bytes };
}

export interface Spread {
  median: number;
  min: number;
  max: number;
}

export function spreadOf(values: readonly number[]): Spread {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  const median = sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
  return { median, min: sorted[0]!, max: sorted[sorted.length - 1]! };
}

export interface FolderRepeat {
  /** Pure image encoding (preprocessed beforehand, outside the clock), measured just before the run. */
  imageEncodeImagesPerSecond: number;
  /** The run's image loop (read, decode, preprocess, encode, score), from its own report. */
  loopImagesPerSecond: number;
  /** Images over the whole process's wall time (start-up, model loading, text side included). */
  wallImagesPerSecond: number;
  /** loopImagesPerSecond ÷ imageEncodeImagesPerSecond. */
  ratio: number;
  maxRssBytes?: number;
  top1: number;
}

export interface FolderCase {
  images: number;
  bytes: number;
  command: string;
  repeats: FolderRepeat[];
  ratio: Spread;
  loopImagesPerSecond: Spread;
  imageEncodeImagesPerSecond: Spread;
}

/**
 * Each repeat times pure image encoding and then one `clip-eval eval FOLDER` process, back to back, so
 * that each ratio compares figures taken under the same load; the spread shows how noisy the machine was.
 */
export async function measureFolderCase(
  folder: BenchFolder,
  repeats: number,
  timeEncoding: () => Promise<number>,
  runFolder: (name: string) => Promise<EndToEndRun>,
): Promise<FolderCase> {
  const measured: FolderRepeat[] = [];
  let command = '';
  for (let r = 0; r < repeats; r += 1) {
    const imageEncodeImagesPerSecond = await timeEncoding();
    const run = await runFolder(`folder-${r + 1}`);
    command = run.command;
    measured.push({
      imageEncodeImagesPerSecond,
      loopImagesPerSecond: run.timing.imagesPerSecond,
      wallImagesPerSecond: run.imagesPerSecond,
      ratio: run.timing.imagesPerSecond / imageEncodeImagesPerSecond,
      ...(run.maxRssBytes !== undefined ? { maxRssBytes: run.maxRssBytes } : {}),
      top1: run.top1,
    });
  }
  return {
    images: folder.images,
    bytes: folder.bytes,
    command,
    repeats: measured,
    ratio: spreadOf(measured.map((repeat) => repeat.ratio)),
    loopImagesPerSecond: spreadOf(measured.map((repeat) => repeat.loopImagesPerSecond)),
    imageEncodeImagesPerSecond: spreadOf(measured.map((repeat) => repeat.imageEncodeImagesPerSecond)),
  };
}
