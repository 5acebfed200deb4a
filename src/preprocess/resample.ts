import type { ResampleFilter } from './config.js';
import { createResampleKernel } from './simd-kernel.js';

/**
 * Pillow-exact image resampling (libImaging/Resample.c and, for NEAREST, Geometry.c's scale path).
 *
 * Pillow resizes separably: a horizontal pass into a uint8 image, then a vertical pass, each output
 * sample being a clipped, fixed-point weighted sum of a window of inputs. The windows and weights
 * depend only on (input size, output size, filter), so they are computed once per axis and reused.
 */

/** Fixed-point precision of Pillow's 8-bit weights: 32 bits less 8 for the pixel and 2 for overflow. */
export const PRECISION_BITS = 22;
/** Added before the shift so that it rounds to nearest. */
export const ROUNDING = 1 << (PRECISION_BITS - 1);
const ONE = 1 << PRECISION_BITS;

/**
 * Where output samples [from, from + count) of one axis (of outSize) read from: output `from + i`
 * reads `taps` consecutive inputs from `start[i]` with weights `weights[i * taps + k]`; windows
 * shorter than `taps` (at the image edges, where Pillow clips them) are padded with zero weights,
 * which leaves the integer sums unchanged. Each output's window and weights depend only on its own
 * index, so a plan of the crop's outputs alone equals that part of the whole axis's plan.
 */
export interface AxisPlan {
  readonly inSize: number;
  readonly outSize: number;
  readonly from: number;
  readonly count: number;
  readonly taps: number;
  readonly start: Int32Array;
  readonly weights: Int32Array;
}

interface Kernel {
  support: number;
  weight(x: number): number;
}

const BICUBIC: Kernel = {
  support: 2,
  // Keys' cubic convolution with a = -0.5, written as Pillow evaluates it.
  weight(x) {
    const a = -0.5;
    const t = Math.abs(x);
    if (t < 1) return ((a + 2) * t - (a + 3)) * t * t + 1;
    if (t < 2) return (((t - 5) * t + 8) * t - 4) * a;
    return 0;
  },
};

const BILINEAR: Kernel = {
  support: 1,
  weight(x) {
    const t = Math.abs(x);
    return t < 1 ? 1 - t : 0;
  },
};

/** Pillow's (int)(0.5 + w·2^22), rounding halves away from zero. */
function toFixed(weight: number): number {
  return Math.trunc(weight < 0 ? weight * ONE - 0.5 : weight * ONE + 0.5);
}

/**
 * Windows and weights of a convolution filter, as Pillow's precompute_coeffs and
 * normalize_coeffs_8bpc compute them: sample centres at (i + 0.5)·scale, the support widened by the
 * scale when downscaling, windows clipped to the image and their weights renormalised to sum 1.
 */
function convolutionPlan(inSize: number, outSize: number, from: number, count: number, kernel: Kernel): AxisPlan {
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1);
  const support = kernel.support * filterScale;
  const inverseScale = 1 / filterScale;
  const windowStart = new Int32Array(count);
  const windowLength = new Int32Array(count);
  const exact: number[][] = [];
  let taps = 0;
  for (let i = 0; i < count; i++) {
    const center = (from + i + 0.5) * scale;
    // C's (int) casts truncate towards zero.
    const min = Math.max(Math.trunc(center - support + 0.5), 0);
    const length = Math.min(Math.trunc(center + support + 0.5), inSize) - min;
    const row: number[] = [];
    let sum = 0;
    for (let k = 0; k < length; k++) {
      const w = kernel.weight((k + min - center + 0.5) * inverseScale);
      row.push(w);
      sum += w;
    }
    exact.push(sum === 0 ? row : row.map((w) => w / sum));
    windowStart[i] = min;
    windowLength[i] = length;
    taps = Math.max(taps, length);
  }
  const start = new Int32Array(count);
  const weights = new Int32Array(count * taps);
  for (let i = 0; i < count; i++) {
    // Slide short windows left where needed so that all `taps` inputs exist; taps <= inSize.
    start[i] = Math.min(windowStart[i], inSize - taps);
    const shift = windowStart[i] - start[i];
    for (let k = 0; k < windowLength[i]; k++) weights[i * taps + shift + k] = toFixed(exact[i][k]);
  }
  return { inSize, outSize, from, count, taps, start, weights };
}

/**
 * NEAREST as one-tap weights. Pillow maps output i to input COORD(0.5·a + i·a) with a = in/out,
 * accumulating the position by repeated addition (so its rounding is reproduced here), and fills
 * positions outside the image with 0, which a zero weight reproduces.
 */
function nearestPlan(inSize: number, outSize: number, from: number, count: number): AxisPlan {
  const step = inSize / outSize;
  const start = new Int32Array(count);
  const weights = new Int32Array(count);
  let position = step * 0.5;
  for (let i = 0; i < from; i++) position += step;
  for (let i = 0; i < count; i++) {
    const source = position < 0 ? -1 : Math.trunc(position);
    if (source >= 0 && source < inSize) {
      start[i] = source;
      weights[i] = ONE;
    }
    position += step;
  }
  return { inSize, outSize, from, count, taps: 1, start, weights };
}

const MAX_CACHED_PLANS = 64;
const planCache = new Map<string, AxisPlan>();

/**
 * The (cached) plan for resizing one axis from inSize to outSize samples, for outputs
 * [from, from + count) only (by default all): a crop needs its own outputs, not the whole axis.
 */
export function axisPlan(inSize: number, outSize: number, filter: ResampleFilter, from = 0, count = outSize - from): AxisPlan {
  if (!Number.isInteger(inSize) || !Number.isInteger(outSize) || inSize < 1 || outSize < 1) {
    throw new RangeError(`axisPlan: sizes must be positive integers, got ${inSize} -> ${outSize}`);
  }
  if (!Number.isInteger(from) || !Number.isInteger(count) || from < 0 || count < 1 || from + count > outSize) {
    throw new RangeError(`axisPlan: outputs ${from}..+${count} are not within 0..${outSize - 1}`);
  }
  const key = `${filter}:${inSize}:${outSize}:${from}:${count}`;
  let plan = planCache.get(key);
  if (plan === undefined) {
    if (filter === 'nearest') plan = nearestPlan(inSize, outSize, from, count);
    else plan = convolutionPlan(inSize, outSize, from, count, filter === 'bicubic' ? BICUBIC : BILINEAR);
    if (planCache.size >= MAX_CACHED_PLANS) planCache.clear();
    planCache.set(key, plan);
  }
  return plan;
}

/** Where output `index` of the axis is in `plan` (which must cover outputs [index, index + count)). */
function planIndex(plan: AxisPlan, index: number, count: number): number {
  const at = index - plan.from;
  if (at < 0 || at + count > plan.count) {
    throw new RangeError(`resample: outputs ${index}..+${count} are outside the plan's ${plan.from}..+${plan.count}`);
  }
  return at;
}

/** Input rows (or columns) [first, end) that outputs [from, from + count) of a plan read. */
export function sourceSpan(plan: AxisPlan, from: number, count: number): { first: number; end: number } {
  const at = planIndex(plan, from, count);
  let first = plan.inSize;
  let end = 0;
  for (let i = at; i < at + count; i++) {
    first = Math.min(first, plan.start[i]);
    end = Math.max(end, plan.start[i] + plan.taps);
  }
  return { first, end };
}

/**
 * A rectangle of interleaved 8-bit pixels: `channels` samples per pixel, `rowStride` samples per
 * row, the pixel (x, y) at offset + y·rowStride + x·channels.
 */
export interface PixelView {
  data: Uint8Array | Uint8ClampedArray;
  offset: number;
  rowStride: number;
  channels: number;
}

/**
 * Pillow's horizontal pass over input rows [rowFirst, rowEnd), computing output columns
 * [colFrom, colFrom + colCount) into `dst` (row r of the span at dst row r − rowFirst). Writing to
 * a Uint8ClampedArray clips the shifted sums to 0..255 as Pillow's clip8 does.
 */
export function resampleRows(
  src: PixelView,
  plan: AxisPlan,
  rowFirst: number,
  rowEnd: number,
  colFrom: number,
  colCount: number,
  dst: Uint8ClampedArray,
  dstStride: number,
): void {
  const { data, channels, rowStride } = src;
  const { taps, start, weights } = plan;
  const at = planIndex(plan, colFrom, colCount);
  for (let y = rowFirst; y < rowEnd; y++) {
    const rowBase = src.offset + y * rowStride;
    let o = (y - rowFirst) * dstStride;
    for (let x = at; x < at + colCount; x++) {
      const first = rowBase + start[x] * channels;
      const w = x * taps;
      for (let c = 0; c < channels; c++) {
        let sum = ROUNDING;
        for (let k = 0, s = first + c; k < taps; k++, s += channels) sum += data[s] * weights[w + k];
        dst[o++] = sum >> PRECISION_BITS;
      }
    }
  }
}

/**
 * Pillow's vertical pass: output rows [rowFrom, rowFrom + rowCount) of `plan`, each `rowLength`
 * samples wide, from `src` whose row 0 is input row `srcFirstRow`.
 */
export function resampleColumns(
  src: PixelView,
  srcFirstRow: number,
  plan: AxisPlan,
  rowFrom: number,
  rowCount: number,
  rowLength: number,
  dst: Uint8ClampedArray,
  dstStride: number,
): void {
  const { data, rowStride } = src;
  const { taps, start, weights } = plan;
  const at = planIndex(plan, rowFrom, rowCount);
  for (let y = at; y < at + rowCount; y++) {
    const first = src.offset + (start[y] - srcFirstRow) * rowStride;
    const w = y * taps;
    const o = (y - at) * dstStride;
    for (let e = 0; e < rowLength; e++) {
      let sum = ROUNDING;
      for (let k = 0, s = first + e; k < taps; k++, s += rowStride) sum += data[s] * weights[w + k];
      dst[o + e] = sum >> PRECISION_BITS;
    }
  }
}

/*
 * One channel at a time through a WebAssembly SIMD kernel: the same integer arithmetic as above,
 * 8 output samples at a time in i32x4 lanes, and torch's float32 normalisation steps
 * ((v/255 − mean)/std) as IEEE f32x4 operations, so results equal the scalar path bit for bit.
 * It runs several times faster than the best scalar JavaScript, which matters most for CIFAR
 * (every 32×32 image becomes 3×224×224 samples). The kernel only filters along columns
 * (contiguous lanes): the horizontal pass runs as a column pass over the transposed channel, and
 * its result is transposed back.
 */

/** Places arrays one after another in kernel memory, 16-byte aligned. */
class MemoryLayout {
  size = 0;

  place(bytes: number): number {
    const at = this.size;
    this.size = Math.ceil((at + bytes) / 16) * 16;
    return at;
  }
}

interface PlacedPlan {
  rowOffsets: number;
  weights: number;
  fill(buffer: ArrayBuffer): void;
}

/** One plan's outputs [from, from + count) as kernel tables: source row offsets (bytes) and weights. */
function placePlan(layout: MemoryLayout, plan: AxisPlan, from: number, count: number, sourceFirst: number, sourceStride: number): PlacedPlan {
  const at = planIndex(plan, from, count);
  const rowOffsets = layout.place(count * 4);
  const weights = layout.place(count * plan.taps * 4);
  return {
    rowOffsets,
    weights,
    fill(buffer) {
      const offsets = new Int32Array(buffer, rowOffsets, count);
      for (let i = 0; i < count; i++) offsets[i] = (plan.start[at + i] - sourceFirst) * sourceStride;
      new Int32Array(buffer, weights, count * plan.taps).set(plan.weights.subarray(at * plan.taps, (at + count) * plan.taps));
    },
  };
}

/**
 * Copies source rows [firstRow, firstRow + rowCount) × columns [firstCol, firstCol + colCount) of
 * one channel into `to` column-major. Eight rows at a time, so that writes stay sequential.
 */
function transposeChannel(
  src: PixelView,
  firstRow: number,
  rowCount: number,
  firstCol: number,
  colCount: number,
  heap: Uint8Array,
  to: number,
): void {
  const { data, rowStride, channels } = src;
  const fullBlocks = rowCount - (rowCount % 8);
  for (let r = 0; r < fullBlocks; r += 8) {
    const a = src.offset + (firstRow + r) * rowStride + firstCol * channels;
    const b = a + rowStride;
    const c = b + rowStride;
    const d = c + rowStride;
    const e = d + rowStride;
    const f = e + rowStride;
    const g = f + rowStride;
    const h = g + rowStride;
    for (let x = 0, s = 0, o = to + r; x < colCount; x++, s += channels, o += rowCount) {
      heap[o] = data[a + s];
      heap[o + 1] = data[b + s];
      heap[o + 2] = data[c + s];
      heap[o + 3] = data[d + s];
      heap[o + 4] = data[e + s];
      heap[o + 5] = data[f + s];
      heap[o + 6] = data[g + s];
      heap[o + 7] = data[h + s];
    }
  }
  for (let r = fullBlocks; r < rowCount; r++) {
    const a = src.offset + (firstRow + r) * rowStride + firstCol * channels;
    for (let x = 0, s = 0, o = to + r; x < colCount; x++, s += channels, o += rowCount) heap[o] = data[a + s];
  }
}

/** Which resized pixels a channel resizer computes, and where it writes them. */
export interface ChannelResizeSpec {
  horizontal: AxisPlan;
  vertical: AxisPlan;
  colFrom: number;
  colCount: number;
  rowFrom: number;
  rowCount: number;
  planes: number;
  /** Floats per output plane, the window's first float within it, and floats per output row. */
  outputPlane: number;
  outputOffset: number;
  outputStride: number;
}

/**
 * Resizes one channel at a time of width×height 8-bit images as Pillow does (both passes, the
 * horizontal one through the transposed channel) and writes the window's samples as normalised
 * floats into an output plane of `output`, its own buffer, which the caller copies out and may fill
 * around the window. `src` addresses the channel: its `channels` is the distance between samples.
 */
export interface ChannelResizer {
  readonly output: Float32Array;
  run(src: PixelView, plane: number, mean: number, std: number): void;
}

/** A resizer for `spec`, or undefined when the window or its source rows are narrower than the kernel's 8 lanes. */
export function createChannelResizer(spec: ChannelResizeSpec): ChannelResizer | undefined {
  const { horizontal, vertical, colFrom, colCount, rowFrom, rowCount, planes, outputPlane } = spec;
  const rows = sourceSpan(vertical, rowFrom, rowCount);
  const cols = sourceSpan(horizontal, colFrom, colCount);
  const sourceRows = rows.end - rows.first;
  const sourceCols = cols.end - cols.first;
  if (colCount < 8 || sourceRows < 8) return undefined;

  // transposed: the channel's source window, column-major; resizedT: the horizontal pass,
  // column-major; resized: the same row-major, input of the vertical pass.
  const layout = new MemoryLayout();
  const horizontalTables = placePlan(layout, horizontal, colFrom, colCount, cols.first, sourceRows);
  const verticalTables = placePlan(layout, vertical, rowFrom, rowCount, rows.first, colCount);
  const transposed = layout.place(sourceCols * sourceRows);
  const resizedT = layout.place(colCount * sourceRows);
  const resized = layout.place(sourceRows * colCount);
  const output = layout.place(planes * outputPlane * 4);
  const { buffer, bytes, floats } = createResampleKernel(layout.size, PRECISION_BITS);
  horizontalTables.fill(buffer);
  verticalTables.fill(buffer);
  const heap = new Uint8Array(buffer);

  return {
    output: new Float32Array(buffer, output, planes * outputPlane),
    run(src, plane, mean, std) {
      transposeChannel(src, rows.first, sourceRows, cols.first, sourceCols, heap, transposed);
      bytes(transposed, horizontalTables.rowOffsets, horizontalTables.weights, horizontal.taps, colCount, sourceRows, sourceRows, resizedT, sourceRows, 0, 1);
      for (let c = 0; c < colCount; c++) {
        const from = resizedT + c * sourceRows;
        for (let r = 0, to = resized + c; r < sourceRows; r++, to += colCount) heap[to] = heap[from + r];
      }
      const out = output + (plane * outputPlane + spec.outputOffset) * 4;
      floats(resized, verticalTables.rowOffsets, verticalTables.weights, vertical.taps, rowCount, colCount, colCount, out, spec.outputStride * 4, mean, std);
    },
  };
}

/**
 * Resizes interleaved 8-bit RGB as Pillow does, all three channels at once: the horizontal pass
 * straight over the interleaved rows (no transposes), then the column pass of each channel, which
 * writes the window's samples as normalised floats into planes of `output` (as ChannelResizer's).
 */
export interface RgbResizer {
  readonly output: Float32Array;
  /** `src` is the whole image, interleaved RGB (`channels` 3), horizontal.inSize pixels a row. */
  run(src: PixelView, mean: readonly number[], std: readonly number[]): void;
}

/** An RGB resizer for `spec` (planes 3), or undefined when the window is narrower than the kernel's 8 lanes. */
export function createRgbResizer(spec: ChannelResizeSpec): RgbResizer | undefined {
  const { horizontal, vertical, colFrom, colCount, rowFrom, rowCount, outputPlane } = spec;
  if (spec.planes !== 3) throw new RangeError(`createRgbResizer: an RGB resizer writes 3 planes, not ${spec.planes}`);
  const rows = sourceSpan(vertical, rowFrom, rowCount);
  const cols = sourceSpan(horizontal, colFrom, colCount);
  const sourceRows = rows.end - rows.first;
  if (colCount < 8) return undefined;

  const rowBytes = 3 * horizontal.inSize;
  const plane = sourceRows * colCount;
  const layout = new MemoryLayout();
  const horizontalTables = placePlan(layout, horizontal, colFrom, colCount, cols.first, 3);
  const verticalTables = placePlan(layout, vertical, rowFrom, rowCount, rows.first, colCount);
  // The source rows the window reads, whole (one copy); the row kernel's loads reach 5 bytes past the last pixel.
  const source = layout.place(sourceRows * rowBytes + 8);
  const resized = layout.place(3 * plane);
  const output = layout.place(3 * outputPlane * 4);
  const { buffer, rgbRows, floats } = createResampleKernel(layout.size, PRECISION_BITS);
  horizontalTables.fill(buffer);
  verticalTables.fill(buffer);
  const heap = new Uint8Array(buffer);

  return {
    output: new Float32Array(buffer, output, 3 * outputPlane),
    run(src, mean, std) {
      if (src.channels !== 3 || src.rowStride !== rowBytes) throw new RangeError(`RgbResizer: expected interleaved RGB rows of ${rowBytes} bytes`);
      const first = src.offset + rows.first * rowBytes;
      heap.set(src.data.subarray(first, first + sourceRows * rowBytes), source);
      rgbRows(source + cols.first * 3, horizontalTables.rowOffsets, horizontalTables.weights, horizontal.taps, sourceRows, colCount, rowBytes, resized, plane);
      for (let c = 0; c < 3; c++) {
        const out = output + (c * outputPlane + spec.outputOffset) * 4;
        floats(resized + c * plane, verticalTables.rowOffsets, verticalTables.weights, vertical.taps, rowCount, colCount, colCount, out, spec.outputStride * 4, mean[c]!, std[c]!);
      }
    },
  };
}
