import { inputError } from '../core/errors.js';

export type ResampleFilter = 'bicubic' | 'bilinear' | 'nearest';

/**
 * How a model wants its images, as torchvision composes it: the resize (`shortest`: Resize(N), the
 * shorter side to `resizeSize` keeping the aspect ratio, as CLIP; `squash`: Resize((N, N)), both sides
 * to `resizeSize`, as SigLIP and DFN), a centre crop of `imageSize`×`imageSize` (none when it equals a
 * squash's size), then per channel (x/255 − mean)/std.
 */
export type ResizeMode = 'shortest' | 'squash';

export interface PreprocessConfig {
  imageSize: number;
  resizeMode: ResizeMode;
  resizeSize: number;
  mean: [number, number, number];
  std: [number, number, number];
  resample: ResampleFilter;
}

/** OpenAI CLIP's torchvision pipeline at 224 pixels. */
export const OPENAI_PREPROCESS: PreprocessConfig = Object.freeze({
  imageSize: 224,
  resizeMode: 'shortest',
  resizeSize: 224,
  mean: Object.freeze([0.48145466, 0.4578275, 0.40821073]),
  std: Object.freeze([0.26862954, 0.26130258, 0.27577711]),
  resample: 'bicubic',
}) as PreprocessConfig;

/** Larger sizes are surely a mistake, and would make tables and buffers absurd. */
const MAX_IMAGE_SIZE = 4096;

/** Pillow's resampling filter numbers, as Hugging Face configs store them. */
const HF_RESAMPLE: Record<number, ResampleFilter> = { 0: 'nearest', 2: 'bilinear', 3: 'bicubic' };
const PILLOW_FILTER_NAMES: Record<number, string> = { 1: 'LANCZOS', 4: 'BOX', 5: 'HAMMING' };

type JsonObject = Record<string, unknown>;

function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function describeValue(value: unknown): string {
  const text = JSON.stringify(value);
  return text === undefined ? String(value) : text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

function checkSize(value: unknown, file: string, field: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > MAX_IMAGE_SIZE) {
    throw inputError(`${file}: "${field}" must be an integer from 1 to ${MAX_IMAGE_SIZE}, got ${describeValue(value)}`);
  }
  return value;
}

function checkTriple(value: unknown, file: string, field: string, positive: boolean): [number, number, number] {
  const items = typeof value === 'number' ? [value, value, value] : value;
  const valid =
    Array.isArray(items) &&
    items.length === 3 &&
    items.every((item) => typeof item === 'number' && Number.isFinite(item) && (!positive || item > 0));
  if (!valid) {
    const kind = positive ? 'positive numbers' : 'finite numbers';
    throw inputError(`${file}: "${field}" must be 3 ${kind} (one per RGB channel), got ${describeValue(value)}`);
  }
  return [items[0], items[1], items[2]] as [number, number, number];
}

/** Rejects a boolean switch that turns off a step this pipeline always does. */
function requireEnabled(json: JsonObject, file: string, field: string, what: string): void {
  if (json[field] === false) {
    throw inputError(`${file}: "${field}" is false, but clip-eval always does ${what}; only CLIP-style preprocessing is supported`);
  }
}

function hfCropSize(value: unknown, file: string, fallback: number): number {
  if (value === undefined) return fallback;
  if (isObject(value)) {
    const height = checkSize(value.height, file, 'crop_size.height');
    const width = checkSize(value.width, file, 'crop_size.width');
    if (height !== width) {
      throw inputError(`${file}: "crop_size" must be square, got ${height}x${width}`);
    }
    return height;
  }
  return checkSize(value, file, 'crop_size');
}

/** `size`: N or {"shortest_edge": N} resize the shorter side, {"height": N, "width": N} squashes. */
function hfResize(value: unknown, file: string): { resizeMode: ResizeMode; resizeSize: number } {
  if (value === undefined) return { resizeMode: 'shortest', resizeSize: OPENAI_PREPROCESS.resizeSize };
  if (isObject(value)) {
    if (value.height !== undefined || value.width !== undefined) {
      const height = checkSize(value.height, file, 'size.height');
      const width = checkSize(value.width, file, 'size.width');
      if (height !== width) throw inputError(`${file}: "size" must be square, got ${height}x${width}`);
      return { resizeMode: 'squash', resizeSize: height };
    }
    if (value.shortest_edge === undefined) {
      throw inputError(
        `${file}: "size" must be a number, {"shortest_edge": N} (resize of the shorter side) or {"height": N, "width": N} (squash), got ${describeValue(value)}`,
      );
    }
    return { resizeMode: 'shortest', resizeSize: checkSize(value.shortest_edge, file, 'size.shortest_edge') };
  }
  return { resizeMode: 'shortest', resizeSize: checkSize(value, file, 'size') };
}

function hfResample(value: unknown, file: string): ResampleFilter {
  if (value === undefined) return 'bicubic';
  if (typeof value === 'number' && HF_RESAMPLE[value] !== undefined) return HF_RESAMPLE[value];
  const name = typeof value === 'number' ? PILLOW_FILTER_NAMES[value] : undefined;
  const got = name === undefined ? describeValue(value) : `${value} (${name})`;
  throw inputError(`${file}: "resample" must be 3 (bicubic), 2 (bilinear) or 0 (nearest), got ${got}`);
}

/**
 * A Hugging Face `preprocessor_config.json` (CLIPImageProcessor, SiglipImageProcessor and alike).
 * Absent fields take the processor's defaults: CLIPImageProcessor's are OpenAI's values and a centre
 * crop; SiglipImageProcessor has no crop step.
 */
export function preprocessConfigFromHf(json: unknown, file: string): PreprocessConfig {
  if (!isObject(json)) throw inputError(`${file}: expected a JSON object, got ${describeValue(json)}`);
  requireEnabled(json, file, 'do_resize', 'a resize');
  requireEnabled(json, file, 'do_rescale', 'the 1/255 rescale');
  if (json.rescale_factor !== undefined && (typeof json.rescale_factor !== 'number' || Math.abs(json.rescale_factor * 255 - 1) > 1e-9)) {
    throw inputError(`${file}: "rescale_factor" must be 1/255 (0.00392156862745098), got ${describeValue(json.rescale_factor)}`);
  }
  if (json.do_convert_rgb === false) {
    throw inputError(`${file}: "do_convert_rgb" is false, but clip-eval always converts images to RGB`);
  }
  const resize = hfResize(json.size, file);
  const siglip = typeof json.image_processor_type === 'string' && json.image_processor_type.startsWith('Siglip');
  if (json.do_center_crop !== undefined && typeof json.do_center_crop !== 'boolean') {
    throw inputError(`${file}: "do_center_crop" must be true or false, got ${describeValue(json.do_center_crop)}`);
  }
  const centerCrop = json.do_center_crop ?? (json.crop_size !== undefined || !siglip);
  if (!centerCrop && resize.resizeMode === 'shortest') {
    throw inputError(`${file}: "do_center_crop" is false after a shorter-side resize, which leaves images of any shape; the model takes square ones`);
  }
  const imageSize = centerCrop ? hfCropSize(json.crop_size, file, resize.resizeMode === 'squash' ? resize.resizeSize : OPENAI_PREPROCESS.imageSize) : resize.resizeSize;
  // Normalising with mean 0 and std 1 computes exactly x/255, so "no normalisation" is that.
  const normalize = json.do_normalize !== false;
  return {
    imageSize,
    ...resize,
    mean: normalize ? checkTriple(json.image_mean ?? OPENAI_PREPROCESS.mean, file, 'image_mean', false) : [0, 0, 0],
    std: normalize ? checkTriple(json.image_std ?? OPENAI_PREPROCESS.std, file, 'image_std', true) : [1, 1, 1],
    resample: hfResample(json.resample, file),
  };
}

function openClipSize(value: unknown, file: string): number {
  if (value === undefined) return OPENAI_PREPROCESS.imageSize;
  if (Array.isArray(value)) {
    if (value.length !== 2) throw inputError(`${file}: "size" must be N or [N, N], got ${describeValue(value)}`);
    const height = checkSize(value[0], file, 'size[0]');
    const width = checkSize(value[1], file, 'size[1]');
    if (height !== width) throw inputError(`${file}: "size" must be square, got [${height}, ${width}]`);
    return height;
  }
  return checkSize(value, file, 'size');
}

function openClipInterpolation(value: unknown, file: string): ResampleFilter {
  if (value === undefined) return 'bicubic';
  if (value === 'bicubic' || value === 'bilinear' || value === 'nearest') return value;
  throw inputError(`${file}: "interpolation" must be "bicubic", "bilinear" or "nearest", got ${describeValue(value)}`);
}

/**
 * An OpenCLIP `preprocess_cfg.json` (as immich's model bundles ship in visual/): size, mode, mean,
 * std, interpolation, resize_mode, fill_color. Absent fields take OpenCLIP's defaults.
 */
export function preprocessConfigFromOpenClip(json: unknown, file: string): PreprocessConfig {
  if (!isObject(json)) throw inputError(`${file}: expected a JSON object, got ${describeValue(json)}`);
  if (json.mode !== undefined && json.mode !== 'RGB') {
    throw inputError(`${file}: "mode" must be "RGB", got ${describeValue(json.mode)}`);
  }
  if (json.resize_mode !== undefined && json.resize_mode !== 'shortest' && json.resize_mode !== 'squash') {
    throw inputError(
      `${file}: "resize_mode" must be "shortest" (resize the shorter side, then centre crop) or "squash" (resize both sides), got ${describeValue(json.resize_mode)}`,
    );
  }
  // fill_color only paints the margins that the "longest" mode adds; "shortest" and "squash" have none.
  const size = openClipSize(json.size, file);
  return {
    imageSize: size,
    resizeMode: json.resize_mode === 'squash' ? 'squash' : 'shortest',
    resizeSize: size,
    mean: checkTriple(json.mean ?? OPENAI_PREPROCESS.mean, file, 'mean', false),
    std: checkTriple(json.std ?? OPENAI_PREPROCESS.std, file, 'std', true),
    resample: openClipInterpolation(json.interpolation, file),
  };
}
