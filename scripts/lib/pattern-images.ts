import sharp, { type Sharp } from 'sharp';
import { buildPatternTable, classPattern, DEFAULT_SEED, GRID, type PatternTable } from './pattern-table.js';

/**
 * Photo-sized images the pattern CLIP classifies: class k's pattern (its summed name rows) drawn as the
 * 8×8 cell grid of each channel over the centred square that the 224 centre crop keeps, mid-grey at
 * the sides. As in the synthetic CIFAR sets, the largest component swings 100 grey levels from 128.
 */
const MID_GREY = 128;
const PATTERN_SWING = 100;

let table: PatternTable | undefined;

/** RGB bytes of the class image; the pattern CLIP must be written with the default seed. */
export function drawClassPixels(className: string, width = 320, height = 240): Buffer {
  table ??= buildPatternTable(DEFAULT_SEED);
  const pattern = classPattern(table, className);
  const largest = pattern.reduce((max, value) => Math.max(max, Math.abs(value)), 0);
  const side = Math.min(width, height);
  const left = Math.floor((width - side) / 2);
  const top = Math.floor((height - side) / 2);
  const pixels = Buffer.alloc(width * height * 3, MID_GREY);
  for (let y = 0; y < side; y++) {
    for (let x = 0; x < side; x++) {
      const cell = Math.floor((y * GRID) / side) * GRID + Math.floor((x * GRID) / side);
      for (let c = 0; c < 3; c++) {
        const value = MID_GREY + (PATTERN_SWING * pattern[c * GRID * GRID + cell]!) / largest;
        pixels[((top + y) * width + left + x) * 3 + c] = Math.round(value);
      }
    }
  }
  return pixels;
}

/** The class image as a sharp pipeline, ready for .png(), .jpeg() or .webp(). */
export function classImage(className: string, width = 320, height = 240): Sharp {
  return sharp(drawClassPixels(className, width, height), { raw: { width, height, channels: 3 } });
}

/**
 * The class image as a JPEG stored turned 90° anticlockwise with EXIF Orientation 6 ("rotate 90°
 * clockwise to view"): upright only for readers that apply the tag.
 */
export async function rotatedJpegWithExif(className: string, width = 320, height = 240): Promise<Buffer> {
  const stored = await classImage(className, width, height).rotate(270).raw().toBuffer();
  return sharp(stored, { raw: { width: height, height: width, channels: 3 } })
    .jpeg({ quality: 90 })
    .withMetadata({ orientation: 6 })
    .toBuffer();
}
