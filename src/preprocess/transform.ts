import { inputError } from '../core/errors.js';
import type { PreprocessConfig, ResampleFilter } from './config.js';
import { decodeImage, type DecodedImage, type DecodeOptions } from './decode.js';
import {
  axisPlan,
  createChannelResizer,
  createRgbResizer,
  resampleColumns,
  resampleRows,
  sourceSpan,
  type ChannelResizer,
  type ChannelResizeSpec,
  type PixelView,
  type RgbResizer,
} from './resample.js';

/**
 * torchvision's CLIP transform on a PIL image, reproduced bit for bit:
 * Resize(shorter side, Pillow filter) → CenterCrop → convert('RGB') → ToTensor → Normalize,
 * written as planar float32 [3, size, size] into a caller's buffer.
 */

/** Bytes per CIFAR image: 32×32 pixels, planar R, G, B. */
export const CIFAR_IMAGE_BYTES = 3 * 32 * 32;
const CIFAR_SIDE = 32;

/**
 * The longest side an image may be stretched to by the resize (about 75,000:1 at 224). Only the crop's
 * rows and columns are computed, but NEAREST's source positions are accumulated along the whole axis,
 * as Pillow does; beyond this the image is a line, not a picture, and is refused.
 */
export const MAX_RESIZED_SIDE = 1 << 24;

/** torchvision Resize(size): the shorter side becomes `shortestEdge`, the longer int(size·long/short). */
export function resizedSize(width: number, height: number, shortestEdge: number): { width: number; height: number } {
  if (width <= height) return { width: shortestEdge, height: Math.trunc((shortestEdge * height) / width) };
  return { width: Math.trunc((shortestEdge * width) / height), height: shortestEdge };
}

/** The size the config's resize step gives a width×height image: Resize(N) or Resize((N, N)). */
export function configResizedSize(width: number, height: number, config: PreprocessConfig): { width: number; height: number } {
  return config.resizeMode === 'squash' ? { width: config.resizeSize, height: config.resizeSize } : resizedSize(width, height, config.resizeSize);
}

/** Python's round() of a multiple of 0.5: halves go to the even neighbour. */
function roundHalfEven(value: number): number {
  const floor = Math.floor(value);
  const fraction = value - floor;
  if (fraction !== 0.5) return Math.round(value);
  return floor % 2 === 0 ? floor : floor + 1;
}

/**
 * torchvision CenterCrop's first source index in one axis: round((size − crop)/2), or, when the image
 * is smaller than the crop, minus the zero padding it adds before: −floor((crop − size)/2).
 */
export function cropOffset(size: number, crop: number): number {
  return crop > size ? -Math.floor((crop - size) / 2) : roundHalfEven((size - crop) / 2);
}

/** The crop in resized-image coordinates, and the part of it inside the image (the rest is padding). */
interface CropWindow {
  crop: number;
  left: number;
  top: number;
  colFrom: number;
  colCount: number;
  rowFrom: number;
  rowCount: number;
}

function cropWindow(width: number, height: number, crop: number): CropWindow {
  const left = cropOffset(width, crop);
  const top = cropOffset(height, crop);
  const colFrom = Math.max(left, 0);
  const rowFrom = Math.max(top, 0);
  return {
    crop,
    left,
    top,
    colFrom,
    colCount: Math.min(left + crop, width) - colFrom,
    rowFrom,
    rowCount: Math.min(top + crop, height) - rowFrom,
  };
}

/** A grow-only byte buffer, reused from image to image. */
class Scratch {
  private buffer = new Uint8ClampedArray(0);

  get(size: number): Uint8ClampedArray {
    if (this.buffer.length < size) this.buffer = new Uint8ClampedArray(size);
    return this.buffer;
  }
}

interface ResizeScratch {
  horizontal: Scratch;
  vertical: Scratch;
}

/**
 * Resizes `src` (width×height) to `resized` as Pillow's Image.resize does (scalar kernels), computing
 * only the pixels inside the crop window. Like Pillow, skips the pass of an axis whose size is kept.
 * Returns the window's pixels: its pixel (x, y) is resized pixel (colFrom + x, rowFrom + y).
 */
function resizeWindow(
  src: PixelView,
  width: number,
  height: number,
  resized: { width: number; height: number },
  filter: ResampleFilter,
  window: CropWindow,
  scratch: ResizeScratch,
): PixelView {
  const channels = src.channels;
  const stride = window.colCount * channels;
  const verticalPlan = resized.height === height ? undefined : axisPlan(height, resized.height, filter, window.rowFrom, window.rowCount);
  const rows = verticalPlan
    ? sourceSpan(verticalPlan, window.rowFrom, window.rowCount)
    : { first: window.rowFrom, end: window.rowFrom + window.rowCount };

  let stage: PixelView;
  if (resized.width === width) {
    stage = { ...src, offset: src.offset + rows.first * src.rowStride + window.colFrom * channels };
  } else {
    const buffer = scratch.horizontal.get(stride * (rows.end - rows.first));
    const plan = axisPlan(width, resized.width, filter, window.colFrom, window.colCount);
    resampleRows(src, plan, rows.first, rows.end, window.colFrom, window.colCount, buffer, stride);
    stage = { data: buffer, offset: 0, rowStride: stride, channels };
  }
  if (!verticalPlan) return stage;

  const buffer = scratch.vertical.get(stride * window.rowCount);
  resampleColumns(stage, rows.first, verticalPlan, window.rowFrom, window.rowCount, stride, buffer, stride);
  return { data: buffer, offset: 0, rowStride: stride, channels };
}

const tableCache = new Map<string, Float32Array>();

/**
 * The output float for each channel and 8-bit value: torchvision computes in float32
 * ToTensor's v/255, then Normalize's (x − mean)/std, each step rounded to float32 (mean and std
 * too). Rounding the double result of one IEEE operation to float32 gives the float32 result.
 */
export function normalisationTable(config: PreprocessConfig): Float32Array {
  const key = `${config.mean.join()}/${config.std.join()}`;
  let table = tableCache.get(key);
  if (table === undefined) {
    table = new Float32Array(3 * 256);
    for (let c = 0; c < 3; c++) {
      const mean = Math.fround(config.mean[c]);
      const std = Math.fround(config.std[c]);
      for (let v = 0; v < 256; v++) table[c * 256 + v] = Math.fround(Math.fround(v / 255) - mean) / std;
    }
    tableCache.set(key, table);
  }
  return table;
}

/** Pillow's RGBa → RGBA conversion of one premultiplied sample (rgba2rgbA in Convert.c). */
function unpremultiply(value: number, alpha: number): number {
  if (alpha === 0 || alpha === 255) return value;
  return Math.min(Math.trunc((255 * value) / alpha), 255);
}

/** Writes the crop as planar normalised floats; pixels of the crop outside the image are zero padding. */
function writeNormalised(
  pixels: PixelView,
  window: CropWindow,
  premultiplied: boolean,
  table: Float32Array,
  out: Float32Array,
  outOffset: number,
): void {
  const { crop } = window;
  const plane = crop * crop;
  const { data, channels, rowStride } = pixels;
  const colEnd = window.colFrom + window.colCount;
  const rowEnd = window.rowFrom + window.rowCount;
  for (let i = 0; i < crop; i++) {
    const y = window.top + i;
    const rowInside = y >= window.rowFrom && y < rowEnd;
    const rowBase = pixels.offset + (y - window.rowFrom) * rowStride;
    for (let j = 0; j < crop; j++) {
      const x = window.left + j;
      const o = outOffset + i * crop + j;
      if (!rowInside || x < window.colFrom || x >= colEnd) {
        out[o] = table[0];
        out[o + plane] = table[256];
        out[o + 2 * plane] = table[512];
        continue;
      }
      const p = rowBase + (x - window.colFrom) * channels;
      let r = data[p];
      let g = data[p + 1];
      let b = data[p + 2];
      if (premultiplied) {
        const alpha = data[p + 3];
        r = unpremultiply(r, alpha);
        g = unpremultiply(g, alpha);
        b = unpremultiply(b, alpha);
      }
      out[o] = table[r];
      out[o + plane] = table[256 + g];
      out[o + 2 * plane] = table[512 + b];
    }
  }
}

/** MULDIV255 of Pillow's RGBA → RGBa conversion: a·b/255 rounded, in integers. */
function premultiply(value: number, alpha: number): number {
  const t = value * alpha + 128;
  return ((t >> 8) + t) >> 8;
}

function premultipliedRgba(image: DecodedImage, alpha: Uint8Array, scratch: Scratch): Uint8ClampedArray {
  const pixels = image.width * image.height;
  const rgba = scratch.get(pixels * 4);
  const rgb = image.data;
  for (let p = 0, s = 0, d = 0; p < pixels; p++, s += 3, d += 4) {
    const a = alpha[p];
    rgba[d] = premultiply(rgb[s], a);
    rgba[d + 1] = premultiply(rgb[s + 1], a);
    rgba[d + 2] = premultiply(rgb[s + 2], a);
    rgba[d + 3] = a;
  }
  return rgba;
}

function checkConfig(config: PreprocessConfig): void {
  if (config.resizeMode !== 'shortest' && config.resizeMode !== 'squash') {
    throw new RangeError(`preprocess config: resizeMode must be "shortest" or "squash", got ${String(config.resizeMode)}`);
  }
  for (const [name, value] of [
    ['imageSize', config.imageSize],
    ['resizeSize', config.resizeSize],
  ] as const) {
    if (!Number.isInteger(value) || value < 1) throw new RangeError(`preprocess config: ${name} must be a positive integer, got ${value}`);
  }
}

function checkOutput(out: Float32Array, outOffset: number, imageSize: number): void {
  const needed = 3 * imageSize * imageSize;
  if (!Number.isInteger(outOffset) || outOffset < 0 || outOffset + needed > out.length) {
    throw new RangeError(`preprocess: output offset ${outOffset} + ${needed} floats does not fit an array of ${out.length}`);
  }
}

function checkImage(image: DecodedImage): void {
  const { width, height } = image;
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
    throw new RangeError(`preprocess: image size must be positive integers, got ${width}x${height}`);
  }
  if (image.data.length !== width * height * 3) {
    throw new RangeError(`preprocess: ${width}x${height} RGB needs ${width * height * 3} bytes, got ${image.data.length}`);
  }
  if (image.alpha !== undefined && image.alpha.length !== width * height) {
    throw new RangeError(`preprocess: ${width}x${height} alpha needs ${width * height} bytes, got ${image.alpha.length}`);
  }
}

const imageScratch = {
  premultiplied: new Scratch(),
  resize: { horizontal: new Scratch(), vertical: new Scratch() },
};

/**
 * Preprocesses a decoded image into out[outOffset ..< outOffset + 3·size²] (planar RGB float32).
 *
 * Matches Pillow's Image.resize on the mode Pillow would have opened the file in: palette and
 * bilevel images resize with NEAREST whatever the config says; images with alpha resize in
 * premultiplied alpha (so transparent pixels come out black) before the alpha is dropped; an image
 * already of the resized size is not resampled at all, and its alpha is simply dropped. An image too
 * elongated to resize (see MAX_RESIZED_SIDE) is a one-line ClipEvalError naming `label`.
 */
export function preprocessDecoded(image: DecodedImage, config: PreprocessConfig, out: Float32Array, outOffset: number, label = 'image'): void {
  checkConfig(config);
  checkOutput(out, outOffset, config.imageSize);
  checkImage(image);
  const { width, height } = image;
  const resized = configResizedSize(width, height, config);
  const longer = Math.max(resized.width, resized.height);
  if (longer > MAX_RESIZED_SIDE) {
    throw inputError(
      `${label}: image is ${width}x${height}, too elongated: resizing its shorter side to ${config.resizeSize} would make the longer ${longer} pixels, over the limit of ${MAX_RESIZED_SIDE}`,
    );
  }
  const window = cropWindow(resized.width, resized.height, config.imageSize);
  const filter: ResampleFilter = image.palette ? 'nearest' : config.resample;
  const resizing = resized.width !== width || resized.height !== height;
  // Pillow resamples alpha images premultiplied, except with NEAREST or when nothing is resampled.
  const alpha = resizing && filter !== 'nearest' ? image.alpha : undefined;
  const premultiplied = alpha !== undefined;
  const table = normalisationTable(config);

  // The SIMD kernel always runs both passes (a kept size gives identity weights, as exact as
  // Pillow's skipped pass) and normalises straight after, so it cannot unpremultiply in between.
  const resizer = premultiplied ? undefined : cachedRgbResizer(width, height, resized, filter, window);
  if (resizer !== undefined) {
    const plane = window.crop * window.crop;
    if (window.colCount < window.crop || window.rowCount < window.crop) {
      for (let c = 0; c < 3; c++) resizer.output.fill(table[c * 256], c * plane, (c + 1) * plane);
    }
    resizer.run({ data: image.data, offset: 0, rowStride: width * 3, channels: 3 }, config.mean.map(Math.fround), config.std.map(Math.fround));
    out.set(resizer.output, outOffset);
    return;
  }

  const source: PixelView = alpha
    ? { data: premultipliedRgba(image, alpha, imageScratch.premultiplied), offset: 0, rowStride: width * 4, channels: 4 }
    : { data: image.data, offset: 0, rowStride: width * 3, channels: 3 };
  const pixels = resizeWindow(source, width, height, resized, filter, window, imageScratch.resize);
  writeNormalised(pixels, window, premultiplied, table, out, outOffset);
}

/** What the SIMD resizers compute for one size of image, resize and crop. */
function resizeSpec(width: number, height: number, resized: { width: number; height: number }, filter: ResampleFilter, window: CropWindow): ChannelResizeSpec {
  return {
    horizontal: axisPlan(width, resized.width, filter, window.colFrom, window.colCount),
    vertical: axisPlan(height, resized.height, filter, window.rowFrom, window.rowCount),
    colFrom: window.colFrom,
    colCount: window.colCount,
    rowFrom: window.rowFrom,
    rowCount: window.rowCount,
    planes: 3,
    outputPlane: window.crop * window.crop,
    outputOffset: (window.rowFrom - window.top) * window.crop + (window.colFrom - window.left),
    outputStride: window.crop,
  };
}

/** Consecutive images often share a size (data sets): keep the last resizer. */
let lastResizer: { key: string; resizer: RgbResizer | undefined } | undefined;

function cachedRgbResizer(
  width: number,
  height: number,
  resized: { width: number; height: number },
  filter: ResampleFilter,
  window: CropWindow,
): RgbResizer | undefined {
  const key = `${width}x${height}:${filter}:${resized.width}x${resized.height}:${window.crop}`;
  if (lastResizer?.key !== key) lastResizer = { key, resizer: createRgbResizer(resizeSpec(width, height, resized, filter, window)) };
  return lastResizer.resizer;
}

/** Decodes and preprocesses one image file into a new [3, size, size] float32 array. */
export async function preprocessImageFile(path: string, config: PreprocessConfig, options?: DecodeOptions): Promise<Float32Array> {
  const image = await decodeImage(path, path, options);
  const out = new Float32Array(3 * config.imageSize * config.imageSize);
  preprocessDecoded(image, config, out, 0, path);
  return out;
}

/** Channel-major 8-bit RGB: the R, G and B planes of width×height bytes each, row-major. */
export interface PlanarImage {
  pixels: Uint8Array;
  width: number;
  height: number;
}

/** A preprocessor of planar images; call it with the image and where to write its [3, size, size] floats. */
export type PlanarPreprocessor = (image: PlanarImage, out: Float32Array, outOffset: number) => void;

/**
 * A preprocessor for planar images (CIFAR's records), as Pillow would see Image.fromarray(rgb): no
 * codec, and both passes and the normalisation in the WebAssembly SIMD kernel, with plans, tables and
 * buffers made once per image size (data sets keep one size). Crops narrower than the kernel's 8 lanes
 * take the general path.
 */
export function createPlanarPreprocessor(config: PreprocessConfig): PlanarPreprocessor {
  checkConfig(config);
  const crop = config.imageSize;
  const table = normalisationTable(config);
  const mean = config.mean.map(Math.fround);
  const std = config.std.map(Math.fround);
  let sized: { key: string; resizer: ChannelResizer | undefined } | undefined;
  const general = planarThroughGeneralPath(config);

  return (image, out, outOffset) => {
    const { pixels, width, height } = image;
    checkPlanar(image);
    checkOutput(out, outOffset, crop);
    const key = `${width}x${height}`;
    if (sized?.key !== key) {
      const resized = configResizedSize(width, height, config);
      if (Math.max(resized.width, resized.height) > MAX_RESIZED_SIDE) {
        throw inputError(`planar image of ${width}x${height} is too elongated to resize its shorter side to ${config.resizeSize}`);
      }
      const window = cropWindow(resized.width, resized.height, crop);
      const resizer = createChannelResizer(resizeSpec(width, height, resized, config.resample, window));
      // Padding (a crop larger than the resized image) never changes for one size: write it once.
      if (resizer) for (let c = 0; c < 3; c++) resizer.output.fill(table[c * 256], c * crop * crop, (c + 1) * crop * crop);
      sized = { key, resizer };
    }
    const { resizer } = sized;
    if (resizer === undefined) {
      general(image, out, outOffset);
      return;
    }
    const plane = width * height;
    for (let c = 0; c < 3; c++) {
      const channel: PixelView = { data: pixels, offset: c * plane, rowStride: width, channels: 1 };
      resizer.run(channel, c, mean[c], std[c]);
    }
    out.set(resizer.output, outOffset);
  };
}

function checkPlanar(image: PlanarImage): void {
  const { width, height, pixels } = image;
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
    throw new RangeError(`planar preprocess: image size must be positive integers, got ${width}x${height}`);
  }
  if (pixels.length !== 3 * width * height) {
    throw new RangeError(`planar preprocess: ${width}x${height} planar RGB needs ${3 * width * height} bytes, got ${pixels.length}`);
  }
}

/** Planar images interleaved and sent through preprocessDecoded (for crops the kernel cannot take). */
function planarThroughGeneralPath(config: PreprocessConfig): PlanarPreprocessor {
  let data = new Uint8Array(0);
  return ({ pixels, width, height }, out, outOffset) => {
    const plane = width * height;
    if (data.length !== plane * 3) data = new Uint8Array(plane * 3);
    for (let p = 0; p < plane; p++) {
      data[p * 3] = pixels[p];
      data[p * 3 + 1] = pixels[plane + p];
      data[p * 3 + 2] = pixels[2 * plane + p];
    }
    preprocessDecoded({ data, width, height, channels: 3, palette: false }, config, out, outOffset);
  };
}

/**
 * The planar preprocessor over CIFAR's record layout: `records` holds count·3072 bytes (per image the
 * R, G and B planes, each 32×32); call it with the image index and where to write its floats.
 */
export function createCifarPreprocessor(
  config: PreprocessConfig,
): (records: Uint8Array, index: number, out: Float32Array, outOffset: number) => void {
  const planar = createPlanarPreprocessor(config);
  return (records, index, out, outOffset) => {
    const count = Math.floor(records.length / CIFAR_IMAGE_BYTES);
    if (!Number.isInteger(index) || index < 0 || index >= count) {
      throw new RangeError(`CIFAR preprocess: image index ${index} is outside 0..${count - 1}`);
    }
    planar({ pixels: records.subarray(index * CIFAR_IMAGE_BYTES, (index + 1) * CIFAR_IMAGE_BYTES), width: CIFAR_SIDE, height: CIFAR_SIDE }, out, outOffset);
  };
}
