import type { default as Sharp, Metadata, OutputInfo } from 'sharp';
import { readRegularFile } from '../core/bounded-read.js';
import { ClipEvalError, describeError, inputError } from '../core/errors.js';

/**
 * An 8-bit RGB image, interleaved, as Pillow's convert('RGB') would see it before any resize.
 * `alpha`, when present, is the straight (not premultiplied) alpha of each pixel: Pillow resizes
 * such images in premultiplied alpha. `palette` is true where Pillow opens the file as a palette
 * ("P") or bilevel ("1") image, which Image.resize always resamples with NEAREST.
 */
export interface DecodedImage {
  data: Uint8Array;
  width: number;
  height: number;
  channels: 3;
  palette: boolean;
  alpha?: Uint8Array;
}

export interface DecodeOptions {
  /** Rotate/flip by the EXIF Orientation tag (default true; Pillow's Image.open does not). */
  autoOrient?: boolean;
  /** Refuse images with more pixels than this (a decompression-bomb guard); default 0x3FFF². */
  maxPixels?: number;
  /** Refuse image files larger than this many bytes; default DEFAULT_MAX_IMAGE_BYTES. */
  maxFileBytes?: number;
  /**
   * Called before memory is taken, with the bytes about to be held: the file's size before it is
   * read, then the decoded pixels' before decoding. May wait (a memory budget shared by images).
   */
  reserve?: (bytes: number) => Promise<void>;
}

/** sharp's own default limit: 0x3FFF × 0x3FFF. */
export const DEFAULT_MAX_PIXELS = 0x3fff * 0x3fff;

/**
 * The largest image file (or standard input) read by default: 512 MiB, more than any compressed
 * image within DEFAULT_MAX_PIXELS needs; a device such as /dev/zero is cut off there.
 */
export const DEFAULT_MAX_IMAGE_BYTES = 512 * 2 ** 20;

interface CheckedOptions {
  autoOrient: boolean;
  maxPixels: number;
  maxFileBytes: number;
  reserve?: (bytes: number) => Promise<void>;
}

function checkOptions(options: DecodeOptions): CheckedOptions {
  const maxPixels = options.maxPixels ?? DEFAULT_MAX_PIXELS;
  if (!Number.isSafeInteger(maxPixels) || maxPixels < 1) {
    throw new RangeError(`decodeImage: maxPixels must be a positive integer, got ${maxPixels}`);
  }
  const maxFileBytes = options.maxFileBytes ?? DEFAULT_MAX_IMAGE_BYTES;
  if (!Number.isSafeInteger(maxFileBytes) || maxFileBytes < 1) {
    throw new RangeError(`decodeImage: maxFileBytes must be a positive integer, got ${maxFileBytes}`);
  }
  return { autoOrient: options.autoOrient ?? true, maxPixels, maxFileBytes, reserve: options.reserve };
}

async function readInput(input: string | Uint8Array, label: string, options: CheckedOptions): Promise<Uint8Array> {
  if (typeof input === 'string') return readImageFile(input, label, options);
  if (input.length === 0) throw inputError(`${label}: image data is empty (0 bytes)`);
  if (input.length > options.maxFileBytes) throw inputError(`${label}: image data is larger than the limit of ${options.maxFileBytes} bytes`);
  return input;
}

/**
 * An image file's bytes, as decodeImage reads them: a regular file only, at most maxFileBytes
 * (reserved first), every failure a one-line ClipEvalError naming `label`. For callers that need the
 * bytes themselves (a digest) before decoding them.
 */
export async function readImageFile(path: string, label: string, options: Pick<DecodeOptions, 'maxFileBytes' | 'reserve'> = {}): Promise<Buffer> {
  const { maxFileBytes, reserve } = checkOptions(options);
  let bytes: Buffer;
  try {
    bytes = await readRegularFile(path, { maxBytes: maxFileBytes, label, beforeRead: reserve });
  } catch (error) {
    if (error instanceof ClipEvalError) throw error;
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw inputError(`${label}: image file not found`, error);
    if (code === 'EACCES' || code === 'EPERM') throw inputError(`${label}: image file is not readable (permission denied)`, error);
    throw inputError(`${label}: cannot read image file (${describeError(error)})`, error);
  }
  if (bytes.length === 0) throw inputError(`${label}: image file is empty (0 bytes)`);
  return bytes;
}

/**
 * libvips keeps one error buffer for the whole process (every thread), so a decoder's message can be
 * cleared or replaced by another image failing at the same moment. Decodes run side by side; one that
 * failed runs again alone, once the others are done, and reports that run's own message. The gate's
 * state is shared memory, so that worker threads decoding for the same process keep to it too. Each
 * worker counts its steps in a slot of its own, which its pool clears once the worker has stopped: a
 * worker stopped mid-decode cannot leave a run alone waiting for its steps forever.
 */
const OWNER = 0; // slot + 1 of the thread that runs (or waits to run) a step alone; 0 when none
const CHANGES = 1; // bumped, and waiters woken, whenever a step ends or the owner changes
const SLOTS = 256;
const COUNTS = 2; // COUNTS + s: steps slot s runs side by side
const CLAIMED = COUNTS + SLOTS; // CLAIMED + s: 1 while slot s is a worker's
/** The most worker threads that can keep to one gate (slot 0 is every other thread's). */
export const MAX_DECODER_WORKERS = SLOTS - 1;

let gate = new Int32Array(new SharedArrayBuffer((COUNTS + 2 * SLOTS) * Int32Array.BYTES_PER_ELEMENT));
let slot = 0;

/** The decoder gate's shared state, for worker threads to keep to (see claimDecoderSlot). */
export function decoderGate(): SharedArrayBuffer {
  return gate.buffer as SharedArrayBuffer;
}

/** A slot for one more worker thread in this gate; undefined when all are taken. */
export function claimDecoderSlot(shared: SharedArrayBuffer = decoderGate()): number | undefined {
  const state = new Int32Array(shared);
  for (let s = 1; s < SLOTS; s++) if (Atomics.compareExchange(state, CLAIMED + s, 0, 1) === 0) return s;
  return undefined;
}

/** Once the worker that had `freed` has stopped: forgets its steps (and its run alone) and frees the slot. */
export function releaseDecoderSlot(shared: SharedArrayBuffer, freed: number): void {
  const state = new Int32Array(shared);
  Atomics.store(state, COUNTS + freed, 0);
  Atomics.compareExchange(state, OWNER, freed + 1, 0);
  Atomics.store(state, CLAIMED + freed, 0);
  changed(state);
}

/** Makes this thread (a worker) keep to another thread's gate, counting its steps in `ownSlot`. */
export function useDecoderGate(shared: SharedArrayBuffer, ownSlot: number): void {
  gate = new Int32Array(shared);
  slot = ownSlot;
}

/** Atomics.waitAsync (Node 16+), which TypeScript's ES2022 library does not declare. */
const waitAsync = (Atomics as unknown as {
  waitAsync(array: Int32Array, index: number, value: number): { async: false; value: string } | { async: true; value: Promise<string> };
}).waitAsync;

function changed(state: Int32Array): void {
  Atomics.add(state, CHANGES, 1);
  Atomics.notify(state, CHANGES);
}

/** Waits (without blocking the thread) for the next change after `seen`; at once if there was one. */
async function nextChange(seen: number): Promise<void> {
  const wait = waitAsync(gate, CHANGES, seen);
  if (wait.async) await wait.value;
}

function stepsRunning(): number {
  let running = 0;
  for (let s = 0; s < SLOTS; s++) running += Atomics.load(gate, COUNTS + s);
  return running;
}

async function decodeSideBySide<T>(step: () => Promise<T>): Promise<T> {
  for (;;) {
    const seen = Atomics.load(gate, CHANGES);
    if (Atomics.load(gate, OWNER) !== 0) {
      await nextChange(seen);
      continue;
    }
    Atomics.add(gate, COUNTS + slot, 1);
    // A run alone may have begun between the check and the count: then give way to it.
    if (Atomics.load(gate, OWNER) === 0) break;
    leaveSideBySide();
  }
  try {
    return await step();
  } finally {
    leaveSideBySide();
  }
}

function leaveSideBySide(): void {
  Atomics.sub(gate, COUNTS + slot, 1);
  changed(gate);
}

async function decodeAlone<T>(step: () => Promise<T>): Promise<T> {
  for (;;) {
    const seen = Atomics.load(gate, CHANGES);
    if (Atomics.compareExchange(gate, OWNER, 0, slot + 1) === 0) break;
    await nextChange(seen);
  }
  try {
    for (;;) {
      const seen = Atomics.load(gate, CHANGES);
      if (stepsRunning() === 0) break;
      await nextChange(seen);
    }
    return await step();
  } finally {
    Atomics.compareExchange(gate, OWNER, slot + 1, 0);
    changed(gate);
  }
}

/** A decoder step's failure, whose message is the decoder's: it is only trusted from a run alone. */
class DecoderFailure extends Error {}

/** Runs a decoder step beside others; on failure, again alone, whose outcome (result or error) stands. */
async function decoderStep<T>(step: () => Promise<T>): Promise<T> {
  const run = async () => {
    try {
      return await step();
    } catch (error) {
      throw new DecoderFailure(describeError(error), { cause: error });
    }
  };
  try {
    return await decodeSideBySide(run);
  } catch (error) {
    if (!(error instanceof DecoderFailure)) throw error;
    return decodeAlone(run);
  }
}

/** The longest decoder message quoted: libvips repeats itself. */
const MAX_DETAIL_CHARS = 160;

/** The decoder's message, on one line and short, cut after a whole word. */
function shortDetail(error: unknown): string {
  const text = describeError(error);
  if (text.length <= MAX_DETAIL_CHARS) return text;
  const cut = text.slice(0, MAX_DETAIL_CHARS);
  const lastSpace = cut.lastIndexOf(' ');
  return `${lastSpace > 0 ? cut.slice(0, lastSpace) : cut}…`;
}

/**
 * The bytes one image holds while it is decoded and preprocessed: the decoder's output, its RGB and
 * alpha planes when it has other than 3 channels, and the premultiplied copy an alpha image resizes in.
 */
export function decodedBytes(metadata: Pick<Metadata, 'width' | 'height' | 'channels' | 'hasAlpha'>): number {
  const pixels = metadata.width * metadata.height;
  const channels = Math.min(Math.max(metadata.channels ?? 4, 1), 4);
  const alpha = metadata.hasAlpha ? 1 : 0;
  const planes = channels === 3 ? 0 : 3 + alpha;
  return pixels * (channels + planes + 4 * alpha);
}

/**
 * Whether Pillow would open this as "P" or "1": palette PNG and GIF, and 1-bit greyscale PNG.
 * (A GIF whose palette is exactly the grey ramp opens in Pillow as "L" and resizes bicubically;
 * such files are rare and are treated as palette images here.)
 */
function opensAsPaletteInPillow(metadata: Metadata): boolean {
  if (metadata.isPalette || metadata.format === 'gif') return true;
  return metadata.format === 'png' && metadata.bitsPerSample === 1 && (metadata.channels === 1 || metadata.channels === 2);
}

/**
 * Splits sharp's raw output (1 to 4 interleaved channels: grey, grey+alpha, RGB, RGBA) into RGB,
 * greyscale replicated into all three as Pillow's convert('RGB') does, and a separate alpha plane.
 */
function toRgb(raw: Buffer, pixels: number, channels: number): { data: Uint8Array; alpha?: Uint8Array } {
  if (channels === 3) return { data: new Uint8Array(raw.buffer, raw.byteOffset, pixels * 3) };
  const data = new Uint8Array(pixels * 3);
  const hasAlpha = channels === 2 || channels === 4;
  const alpha = hasAlpha ? new Uint8Array(pixels) : undefined;
  const grey = channels <= 2;
  for (let p = 0, s = 0, d = 0; p < pixels; p++, s += channels, d += 3) {
    if (grey) {
      data[d] = data[d + 1] = data[d + 2] = raw[s];
    } else {
      data[d] = raw[s];
      data[d + 1] = raw[s + 1];
      data[d + 2] = raw[s + 2];
    }
    if (alpha) alpha[p] = raw[s + channels - 1];
  }
  return alpha ? { data, alpha } : { data };
}

/** sharp (libvips) takes a good part of a second to load: only runs that decode images load it. */
export async function loadSharp(): Promise<typeof Sharp> {
  return (await import('sharp')).default;
}

/**
 * Decodes any image sharp reads (first frame or page) to 8-bit RGB. Embedded ICC profiles are
 * ignored, as Pillow ignores them; EXIF orientation is applied unless autoOrient is false. Every
 * failure is a one-line ClipEvalError naming `label`.
 */
export async function decodeImage(input: string | Uint8Array, label: string, options: DecodeOptions = {}): Promise<DecodedImage> {
  const checked = checkOptions(options);
  const sharp = await loadSharp();
  const { autoOrient, maxPixels } = checked;
  const bytes = await readInput(input, label, checked);
  // Headers first, without the limit, so that an oversized image gets an error that says so.
  let metadata: Metadata;
  try {
    metadata = await decoderStep(() => sharp(bytes, { limitInputPixels: false }).metadata());
  } catch (error) {
    if (!(error instanceof DecoderFailure)) throw error;
    const detail = shortDetail(error);
    if (/unsupported image format/i.test(detail)) throw inputError(`${label}: not an image file clip-eval can read (${detail})`, error.cause);
    throw inputError(`${label}: corrupt or truncated image (${detail})`, error.cause);
  }
  const { width, height } = metadata;
  if (width * height > maxPixels) {
    throw inputError(
      `${label}: image is ${width}x${height} = ${width * height} pixels, over the limit of ${maxPixels} (a guard against decompression bombs); raise the limit (--max-pixels) to read it`,
    );
  }
  await checked.reserve?.(decodedBytes(metadata));

  // failOn 'error' rejects truncated and corrupt data but not the benign warnings Pillow also accepts.
  let raw: { data: Buffer; info: OutputInfo };
  try {
    raw = await decoderStep(() =>
      sharp(bytes, { autoOrient, limitInputPixels: maxPixels, ignoreIcc: true, failOn: 'error' }).raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true }),
    );
  } catch (error) {
    if (!(error instanceof DecoderFailure)) throw error;
    throw inputError(`${label}: corrupt or truncated image (${shortDetail(error)})`, error.cause);
  }
  const { info } = raw;
  if (info.channels < 1 || info.channels > 4) {
    throw inputError(`${label}: unsupported image with ${info.channels} channels (expected grey, RGB, with or without alpha)`);
  }
  const pixels = info.width * info.height;
  if (raw.data.length !== pixels * info.channels) {
    throw inputError(`${label}: decoder returned ${raw.data.length} bytes for ${info.width}x${info.height}x${info.channels}`);
  }
  return {
    ...toRgb(raw.data, pixels, info.channels),
    width: info.width,
    height: info.height,
    channels: 3,
    palette: opensAsPaletteInPillow(metadata),
  };
}
