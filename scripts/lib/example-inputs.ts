import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import { CIFAR100_CLEAN_NAMES, CIFAR100_RAW_NAMES } from './cifar-names.js';
import { writeConfusableCifar100 } from './confusable-cifar.js';
import { classImage, drawClassPixels, rotatedJpegWithExif } from './pattern-images.js';

/**
 * The inputs of the README's examples, drawn for the pattern CLIP (default seed), so that every example
 * there can be run as printed. Each is a folder of its own under the fixture folder.
 */
export interface ExampleInputs {
  /** classify's folder: PNG, JPEG, WebP, a blend of two classes, an EXIF-rotated JPEG and a truncated JPEG. */
  photos: string;
  /** search by text: 500 JPEGs, five of each CIFAR-100 class, `NNNN-class.jpg`. */
  library: string;
  /** search by image: five classes as PNG and again as JPEG of another size in `more/`. */
  gallery: string;
  /** retrieval: a `path,caption` manifest, two captions for each of 100 class images. */
  captions: string;
  /** --report: an extracted CIFAR-100 in which every third image is blended with a sibling class (for --data-dir). */
  blended: string;
}

const LIBRARY_SIZE = 500;
const GALLERY_CLASSES = ['apple', 'bus', 'lion', 'snail', 'tulip'];

async function writePhotos(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  await classImage('apple').png().toFile(join(dir, 'apple.png'));
  await classImage('bicycle').jpeg({ quality: 90 }).toFile(join(dir, 'bicycle.jpg'));
  await classImage('tulip').webp({ quality: 90 }).toFile(join(dir, 'tulip.webp'));
  await writeFile(join(dir, 'phone-bicycle.jpg'), await rotatedJpegWithExif('bicycle'));
  // Two classes drawn half and half: their logits are close, so neither probability is near 0 or 1.
  const [apple, tulip] = ['apple', 'tulip'].map((name) => drawClassPixels(name));
  const blend = Uint8Array.from(apple!, (value, i) => Math.round((value + tulip![i]!) / 2));
  await sharp(blend, { raw: { width: 320, height: 240, channels: 3 } }).png().toFile(join(dir, 'apple-and-tulip.png'));
  const jpeg = await readFile(join(dir, 'bicycle.jpg'));
  await writeFile(join(dir, 'broken.jpg'), jpeg.subarray(0, Math.floor(jpeg.length / 2)));
}

async function writeLibrary(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  for (let i = 0; i < LIBRARY_SIZE; i += 1) {
    const label = i % CIFAR100_RAW_NAMES.length;
    // Each copy of a class a little wider than the one before: close scores, no exact ties.
    const width = 320 + 8 * Math.floor(i / CIFAR100_RAW_NAMES.length);
    const name = `${String(i).padStart(4, '0')}-${CIFAR100_RAW_NAMES[label]}.jpg`;
    await classImage(CIFAR100_CLEAN_NAMES[label]!, width, 240).jpeg({ quality: 90 }).toFile(join(dir, name));
  }
}

async function writeGallery(dir: string): Promise<void> {
  await mkdir(join(dir, 'more'), { recursive: true });
  for (const name of GALLERY_CLASSES) {
    await classImage(name).png().toFile(join(dir, `${name}.png`));
    await classImage(name, 200, 260).jpeg().toFile(join(dir, 'more', `${name}-2.jpg`));
  }
}

async function writeCaptions(dir: string): Promise<string> {
  await mkdir(join(dir, 'images'), { recursive: true });
  const rows: string[] = [];
  for (const [i, raw] of CIFAR100_RAW_NAMES.entries()) {
    const name = CIFAR100_CLEAN_NAMES[i]!;
    await classImage(name).png().toFile(join(dir, 'images', `${raw}.png`));
    rows.push(`images/${raw}.png,"a photo of a ${name}"`, `images/${raw}.png,"${name}"`);
  }
  const manifest = join(dir, 'captions.csv');
  await writeFile(manifest, `path,caption\n${rows.join('\n')}\n`);
  return manifest;
}

/** Writes every example input under `dir` and returns where each is. */
export async function writeExampleInputs(dir: string): Promise<ExampleInputs> {
  const inputs = {
    photos: join(dir, 'photos'),
    library: join(dir, 'library'),
    gallery: join(dir, 'gallery'),
  };
  await writePhotos(inputs.photos);
  await writeLibrary(inputs.library);
  await writeGallery(inputs.gallery);
  const captions = await writeCaptions(join(dir, 'captions'));
  const blended = join(dir, 'blended');
  await writeConfusableCifar100(blended, { perClass: 10 });
  return { ...inputs, captions, blended };
}
